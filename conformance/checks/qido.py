"""QIDO-RS, PS3.18 §10.6: matching, includefield, paging, return attributes, JSON (Annex F)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from conformance.runner import Context, Failed, Skipped, check
from conformance.wire import annex_f_problems, media_params, parse_multipart, value, values

JSON = {"Accept": "application/dicom+json"}


def query_url(ctx: Context, path: str, params: dict[str, str] | list[tuple[str, str]]) -> str:
    """Percent-encode only what RFC 3986 requires, leaving * ? , ^ as clients send them."""
    pairs = params.items() if isinstance(params, dict) else params
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='*?,^-=')}" for k, v in pairs)
    return ctx.url(path) + ("?" + query if query else "")


def qido(ctx: Context, path: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """GET a search resource; 200 with a JSON array, or 204 meaning no match."""
    resp = ctx.http.get(query_url(ctx, path, params or {}), headers=JSON)
    return results(resp)


def results(resp: httpx.Response) -> list[dict[str, Any]]:
    if resp.status_code == 204:
        return []
    if resp.status_code != 200:
        raise Failed(f"{resp.request.url.path}?{resp.request.url.query.decode()[:80]} "
                     f"gave {resp.status_code}")
    mtype, _ = media_params(resp.headers.get("content-type", ""))
    if mtype != "application/dicom+json":
        raise Failed(f"Content-Type {mtype!r}")
    body = resp.json()
    if not isinstance(body, list):
        raise Failed("QIDO body is not a JSON array")
    return body


def uids(objs: list[dict[str, Any]], keyword: str) -> set[str]:
    return {value(o, keyword) for o in objs}


def expect(objs: list[dict[str, Any]], keyword: str, wanted: set[str]) -> str:
    got = uids(objs, keyword)
    if got != wanted:
        raise Failed(f"matched {len(got)} ({sorted(got)[:3]}...), expected {len(wanted)}")
    return f"{len(got)} matched"


def study_a_instances(ctx: Context) -> list[Any]:
    return ctx.data.studies["A"] + ctx.data.studies.get("A-extra", [])


def run_pid(ctx: Context) -> str:
    return f"YYC{ctx.data.run}*"


def ab(ctx: Context) -> None:
    ctx.ensure_stored("A")
    ctx.ensure_stored("B")


# PS3.18 Table 10.6.3-3 (study), -4 (series), -5 (instance): required if present in the data.
STUDY_RETURN = ("StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy",
                "ReferringPhysicianName", "PatientName", "PatientID", "PatientBirthDate",
                "PatientSex", "StudyInstanceUID", "StudyID", "NumberOfStudyRelatedSeries",
                "NumberOfStudyRelatedInstances", "RetrieveURL")
SERIES_RETURN = ("Modality", "SeriesDescription", "SeriesNumber", "SeriesInstanceUID",
                 "NumberOfSeriesRelatedInstances", "RetrieveURL")
INSTANCE_RETURN = ("SOPClassUID", "SOPInstanceUID", "InstanceNumber", "Rows", "Columns",
                   "BitsAllocated", "RetrieveURL")


def missing(obj: dict[str, Any], keywords: tuple[str, ...]) -> list[str]:
    return [k for k in keywords if value(obj, k) is None]


@check("qido-study-uid", "PS3.18 §10.6.1.2", "/studies?StudyInstanceUID= single value match")
def study_uid(ctx: Context) -> str:
    ctx.ensure_stored("A")
    objs = qido(ctx, "studies", {"StudyInstanceUID": ctx.data.study_uid("A")})
    return expect(objs, "StudyInstanceUID", {ctx.data.study_uid("A")})


@check("qido-study-return-keys", "PS3.18 Table 10.6.3-3", "study results carry the required attributes")
def study_return(ctx: Context) -> None:
    ctx.ensure_stored("A")
    objs = qido(ctx, "studies", {"StudyInstanceUID": ctx.data.study_uid("A")})
    if not objs:
        raise Failed("no study")
    if miss := missing(objs[0], STUDY_RETURN):
        raise Failed("missing " + ", ".join(miss))


@check("qido-instance-availability", "PS3.18 Table 10.6.3-3", "InstanceAvailability (0008,0056) returned")
def availability(ctx: Context) -> None:
    ctx.ensure_stored("A")
    objs = qido(ctx, "studies", {"StudyInstanceUID": ctx.data.study_uid("A")})
    if not objs or value(objs[0], "InstanceAvailability") not in {"ONLINE", "NEARLINE", "OFFLINE",
                                                                   "UNAVAILABLE"}:
        raise Failed("InstanceAvailability missing or not a defined term")


@check("qido-study-counts", "PS3.18 Table 10.6.3-3",
       "ModalitiesInStudy and NumberOfStudyRelatedSeries/Instances are exact")
def study_counts(ctx: Context) -> str:
    ctx.ensure_stored("A")
    objs = qido(ctx, "studies", {"StudyInstanceUID": ctx.data.study_uid("A"),
                                 "includefield": "ModalitiesInStudy,NumberOfStudyRelatedSeries,"
                                                 "NumberOfStudyRelatedInstances"})
    if not objs:
        raise Failed("no study")
    insts = study_a_instances(ctx)
    want_series = len({i.series for i in insts})
    want_mods = {str(i.ds.Modality) for i in insts}
    got = (value(objs[0], "NumberOfStudyRelatedSeries"),
           value(objs[0], "NumberOfStudyRelatedInstances"), set(values(objs[0], "ModalitiesInStudy")))
    if got != (want_series, len(insts), want_mods):
        raise Failed(f"got series/instances/modalities {got}, expected "
                     f"{(want_series, len(insts), want_mods)}")
    return f"{want_series} series, {len(insts)} instances, {sorted(want_mods)}"


@check("qido-annex-f", "PS3.18 Annex F.2", "vr on every attribute, PN objects, numbers for IS/US/...")
def annex_f(ctx: Context) -> None:
    ab(ctx)
    objs = qido(ctx, "studies", {"PatientID": run_pid(ctx), "includefield": "all"})
    objs += qido(ctx, f"studies/{ctx.data.study_uid('A')}/series", {"includefield": "all"})
    objs += qido(ctx, f"studies/{ctx.data.study_uid('A')}/instances", {"includefield": "all"})
    if problems := annex_f_problems(objs):
        raise Failed(f"{len(problems)} problems: " + "; ".join(problems[:3]))


@check("qido-unicode-pn", "PS3.18 Annex F.2.2 / PS3.5 §6.1",
       "ISO_IR 192 name returned as UTF-8 Alphabetic/Ideographic groups")
def unicode_pn(ctx: Context) -> None:
    ctx.ensure_stored("A")
    objs = qido(ctx, "studies", {"StudyInstanceUID": ctx.data.study_uid("A")})
    pn = value(objs[0], "PatientName") if objs else None
    if pn != {"Alphabetic": "Zhang^San", "Ideographic": "张^三"}:
        raise Failed(f"PatientName {pn!r}")


@check("qido-series", "PS3.18 §10.6.1 / Table 10.6.3-4", "/studies/{study}/series: all series, required keys")
def series(ctx: Context) -> str:
    ctx.ensure_stored("A")
    objs = qido(ctx, f"studies/{ctx.data.study_uid('A')}/series")
    detail = expect(objs, "SeriesInstanceUID", {i.series for i in study_a_instances(ctx)})
    for obj in objs:
        keys = SERIES_RETURN if value(obj, "SeriesDescription") else SERIES_RETURN[:1] + SERIES_RETURN[2:]
        if miss := missing(obj, keys):
            raise Failed("missing " + ", ".join(miss))
    return detail


@check("qido-series-counts", "PS3.18 Table 10.6.3-4", "NumberOfSeriesRelatedInstances is exact")
def series_counts(ctx: Context) -> None:
    ctx.ensure_stored("A")
    objs = qido(ctx, f"studies/{ctx.data.study_uid('A')}/series",
                {"includefield": "NumberOfSeriesRelatedInstances"})
    for series_uid, insts in ctx.data.series_of("A").items():
        obj = next((o for o in objs if value(o, "SeriesInstanceUID") == series_uid), None)
        if obj is None or value(obj, "NumberOfSeriesRelatedInstances") != len(insts):
            raise Failed(f"series {series_uid}: {obj and value(obj, 'NumberOfSeriesRelatedInstances')}"
                         f", expected {len(insts)}")


@check("qido-instances", "PS3.18 §10.6.1 / Table 10.6.3-5",
       "/studies/{s}/series/{s}/instances: all instances, required keys")
def instances(ctx: Context) -> str:
    ctx.ensure_stored("A")
    ct = ctx.data.ct
    objs = qido(ctx, f"studies/{ct.study}/series/{ct.series}/instances")
    detail = expect(objs, "SOPInstanceUID", {i.sop for i in ctx.data.series_of("A")[ct.series]})
    for obj in objs:
        if miss := missing(obj, INSTANCE_RETURN):
            raise Failed("missing " + ", ".join(miss))
    return detail


@check("qido-study-instances", "PS3.18 §10.6.1", "/studies/{study}/instances lists every instance")
def study_instances(ctx: Context) -> str:
    ctx.ensure_stored("A")
    objs = qido(ctx, f"studies/{ctx.data.study_uid('A')}/instances")
    return expect(objs, "SOPInstanceUID", {i.sop for i in study_a_instances(ctx)})


@check("qido-all-series", "PS3.18 §10.6.1", "/series?StudyInstanceUID= (all-studies level)")
def all_series(ctx: Context) -> str:
    ctx.ensure_stored("A")
    objs = qido(ctx, "series", {"StudyInstanceUID": ctx.data.study_uid("A")})
    return expect(objs, "SeriesInstanceUID", {i.series for i in study_a_instances(ctx)})


@check("qido-all-instances", "PS3.18 §10.6.1", "/instances?SeriesInstanceUID= (all-studies level)")
def all_instances(ctx: Context) -> str:
    ctx.ensure_stored("A")
    mf = ctx.data.multiframe
    objs = qido(ctx, "instances", {"SeriesInstanceUID": mf.series})
    detail = expect(objs, "SOPInstanceUID", {mf.sop})
    if value(objs[0], "NumberOfFrames") != 3:
        raise Failed(f"NumberOfFrames {value(objs[0], 'NumberOfFrames')!r}, expected 3")
    return detail


@check("qido-wildcard-star", "PS3.4 §C.2.2.2.4", "PatientID=prefix* matches both test studies")
def wildcard_star(ctx: Context) -> str:
    ab(ctx)
    objs = qido(ctx, "studies", {"PatientID": run_pid(ctx)})
    return expect(objs, "StudyInstanceUID", {ctx.data.study_uid("A"), ctx.data.study_uid("B")})


@check("qido-wildcard-question", "PS3.4 §C.2.2.2.4", "PatientID with ? matches one character")
def wildcard_q(ctx: Context) -> str:
    ab(ctx)
    objs = qido(ctx, "studies", {"PatientID": ctx.data.patient_id("A")[:-1] + "?"})
    return expect(objs, "StudyInstanceUID", {ctx.data.study_uid("A"), ctx.data.study_uid("B")})


@check("qido-wildcard-pn-utf8", "PS3.4 §C.2.2.2.4 / PS3.18 §8.3.4",
       "PatientName=*张* (percent-encoded UTF-8) matches the Chinese name")
def wildcard_pn(ctx: Context) -> str:
    ab(ctx)
    objs = qido(ctx, "studies", {"PatientName": "*张*", "PatientID": run_pid(ctx)})
    return expect(objs, "StudyInstanceUID", {ctx.data.study_uid("A")})


@check("qido-pn-prefix", "PS3.4 §C.2.2.2.4", "PatientName=Smi* matches the Latin name only")
def pn_prefix(ctx: Context) -> str:
    ab(ctx)
    objs = qido(ctx, "studies", {"PatientName": "Smi*", "PatientID": run_pid(ctx)})
    return expect(objs, "StudyInstanceUID", {ctx.data.study_uid("B")})


@check("qido-uid-list", "PS3.4 §C.2.2.2.2 / PS3.18 §8.3.4.1",
       "StudyInstanceUID=uid1,uid2 (UID list matching)")
def uid_list(ctx: Context) -> str:
    ab(ctx)
    both = {ctx.data.study_uid("A"), ctx.data.study_uid("B")}
    objs = qido(ctx, "studies", {"StudyInstanceUID": ",".join(sorted(both))})
    return expect(objs, "StudyInstanceUID", both)


@check("qido-date-range", "PS3.4 §C.2.2.2.5", "StudyDate ranges: closed, open start, open end")
def date_range(ctx: Context) -> None:
    ab(ctx)
    a, b = ctx.data.study_uid("A"), ctx.data.study_uid("B")
    for rng, want in (("20240101-20241231", {a}), ("-20231231", {b}), ("20230301-", {a, b}),
                      ("20240115", {a})):
        objs = qido(ctx, "studies", {"StudyDate": rng, "PatientID": run_pid(ctx)})
        if uids(objs, "StudyInstanceUID") != want:
            raise Failed(f"StudyDate={rng} matched {len(objs)}, expected {len(want)}")


@check("qido-modality-series", "PS3.4 §C.2.2.2.1", "series query Modality=MR matches the MR series")
def modality(ctx: Context) -> str:
    ctx.ensure_stored("A")
    objs = qido(ctx, f"studies/{ctx.data.study_uid('A')}/series", {"Modality": "MR"})
    return expect(objs, "SeriesInstanceUID", {ctx.data.compressed.series})


@check("qido-modalities-in-study", "PS3.4 §C.6.2.1.2 / PS3.18 §10.6.1",
       "study query ModalitiesInStudy=OT matches the study that has OT")
def modalities_in_study(ctx: Context) -> str:
    ab(ctx)
    objs = qido(ctx, "studies", {"ModalitiesInStudy": "OT", "PatientID": run_pid(ctx)})
    return expect(objs, "StudyInstanceUID", {ctx.data.study_uid("A")})


@check("qido-includefield", "PS3.18 §8.3.4.3", "includefield by tag, by keyword and comma-separated")
def includefield(ctx: Context) -> None:
    ctx.ensure_stored("A")
    base = {"StudyInstanceUID": ctx.data.study_uid("A")}
    for inc in ("00081030", "StudyDescription", "00081030,00080060", "all"):
        objs = qido(ctx, "studies", {**base, "includefield": inc})
        if not objs or value(objs[0], "StudyDescription") != "Yunying conformance":
            raise Failed(f"includefield={inc}: StudyDescription not returned")


@check("qido-includefield-repeated", "PS3.18 §8.3.4.3", "includefield repeated as separate parameters")
def includefield_repeated(ctx: Context) -> None:
    ctx.ensure_stored("A")
    params = [("StudyInstanceUID", ctx.data.study_uid("A")), ("includefield", "StudyDescription"),
              ("includefield", "00080090")]
    resp = ctx.http.get(query_url(ctx, "studies", params), headers=JSON)
    objs = results(resp)
    if not objs or value(objs[0], "StudyDescription") is None:
        raise Failed("StudyDescription not returned")


@check("qido-limit-offset", "PS3.18 §8.3.4.4", "limit and offset page through results")
def limit_offset(ctx: Context) -> None:
    ab(ctx)
    both = {ctx.data.study_uid("A"), ctx.data.study_uid("B")}
    pages = []
    for offset in (0, 1):
        objs = qido(ctx, "studies", {"PatientID": run_pid(ctx), "limit": "1",
                                     "offset": str(offset)})
        if len(objs) != 1:
            raise Failed(f"limit=1&offset={offset} gave {len(objs)} results")
        pages.append(value(objs[0], "StudyInstanceUID"))
    if set(pages) != both:
        raise Failed("two pages of one did not give the two studies")
    if qido(ctx, "studies", {"PatientID": run_pid(ctx), "offset": "2"}):
        raise Failed("offset past the end returned results")


@check("qido-limit-warning", "PS3.18 §8.3.4.4",
       "results cut by limit carry a Warning 299 (additional results)", optional=True)
def limit_warning(ctx: Context) -> str:
    ab(ctx)
    resp = ctx.http.get(query_url(ctx, "studies", {"PatientID": run_pid(ctx), "limit": "1"}),
                        headers=JSON)
    if len(results(resp)) != 1:
        raise Failed("limit=1 did not give one result")
    warning = resp.headers.get("warning")
    if not warning:
        raise Skipped("no Warning header when results were cut")
    if not warning.startswith("299"):
        raise Failed(f"Warning: {warning!r} is not code 299")
    return warning


@check("qido-bad-limit", "PS3.18 §8.3.4.4 / §10.6.3", "limit=abc: 400 Bad Request")
def bad_limit(ctx: Context) -> None:
    resp = ctx.http.get(ctx.url("studies"), params={"limit": "abc"}, headers=JSON)
    if resp.status_code != 400:
        raise Failed(f"status {resp.status_code}")


@check("qido-bad-date", "PS3.18 §10.6.3 / PS3.4 §C.2.2.2.5", "StudyDate=notadate: 400 Bad Request")
def bad_date(ctx: Context) -> None:
    resp = ctx.http.get(ctx.url("studies"), params={"StudyDate": "notadate"}, headers=JSON)
    if resp.status_code != 400:
        raise Failed(f"status {resp.status_code}")


@check("qido-no-match", "PS3.18 §10.6.3", "no match: 200 with [] or 204")
def no_match(ctx: Context) -> None:
    resp = ctx.http.get(ctx.url("studies"), params={"StudyInstanceUID": "1.2.3.4.5.6.7.8.9"},
                        headers=JSON)
    if results(resp):
        raise Failed("results for a UID that was never stored")


@check("qido-fuzzymatching", "PS3.18 §8.3.4.2", "fuzzymatching=true is accepted (Warning if unsupported)")
def fuzzy(ctx: Context) -> str:
    ab(ctx)
    params = {"PatientID": run_pid(ctx), "fuzzymatching": "true"}
    resp = ctx.http.get(query_url(ctx, "studies", params), headers=JSON)
    results(resp)
    return resp.headers.get("warning", "no Warning header")


@check("qido-xml", "PS3.18 §10.6.3", 'Accept multipart/related; type="application/dicom+xml"')
def xml(ctx: Context) -> str:
    ctx.ensure_stored("A")
    resp = ctx.http.get(ctx.url("studies"), params={"StudyInstanceUID": ctx.data.study_uid("A")},
                        headers={"Accept": 'multipart/related; type="application/dicom+xml"'})
    if resp.status_code != 200:
        raise Failed(f"status {resp.status_code}")
    parts = parse_multipart(resp.headers.get("content-type", ""), resp.content)
    if len(parts) != 1 or b"NativeDicomModel" not in parts[0].body:
        raise Failed(f"{len(parts)} parts, expected one NativeDicomModel")
    return "1 XML part"


@check("qido-accept-unsupported", "PS3.18 §8.7.8.1", "Accept: image/png on a search: 406")
def not_acceptable(ctx: Context) -> None:
    resp = ctx.http.get(ctx.url("studies"), params={"limit": "1"}, headers={"Accept": "image/png"})
    if resp.status_code != 406:
        raise Failed(f"status {resp.status_code}")
