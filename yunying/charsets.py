"""ISO 2022 IR 58 (GB2312 with code extensions, PS3.5 6.1.2.5) decoded right (issue 10 part 3).

pydicom 3.0 hands a fragment starting with ESC $ ) A to Python's "iso_ir_58" codec, believing
it strips the escape sequence as iso2022_jp does; that codec is plain GB2312, so every decoded
name kept "\\x1b$)A" before each ideographic component, and a C-FIND on such a name matched
nothing. GB2312 leaves the ASCII bytes of the escape as they are and decodes the rest
correctly, so removing the sequence from the decoded text gives the right value. Applied on
pydicom's raw_element_value hook (yunying/lenient.py installs it).
"""
from __future__ import annotations

from typing import Any

from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

ESC_IR_58 = "\x1b$)A"


def _clean(value: Any) -> Any:
    if isinstance(value, PersonName):
        text = str(value)
        return PersonName(text.replace(ESC_IR_58, "")) if ESC_IR_58 in text else value
    if isinstance(value, str):
        return value.replace(ESC_IR_58, "")
    return value


def clean_ir58(raw: Any, data: dict[str, Any]) -> None:
    """Remove the escape sequence pydicom left in a decoded ISO 2022 IR 58 value."""
    if isinstance(raw.value, bytes) and b"\x1b$)A" in raw.value:
        value = data.get("value")
        data["value"] = [_clean(v) for v in value] if isinstance(value, (MultiValue, list)) else _clean(value)
