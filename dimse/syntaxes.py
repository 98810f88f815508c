"""Transfer syntaxes we accept and offer, in our order of preference (PS3.5 Annex A)."""
from __future__ import annotations

import pydicom.uid
from pydicom.uid import UID

EXPLICIT_LE, IMPLICIT_LE = str(pydicom.uid.ExplicitVRLittleEndian), str(pydicom.uid.ImplicitVRLittleEndian)
NATIVE: list[str] = [EXPLICIT_LE, IMPLICIT_LE]  # what every peer takes; the transcoding targets
UNCOMPRESSED: list[str] = [*NATIVE, pydicom.uid.DeflatedExplicitVRLittleEndian, pydicom.uid.ExplicitVRBigEndian]
# Every syntax pydicom knows that carries the data set itself: not JPIP references (no pixel
# data to keep) nor SMPTE ST 2110 (real-time streams, PS3.5 8.13).
ENCAPSULATED: list[str] = [ts for ts in pydicom.uid.AllTransferSyntaxes
                if ts not in UNCOMPRESSED and "JPIP" not in ts.name and "2110" not in ts.name]
LOSSLESS = {pydicom.uid.JPEGLossless, pydicom.uid.JPEGLosslessSV1, pydicom.uid.JPEGLSLossless,
            pydicom.uid.JPEG2000Lossless, pydicom.uid.JPEG2000MCLossless, pydicom.uid.HTJ2KLossless,
            pydicom.uid.HTJ2KLosslessRPCL, pydicom.uid.RLELossless}
# pynetdicom picks the first of the *acceptor's* syntaxes that the requestor offers, so this
# order is our preference: a compressed offer is what the sender holds (keep its bitstream,
# design rule 1), lossless before lossy, then the uncompressed ones.
STORAGE_SYNTAXES: list[str] = ([ts for ts in ENCAPSULATED if ts in LOSSLESS] +
                    [ts for ts in ENCAPSULATED if ts not in LOSSLESS] + UNCOMPRESSED)


def is_lossless(ts: str) -> bool:
    """True for syntaxes whose pixel data is exact (uncompressed or lossless compression)."""
    return UID(ts) in LOSSLESS or UID(ts) in UNCOMPRESSED


def choose_syntax(stored: str, accepted: set[str]) -> str | None:
    """As stored when accepted, else Explicit VR LE, else Implicit VR LE, else another lossless
    syntax when the stored one is lossless (never lossy from exact pixels); None: nothing fits."""
    for ts in (stored, *NATIVE):
        if ts in accepted:
            return str(ts)
    if is_lossless(stored):
        for ts in STORAGE_SYNTAXES:
            if ts in accepted and is_lossless(ts):
                return str(ts)
    return None
