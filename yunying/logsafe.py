"""Log lines about failures that carry no patient data (style.md: UIDs and counts only)."""
from __future__ import annotations

import traceback
from pathlib import Path


def where(exc: BaseException) -> str:
    """The frames an exception passed through, without its message or source text (no PHI)."""
    return " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}"
                       for f in reversed(traceback.extract_tb(exc.__traceback__)))


def summary(exc: BaseException) -> str:
    """Exception type (with errno for OS errors, never the message) and where it was raised."""
    kind = type(exc).__name__
    errno = getattr(exc, "errno", None)
    if isinstance(exc, OSError) and errno is not None:
        kind += f"[errno {errno}]"
    return f"{kind} at {where(exc)}"
