"""QR codes (segno) and Code 128 barcodes (python-barcode) for printing on reports."""
from __future__ import annotations

import io


def qr(url: str, kind: str) -> bytes:
    """The URL as a QR code (error correction M: survives a smudged paper report): png or svg."""
    import segno  # imported on first use: the server starts without it (issue 9 part 5)

    code = segno.make(url, error="m", micro=False)
    out = io.BytesIO()
    if kind == "png":
        code.save(out, kind="png", scale=8, border=4)
    else:
        code.save(out, kind="svg", scale=8, border=4, xmldecl=False)
    return out.getvalue()


def code128(text: str, kind: str) -> bytes:
    """A Code 128 barcode of `text` (the exam number, for kiosks): png or svg."""
    import barcode  # type: ignore[import-untyped]
    from barcode.writer import ImageWriter, SVGWriter  # type: ignore[import-untyped]

    writer = ImageWriter() if kind == "png" else SVGWriter()
    out = io.BytesIO()
    barcode.get("code128", text, writer=writer).write(out)
    return out.getvalue()
