"""negotiate_frame_media: PS3.18 8.7.3 / Table 8.7.3-5 cases, including 406 (None)."""
from __future__ import annotations

import pytest

from yunying.pixels import FrameInfo, negotiate_frame_media, parse_accept
from yunying.pixels import syntaxes as ts_
from yunying.pixels.negotiate import FrameChoice

CT = FrameInfo(512, 512, 1, 16, 16, 15, 1, "MONOCHROME2", 0, 1)        # signed 16-bit
US8 = FrameInfo(480, 640, 3, 8, 8, 7, 0, "YBR_FULL_422", 0, 30)        # lossy JPEG cine
OCTET = "application/octet-stream"


def first(accept: str, stored: str, info: FrameInfo = CT) -> tuple[str, str] | None:
    choices = negotiate_frame_media(accept, stored, info)
    return (choices[0][0], choices[0][1]) if choices else None


def acceptable(accept: str, stored: str, info: FrameInfo = CT) -> list[FrameChoice]:
    """The choices of an Accept that is satisfiable (None is a 406)."""
    choices = negotiate_frame_media(accept, stored, info)
    assert choices is not None, accept
    return choices


def test_ohif_octet_stream_any_syntax_is_as_stored() -> None:
    accept = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    assert first(accept, ts_.JPEG_LS_LOSSLESS) == (OCTET, ts_.JPEG_LS_LOSSLESS)
    assert first(accept, ts_.EXPLICIT_LE) == (OCTET, ts_.EXPLICIT_LE)
    assert first(accept, ts_.IMPLICIT_LE) == (OCTET, ts_.EXPLICIT_LE)  # native frames: Explicit LE
    assert acceptable(accept, ts_.RLE)[0].multipart


def test_multipart_without_type_means_octet_stream_explicit_le() -> None:
    assert first("multipart/related", ts_.J2K_LOSSLESS) == (OCTET, ts_.EXPLICIT_LE)


def test_single_part_media_type_default_syntax() -> None:
    assert first("image/jls", ts_.EXPLICIT_LE) == ("image/jls", ts_.JPEG_LS_LOSSLESS)
    assert first("image/jp2", ts_.EXPLICIT_LE) == ("image/jp2", ts_.J2K_LOSSLESS)
    assert first("image/jphc", ts_.EXPLICIT_LE) == ("image/jphc", ts_.HTJ2K_LOSSLESS)
    assert first("image/dicom-rle", ts_.EXPLICIT_LE) == ("image/dicom-rle", ts_.RLE)
    choice = acceptable("image/jls", ts_.EXPLICIT_LE)[0]
    assert not choice.multipart


def test_image_jpeg_default_is_lossless_sv1_never_silently_lossy() -> None:
    # PS3.18 2024 Table 8.7.3-5: image/jpeg defaults to 1.2.840.10008.1.2.4.70
    assert first("image/jpeg", ts_.EXPLICIT_LE) == ("image/jpeg", ts_.JPEG_LOSSLESS_SV1)


def test_lossy_jpeg_held_is_served_as_held() -> None:
    assert first("image/jpeg", ts_.JPEG_BASELINE, US8) == ("image/jpeg", ts_.JPEG_BASELINE)
    accept = 'multipart/related; type="image/jpeg"'
    assert first(accept, ts_.JPEG_BASELINE, US8) == ("image/jpeg", ts_.JPEG_BASELINE)


def test_explicit_lossy_syntax_is_honoured() -> None:
    accept = "image/jphc; transfer-syntax=1.2.840.10008.1.2.4.203"
    assert first(accept, ts_.EXPLICIT_LE) == ("image/jphc", ts_.HTJ2K)


def test_q_values_order_the_choices() -> None:
    accept = ('multipart/related; type="image/jp2"; q=0.2, '
              'multipart/related; type="image/jls"; q=0.9, '
              'multipart/related; type="application/octet-stream"; q=0.5')
    got = [tuple(c) for c in acceptable(accept, ts_.EXPLICIT_LE)]
    assert got == [("image/jls", ts_.JPEG_LS_LOSSLESS), (OCTET, ts_.EXPLICIT_LE),
                   ("image/jp2", ts_.J2K_LOSSLESS)]


def test_q_zero_excludes() -> None:
    assert negotiate_frame_media("image/jls; q=0", ts_.EXPLICIT_LE, CT) is None


@pytest.mark.parametrize("accept", [
    "image/png",                                                      # a rendered type
    "image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50",             # 16-bit signed: no baseline
    "image/jls; transfer-syntax=1.2.840.10008.1.2.4.90",              # syntax not of that type
    'multipart/related; type="application/dicom"',
    "text/html",
])
def test_unsatisfiable_is_406(accept: str) -> None:
    assert negotiate_frame_media(accept, ts_.EXPLICIT_LE, CT) is None


def test_mpeg_stored_cannot_be_transcoded() -> None:
    assert negotiate_frame_media("image/jls", "1.2.840.10008.1.2.4.100", US8) is None


def test_wildcards() -> None:
    assert first("*/*", ts_.JPEG_LS_LOSSLESS) == ("image/jls", ts_.JPEG_LS_LOSSLESS)
    assert first("*/*", ts_.EXPLICIT_LE) == (OCTET, ts_.EXPLICIT_LE)
    assert first("image/*", ts_.EXPLICIT_LE) == ("image/jls", ts_.JPEG_LS_LOSSLESS)


def test_accept_parsing_quotes_and_case() -> None:
    ranges = parse_accept('Multipart/Related; TYPE="image/jls"; transfer-syntax="1.2.840.10008.1.2.4.80"')
    assert ranges[0].media_type == "image/jls" and ranges[0].multipart
    assert ranges[0].transfer_syntax == ts_.JPEG_LS_LOSSLESS


def test_choices_unpack_as_pairs() -> None:
    (media, ts), *_ = acceptable("image/jls", ts_.EXPLICIT_LE)
    assert (media, ts) == ("image/jls", ts_.JPEG_LS_LOSSLESS)


# Property: any Accept header gives a list of feasible pairs or None, never an exception, and
# never a lossy transcode the header did not name.
from hypothesis import given, settings
from hypothesis import strategies as st

_TOKENS = st.sampled_from([
    "multipart/related", 'type="image/jls"', "type=image/jphc", 'type="application/octet-stream"',
    "transfer-syntax=*", "transfer-syntax=1.2.840.10008.1.2.4.50", "transfer-syntax=1.2.840.10008.1.2.4.203",
    "transfer-syntax=1.2.840.10008.1.2.1", "q=0.5", "q=0", "q=abc", "image/jpeg", "image/*", "*/*",
    "image/jp2", "application/octet-stream", '"', ";", ",", " ", "=", "text/plain",
])


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(_TOKENS, max_size=12), junk=st.text(max_size=20),
       stored=st.sampled_from([ts_.EXPLICIT_LE, ts_.JPEG_BASELINE, ts_.JPEG_LS_LOSSLESS, ts_.RLE,
                               "1.2.840.10008.1.2.4.100", "9.9.9"]))
def test_any_accept_header_is_answered(parts: list[str], junk: str, stored: str) -> None:
    accept = ";".join(parts) + junk
    choices = negotiate_frame_media(accept, stored, CT)
    assert choices is None or len(choices) > 0
    for media, ts in choices or []:
        assert isinstance(media, str) and isinstance(ts, str)
        if ts_.is_lossy(ts) and ts != stored:
            assert ts in accept  # only when named
