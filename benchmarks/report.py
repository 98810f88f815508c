"""The figures the benchmark reports, their targets, the printed table and the JSON file."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVERS = ("yunying", "orthanc")


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    ratio_target: float | None = None   # yunying / orthanc must reach this (>= or <=)
    absolute_target: float | None = None  # yunying's own value must reach this
    note: str = ""


METRICS: tuple[Metric, ...] = (
    Metric("stow_ips", "STOW-RS CT, 4 clients", "inst/s", True, 1.5),
    Metric("stow_mbps", "STOW-RS CT, 4 clients", "MB/s", True),
    Metric("import_ips", "yunying import DIR (CT)", "inst/s", True,
           note="Orthanc has no local-import command"),
    Metric("corpus_ips", "STOW-RS corpus load (8x8 instances)", "inst/s", True),
    Metric("qido_p50", "QIDO-RS mix p50", "ms", False, 0.5),
    Metric("qido_p95", "QIDO-RS mix p95", "ms", False),
    Metric("metadata_p50", "series metadata, CT series p50", "ms", False, 0.1),
    Metric("frame_p50", "WADO-RS frame p50, 1 client", "ms", False),
    Metric("fps_1", "WADO-RS frames, 1 client", "frames/s", True),
    Metric("fps_8", "WADO-RS frames, 8 clients", "frames/s", True, 3.0),
    Metric("retrieve_mbps", "WADO-RS series retrieve, 300 instances", "MB/s", True, 1.0,
           note="multipart/related application/dicom, transfer-syntax=*, curl; median run"),
    Metric("retrieve_first_mbps", "the same, first time", "MB/s", True, 1.0,
           note="a new answer streams, hashed on the way; repeats carry its Repr-Digest"),
    Metric("rendered_p50", "rendered JPEG frame p50 (uncached)", "ms", False, 0.5),
    Metric("thumb_p50", "thumbnail p50, series, cached", "ms", False, absolute_target=20),
    Metric("cine_seq_fps", "cine: CT series frame by frame, 1", "frames/s", True,
           absolute_target=60),
    Metric("cine_par_fps", "cine: CT series, 6 in parallel", "frames/s", True,
           absolute_target=60),
    Metric("ttfi_p50", "time to first image p50", "ms", False, absolute_target=100,
           note="QIDO series -> series metadata -> first frame"),
    Metric("shaped_frame_ms", 'first CT image over "4G poor"', "ms", False, 0.5, absolute_target=1000,
           note="QIDO series -> series metadata -> frame 1 over an emulated 8/2 Mbit/s, 80 ms RTT, "
                "0.5 % loss link (benchmarks/link.py), new connection, browser Accept-Encoding"),
    Metric("shaped_rendered_ms", "the same with a rendered JPEG", "ms", False, 0.5, absolute_target=1000),
    Metric("shaped_kb", "bytes on the wire for that first image", "kB", False,
           note="IP bytes received by the client over the link, headers and retransmissions included"),
    Metric("shaped_floor_ms", "the same, the server's answers replayed instantly", "ms", False,
           note="the link's floor for the bytes this server sends (benchmarks/shaped.py replay_floor): "
                "first image minus this is the server's own share"),
    Metric("mpr_cold_ms", "coronal MPR, first request (cold)", "ms", False),
    Metric("mpr_p50", "coronal MPR 512x512x300 p50", "ms", False, absolute_target=150),
    Metric("cstore_1", "C-STORE CT, 1 association", "inst/s", True, 1.3),
    Metric("cstore_4", "C-STORE CT, 4 associations", "inst/s", True, 1.3),
    Metric("cstore_small", "C-STORE small instances, 4 storescu", "inst/s", True, 1.3,
           note="8x8 instances of ~8,000 studies (quick: 200), after C-MOVE"),
    Metric("cfind_p50", "C-FIND study mix p50", "ms", False, 0.5),
    Metric("cmove_ips", "C-MOVE CT series to storescp", "inst/s", True, 1.0),
    Metric("cget_ips", "C-GET CT series by getscu", "inst/s", True, 1.0,
           note="DCMTK getscu --ignore, association to release"),
    Metric("disk_ratio", "disk bytes / input bytes (CT)", "x", False, absolute_target=0.7),
    Metric("disk_all_ratio", "disk per input MB, everything loaded", "x", False, 1.0,
           note="data directory after the last C-STORE / bytes of every instance sent (CT copies, "
                "corpus, small instances): issue 9's small-instances-plus-CT figure"),
    Metric("pss_peak_mb", "server memory peak (PSS, sampled)", "MB", False, 1.0,
           note="largest PSS sum of the server's process tree, read every 0.25 s through the run"),
    Metric("rss_peak_mb", "server peak RSS (sum of VmHWM)", "MB", False,
           note="shared pages count once per process (Yunying's forkserver: ~66 MB of the server's)"),
    Metric("rss_idle_mb", "server memory idle after the run (PSS)", "MB", False, 1.0,
           note="PSS of the server and its child processes 12 s after the last workload"),
)
METRIC_KEYS = {m.key for m in METRICS}


class Results:
    """Per server: figure or the reason it is n/a, plus free-form details for the JSON."""

    def __init__(self, servers: list[str]) -> None:
        self.servers = servers
        self.values: dict[str, dict[str, float]] = {s: {} for s in servers}
        self.na: dict[str, dict[str, str]] = {s: {} for s in servers}
        self.details: dict[str, dict[str, Any]] = {s: {} for s in servers}
        self.notes: list[str] = []

    def set(self, server: str, key: str, value: float) -> None:
        assert key in METRIC_KEYS, key
        self.values[server][key] = float(value)

    def fail(self, server: str, keys: list[str], reason: str) -> None:
        for key in keys:
            if key not in self.values[server]:
                self.na[server].setdefault(key, reason)

    def cell(self, server: str, key: str) -> str:
        if key in self.values[server]:
            return _fmt(self.values[server][key])
        return f"n/a ({self.na[server].get(key, 'not run')})"

    def ratio(self, key: str) -> float | None:
        y, o = self.values.get("yunying", {}).get(key), self.values.get("orthanc", {}).get(key)
        if y is None or o is None or o == 0:
            return None
        return y / o

    def verdict(self, m: Metric) -> str:
        if m.absolute_target is not None:
            y = self.values.get("yunying", {}).get(m.key)
            if y is None:
                return ""
            ok = y >= m.absolute_target if m.higher_is_better else y <= m.absolute_target
            if not ok or m.ratio_target is None:  # with both targets, both must be met
                return "met" if ok else "MISSED"
        r = self.ratio(m.key)
        if m.ratio_target is None or r is None:
            return ""
        ok = r >= m.ratio_target if m.higher_is_better else r <= m.ratio_target
        return "met" if ok else "MISSED"

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for m in METRICS:
            target = _target_text(m)
            out.append({
                "key": m.key, "label": m.label, "unit": m.unit,
                **{s: self.values[s].get(m.key) for s in self.servers},
                **{f"{s}_na": self.na[s].get(m.key) for s in self.servers
                   if m.key not in self.values[s]},
                "ratio": self.ratio(m.key), "target": target, "verdict": self.verdict(m),
                "note": m.note,
            })
        return out

    def table(self, width: int = 40) -> str:
        heads = ["figure", "unit", *self.servers]
        both = len(self.servers) == 2
        if both:
            heads += ["ratio", "target", ""]
        rows = [heads]
        for m, row in zip(METRICS, self.rows()):
            line = [m.label, m.unit, *[_clip(self.cell(s, m.key), width) for s in self.servers]]
            if both:
                r = row["ratio"]
                line += ["" if r is None else f"{r:.2f}x", row["target"], row["verdict"]]
            rows.append(line)
        widths = [max(len(r[i]) for r in rows) for i in range(len(heads))]
        text = []
        for n, r in enumerate(rows):
            text.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
            if n == 0:
                text.append("  ".join("-" * w for w in widths))
        return "\n".join(text)

    def write_json(self, path: Path, meta: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"meta": meta, "metrics": self.rows(), "notes": self.notes, "details": self.details}
        path.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n")


def _target_text(m: Metric) -> str:
    if m.absolute_target is not None and m.ratio_target is not None:
        sign = ">=" if m.higher_is_better else "<="
        return f"{sign} {m.ratio_target:g}x, {m.absolute_target:g}"
    if m.absolute_target is not None:
        return f"{'>=' if m.higher_is_better else '<='} {m.absolute_target:g} (ours)"
    if m.ratio_target is not None:
        return f"{'>=' if m.higher_is_better else '<='} {m.ratio_target:g}x"
    return ""


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "nan"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 2] + "…)"
