"""The data the conformance statement is rendered from.

TODO(lead): replace these literal tables with imports of the code's own tables so the statement
cannot drift from the server: query keys from `index.keys` (PATIENT_KEYS, STUDY_KEYS, SERIES_KEYS,
INSTANCE_KEYS), routes from `dicomweb.app.ROUTES`, reserved QIDO parameters from
`dicomweb.qido.RESERVED`, transfer syntaxes and codecs from `yunying.pixels.syntaxes` /
`yunying.pixels.codecs`, SOP classes and presentation contexts from `dimse.server`.
Keep the row shapes below: `conformance/statement.py` only reads these names.
"""

from __future__ import annotations

from dataclasses import dataclass

SUPPORTED, NOT_SUPPORTED, IGNORED, EXTENSION, OPTIONAL = (
    "supported", "not supported", "ignored (Warning 299)", "extension", "optional")


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
    level: str
    keyword: str
    tag: str
    matching: str


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
    scp_accepts: bool
    wado_output: bool
    notes: str = ""


@dataclass(frozen=True)
class SopClass:
    name: str
    uid: str
    roles: str


@dataclass(frozen=True)
class NetworkService:
    name: str
    sop_class: str
    role: str
    notes: str = ""


DICOMWEB_ROOT = "/dicomweb"

TRANSACTIONS: tuple[Transaction, ...] = (
    Transaction("§10.5", "Store (STOW-RS)", "POST", "/studies[/{study}]", SUPPORTED,
                "multipart/related application/dicom, streamed; 200/202/400/409/413/415"),
    Transaction("§10.6", "Search (QIDO-RS) studies", "GET", "/studies", SUPPORTED),
    Transaction("§10.6", "Search series", "GET", "/series, /studies/{study}/series", SUPPORTED),
    Transaction("§10.6", "Search instances", "GET",
                "/instances, /studies/{study}/instances, /studies/{study}/series/{series}/instances",
                SUPPORTED),
    Transaction("§10.4", "Retrieve (WADO-RS) instances", "GET",
                "/studies/{study}[/series/{series}[/instances/{sop}]]", SUPPORTED),
    Transaction("§10.4", "Retrieve metadata", "GET", ".../metadata (study, series, instance)",
                SUPPORTED, "precomputed DICOM JSON, bulk data as BulkDataURI"),
    Transaction("§10.4", "Retrieve frames", "GET", ".../instances/{sop}/frames/{list}", SUPPORTED),
    Transaction("§10.4", "Retrieve bulk data", "GET", ".../bulkdata/{path}", SUPPORTED),
    Transaction("§10.4", "Retrieve rendered / thumbnail", "GET", ".../rendered, .../thumbnail",
                NOT_SUPPORTED, "TODO: yunying/pixels/render.py exists; no route yet (404)"),
    Transaction("§8.9", "Capabilities", "OPTIONS", "every resource", OPTIONAL,
                "Allow header; machine-readable description: TODO"),
    Transaction("—", "Delete", "DELETE", "/studies/{study}[/series/{series}[/instances/{sop}]]",
                EXTENSION, "not in PS3.18; as Google Healthcare API and dcm4chee"),
    Transaction("§10.7", "UPS-RS worklist", "*", "/workitems", NOT_SUPPORTED),
)

QUERY_PARAMETERS: tuple[QueryParameter, ...] = (
    QueryParameter("§8.3.4.1", "{attributeID}={value}", SUPPORTED,
                   "by keyword or tag; unknown attributes ignored with Warning 299"),
    QueryParameter("§8.3.4.3", "includefield", SUPPORTED,
                   "tag, keyword, `all`; comma-separated and repeated"),
    QueryParameter("§8.3.4.2", "fuzzymatching", SUPPORTED,
                   "person names, on the Alphabetic (pinyin) and Ideographic groups "
                   "(TODO: exact semantics from index/)"),
    QueryParameter("§8.3.4.4", "limit / offset", SUPPORTED,
                   "stable order; Warning 299 when results are cut"),
    QueryParameter("§8.3.4.5", "orderby", NOT_SUPPORTED, "ignored with Warning 299"),
)

MATCHING = {
    "uid": "single value, UID list",
    "str": "single value, wildcard * ?",
    "pn": "single value, wildcard, fuzzy",
    "list": "single value, wildcard (any value)",
    "int": "single value",
    "da": "single value, range",
    "tm": "single value, range",
    "dt": "single value, range",
}

