"""The transfer syntaxes we know (PS3.5 Annex A, PS3.6 Table A-1) and their frame media types (PS3.18 Table 8.7.3-5)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Syntax:
    """One transfer syntax: how frames are carried, whether it loses data, and its media type."""

    uid: str
    keyword: str
    encapsulated: bool
    lossy: bool            # may lose data (PS3.5 8.2: .91 and .203 may also be reversible)
    media_type: str        # PS3.18 Table 8.7.3-5 frame media type
    method: str = ""       # LossyImageCompressionMethod (PS3.3 C.7.6.1.1.5.1)


IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_LS_NEAR = "1.2.840.10008.1.2.4.81"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
J2K = "1.2.840.10008.1.2.4.91"
JXL_LOSSLESS = "1.2.840.10008.1.2.4.110"
JXL_JPEG = "1.2.840.10008.1.2.4.111"
JXL = "1.2.840.10008.1.2.4.112"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_LOSSLESS_RPCL = "1.2.840.10008.1.2.4.202"
HTJ2K = "1.2.840.10008.1.2.4.203"
RLE = "1.2.840.10008.1.2.5"

OCTET = "application/octet-stream"

SYNTAXES: dict[str, Syntax] = {s.uid: s for s in (
    Syntax(IMPLICIT_LE, "ImplicitVRLittleEndian", False, False, OCTET),
    Syntax(EXPLICIT_LE, "ExplicitVRLittleEndian", False, False, OCTET),
    Syntax(DEFLATED_LE, "DeflatedExplicitVRLittleEndian", False, False, OCTET),
    Syntax(EXPLICIT_BE, "ExplicitVRBigEndian", False, False, OCTET),
    Syntax(JPEG_BASELINE, "JPEGBaseline8Bit", True, True, "image/jpeg", "ISO_10918_1"),
    Syntax(JPEG_EXTENDED, "JPEGExtended12Bit", True, True, "image/jpeg", "ISO_10918_1"),
    Syntax(JPEG_LOSSLESS, "JPEGLossless", True, False, "image/jpeg"),
    Syntax(JPEG_LOSSLESS_SV1, "JPEGLosslessSV1", True, False, "image/jpeg"),
    Syntax(JPEG_LS_LOSSLESS, "JPEGLSLossless", True, False, "image/jls"),
    Syntax(JPEG_LS_NEAR, "JPEGLSNearLossless", True, True, "image/jls", "ISO_14495_1"),
    Syntax(J2K_LOSSLESS, "JPEG2000Lossless", True, False, "image/jp2"),
    Syntax(J2K, "JPEG2000", True, True, "image/jp2", "ISO_15444_1"),
    Syntax(JXL_LOSSLESS, "JPEGXLLossless", True, False, "image/jxl"),
    Syntax(JXL_JPEG, "JPEGXLJPEGRecompression", True, True, "image/jxl", "ISO_18181_1"),
    Syntax(JXL, "JPEGXL", True, True, "image/jxl", "ISO_18181_1"),
    Syntax(HTJ2K_LOSSLESS, "HTJ2KLossless", True, False, "image/jphc"),
    Syntax(HTJ2K_LOSSLESS_RPCL, "HTJ2KLosslessRPCL", True, False, "image/jphc"),
    Syntax(HTJ2K, "HTJ2K", True, True, "image/jphc", "ISO_15444_15"),
    Syntax(RLE, "RLELossless", True, False, "image/dicom-rle"),
)}

# PS3.18 (2024d) Table 8.7.3-5: the default transfer syntax of each frame media type
MEDIA_DEFAULT: dict[str, str] = {
    "image/jpeg": JPEG_LOSSLESS_SV1,
    "image/dicom-rle": RLE,
    "image/jls": JPEG_LS_LOSSLESS,
    "image/jp2": J2K_LOSSLESS,
    "image/jphc": HTJ2K_LOSSLESS,
    "image/jxl": JXL_LOSSLESS,
    OCTET: EXPLICIT_LE,
}

NATIVE = frozenset(u for u, s in SYNTAXES.items() if not s.encapsulated)


def syntax(ts: str) -> Syntax:
    """The Syntax for a UID; UnsupportedTransfer when unknown."""
    from yunying.pixels.frameinfo import UnsupportedTransfer

    found = SYNTAXES.get(str(ts).strip())
    if found is None:
        raise UnsupportedTransfer(f"unknown or unsupported transfer syntax {ts}")
    return found


def is_lossy(ts: str) -> bool:
    """True for a transfer syntax that may lose data (JPEG baseline/extended, JPEG-LS near, J2K, HTJ2K, JXL)."""
    found = SYNTAXES.get(str(ts).strip())
    return bool(found and found.lossy)


def is_native(ts: str) -> bool:
    """True for an uncompressed (native) transfer syntax."""
    return str(ts).strip() in NATIVE


def media_syntaxes(media_type: str) -> list[str]:
    """Transfer syntaxes carried by a frame media type, its default first."""
    default = MEDIA_DEFAULT.get(media_type)
    if default is None:
        return []
    others = [u for u, s in SYNTAXES.items() if s.media_type == media_type and u != default]
    if media_type == OCTET:  # native frames only; Implicit VR and Big Endian are not for the web
        others = []
    return [default, *others]
