"""A PDF report's pages as PNG images (issue 14 parts 3 and 9): the pages' Content-Security-Policy
(`object-src 'none'`) keeps the browser's PDF viewer out of them, and phones in WeChat cannot show a
PDF at all, so the portal and the delivery console show a report as images of its pages, rendered
here by PDFium (pypdfium2). PDFium is not thread-safe: one page at a time."""
from __future__ import annotations

import io
import threading

from yunying.auth.errors import InvalidRequest, NotFound
from yunying.errors import ArchiveError

MAX_WIDTH = 2000
_lock = threading.Lock()


class UnreadablePdf(ArchiveError):
    """The stored document is not a PDF PDFium can draw (the client may still offer the file)."""

    http_status = 422


def page_args(page: str | None, width: str | None) -> tuple[int, int]:
    """(1-based page, width in pixels) from query values; InvalidRequest names the bad one."""
    if not (page or "1").isdigit() or int(page or "1") < 1:
        raise InvalidRequest("page: a page number from 1")
    if not (width or "1000").isdigit() or not 100 <= int(width or "1000") <= MAX_WIDTH:
        raise InvalidRequest(f"width: 100-{MAX_WIDTH} pixels")
    return int(page or "1"), int(width or "1000")


def render_page(pdf: bytes, page: int, width: int) -> tuple[bytes, int]:
    """(PNG of page `page` fitted to `width` pixels, the number of pages)."""
    import pypdfium2 as pdfium  # imported on first use: the server starts without it (issue 9 part 5)

    with _lock:
        try:
            doc = pdfium.PdfDocument(pdf)
        except pdfium.PdfiumError:
            raise UnreadablePdf("the report is not a PDF that can be drawn") from None
        try:
            count = len(doc)
            if not 1 <= page <= count:
                raise NotFound(f"page: the report has {count} page(s)")
            sheet = doc[page - 1]
            image = sheet.render(scale=width / max(sheet.get_width(), 1.0)).to_pil()
        finally:
            doc.close()
    out = io.BytesIO()
    image.save(out, "PNG", optimize=False)
    return out.getvalue(), count
