"""The rows of the conformance statement, read from the objects the server runs on.

Nothing here restates a fact the code holds: routes come from `dicomweb.app.ROUTES`, matching
keys from `index.parse.supported_match_tags` (their rules by asking `parse_match`), QIDO
parameters from `dicomweb.qido.RESERVED`, transfer syntaxes and frame media types from
`yunying.pixels`, SOP classes and transfer syntaxes from the AE `dimse.server.build_ae` builds.
Written here is only the prose a table cannot carry (which PS3.18 section a handler implements);
a handler or parameter without prose shows as UNDESCRIBED, and a test fails.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Iterable
from dataclasses import dataclass

import pydicom.charset
from pydicom.datadict import keyword_for_tag
from pydicom.uid import UID
from pynetdicom import AE

from dicomweb import capabilities, frames, qido, rendered, stow, wado, wado_uri
from dicomweb.app import ROUTES
from dicomweb.http import DICOMWEB_ROOT
from dimse.identifier import LEVELS as CFIND_LEVELS
from dimse.server import build_ae
from dimse.uids import QR_MODELS, VERIFICATION
from index.errors import InvalidQueryValue
from index.keys import KEYS, vr_of
from index.parse import parse_match, supported_match_tags
from index.query import Level
from yunying import errors
from yunying.pixels import codecs, syntaxes
from yunying.settings import Settings

SUPPORTED, NOT_SUPPORTED, IGNORED, EXTENSION = (
    "supported", "not supported", "ignored (Warning 299)", "extension")
UNDESCRIBED = "UNDESCRIBED"
QIDO_LEVELS: dict[Level, str] = {"STUDY": "study", "SERIES": "series", "IMAGE": "instance"}  # PS3.18 10.6.1
_ORDER = ["PATIENT", "STUDY", "SERIES", "IMAGE"]


@dataclass(frozen=True)
class Transaction:
    section: str
    name: str
    method: str
    resource: str
    support: str
    notes: str = ""


@dataclass(frozen=True)
class QueryParameter:
    section: str
    name: str
    support: str
    notes: str = ""


@dataclass(frozen=True)
class QueryKey:
    keyword: str
    tag: str
    vr: str
    matching: str
    qido_levels: tuple[str, ...]   # "study", "series", "instance"
    cfind_levels: tuple[str, ...]  # "PATIENT", "STUDY", "SERIES", "IMAGE"


@dataclass(frozen=True)
class MediaType:
    transaction: str
    media_type: str
    support: str
    notes: str = ""


@dataclass(frozen=True)
class TransferSyntax:
    name: str
    uid: str
    scp_accepts: bool  # in the C-STORE SCP's storage contexts
    decode: bool       # frames can be decoded here (transcoding source, rendering)
    encode: bool       # frames can be encoded here (transcoding target)
    lossy: bool
    frame_media: str   # PS3.18 Table 8.7.3-5; "" when the pixel pipeline does not know it


@dataclass(frozen=True)
class Context:
    """One presentation context the SCP accepts."""

    name: str
    uid: str
    roles: str
    syntaxes: tuple[str, ...]


# ---- DICOMweb (PS3.18) ------------------------------------------------------------------------

# keyed by the handler ROUTES holds: (PS3.18 section, transaction, notes)
_ENDPOINTS: dict[object, tuple[str, str, str]] = {
    qido.search_studies: ("§10.6", "Search (QIDO-RS), study level", ""),
    qido.search_series: ("§10.6", "Search (QIDO-RS), series level", ""),
    qido.search_instances: ("§10.6", "Search (QIDO-RS), instance level", ""),
    stow.stow: ("§10.5", "Store (STOW-RS)", ("streamed to disk; 200, 202 with FailedSOPSequence, "
                "400, 409, 413, 415 (Table 10.5.3-1)")),
    wado.retrieve: ("§10.4", "Retrieve (WADO-RS) instances", ""),
    wado.metadata: ("§10.4", "Retrieve metadata", "stored DICOM JSON; bulk data as BulkDataURI"),
    wado.bulkdata: ("§10.4", "Retrieve bulk data", "the URIs the metadata hands out"),
    frames.frames: ("§10.4", "Retrieve frames", "each frame read from its own chunk"),
    rendered.rendered: ("§10.4.1.1.3", "Retrieve rendered", ""),
    rendered.thumbnail: ("§10.4.1.1.4", "Retrieve thumbnail", ""),
    rendered.reformat: ("—", "Reformat (MPR / MIP)", "not in PS3.18; see Extensions"),
    wado.delete: ("—", "Delete", "not in PS3.18 (as dcm4chee and the Google Healthcare API)"),
    capabilities.capabilities: ("§8.9", "Capabilities", ""),
    capabilities.statement: ("—", "This conformance statement", "by Accept"),
    wado_uri.wado_uri: ("§9", "URI Service (WADO-URI)", ("requestType=WADO, studyUID, seriesUID, objectUID; "
                        "contentType application/dicom (transferSyntax) or image/jpeg|png|gif (frameNumber, "
                        "windowCenter/windowWidth, rows/columns, region, imageQuality); no anonymize")),
}
_EXTENSIONS = {wado.delete, rendered.reformat, capabilities.statement}
# PS3.18 services without a route here: (section, service, resource prefix)
_UNROUTED = (("§11", "Worklist Service (UPS-RS)", "/workitems"),
             ("§12", "Non-Patient Instance Service", "/defined-procedure-protocols"))


def is_placeholder(endpoint: object) -> bool:
    """A handler whose whole body raises UnknownResource: a route reserved, not yet served."""
    code = getattr(endpoint, "__code__", None)
    return code is not None and set(code.co_names) == {"UnknownResource"}


def transactions() -> list[Transaction]:
    """One row per method of each ROUTES entry, then the PS3.18 services without a route."""
    rows = []
    for path, methods, endpoint in ROUTES:
        section, name, notes = _ENDPOINTS.get(endpoint, ("?", UNDESCRIBED, repr(endpoint)))
        support = EXTENSION if endpoint in _EXTENSIONS else SUPPORTED
        if is_placeholder(endpoint):
            support, notes = NOT_SUPPORTED, "route reserved; 404 until implemented"
        rows += [Transaction(section, name, m, DICOMWEB_ROOT + path, support, notes)
                 for m in methods]
    paths = [p for p, _, _ in ROUTES]
    rows += [Transaction(section, name, "*", f"{DICOMWEB_ROOT}{prefix}…", NOT_SUPPORTED, "404")
             for section, name, prefix in _UNROUTED if not any(p.startswith(prefix) for p in paths)]
    return rows


_QIDO_PARAMETERS: dict[str, tuple[str, str, str]] = {
    "limit": ("§8.3.4.4", SUPPORTED, ("capped at the archive's maximum; `Warning: 299` when "
              "results were cut or the limit lowered")),
    "offset": ("§8.3.4.4", SUPPORTED, "over a stable order (studies newest first)"),
    "includefield": ("§8.3.4.3", SUPPORTED, ("tags, keywords, `all`; comma-separated or "
                     "repeated; an unknown attribute is ignored with `Warning: 299`")),
    "fuzzymatching": ("§8.3.4.2", SUPPORTED, ("`true` or `false` (else 400); person names, "
                      "see the matching rules")),
    "orderby": ("§8.3.4.5", IGNORED, "results keep the archive's stable order"),
    "person": ("extension", EXTENSION, ("`person=<id>` of the patient master index: the studies of "
               "every patient ID linked to that person, across issuers and hospitals, still within what "
               "the caller may see (a person never widens a scope); `GET /api/mpi/lookup?PatientID=&"
               "IssuerOfPatientID=` gives the id of a patient the caller sees")),
}


def query_parameters() -> list[QueryParameter]:
    """Attribute matching, then every QIDO-RS parameter the parser reserves."""
    rows = [QueryParameter("§8.3.4.1", "{attributeID}={value}", SUPPORTED, (
        "keyword, tag or sequence path (`00400275.00400009`); a key that is not a matching key "
        "at the level is ignored with `Warning: 299` and returned; a malformed value, or a key "
        "given twice, is a 400 naming the parameter"))]
    for name in sorted(qido.RESERVED):
        section, support, notes = _QIDO_PARAMETERS.get(name, ("?", UNDESCRIBED, ""))
        rows.append(QueryParameter(section, name, support, notes))
    return rows


def rendered_parameters() -> list[QueryParameter]:
    """PS3.18 8.3.5.1 rendering parameters (yunying.pixels.RenderParams), if rendering is served."""
    from yunying.pixels.params import RenderParams

    support = NOT_SUPPORTED if is_placeholder(rendered.rendered) else SUPPORTED
    notes = {"window": "center,width[,linear|linear-exact|sigmoid]", "quality": "1-100",
             "viewport": "vw,vh (the sx,sy,sw,sh form is a 400)",
             "annotation": "patient, technique"}
    return [QueryParameter("§8.3.5.1", name, support, notes.get(name, ""))
            for name in RenderParams.__dataclass_fields__]


def _probe(tag: str, value: str) -> str | None:
    """The kind of Match the parser makes of a value; None when it refuses it."""
    try:
        return parse_match(tag, value).kind
    except InvalidQueryValue:
        return None


_RANGE_PROBE = {"DA": "20200101-20201231", "TM": "0800-1200", "DT": "2020-2021"}


def matching_rules(tag: str) -> str:
    """What index.parse does with values of this key, found by asking it."""
    vr = vr_of(tag)
    rules = ["single value", "universal"]
    if _probe(tag, "1.2,1.3") == "list":
        rules.append("list (`,` or `\\`)")
    if _probe(tag, "1*") == "wildcard":
        rules.append("wildcard `*` `?`")
    if vr in _RANGE_PROBE and _probe(tag, _RANGE_PROBE[vr]) == "range":
        rules.append("range")
    if vr == "PN":
        rules.append("case-insensitive on any component group; fuzzy (QIDO-RS)")
    if any(keys[tag].kind == "list" for keys in KEYS.values() if tag in keys):
        rules.append("matches any of the attribute's values")
    return ", ".join(rules)


def _keyword(tag: str) -> str:
    return ">".join(keyword_for_tag(int(p, 16)) or p for p in tag.split("."))


def query_keys() -> list[QueryKey]:
    """Every matching key of every QIDO-RS and C-FIND level, once, with the levels it works at."""
    qido_at = {lv: supported_match_tags(lv) for lv in QIDO_LEVELS}
    cfind = sorted({lv for levels in CFIND_LEVELS.values() for lv in levels}, key=_ORDER.index)
    cfind_at = {lv: supported_match_tags(lv) for lv in cfind}
    tags = sorted(set().union(*qido_at.values(), *cfind_at.values()))
    return [QueryKey(_keyword(t), t, vr_of(t), matching_rules(t),
                     tuple(QIDO_LEVELS[lv] for lv, ts in qido_at.items() if t in ts),
                     tuple(lv for lv, ts in cfind_at.items() if t in ts)) for t in tags]


def frame_media_types() -> list[tuple[str, list[str], list[str]]]:
    """Table 8.7.3-5 as yunying.pixels serves it: (media, syntaxes default first, encodable)."""
    return [(media, syntaxes.media_syntaxes(media),
             [u for u in syntaxes.media_syntaxes(media) if codecs.can_encode(u)])
            for media in syntaxes.MEDIA_DEFAULT]


def media_types() -> list[MediaType]:
    """PS3.18 8.7 media types by transaction; frame and rendered types from yunying.pixels."""
    from yunying.pixels.render import RENDERED_TYPES

    xml = importlib.util.find_spec("dicomweb.xml") is not None  # PS3.19 Native DICOM Model
    dicom, octet = 'multipart/related; type="application/dicom"', syntaxes.OCTET
    rows = [
        MediaType("STOW-RS request", dicom, SUPPORTED, "parts streamed to disk"),
        MediaType("STOW-RS request", "application/dicom", SUPPORTED, "one instance"),
        MediaType("STOW-RS request", 'multipart/related; type="application/dicom+json" or '
                  '"application/dicom+xml" with bulk data', NOT_SUPPORTED, "415"),
        MediaType("STOW-RS, QIDO-RS, metadata responses", "application/dicom+json", SUPPORTED,
                  "default; `application/json` also accepted"),
        MediaType("QIDO-RS, metadata responses", 'multipart/related; type="application/dicom+xml"',
                  SUPPORTED if xml else NOT_SUPPORTED, "one part per result" if xml else "406"),
        MediaType("WADO-RS instances", dicom, SUPPORTED, "Explicit VR Little Endian unless a "
                  "`transfer-syntax` is named (section 4: encode = yes; `*` = as stored)"),
        MediaType("WADO-RS instances", "application/dicom", SUPPORTED, "one instance only"),
        MediaType("WADO-RS instances, bulk data", f'multipart/related; type="{octet}"', SUPPORTED,
                  "uncompressed little endian, or as stored with `transfer-syntax=*`; each "
                  "part's Content-Location is its BulkDataURI"),
    ]
    for media, uids, encodable in frame_media_types():
        notes = (f"default `{uids[0]}`; also " + (", ".join(f"`{u}`" for u in uids[1:]) or "none")
                 + "; a frame stored in one of these is sent bit-exact, others transcoded into "
                 + (", ".join(f"`{u}`" for u in encodable) or "none"))
        if media == octet:
            notes += "; `transfer-syntax=*`: a compressed frame as its stored bitstream"
        rows.append(MediaType("WADO-RS frames", f"{media}, single part or multipart/related",
                              SUPPORTED if encodable else NOT_SUPPORTED, notes))
    served = not is_placeholder(rendered.rendered)
    rows.append(MediaType("WADO-RS rendered, thumbnail", ", ".join(RENDERED_TYPES),
                          SUPPORTED if served else NOT_SUPPORTED,
                          "multipart/related for several frames or instances" if served else "404"))
    return rows


# ---- DIMSE (PS3.2 A.4), pixels, character sets, errors ----------------------------------------

def scp(settings: Settings) -> AE:
    """The AE the DIMSE SCP runs (contexts and limits), built as dimse.server builds it."""
    return build_ae(settings.aet)


def contexts(ae: AE) -> list[Context]:
    """The presentation contexts the SCP accepts, with the roles it plays for each."""
    rows = []
    for cx in ae.supported_contexts:
        uid = str(cx.abstract_syntax)
        if uid == VERIFICATION:
            roles = "SCP (any calling AE); SCU (`yunying dimse echo`)"
        elif uid in QR_MODELS:
            roles = "SCP; SCU (`yunying dimse find|move|get`)"
        elif cx.scu_role and cx.scp_role:
            roles = "SCP; SCU in C-MOVE and C-GET sub-operations (role selection accepted)"
        else:
            roles = "SCP"
        rows.append(Context(UID(uid).name, uid, roles, tuple(str(t) for t in cx.transfer_syntax)))
    return rows


def ae_limits(ae: AE, settings: Settings) -> list[tuple[str, str]]:
    """The configuration and association limits of the AE (PS3.2 A.4.2, A.4.4)."""
    listens = f"{settings.host}:{settings.dimse_port}" if settings.dimse_port else "DIMSE disabled"
    return [
        ("AE title", settings.aet),
        ("Listens on", listens),
        ("Maximum simultaneous associations", str(ae.maximum_associations)),
        ("Maximum PDU size received", f"{ae.maximum_pdu_size} bytes"),
        ("ACSE / DIMSE / network timeouts",
         f"{ae.acse_timeout} s / {ae.dimse_timeout} s / {ae.network_timeout} s"),
        ("Implementation Class UID", str(ae.implementation_class_uid)),
        ("Implementation Version Name", str(ae.implementation_version_name or "")),
    ]


def transfer_syntaxes(accepted: Iterable[str]) -> list[TransferSyntax]:
    """Every syntax the SCP accepts or the pixel pipeline knows, with what we can do with it."""
    accepted = set(accepted)
    rows = []
    for uid in sorted(accepted | set(syntaxes.SYNTAXES), key=lambda u: [*map(int, u.split("."))]):
        known, name = syntaxes.SYNTAXES.get(uid), UID(uid).name
        lossy = known.lossy if known else UID(uid).is_compressed and "lossless" not in name.lower()
        media = known.media_type if known else ""
        rows.append(TransferSyntax(name, uid, uid in accepted, codecs.can_decode(uid),
                                   codecs.can_encode(uid), lossy, media))
    return rows


def character_sets() -> list[tuple[str, str]]:
    """The Specific Character Set terms pydicom decodes, and the Python codec of each."""
    return [(term or "(none: default repertoire)", codec)
            for term, codec in pydicom.charset.python_encoding.items()]


def error_catalog() -> list[tuple[str, str, str, str]]:
    """Each archive error with its HTTP and DIMSE status (yunying/errors.py)."""
    rows = [(name, inspect.getdoc(cls) or "", str(cls.http_status), f"0x{cls.dimse_status:04X}")
            for name, cls in inspect.getmembers(errors, inspect.isclass)
            if issubclass(cls, errors.ArchiveError)]
    return sorted(rows, key=lambda r: (r[2], r[0]))


def docstring_bullets(doc: str | None) -> list[str]:
    """The first `- ` bullet list of a docstring, one string per item."""
    items: list[str] = []
    for line in (doc or "").splitlines():
        text = line.strip()
        if text.startswith("- "):
            items.append(text[2:])
        elif items and text:
            items[-1] += " " + text
        elif items:
            break
    return [i.replace("``", "`") for i in items]
