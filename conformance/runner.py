"""Run conformance checks against any DICOMweb / DIMSE archive and report one line per check."""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx

from conformance.data import Instance, TestData, build_test_data
from conformance.wire import multipart_body

DEFAULT_CALLING_AET = "CONFSCU"
CHECK_MODULES = (
    "stow", "qido", "wado", "metadata", "frames", "errors", "capabilities", "dimse",
)


class Failed(Exception):
    """The archive did something the cited section forbids."""


class Skipped(Exception):
    """The check could not run, or tests a feature the standard makes optional."""


@dataclass(frozen=True)
class Check:
    id: str
    section: str
    what: str
    func: Callable[[Context], str | None]
    needs: str          # "dicomweb" or "dimse"
    optional: bool = False


@dataclass
class Result:
    check: Check
    status: str         # PASS | FAIL | SKIP
    detail: str = ""
    seconds: float = 0.0

    def line(self) -> str:
        what = self.check.what + (" (optional)" if self.check.optional else "")
        text = f"{self.status:<5} {self.check.id:<34} {self.check.section:<24} {what}"
        return f"{text}  [{self.detail}]" if self.detail else text


@dataclass
class Dimse:
    host: str
    port: int
    aet: str
    calling_aet: str
    move_port: int | None


@dataclass
class Context:
    """Everything a check needs: the endpoints, clients and the runner's own test data."""

    dicomweb: str | None
    dimse: Dimse | None
    data: TestData
    timeout: float = 30.0
    api_key: str | None = field(default=None, repr=False)  # sent as a bearer token (issue 11)
    stored: dict[str, bool] = field(default_factory=dict)
    scratch: dict[str, Any] = field(default_factory=dict)   # answers later checks reuse
    _http: httpx.Client | None = None

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=self.timeout, follow_redirects=False, trust_env=False,
                                      headers=self.auth_headers)
        return self._http

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def url(self, path: str) -> str:
        assert self.dicomweb is not None
        return self.dicomweb.rstrip("/") + "/" + path.lstrip("/")

    def dicomweb_client(self):
        from dicomweb_client.api import DICOMwebClient

        assert self.dicomweb is not None
        return DICOMwebClient(url=self.dicomweb.rstrip("/"), headers=self.auth_headers)

    def stow(self, instances: list[Instance], study: str | None = None) -> httpx.Response:
        """POST instances as one multipart/related request (PS3.18 §10.5)."""
        body, ctype = multipart_body(i.encode() for i in instances)
        path = f"studies/{study}" if study else "studies"
        headers = {"Content-Type": ctype, "Accept": "application/dicom+json"}
        return self.http.post(self.url(path), content=body, headers=headers)

    def ensure_stored(self, name: str) -> None:
        """Store test study `name` through STOW-RS once; skip the caller if that failed."""
        if name not in self.stored:
            try:
                self.stored[name] = self.stow(self.data.studies[name]).status_code == 200
            except httpx.HTTPError:
                self.stored[name] = False
        if not self.stored[name]:
            raise Skipped(f"test study {name} could not be stored through STOW-RS")

    def close(self) -> None:
        if self._http is not None:
            self._http.close()


_REGISTRY: list[Check] = []


def check(
    id: str, section: str, what: str, *, needs: str = "dicomweb", optional: bool = False
) -> Callable[[Callable[[Context], str | None]], Callable[[Context], str | None]]:
    """Register a check; the function returns an optional detail or raises Failed/Skipped."""

    def register(func: Callable[[Context], str | None]) -> Callable[[Context], str | None]:
        _REGISTRY.append(Check(id, section, what, func, needs, optional))
        return func

    return register


def all_checks() -> list[Check]:
    """Every registered check, in module order (STOW first: it stores the test data)."""
    for name in CHECK_MODULES:
        try:
            importlib.import_module(f"conformance.checks.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"conformance.checks.{name}":
                raise
    # Import order varies (a test may import one check module first); run order must not.
    order = {f"conformance.checks.{name}": i for i, name in enumerate(CHECK_MODULES)}
    return sorted(_REGISTRY, key=lambda c: order.get(c.func.__module__, len(order)))


def run_one(ctx: Context, chk: Check) -> Result:
    """Run one check, turning its outcome (and any crash) into a Result."""
    if chk.needs == "dicomweb" and not ctx.dicomweb:
        return Result(chk, "SKIP", "no --dicomweb given")
    if chk.needs == "dimse" and not ctx.dimse:
        return Result(chk, "SKIP", "no --dimse given")
    start = time.monotonic()
    try:
        detail = chk.func(ctx) or ""
        status = "PASS"
    except Skipped as exc:
        status, detail = "SKIP", str(exc)
    except Failed as exc:
        status, detail = "FAIL", str(exc)
    except AssertionError as exc:
        status, detail = "FAIL", str(exc) or "assertion failed"
    except Exception as exc:  # noqa: BLE001 - a client crashing on a bad answer is a FAIL
        status, detail = "FAIL", f"{type(exc).__name__}: {exc}"
    return Result(chk, status, " ".join(detail.split())[:300], time.monotonic() - start)


def run(ctx: Context, selected: Iterator[Check] | list[Check], out: TextIO) -> list[Result]:
    """Run the checks in order, printing each line as it completes."""
    results = []
    for chk in selected:
        result = run_one(ctx, chk)
        results.append(result)
        print(result.line(), file=out, flush=True)
    return results


def results_json(results: list[Result]) -> str:
    """Machine-readable results: one object per check."""
    return json.dumps([{"id": r.check.id, "status": r.status, "section": r.check.section,
                        "what": r.check.what, "optional": r.check.optional, "detail": r.detail,
                        "seconds": round(r.seconds, 3)} for r in results],
                      ensure_ascii=False, indent=1)


def summary(results: list[Result]) -> str:
    counts = {s: sum(r.status == s for r in results) for s in ("PASS", "FAIL", "SKIP")}
    failed = [r.check.id for r in results if r.status == "FAIL"]
    text = f"{len(results)} checks: {counts['PASS']} passed, {counts['FAIL']} failed, "
    text += f"{counts['SKIP']} skipped in {sum(r.seconds for r in results):.1f} s"
    return text + (f"\nfailed: {' '.join(failed)}" if failed else "")


def parse_dimse(spec: str, calling_aet: str, move_port: int | None) -> Dimse:
    """HOST:PORT:AET -> Dimse."""
    host, port, aet = spec.rsplit(":", 2)
    return Dimse(host, int(port), aet, calling_aet, move_port)


def check_archive(
    dicomweb: str | None,
    dimse: Dimse | None,
    out: TextIO,
    only: str | None = None,
    timeout: float = 30.0,
    api_key: str | None = None,
) -> list[Result]:
    """Build fresh test data, run every (or every matching) check, print lines and summary."""
    ctx = Context(dicomweb, dimse, build_test_data(), timeout, api_key)
    chosen = [c for c in all_checks() if not only or any(p in c.id for p in only.split(","))]
    try:
        results = run(ctx, chosen, out)
    finally:
        ctx.close()
    print(summary(results), file=out, flush=True)
    return results
