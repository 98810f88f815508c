// A PDF report shown as images of its pages, drawn by the server (/api/portal/report/page, or the
// console's report?page=): the pages' Content-Security-Policy keeps the browser's PDF viewer out
// (object-src 'none'), and phones in WeChat show no PDF at all. Images come as blob: URLs
// (img-src allows blob:), fetched with the caller's token.

/** Fill `box` with the report's pages; `pageUrl(n, width)` names page n. False when the server
 * cannot draw the document (422: the caller may offer the file itself) or refuses it. */
export async function showPages(box, pageUrl, fetcher) {
  const width = Math.min(2000, Math.max(400, Math.round(box.clientWidth * (window.devicePixelRatio || 1)) || 1000));
  const first = await fetcher(pageUrl(1, width));
  if (!first.ok) return false;
  const count = Math.min(Number(first.headers.get("X-Page-Count")) || 1, 20);
  const images = [];
  for (let n = 1; n <= count; n++) {
    const res = n === 1 ? first : await fetcher(pageUrl(n, width));
    if (!res.ok) break;
    const img = document.createElement("img");
    img.className = "pdf-page";
    img.alt = `${n} / ${count}`;
    img.src = URL.createObjectURL(await res.blob());
    images.push(img);
    box.replaceChildren(...images);
  }
  return true;
}
