"""Render the conformance statement (PS3.2 structure + a PS3.18 part) as Markdown and HTML.

One document model (sections of paragraphs and tables) built from `conformance.tables`, two
renderers; nothing is written by hand twice.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from conformance import tables as t

PRODUCT = "Yunying"


@dataclass
class Table:
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]


@dataclass
class Section:
    title: str
    level: int = 2
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def build_document(version: str = "") -> list[Section]:
    """The statement as sections, in PS3.2 order, then DICOMweb by PS3.18 section."""
    root = t.DICOMWEB_ROOT
    return [
        Section(f"{PRODUCT} DICOM Conformance Statement", 1, [
            f"{PRODUCT} {version}".strip() + " is a DICOMweb-native image archive with a DIMSE "
            "face. This statement is generated from the tables the server uses "
            "(`yunying conformance statement`); `yunying conformance check` tests it against a "
            "running server with real clients.",
        ]),
        Section("1 Network services (PS3.2 §A.1)", 2, [], [Table(
            ("Service", "SOP Class", "Role", "Notes"),
            [(s.name, s.sop_class, s.role, s.notes) for s in t.NETWORK_SERVICES])]),
        Section("2 SOP classes (PS3.2 §A.4)", 2, [
            ("Storage SCP accepts every Storage SOP Class of PS3.4 Annex B.5 and plays the SCU "
            "role for the same classes in C-MOVE and C-GET sub-operations. Examples:"),
        ], [Table(("SOP Class", "UID", "Roles"),
                  [(s.name, s.uid, s.roles) for s in t.STORAGE_EXAMPLES])]),
        Section("3 Transfer syntaxes (PS3.2 §A.4.2)", 2, [
            ("Accepted for every Storage SOP Class as SCP; offered by WADO-RS on request "
            "(`transfer-syntax=`). A compressed original is kept bit-exact and returned as "
            "received with `transfer-syntax=*`."),
        ], [Table(("Transfer syntax", "UID", "C-STORE SCP", "WADO-RS output", "Notes"),
                  [(x.name, x.uid, _yes(x.scp_accepts), _yes(x.wado_output), x.notes)
                   for x in t.TRANSFER_SYNTAXES])]),
        Section("4 Extended negotiation (PS3.2 §A.4.3)", 2, [t.EXTENDED_NEGOTIATION]),
        Section("5 Character sets (PS3.2 §A.7)", 2, [
            ("Text is decoded at ingest; every DICOMweb answer is UTF-8 and C-FIND responses are "
            "sent in ISO_IR 192."),
        ], [Table(("Specific Character Set", "Meaning"), list(t.CHARACTER_SETS))]),
        Section("6 Security (PS3.2 §A.8)", 2, [t.SECURITY]),
        Section(f"7 DICOMweb services (PS3.18), root `{root}`", 2, [
            ("Support is one of: supported, not supported, ignored (with a `Warning: 299` "
            "header, PS3.18 §8.3.4.1), optional, extension."),
        ]),
        Section("7.1 Transactions", 3, [], [Table(
            ("PS3.18", "Transaction", "Method", "Resource", "Support", "Notes"),
            [(x.section, x.name, x.method, x.resource, x.support, x.notes)
             for x in t.TRANSACTIONS])]),
        Section("7.2 Query parameters (§8.3.4, §10.6.1)", 3, [], [Table(
            ("PS3.18", "Parameter", "Support", "Notes"),
            [(q.section, q.name, q.support, q.notes) for q in t.QUERY_PARAMETERS])]),
        Section("7.3 Matching keys (Table 10.6.1-5)", 3, [
            ("Other attributes may be returned with `includefield`; matching on an attribute not "
            "listed is ignored with a Warning header."),
        ], [Table(("Level", "Keyword", "Tag", "Matching"),
                  [(k.level, k.keyword, k.tag, k.matching) for k in t.QUERY_KEYS])]),
        Section("7.4 Media types (§8.7)", 3, [], [Table(
            ("Transaction", "Media type", "Support", "Notes"),
            [(m.transaction, m.media_type, m.support, m.notes) for m in t.MEDIA_TYPES])]),
    ]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(doc: list[Section]) -> str:
    out: list[str] = []
    for sec in doc:
        out += ["#" * sec.level + " " + sec.title, ""]
        for para in sec.paragraphs:
            out += [para, ""]
        for tab in sec.tables:
            out.append("| " + " | ".join(tab.header) + " |")
            out.append("|" + "---|" * len(tab.header))
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in tab.rows]
            out.append("")
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escape, then turn `code` spans into <code> (the only markup the tables use)."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def render_html(doc: list[Section]) -> str:
    title = html.escape(doc[0].title if doc else "Conformance statement")
    body: list[str] = []
    for sec in doc:
        body.append(f"<h{sec.level}>{_inline(sec.title)}</h{sec.level}>")
        body += [f"<p>{_inline(p)}</p>" for p in sec.paragraphs]
        for tab in sec.tables:
            body.append("<table><thead><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in tab.header)
                        + "</tr></thead><tbody>")
            body += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                     for row in tab.rows]
            body.append("</tbody></table>")
    style = ("body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem}"
             "table{border-collapse:collapse;margin:1rem 0;width:100%}"
             "th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}"
             "th{background:#f3f3f3}code{font-size:.9em}")
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title><style>{style}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_statement(out_dir: str | Path, version: str = "") -> list[Path]:
    """Write conformance-statement.md and .html into out_dir; returns the paths."""
    if not version:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as dist_version

        try:
            version = dist_version("yunying")
        except PackageNotFoundError:  # a source checkout, not installed
            version = ""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = build_document(version)
    md, page = out / "conformance-statement.md", out / "conformance-statement.html"
    md.write_text(render_markdown(doc), encoding="utf-8")
    page.write_text(render_html(doc), encoding="utf-8")
    return [md, page]
