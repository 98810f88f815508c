"""Render the conformance statement (PS3.2 Annex A structure + a PS3.18 part) as Markdown and HTML.

One document model (sections of paragraphs, bullets and tables) built from `conformance.tables`,
which reads the live routes, keys, codecs and presentation contexts; two renderers.
`render(settings)` is what the server calls at startup.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

import dimse.access
import dimse.persons
import dimse.retrieve
import yunying.archive
from conformance import tables as t
from dicomweb.http import DICOMWEB_ROOT
from dimse.identifier import LEVELS as CFIND_LEVELS
from index import parse
from yunying.settings import Settings, load_settings

PRODUCT = "Yunying"
MARKDOWN, HTML = "text/markdown", "text/html"


@dataclass
class Table:
    header: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]


@dataclass
class Section:
    title: str
    level: int = 2
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)


def _sec(title: str, *paragraphs: str, table: Table | None = None,
         bullets: Iterable[str] = (), level: int = 3) -> Section:
    paras = [p for p in paragraphs if p]
    return Section(title, level, paras, [table] if table else [], list(bullets))


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return ", ".join(map(str, value))
    return str(value) if value != "" else "—"


def _table(header: tuple[str, ...], items: Iterable[Any]) -> Table:
    """A table of row dataclasses (or tuples), their fields in header order."""
    rows = [item if isinstance(item, tuple) else astuple(item) for item in items]
    return Table(header, [tuple(_cell(v) for v in row) for row in rows])


def _section_key(section: str) -> list[int]:
    """'§10.4.1.1.3' sorts numerically; '—' (not in PS3.18) last."""
    return [int(n) for n in re.findall(r"\d+", section)] or [999]


def _doc_paragraph(doc: str | None, start: str = "", index: int = 0) -> str:
    """A docstring paragraph on one line: the one holding `start` (from there on), else by index."""
    paras = [" ".join(p.split()).replace("``", "`") for p in (doc or "").split("\n\n") if p.strip()]
    if start:
        return next((p[p.index(start):] for p in paras if start in p), "")
    return paras[index] if index < len(paras) else ""


def _pending_policy() -> str:
    """How often C-MOVE / C-GET report progress, from the constant the SCP uses."""
    interval = dimse.retrieve.PENDING_INTERVAL_S
    if interval <= 0:
        return "C-MOVE and C-GET send a pending response (0xFF00) after every sub-operation."
    return ("C-MOVE and C-GET send pending responses (0xFF00, optional in PS3.4 C.4.2.3 and "
            f"C.4.3.3) after the first sub-operation, then at most one every {interval * 1000:.0f} "
            "ms, each with the remaining, completed, failed and warning counts so far; the final "
            "response counts every sub-operation.")


def _dimse(settings: Settings) -> list[Section]:
    ae = t.scp(settings)
    cxs = t.contexts(ae)
    sets: dict[tuple[str, ...], str] = {}
    for cx in cxs:
        sets.setdefault(cx.syntaxes, chr(ord("A") + len(sets)))
    syntaxes = t.transfer_syntaxes({u for cx in cxs for u in cx.syntaxes})
    names = {x.uid: x.name for x in syntaxes}
    role_selection = sum(1 for cx in cxs if "role selection" in cx.roles)
    peers = [(aet, host, str(port), "store, find, move, get; C-MOVE destination"
              + ("; C-FIND by person (3.5)" if getattr(peer, "person_matching", False) else ""))
             for aet, peer in sorted(settings.peers.items()) for host, port in [peer]]
    levels = "; ".join(f"{root.title()} Root: {', '.join(lv)}" for root, lv in CFIND_LEVELS.items())
    everyone = " Every calling AE may (`dimse_accept_all`)." if settings.dimse_accept_all else ""
    return [
        _sec("2 Implementation model (PS3.2 A.4.1)", (
            f"One process serves two faces over one archive: DICOMweb at `{DICOMWEB_ROOT}` and "
            f"the DIMSE Application Entity `{settings.aet}`. A C-STORE, a STOW-RS part and a bulk "
            "import take the same ingest path; QIDO-RS and C-FIND parse keys with the same "
            "parser. The AE accepts associations (Verification, Storage, Query/Retrieve SCP) and "
            "initiates them only for C-MOVE sub-operations and the `yunying dimse` commands."),
            _doc_paragraph(yunying.archive.__doc__, "Re-store rule"), level=2),
        _sec(f"3 AE specification: {settings.aet} (PS3.2 A.4.2, A.4.4)",
             "" if settings.dimse_port else "DIMSE is disabled in this configuration "
             "(`dimse_port` 0); section 3 describes the AE as it runs when enabled.",
             table=_table(("Parameter", "Value"), t.ae_limits(ae, settings)), level=2),
        _sec("3.1 SOP classes and roles",
             f"{len(cxs)} presentation contexts, read from the AE the SCP runs; their transfer "
             "syntax sets are in 3.2.",
             table=_table(("SOP class", "UID", "Roles", "Transfer syntaxes"),
                          ((c.name, c.uid, c.roles, sets[c.syntaxes]) for c in cxs))),
        _sec("3.2 Transfer syntaxes per SOP class",
             "In the SCP's order of preference: it takes the first of its own list that the "
             "requestor offers, so a compressed offer (what the sender holds) is kept bit-exact.",
             table=_table(("Set", "Transfer syntaxes (order of preference)"),
                          ((name, "; ".join(f"{names.get(u, u)} `{u}`" for u in uids))
                           for uids, name in sets.items()))),
        _sec("3.3 Extended negotiation (PS3.7 D.3.3)",
             f"SCP/SCU Role Selection is accepted on {role_selection} storage contexts, so a C-GET "
             "requestor may take the SCP role for its sub-operations. SOP Class Extended and "
             "Common Extended Negotiation (relational queries, fuzzy semantic matching of person "
             "names, timezone query adjustment), User Identity Negotiation and asynchronous "
             "operations are not negotiated: the SCP answers none of them."),
        _sec("3.4 Association policies, peers and query levels",
             _doc_paragraph(dimse.access.__doc__, index=1) + everyone,
             f"C-FIND, C-MOVE and C-GET levels: {levels}. Hierarchical queries only; the keys and "
             "rules are those of QIDO-RS (7.3, 7.4, with the C-FIND levels of each key). C-FIND "
             "responses carry SpecificCharacterSet `ISO_IR 192`. C-MOVE destinations are the "
             "peers below; any other destination fails with 0xA801. " + _pending_policy(),
             table=_table(("Peer AE title", "Host", "Port", "Allowed"),
                          peers or [("(none configured)", "", "", "")])),
        _sec("3.5 C-FIND by person (extension, issue 15)",
             *(_doc_paragraph(dimse.persons.__doc__, index=i) for i in range(2)),
             "A peer enables it in its peers entry: `{\"host\": ..., \"port\": ..., "
             "\"person_matching\": true}`; without it (the default) C-FIND matches PatientID and "
             "IssuerOfPatientID as written."),
        _sec("4 Transfer syntaxes and codecs",
             "Every syntax the Storage SCP accepts or the pixel pipeline knows. *Decode*: frames "
             "can be decoded (transcoding source, rendering); *encode*: WADO-RS, C-MOVE and C-GET "
             "can transcode into it. The others are stored and served bit-exact only. A lossy "
             "syntax is produced only when a client names it.",
             table=_table(("Transfer syntax", "UID", "C-STORE SCP", "Decode", "Encode", "Lossy",
                           "Frame media type"), syntaxes), level=2),
    ]


def _security(settings: Settings) -> Section:
    loopback = " (loopback only)" if settings.host in ("127.0.0.1", "::1", "localhost") else ""
    origins = ", ".join(f"`{o}`" for o in settings.cors_origins)
    cors = f"CORS is allowed for {origins}." if origins else "No CORS origin is allowed."
    return _sec("6 Security (PS3.2 A.7)",
                f"Both faces bind `{settings.host}`{loopback}. Neither offers TLS, and DICOMweb "
                "has no authentication of its own: expose it through an authenticating reverse "
                f"proxy (RetrieveURLs honour `Forwarded` and `X-Forwarded-*`). {cors}",
                "DIMSE access is by calling AE title (3.4). Logs carry UIDs and counts, never "
                "patient names or identifiers (pynetdicom's identifier logging is off).", level=2)


# index/parse.py words its refusal for callers; the statement says what a client sees
_PARSER_ERROR = "raise InvalidQueryValue naming the tag"
_WIRE_ERROR = "are refused, naming the attribute (QIDO-RS 400, C-FIND 0xA900)"


def _dicomweb(settings: Settings) -> list[Section]:
    keys = t.query_keys()
    param = ("PS3.18", "Parameter", "Support", "Notes")
    return [
        _sec(f"7 DICOMweb services (PS3.18), root `{DICOMWEB_ROOT}`",
             f"HTTP port {settings.http_port}. Support is one of: {t.SUPPORTED}, "
             f"{t.NOT_SUPPORTED}, {t.IGNORED} (§8.3.4.1), {t.EXTENSION}. Every resource answers "
             "OPTIONS with `Allow`, HEAD where it answers GET, and 405 with `Allow` for another "
             "method.", level=2),
        _sec("7.1 Transactions and resources",
             table=_table(("PS3.18", "Transaction", "Method", "Resource", "Support", "Notes"),
                          sorted(t.transactions(), key=lambda x: _section_key(x.section)))),
        _sec("7.2 Search query parameters (§8.3.4)",
             f"At most {settings.qido_max_results} results per answer.",
             table=_table(param, t.query_parameters())),
        _sec("7.3 Matching keys (§10.6.1, Table 10.6.1-5; PS3.4 C.6)",
             f"{len(keys)} keys. Any other attribute may be returned with `includefield`; "
             "matching on an attribute not listed at a level is ignored with `Warning: 299`.",
             table=_table(("Keyword", "Tag", "VR", "Matching", "QIDO-RS levels", "C-FIND levels"),
                          keys)),
        _sec("7.4 Matching rules (PS3.4 C.2.2.2; fuzzy matching is ours)",
             bullets=[b.replace(_PARSER_ERROR, _WIRE_ERROR)
                      for b in t.docstring_bullets(parse.__doc__)]),
        _sec("7.5 Rendering parameters (§8.3.5)", table=_table(param, t.rendered_parameters())),
        _sec("7.6 Media types (§8.7)",
             f"STOW-RS bodies up to {settings.max_upload_bytes} bytes (413 beyond).",
             table=_table(("Transaction", "Media type", "Support", "Notes"), t.media_types())),
        _sec("7.7 Transfer syntaxes (§8.7.3)",
             "WADO-RS instances: the `transfer-syntax` parameter may name any syntax of section 4 "
             "with *encode* = yes (from a source with *decode* = yes), or `*` for the stored "
             "syntax; without it, Explicit VR Little Endian. Frames: 7.6."),
        _sec("7.8 Extensions", bullets=[
            "DELETE of a study, series or instance (7.1): index rows first, then the bytes; 204.",
            ("Reformat: `GET …/series/{series}/reformat?orientation=&position=&thickness=&mode=` "
             "renders an MPR, MIP or MinIP slice of a series volume (7.1: whether it is served)."),
            _doc_paragraph(yunying.archive.__doc__, "Re-store rule"),
            "Fuzzy person-name matching: the rules in 7.4.",
            f"This statement: `GET {DICOMWEB_ROOT}/conformance` (`{MARKDOWN}` or `{HTML}`).",
        ]),
        _sec("8 Errors",
             "One catalog for both faces: each error has its HTTP status and its DIMSE status. "
             'HTTP errors answer `{"status": N, "error": "reason"}`.',
             table=_table(("Error", "Meaning", "HTTP", "DIMSE"), t.error_catalog()), level=2),
    ]


def build_document(settings: Settings | None = None, version: str = "") -> list[Section]:
    """The statement as sections: PS3.2 Annex A order, then DICOMweb by PS3.18 section."""
    settings = settings or Settings()
    served = sorted({(x.section, x.name.split(",")[0]) for x in t.transactions()
                     if x.support != t.NOT_SUPPORTED}, key=lambda s: (_section_key(s[0]), s[1]))
    return [
        _sec(f"{PRODUCT} DICOM Conformance Statement",
             f"{PRODUCT} {version}".strip() + " is a DICOMweb-native image archive with a DIMSE "
             "face. This statement is generated from the tables the running server uses and from "
             "its configuration (`yunying conformance statement`); `yunying conformance check` "
             "tests it against a server with real clients.", level=1),
        _sec("1 Overview (PS3.2 A.1)",
             "DIMSE: Verification, Storage and Query/Retrieve (Patient and Study Root FIND, MOVE, "
             "GET) as SCP; Storage as SCU in C-MOVE and C-GET sub-operations. DICOMweb:",
             table=_table(("PS3.18", "Service"), served),
             level=2),
        *_dimse(settings),
        _sec("5 Character sets (PS3.2 A.6)",
             "Received text is decoded by its Specific Character Set as pydicom decodes it, "
             "ISO 2022 code extensions and multi-valued terms included; every DICOMweb answer is "
             "UTF-8 and C-FIND responses are `ISO_IR 192`. Person names keep their Alphabetic, "
             "Ideographic and Phonetic groups, each searchable.",
             table=_table(("Specific Character Set", "Decoded as (Python codec)"),
                          t.character_sets()), level=2),
        _security(settings),
        *_dicomweb(settings),
    ]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(doc: list[Section]) -> str:
    """The document as GitHub-flavoured Markdown."""
    out: list[str] = []
    for sec in doc:
        out += ["#" * sec.level + " " + sec.title, ""]
        for para in sec.paragraphs:
            out += [para, ""]
        if sec.bullets:
            out += [f"- {b}" for b in sec.bullets] + [""]
        for tab in sec.tables:
            out.append("| " + " | ".join(tab.header) + " |")
            out.append("|" + "---|" * len(tab.header))
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in tab.rows]
            out.append("")
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escape, then turn `code` spans into <code> (the only markup the document uses)."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _anchor(title: str) -> str:
    return "s-" + (re.sub(r"[^0-9a-z]+", "-", title.lower()).strip("-") or "top")


_STYLE = (
    "body{font-family:system-ui,sans-serif;line-height:1.45;max-width:80rem;margin:2rem auto;"
    "padding:0 1rem;color:#1a1a1a}h2{margin-top:2.2rem;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse;margin:1rem 0;width:100%;font-size:.92rem}"
    "th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3;position:sticky;top:0}tr:nth-child(even) td{background:#fafafa}"
    "code{font-size:.9em;background:#f3f3f3;padding:0 .2em;overflow-wrap:anywhere}"
    "@media print{th{position:static}}"
)


def render_html(doc: list[Section]) -> str:
    """The document as one self-contained HTML page (inline CSS, no scripts, no links out)."""
    title = html.escape(doc[0].title if doc else "Conformance statement")
    toc = "".join(f'<li><a href="#{_anchor(s.title)}">{_inline(s.title)}</a></li>'
                  for s in doc if s.level == 2)
    body: list[str] = []
    for i, sec in enumerate(doc):
        body.append(f'<h{sec.level} id="{_anchor(sec.title)}">{_inline(sec.title)}</h{sec.level}>')
        body += [f"<p>{_inline(p)}</p>" for p in sec.paragraphs]
        if i == 0:
            body.append(f'<nav aria-label="Contents"><ul>{toc}</ul></nav>')
        if sec.bullets:
            body.append("<ul>" + "".join(f"<li>{_inline(b)}</li>" for b in sec.bullets) + "</ul>")
        for tab in sec.tables:
            head = "".join(f"<th>{_inline(h)}</th>" for h in tab.header)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>")
            body += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                     for row in tab.rows]
            body.append("</tbody></table>")
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title><style>{_STYLE}</style></head><body><main>\n"
            + "\n".join(body) + "\n</main></body></html>\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("yunying")
    except PackageNotFoundError:  # a source checkout, not installed
        return ""


def render(settings: Settings) -> dict[str, str]:
    """The statement of this configuration as {"text/markdown": …, "text/html": …}."""
    doc = build_document(settings, _version())
    return {MARKDOWN: render_markdown(doc), HTML: render_html(doc)}


def write_statement(out_dir: str | Path, config: str | Path | None = None) -> list[Path]:
    """Write conformance-statement.md and .html of a configuration (file, YUNYING_*)."""
    docs = render(load_settings(config))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, page = out / "conformance-statement.md", out / "conformance-statement.html"
    md.write_text(docs[MARKDOWN], encoding="utf-8")
    page.write_text(docs[HTML], encoding="utf-8")
    return [md, page]
