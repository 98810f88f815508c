"""Compiling a typed Query into DuckDB SQL (PS3.4 C.2.2.2 semantics; rules in parse.py)."""
from __future__ import annotations

from typing import Any

from index.extract import SEP
from index.keys import KEYS, Key
from index.parse import fuzzy_tokens, high_bound, like_pattern, low_bound, pn_norm
from index.query import Match, Query, StudyScope

ESC = "ESCAPE '\\'"

# Columns each level selects; results.py reads rows in this order.
SELECT = {
    "PATIENT": "p.attrs, p.n_studies, p.n_series, p.n_instances, p.issuer",
    "STUDY": "st.attrs, st.n_series, st.n_instances, st.modalities, st.sop_classes, st.rep_sop",
    "SERIES": ("se.attrs, se.n_instances, se.rep_sop, st.attrs, st.n_series, st.n_instances, "
               "st.modalities, st.sop_classes"),
    "IMAGE": ("i.json, se.n_instances, st.n_series, st.n_instances, st.modalities, "
              "st.sop_classes"),
}
FROM = {
    "PATIENT": "patients p",
    "STUDY": "studies st",
    "SERIES": "series se JOIN studies st ON st.uid = se.study",
    "IMAGE": "instances i JOIN series se ON se.uid = i.series JOIN studies st ON st.uid = i.study",
}
IMAGE_ALONE = "i.json, i.series, i.study, i.instance_number, i.sop"
# Stable orders (the brief; NULLS LAST keeps attributes-less rows at the end).
ORDER = {
    "PATIENT": "p.patient_id, p.issuer",
    "STUDY": "st.study_date DESC NULLS LAST, st.study_time DESC NULLS LAST, st.uid",
    "SERIES": "se.series_number NULLS LAST, se.uid",
    "IMAGE": "i.instance_number NULLS LAST, i.sop",
}


def compile_query(query: Query) -> tuple[str, list[Any]]:
    """The SELECT for a query at its level, with its parameters, ordered, limited."""
    clauses, params, _ = _where(query)
    source = FROM[query.level]
    if query.level == "PATIENT" and not query.scope.everything:
        # patients and their counters as the visible studies make them (the patients table
        # counts every study of every hospital)
        where, scoped = scope_clause(query.scope, "STUDY")
        source = SCOPED_PATIENTS.format(where=where)
        params[:0] = scoped
    sql = f"SELECT {SELECT[query.level]} FROM {source}"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    return _ordered_page(sql, params, query), params


def compile_instances(query: Query) -> tuple[str, list[Any], bool] | None:
    """An IMAGE search on the instances table alone (the caller adds the series and study
    columns), or None when a match is on another table. True when the caller is to sort and
    page: a search scoped to one series or to SOP Instance UIDs has few rows, and sorting
    them here is cheaper than DuckDB's ORDER BY (~0.3 ms); the caller then applies the
    query's scope too (a subquery on studies doubled such a search's time, measured here)."""
    page_here = any(m.tag in ("0020000E", "00080018") and m.kind in ("single", "list") for m in query.matches)
    clauses, params, aliases = _where(query, alone=True, scoped=not page_here)
    if aliases - {"i"}:
        return None
    sql = f"SELECT {IMAGE_ALONE} FROM instances i"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    if page_here:
        return sql, params, True
    return _ordered_page(sql, params, query), params, False


def _ordered_page(sql: str, params: list[Any], query: Query) -> str:
    """sql with the level's stable order and the query's limit and offset (added to params)."""
    sql += f" ORDER BY {ORDER[query.level]}"
    if query.limit is not None:
        sql += " LIMIT ?"
        params.append(max(0, query.limit))
    if query.offset:
        sql += " OFFSET ?"
        params.append(max(0, query.offset))
    return sql


def _where(query: Query, alone: bool = False, scoped: bool = True) -> tuple[list[str], list[Any], set[str]]:
    """The WHERE terms of a query's supported matches and its scope (unless not scoped),
    their parameters, the tables they use (alone: an IMAGE search on the instances table alone)."""
    keys = KEYS[query.level]
    clauses: list[str] = []
    params: list[Any] = []
    aliases: set[str] = set()
    if scoped and not query.scope.everything and query.level != "PATIENT":
        clause, params = scope_clause(query.scope, "ALONE" if alone else query.level)
        clauses.append(clause)
    for m in query.matches:
        key = keys.get(m.tag)
        if key is None or m.kind == "universal":
            continue  # unsupported keys are the edge's to warn about (PS3.18 8.3.4.1)
        clause, ps = match_clause(key, m, query.fuzzy)
        clauses.append(clause)
        params.extend(ps)
        aliases.add(key.alias)
    return clauses, params, aliases


def match_clause(key: Key, m: Match, fuzzy: bool = False) -> tuple[str, list[Any]]:
    """One WHERE term for a match on a column."""
    col = f"{key.alias}.{key.column}"
    if key.kind == "pn":
        return _pn(col, m, fuzzy)
    if key.kind == "list":
        return _any(col, m)
    if key.kind in ("da", "tm", "dt"):
        return _range(col, key.kind.upper(), m)
    if key.kind == "int":
        return f"{col} = ?", [int(m.values[0])]
    if m.kind == "list":
        return f"{col} IN ({', '.join('?' * len(m.values))})", list(m.values)
    if m.kind == "wildcard":
        return f"{col} LIKE ? {ESC}", [like_pattern(m.values[0])]
    return f"{col} = ?", [m.values[0]]


