// Reference lines: on each viewport, where the images on the other viewports cut it (same frame
// of reference, planes not parallel), from ImagePositionPatient / ImageOrientationPatient /
// PixelSpacing (PS3.3 C.7.6.2.1.1: position = centre of the first pixel).
import { value, values } from "./series.js";

const SVG = "http://www.w3.org/2000/svg";

/** An image's plane: origin, row and column directions (unit), spacing and normal; or null. */
export function planeOf(ds) {
  const o = values(ds, "ImageOrientationPatient").map(Number), p = values(ds, "ImagePositionPatient").map(Number);
  const s = values(ds, "PixelSpacing").map(Number);
  if (o.length !== 6 || p.length !== 3 || s.length !== 2 || ![...o, ...p, ...s].every(Number.isFinite)) return null;
  const r = o.slice(0, 3), c = o.slice(3);
  const n = [r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]];
  return { origin: p, row: r, col: c, dx: s[1], dy: s[0], normal: n, frame: value(ds, "FrameOfReferenceUID") };
}

const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];

/**
 * Where plane `source` cuts image `target` ({plane, columns, rows}): two points in the target's
 * image coordinates (pixel (0,0) spans 0..1), or null when parallel or outside the image.
 */
export function referenceLine(source, target, columns, rows) {
  // target pixel (j, i) lies at origin + j dx row + i dy col; on the source plane when a j + b i + c = 0
  const a = target.dx * dot(source.normal, target.row), b = target.dy * dot(source.normal, target.col);
  const c = dot(source.normal, target.origin.map((x, k) => x - source.origin[k]));
  if (Math.hypot(a, b) < 1e-6 * (target.dx + target.dy)) return null; // parallel planes: no line
  const hits = [];
  const add = (j, i) => { if (j >= -0.5 - 1e-6 && j <= columns - 0.5 + 1e-6 && i >= -0.5 - 1e-6 && i <= rows - 0.5 + 1e-6) hits.push([j + 0.5, i + 0.5]); };
  if (Math.abs(b) > 1e-12) { add(-0.5, -(a * -0.5 + c) / b); add(columns - 0.5, -(a * (columns - 0.5) + c) / b); }
  if (Math.abs(a) > 1e-12) { add(-(b * -0.5 + c) / a, -0.5); add(-(b * (rows - 0.5) + c) / a, rows - 0.5); }
  hits.sort((p, q) => p[0] - q[0] || p[1] - q[1]);
  const [first, last] = [hits[0], hits.at(-1)];
  return first && Math.hypot(last[0] - first[0], last[1] - first[1]) > 1e-3 ? [first, last] : null;
}

/** Draw on `vp` the lines of every other viewport's current image. */
export function drawReferences(viewer, vp) {
  const svg = vp.el.querySelector("svg.refs");
  if (!svg) return;
  svg.replaceChildren();
  const image = vp.series?.images[vp.index];
  const target = image && planeOf(image.ds);
  if (!target || viewer.viewports.length < 2) return;
  const columns = Number(value(image.ds, "Columns")), rows = Number(value(image.ds, "Rows"));
  viewer.viewports.forEach((other, k) => {
    const im = other !== vp && other.series?.images[other.index];
    const source = im && planeOf(im.ds);
    if (!source || !source.frame || source.frame !== target.frame) return;
    const cut = referenceLine(source, target, columns, rows);
    if (!cut) return;
    const [[x1, y1], [x2, y2]] = cut.map(([x, y]) => vp.imageToClient(x, y));
    const line = document.createElementNS(SVG, "line");
    for (const [key, v] of Object.entries({ x1, y1, x2, y2, "data-from": k, class: other === viewer.active ? "ref active" : "ref" })) line.setAttribute(key, v);
    svg.append(line);
  });
}

/** Keep every viewport's reference lines current as images, views and layouts change. */
export function attachReferences(viewer, vp) {
  vp.el.addEventListener("drawn", () => drawReferences(viewer, vp));
  vp.onChange(() => { for (const other of viewer.viewports) if (other !== vp) drawReferences(viewer, other); });
}
