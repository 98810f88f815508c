// Export: the viewport as the reader sees it (JPEG, with marks and the four corners), images at
// their own size through the current window, invert, colour map, sharpening, rotation and flip
// (PNG or JPEG; several in one ZIP), a series as an MP4 cine. The server route only packages what
// we rendered.
import { authFetch } from "../common/auth.js";
import { Canvas2dRenderer } from "./canvas2d.js";
import { HttpError } from "./dicomweb.js";
import { value } from "./series.js";

const API = new URL("../api/viewer/export/", new URL(".", import.meta.url)).href;
const MARK_STYLE = `line,polyline,ellipse,circle,path,polygon{stroke:#ffd400;stroke-width:2;fill:none}polygon{fill:#ffd400}
text{fill:#ffd400;font:13px sans-serif;paint-order:stroke;stroke:#000;stroke-width:3px}.refs line{stroke:#3fd46b;stroke-width:1}`;

const VALUES_HIDDEN = ".measure:not(.arrow):not(.text) text{display:none}"; // as on screen

const blobOf = (canvas, type, quality) => new Promise((done) => canvas.toBlob(done, type, quality));

export function download(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
}

function svgImage(svg, width, height) {
  const copy = svg.cloneNode(true);
  copy.setAttribute("xmlns", "http://www.w3.org/2000/svg");
  copy.setAttribute("width", width);
  copy.setAttribute("height", height);
  const style = document.createElementNS("http://www.w3.org/2000/svg", "style");
  style.textContent = MARK_STYLE + (document.querySelector("#viewports.hide-values") ? VALUES_HIDDEN : "");
  copy.prepend(style);
  const img = new Image();
  img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(new XMLSerializer().serializeToString(copy))}`;
  return img.decode().then(() => img);
}

/** The viewport as on screen: image, reference lines, marks and the corner texts, as a JPEG. */
export async function screenshot(vp) {
  const dpr = window.devicePixelRatio || 1, w = vp.el.clientWidth, h = vp.el.clientHeight;
  const out = document.createElement("canvas");
  out.width = vp.canvas.width;
  out.height = vp.canvas.height;
  const ctx = out.getContext("2d");
  ctx.drawImage(vp.canvas, 0, 0);
  for (const svg of vp.el.querySelectorAll("svg.refs, svg.marks")) ctx.drawImage(await svgImage(svg, w, h), 0, 0, out.width, out.height);
  ctx.scale(dpr, dpr);
  ctx.font = "12px sans-serif";
  ctx.fillStyle = "#fff";
  for (const corner of vp.el.querySelectorAll(".corner")) {
    const lines = corner.textContent.split("\n"), right = corner.classList.contains("tr") || corner.classList.contains("br");
    const bottom = corner.classList.contains("bl") || corner.classList.contains("br");
    ctx.textAlign = right ? "right" : "left";
    lines.forEach((text, i) => ctx.fillText(text, right ? w - 22 : 6, bottom ? h - 6 - 16 * (lines.length - 1 - i) : 16 + 16 * i));
  }
  return blobOf(out, "image/jpeg", 0.92);
}

/**
 * Image `index` of the viewport's series at its own size through the viewport's current view:
 * window, invert, colour map, sharpening, rotation and flip (not zoom or pan: the whole image,
 * pixel for pixel, turned the way the reader sees it).
 */
export async function renderImage(vp, index) {
  const image = vp.loader.cached(vp.series, index) || await vp.loader.load(vp.series, index, 0);
  const canvas = document.createElement("canvas"), v = vp.view, turned = v.rotate % 180 !== 0;
  canvas.width = turned ? image.rows : image.columns;
  canvas.height = turned ? image.columns : image.rows;
  const toCanvas = new DOMMatrix().translate(canvas.width / 2, canvas.height / 2)
    .rotate(v.rotate).scale(v.flipH ? -1 : 1, 1).translate(-image.columns / 2, -image.rows / 2);
  Canvas2dRenderer.create(canvas).draw(image, { ...v, toCanvas });
  return canvas;
}

function baseName(vp) {
  const ds = vp.series.images[vp.index].ds;
  return `${value(ds, "Modality") || "IMG"}-${value(ds, "SeriesNumber") ?? "0"}`.replace(/[^A-Za-z0-9._-]/g, "_");
}

/** Images from..to (1-based, inclusive) as PNG or JPEG: one file, or several in one ZIP. */
export async function exportImages(vp, from, to, type) {
  const ext = type === "image/png" ? "png" : "jpg", n = vp.series.images.length;
  const first = Math.max(1, Math.min(from, to, n)), last = Math.min(n, Math.max(from, to, 1));
  if (first === last) {
    download(await blobOf(await renderImage(vp, first - 1), type, 0.92), `${baseName(vp)}-${first}.${ext}`);
    return;
  }
  const form = new FormData();
  for (let i = first; i <= last; i++) form.append("image", await blobOf(await renderImage(vp, i - 1), type, 0.92), `${baseName(vp)}-${i}.${ext}`);
  download(await packaged("zip", form), `${baseName(vp)}-${first}-${last}.zip`);
}

/** The whole series as an MP4 cine at `fps`. */
export async function exportCine(vp, fps) {
  const form = new FormData();
  form.append("fps", String(fps));
  for (let i = 0; i < vp.series.images.length; i++) form.append("image", await blobOf(await renderImage(vp, i), "image/jpeg", 0.95), `${i + 1}.jpg`);
  download(await packaged("mp4", form), `${baseName(vp)}.mp4`);
}

async function packaged(kind, form) {
  const res = await authFetch(API + kind, { method: "POST", body: form });
  if (!res.ok) throw new HttpError(res.status, API + kind);
  return res.blob();
}