def _range(col: str, vr: str, m: Match) -> tuple[str, list[Any]]:
    """DA/TM/DT single or range on normalized fixed-width strings (PS3.4 C.2.2.2.5)."""
    if m.kind == "range":
        lo, hi = m.values
    elif vr == "DA":
        return f"{col} = ?", [low_bound(vr, m.values[0])]
    else:
        lo = hi = m.values[0]  # a single TM/DT covers its whole unit
    terms, params = [], []
    if lo:
        terms.append(f"{col} >= ?")
        params.append(low_bound(vr, lo))
    if hi:
        terms.append(f"{col} <= ?")
        params.append(high_bound(vr, hi))
    return "(" + " AND ".join(terms) + ")", params


def _any(col: str, m: Match) -> tuple[str, list[Any]]:
    """A match on a multi-valued column: true when any value matches (e.g. ModalitiesInStudy)."""
    if m.kind == "list":
        return f"list_has_any({col}, ?::VARCHAR[])", [list(m.values)]
    if m.kind == "wildcard":
        return f"len(list_filter({col}, lambda x: x LIKE ? {ESC})) > 0", [like_pattern(m.values[0])]
    return f"list_contains({col}, ?)", [m.values[0]]


def _pn(col: str, m: Match, fuzzy: bool) -> tuple[str, list[Any]]:
    """PN: case-insensitive, any group unless '=' names groups; fuzzy by component prefixes."""
    value = m.values[0]
    if fuzzy and m.kind == "single":
        tokens = fuzzy_tokens(value)
        if not tokens:
            return "TRUE", []
        cond = " AND ".join([f"g LIKE ? {ESC}"] * len(tokens))
        return (f"len(list_filter({col}_fz, lambda g: {cond})) > 0",
                [f"%{SEP}{like_pattern(fuzzy_literal(t))}%" for t in tokens])
    op, conv = (f"LIKE ? {ESC}", lambda v: like_pattern(v.lower())) if m.kind == "wildcard" \
        else ("= ?", pn_norm)
    if "=" not in value:
        return f"len(list_filter({col}, lambda g: g {op})) > 0", [conv(value)]
    terms, params = [], []
    for i, part in enumerate(value.split("=")[:3]):
        if part.strip(" ^") and part.strip() != "*":
            terms.append(f"{col}[{i + 1}] {op}")
            params.append(conv(part))
    return ("(" + " AND ".join(terms) + ")" if terms else "TRUE"), params


def fuzzy_literal(token: str) -> str:
    """A fuzzy token whose * and ? are taken literally (like_pattern then escapes % _ \\)."""
    return token.replace("*", "").replace("?", "")


# PATIENT level under a scope: the patients table's columns (sql.SELECT["PATIENT"]) aggregated
# from the visible studies, as write.refresh_patients builds them from all studies.
SCOPED_PATIENTS = (
    "(SELECT patient_key AS key, arg_max(patient_id, seq) AS patient_id, arg_max(issuer, seq) AS issuer, "
    "arg_max(patient_name, seq) AS patient_name, arg_max(patient_name_fz, seq) AS patient_name_fz, "
    "arg_max(birth_date, seq) AS birth_date, arg_max(sex, seq) AS sex, count(*) AS n_studies, "
    "sum(n_series) AS n_series, sum(n_instances) AS n_instances, "
    "arg_max(patient_attrs, seq) AS attrs FROM studies st WHERE {where} GROUP BY patient_key) p")
# Where each level finds the study UID, its owner columns and the series UID
_SCOPE_COLS = {"STUDY": ("st.uid", "st", None), "SERIES": ("st.uid", "st", "se.uid"),
               "IMAGE": ("st.uid", "st", "i.series"), "ALONE": ("i.study", None, "i.series")}


def scope_clause(scope: StudyScope, level: str) -> tuple[str, list[Any]]:
    """One WHERE term admitting what a StudyScope sees (index.query.StudyScope) at a level
    ("ALONE": instances without joins, owners looked up in studies)."""
    study, owner, series = _SCOPE_COLS[level]
    terms: list[str] = []
    params: list[Any] = []
    if scope.hospitals:
        hosp = sorted(scope.hospitals)
        own = f"{{a}}.hospital IN ({', '.join('?' * len(hosp))})"
        params += hosp
        if scope.departments is not None:
            deps = sorted(scope.departments)
            own += f" AND {{a}}.department IN ({', '.join('?' * len(deps))})" if deps else " AND FALSE"
            params += deps
        terms.append(f"({own.format(a=owner)})" if owner else
                     f"{study} IN (SELECT s2.uid FROM studies s2 WHERE {own.format(a='s2')})")
    if scope.studies:
        terms.append(f"{study} IN ({', '.join('?' * len(scope.studies))})")
        params += sorted(scope.studies)
    if scope.series:
        granted = sorted(scope.series)
        marks_ = ", ".join("?" * len(granted))
        terms.append(f"{series} IN ({marks_})" if series else
                     f"{study} IN (SELECT s3.study FROM series s3 WHERE s3.uid IN ({marks_}))")
        params += granted
    return ("(" + " OR ".join(terms) + ")" if terms else "FALSE"), params