QUERY_KEYS: tuple[QueryKey, ...] = (
    QueryKey("patient/study", "PatientName", "00100010", MATCHING["pn"]),
    QueryKey("patient/study", "PatientID", "00100020", MATCHING["str"]),
    QueryKey("patient/study", "IssuerOfPatientID", "00100021", MATCHING["str"]),
    QueryKey("patient/study", "PatientBirthDate", "00100030", MATCHING["da"]),
    QueryKey("patient/study", "PatientSex", "00100040", MATCHING["str"]),
    QueryKey("study", "StudyInstanceUID", "0020000D", MATCHING["uid"]),
    QueryKey("study", "StudyDate", "00080020", MATCHING["da"]),
    QueryKey("study", "StudyTime", "00080030", MATCHING["tm"]),
    QueryKey("study", "AccessionNumber", "00080050", MATCHING["str"]),
    QueryKey("study", "ModalitiesInStudy", "00080061", MATCHING["list"]),
    QueryKey("study", "ReferringPhysicianName", "00080090", MATCHING["pn"]),
    QueryKey("study", "StudyID", "00200010", MATCHING["str"]),
    QueryKey("study", "StudyDescription", "00081030", MATCHING["str"]),
    QueryKey("study", "InstitutionName", "00080080", MATCHING["list"]),
    QueryKey("study", "SOPClassesInStudy", "00080062", MATCHING["list"]),
    QueryKey("series", "SeriesInstanceUID", "0020000E", MATCHING["uid"]),
    QueryKey("series", "Modality", "00080060", MATCHING["str"]),
    QueryKey("series", "SeriesNumber", "00200011", MATCHING["int"]),
    QueryKey("series", "SeriesDescription", "0008103E", MATCHING["str"]),
    QueryKey("series", "BodyPartExamined", "00180015", MATCHING["str"]),
    QueryKey("series", "PerformedProcedureStepStartDate", "00400244", MATCHING["da"]),
    QueryKey("series", "PerformedProcedureStepStartTime", "00400245", MATCHING["tm"]),
    QueryKey("series", "RequestAttributesSequence>ScheduledProcedureStepID", "00400275.00400009",
             MATCHING["list"]),
    QueryKey("series", "RequestAttributesSequence>RequestedProcedureID", "00400275.00401001",
             MATCHING["list"]),
    QueryKey("instance", "SOPClassUID", "00080016", MATCHING["uid"]),
    QueryKey("instance", "SOPInstanceUID", "00080018", MATCHING["uid"]),
    QueryKey("instance", "InstanceNumber", "00200013", MATCHING["int"]),
)

MEDIA_TYPES: tuple[MediaType, ...] = (
    MediaType("STOW-RS request", 'multipart/related; type="application/dicom"', SUPPORTED),
    MediaType("STOW-RS request", 'multipart/related; type="application/dicom+json" (+ bulk data)',
              NOT_SUPPORTED, "415"),
    MediaType("STOW-RS / QIDO-RS / metadata response", "application/dicom+json", SUPPORTED,
              "default"),
    MediaType("QIDO-RS / metadata response", 'multipart/related; type="application/dicom+xml"',
              NOT_SUPPORTED, "406; Required by Table 10.4.4-1 for metadata"),
    MediaType("WADO-RS instances", 'multipart/related; type="application/dicom"', SUPPORTED,
              "transfer-syntax parameter: see the table below; `*` returns the stored syntax"),
    MediaType("WADO-RS frames / bulk data", 'multipart/related; type="application/octet-stream"',
              SUPPORTED, "native; each part names its transfer-syntax"),
    MediaType("WADO-RS frames", 'multipart/related; type="image/jls" / "image/jp2" / '
              '"image/jphc" / "image/jpeg"', SUPPORTED, "the stored bitstream, or transcoded"),
    MediaType("WADO-RS instances", 'multipart/related; type="application/octet-stream"',
              NOT_SUPPORTED, "406; Required by Table 10.4.4-1 (as bulk data)"),
    MediaType("WADO-RS rendered", "image/jpeg, image/png, image/gif", NOT_SUPPORTED, "no route"),
)

