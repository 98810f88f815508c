"""Rendered query parameters and media type (PS3.18 8.3.5.1)."""
from __future__ import annotations

import pytest

from yunying.errors import InvalidQuery
from yunying.pixels.params import negotiate_rendered_media, parse_render_params


def test_parse_all_parameters() -> None:
    p = parse_render_params({"window": "40,400,linear-exact", "viewport": "512,256",
                             "quality": "75", "annotation": "patient,technique"})
    assert p.window == (40.0, 400.0, "LINEAR_EXACT")
    assert p.viewport == (512, 256) and p.quality == 75 and p.annotation == "patient,technique"
    assert parse_render_params({}).window is None
    assert parse_render_params({"window": "-600,1500"}).window == (-600.0, 1500.0, "LINEAR")


@pytest.mark.parametrize("param,value", [
    ("window", "40"), ("window", "40,abc"), ("window", "40,0"), ("window", "40,400,gamma"),
    ("viewport", "512"), ("viewport", "0,10"), ("viewport", "10.5,10"), ("viewport", "1,2,3,4,5,6"),
    ("quality", "0"), ("quality", "101"), ("quality", "high"), ("annotation", "everything"),
])
def test_malformed_value_is_400_naming_the_parameter(param: str, value: str) -> None:
    with pytest.raises(InvalidQuery) as exc:
        parse_render_params({param: value})
    assert exc.value.param == param and exc.value.http_status == 400


def test_rendered_media_type() -> None:
    assert negotiate_rendered_media("image/png, image/jpeg;q=0.5") == "image/png"
    assert negotiate_rendered_media("*/*") == "image/jpeg"
    assert negotiate_rendered_media("") == "image/jpeg"
    assert negotiate_rendered_media("image/gif") == "image/gif"
    assert negotiate_rendered_media("application/dicom") is None
