"""One frame from its stored form to the negotiated transfer syntax (WADO-RS /frames, C-GET/C-MOVE)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from yunying.pixels.codecs import decode_frame_info, encode_frame, encode_refusal
from yunying.pixels.frameinfo import FrameInfo, UnsupportedTransfer


def transcode_frame(stored: bytes | np.ndarray, info: FrameInfo, stored_ts: str, target_ts: str, *,
                    quality: int | None = None) -> tuple[bytes, FrameInfo]:
    """A stored frame (native array, or bitstream in stored_ts) as bytes in target_ts, and its FrameInfo.

    A bitstream asked for in its own syntax is passed through untouched (bit-exact, design rule 1).
    """
    stored_ts, target_ts = str(stored_ts).strip(), str(target_ts).strip()
    if isinstance(stored, (bytes, bytearray, memoryview)):
        if stored_ts == target_ts:
            return bytes(stored), info.with_(number_of_frames=1)
        arr, decoded = decode_frame_info(bytes(stored), info, stored_ts)
    else:
        arr, decoded = stored, info.with_(number_of_frames=1, planar_configuration=0)
        if info.photometric == "YBR_FULL_422" and arr.ndim == 3:
            decoded = decoded.with_(photometric="YBR_FULL")  # arrays hold every sample
    if (reason := encode_refusal(target_ts, decoded)) is not None:
        raise UnsupportedTransfer(reason)
    return encode_frame(np.asarray(arr), decoded, target_ts, quality=quality)


def answer_frame(stored: bytes | np.ndarray, info: FrameInfo, stored_ts: str,
                 choices: Sequence[tuple[str, str]], *, quality: int | None = None,
                 ) -> tuple[tuple[str, str], bytes, FrameInfo]:
    """Try negotiated (media_type, ts) choices in order; the first one this frame encodes into wins.

    Some refusals depend on the samples (values beyond BitsStored), so a listed choice can still
    fail; UnsupportedTransfer from here means 406 Not Acceptable.
    """
    reasons = []
    for choice in choices:
        try:
            data, out = transcode_frame(stored, info, stored_ts, choice[1], quality=quality)
        except UnsupportedTransfer as exc:
            reasons.append(f"{choice[1]}: {exc.reason}")
            continue
        return choice, data, out
    raise UnsupportedTransfer("; ".join(reasons) or "no acceptable representation")