TRANSFER_SYNTAXES: tuple[TransferSyntax, ...] = (
    TransferSyntax("Implicit VR Little Endian", "1.2.840.10008.1.2", True, True),
    TransferSyntax("Explicit VR Little Endian", "1.2.840.10008.1.2.1", True, True,
                   "WADO-RS default"),
    TransferSyntax("Deflated Explicit VR Little Endian", "1.2.840.10008.1.2.1.99", True, False),
    TransferSyntax("Explicit VR Big Endian (retired)", "1.2.840.10008.1.2.2", True, False),
    TransferSyntax("JPEG Baseline (Process 1)", "1.2.840.10008.1.2.4.50", True, True, "lossy"),
    TransferSyntax("JPEG Extended (Process 2 & 4)", "1.2.840.10008.1.2.4.51", True, False, "lossy"),
    TransferSyntax("JPEG Lossless, SV1", "1.2.840.10008.1.2.4.70", True, True),
    TransferSyntax("JPEG-LS Lossless", "1.2.840.10008.1.2.4.80", True, True),
    TransferSyntax("JPEG-LS Near-Lossless", "1.2.840.10008.1.2.4.81", True, False, "lossy"),
    TransferSyntax("JPEG 2000 Lossless", "1.2.840.10008.1.2.4.90", True, True),
    TransferSyntax("JPEG 2000", "1.2.840.10008.1.2.4.91", True, False, "lossy"),
    TransferSyntax("HTJ2K Lossless", "1.2.840.10008.1.2.4.201", True, True),
    TransferSyntax("HTJ2K Lossless RPCL", "1.2.840.10008.1.2.4.202", True, True),
    TransferSyntax("HTJ2K", "1.2.840.10008.1.2.4.203", True, False, "lossy"),
    TransferSyntax("RLE Lossless", "1.2.840.10008.1.2.5", True, True),
)

NETWORK_SERVICES: tuple[NetworkService, ...] = (
    NetworkService("Verification", "1.2.840.10008.1.1", "SCP, SCU"),
    NetworkService("Storage", "all Storage SOP classes of PS3.4 Annex B.5", "SCP",
                   "same ingest path as STOW-RS; one rule for re-sent SOP Instance UIDs"),
    NetworkService("Study Root Q/R FIND", "1.2.840.10008.5.1.4.1.2.2.1", "SCP"),
    NetworkService("Study Root Q/R MOVE", "1.2.840.10008.5.1.4.1.2.2.2", "SCP",
                   "destinations from the peers file"),
    NetworkService("Study Root Q/R GET", "1.2.840.10008.5.1.4.1.2.2.3", "SCP"),
    NetworkService("Patient Root Q/R FIND", "1.2.840.10008.5.1.4.1.2.1.1", "SCP"),
    NetworkService("Patient Root Q/R MOVE", "1.2.840.10008.5.1.4.1.2.1.2", "SCP"),
    NetworkService("Patient Root Q/R GET", "1.2.840.10008.5.1.4.1.2.1.3", "SCP"),
)

STORAGE_EXAMPLES: tuple[SopClass, ...] = (
    SopClass("CT Image Storage", "1.2.840.10008.5.1.4.1.1.2", "SCP, SCU (C-MOVE/C-GET)"),
    SopClass("Enhanced CT Image Storage", "1.2.840.10008.5.1.4.1.1.2.1", "SCP, SCU"),
    SopClass("MR Image Storage", "1.2.840.10008.5.1.4.1.1.4", "SCP, SCU"),
    SopClass("Computed Radiography Image Storage", "1.2.840.10008.5.1.4.1.1.1", "SCP, SCU"),
    SopClass("Digital X-Ray Image Storage - For Presentation", "1.2.840.10008.5.1.4.1.1.1.1",
             "SCP, SCU"),
    SopClass("Ultrasound Multi-frame Image Storage", "1.2.840.10008.5.1.4.1.1.3.1", "SCP, SCU"),
    SopClass("Secondary Capture Image Storage", "1.2.840.10008.5.1.4.1.1.7", "SCP, SCU"),
    SopClass("Encapsulated PDF Storage", "1.2.840.10008.5.1.4.1.1.104.1", "SCP, SCU"),
    SopClass("Basic Text SR Storage", "1.2.840.10008.5.1.4.1.1.88.11", "SCP, SCU"),
    SopClass("Key Object Selection Document Storage", "1.2.840.10008.5.1.4.1.1.88.59", "SCP, SCU"),
    SopClass("Grayscale Softcopy Presentation State Storage", "1.2.840.10008.5.1.4.1.1.11.1",
             "SCP, SCU"),
)

CHARACTER_SETS: tuple[tuple[str, str], ...] = (
    ("ISO_IR 192", "UTF-8"),
    ("GB18030", "Chinese"),
    ("GBK", "Chinese"),
    ("ISO_IR 100", "Latin-1"),
    ("ISO 2022 IR 6 / IR 87 / IR 149 / IR 58", "code extensions (Japanese, Korean, Chinese)"),
    ("(default)", "ISO-IR 6 (ASCII)"),
)

EXTENDED_NEGOTIATION = (
    "SCP/SCU role selection is accepted for C-GET storage sub-operations. "
    "No other extended negotiation is supported (relational queries, fuzzy semantic matching "
    "of person names and timezone adjustment are not negotiated over DIMSE)."
)

SECURITY = (
    "DIMSE: access is decided by calling AE title; TLS is not yet offered. "
    "DICOMweb: one authorization point for every route (OAuth2 bearer tokens; capability "
    "tokens scoped to studies); every read of patient data is audited; no patient data in logs."
)
