// What each mark is and how it is drawn (SVG over the viewport, image coordinates): length,
// angle, Cobb angle (two lines), cardiothoracic ratio (heart width over thorax width), point
// value, regions (ellipse, rectangle, circle, freehand: area, mean, SD, min, max in modality
// units, HU on CT), arrow and text.
// Calibrated by PixelSpacing, else ImagerPixelSpacing (the label says so), else in pixels.
import { t } from "../common/i18n.js";
import { spacing } from "./series.js";

const SVG = "http://www.w3.org/2000/svg";
export const MEASURE_TOOLS = ["length", "angle", "roi", "rect", "circle", "freehand", "polygon", "cobb", "ctr", "point", "arrow", "text"];
export const REGIONS = new Set(["roi", "rect", "circle", "freehand", "polygon"]); // area and statistics
export const FREEHAND = new Set(["freehand"]); // the drag's whole path, not its two ends
export const TWO_STEP = new Set(["angle", "cobb", "ctr"]); // a second drag completes them
export const ONE_POINT = new Set(["point", "text"]); // a tap
export const WITH_TEXT = new Set(["arrow", "text"]); // the user types a label

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  parent.append(node);
  return node;
}

function label(svg, x, y, text) {
  const width = (svg.ownerSVGElement || svg).clientWidth || Infinity; // near the right edge: to the left of the point
  const right = x > width * 0.7;
  const node = el("text", { x: right ? x - 6 : x + 6, y: y - 6, class: "measure-label", ...(right ? { "text-anchor": "end" } : {}) }, svg);
  node.textContent = text;
}

function line(g, a, b) { el("line", { x1: a[0], y1: a[1], x2: b[0], y2: b[1] }, g); }

/** mm per pixel along x and y and a suffix naming the source, or px when uncalibrated. */
export function calibrationOf(ds) {
  const s = spacing(ds);
  if (!s) return { sx: 1, sy: 1, unit: "px", note: "" };
  return { sx: s.column, sy: s.row, unit: "mm", note: s.source === "ImagerPixelSpacing" ? t("viewer.measure.detector") : "" };
}

export function lengthOf(a, b, c) {
  return { value: Math.hypot((b[0] - a[0]) * c.sx, (b[1] - a[1]) * c.sy), unit: c.unit, note: c.note };
}

function between(u, w) { // degrees between two vectors
  const cos = (u[0] * w[0] + u[1] * w[1]) / (Math.hypot(...u) * Math.hypot(...w) || 1);
  return (Math.acos(Math.max(-1, Math.min(1, cos))) * 180) / Math.PI;
}

export function angleOf(a, v, b, c) {
  return between([(a[0] - v[0]) * c.sx, (a[1] - v[1]) * c.sy], [(b[0] - v[0]) * c.sx, (b[1] - v[1]) * c.sy]);
}

/** The Cobb angle: between two lines (endplates), whichever way each was drawn, 0-90°. */
export function cobbOf(a, b, p, q, c) {
  const d = between([(b[0] - a[0]) * c.sx, (b[1] - a[1]) * c.sy], [(q[0] - p[0]) * c.sx, (q[1] - p[1]) * c.sy]);
  return Math.min(d, 180 - d);
}

/** Cardiothoracic ratio: the first line (heart) over the second (thorax). */
export function ctrOf(a, b, p, q, c) {
  return lengthOf(a, b, c).value / (lengthOf(p, q, c).value || 1);
}

/** The modality value (HU on CT) of the pixel under image point p, or null. */
export function pointValue(img, p) {
  const x = Math.floor(p[0]), y = Math.floor(p[1]);
  if (!img || img.bitmap || x < 0 || y < 0 || x >= img.columns || y >= img.rows) return null;
  return img.pixels[y * img.columns + x] * img.slope + img.intercept;
}

/** A region's pixel test (pixel centre inside), bounding box and area in pixels. */
export function regionOf(kind, pts) {
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const box = [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
  if (kind === "circle") { // centre, then a point on the rim
    const [[cx, cy], [ex, ey]] = pts, r = Math.hypot(ex - cx, ey - cy);
    return { inside: (x, y) => (x - cx) ** 2 + (y - cy) ** 2 <= r * r, box: [cx - r, cy - r, cx + r, cy + r], area: Math.PI * r * r };
  }
  if (kind === "rect") return { inside: () => true, box, area: (box[2] - box[0]) * (box[3] - box[1]) };
  if (kind === "freehand" || kind === "polygon") {
    let area = 0;
    for (let k = 0; k < pts.length; k++) { const [a, b] = [pts[k], pts[(k + 1) % pts.length]]; area += a[0] * b[1] - b[0] * a[1]; }
    return { inside: (x, y) => insidePolygon(pts, x, y), box, area: Math.abs(area) / 2 };
  }
  const cx = (box[0] + box[2]) / 2, cy = (box[1] + box[3]) / 2, rx = (box[2] - box[0]) / 2, ry = (box[3] - box[1]) / 2;
  // an ellipse inscribed in the box a-b
  return { inside: (x, y) => ((x - cx) / (rx || 1)) ** 2 + ((y - cy) / (ry || 1)) ** 2 <= 1, box, area: Math.PI * rx * ry };
}

function insidePolygon(pts, x, y) { // even-odd rule
  let inside = false;
  for (let k = 0, l = pts.length - 1; k < pts.length; l = k++) {
    const [xk, yk] = pts[k], [xl, yl] = pts[l];
    if ((yk > y) !== (yl > y) && x < ((xl - xk) * (y - yk)) / (yl - yk) + xk) inside = !inside;
  }
  return inside;
}

/** Statistics of the modality values of the pixels whose centres lie inside region `kind`. */
export function regionStats(img, kind, pts, c) {
  if (!img || img.bitmap) return { n: 0 }; // a rendered colour image has no modality values
  const { inside, box, area } = regionOf(kind, pts);
  let n = 0, sum = 0, sq = 0, min = Infinity, max = -Infinity;
  for (let y = Math.max(0, Math.floor(box[1])); y <= Math.min(img.rows - 1, Math.ceil(box[3])); y++) {
    for (let x = Math.max(0, Math.floor(box[0])); x <= Math.min(img.columns - 1, Math.ceil(box[2])); x++) {
      const px = x + 0.5, py = y + 0.5;
      if (px < box[0] || px > box[2] || py < box[1] || py > box[3] || !inside(px, py)) continue;
      const v = img.pixels[y * img.columns + x] * img.slope + img.intercept;
      n++; sum += v; sq += v * v;
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  const mean = n ? sum / n : NaN;
  return { n, mean, sd: n ? Math.sqrt(Math.max(0, sq / n - mean * mean)) : NaN, min, max, area: area * c.sx * c.sy, unit: c.unit };
}

/** What a saved report records of mark `m` on the image with header `ds`: {value, unit, stats, text}. */
export function valueOf(m, ds) {
  const c = calibrationOf(ds), p = m.points;
  switch (m.kind) {
    case "length": return { value: lengthOf(p[0], p[1], c).value, unit: c.unit };
    case "angle": return { value: angleOf(...p, c), unit: "deg" };
    case "cobb": return { value: cobbOf(...p, c), unit: "deg" };
    case "ctr": return { value: ctrOf(...p, c), unit: "1" };
    case "point": return m.value === undefined || m.value === null ? {} : { value: m.value };
    case "arrow": case "text": return { text: m.text || "" };
    default: return { value: regionOf(m.kind, p).area * c.sx * c.sy, unit: c.unit, ...(m.stats ? { stats: m.stats } : {}) };
  }
}

const fixed = (x, n = 1) => (Number.isFinite(x) ? x.toFixed(n) : "—");

/** Draw mark `m` on viewport `vp` into `svg` (a draft of a two-step tool shows its first line). */
export function drawOne(svg, vp, m) {
  const pts = m.points.map(([x, y]) => vp.imageToClient(x, y));
  const c = calibrationOf(vp.series.images[vp.index].ds), hu = vp.series.modality === "CT" ? " HU" : "";
  const g = el("g", { class: `measure ${m.kind}` }, svg);
  const done = !TWO_STEP.has(m.kind) || (m.stage === undefined || m.stage === 2);
  switch (m.kind) {
    case "length": {
      line(g, pts[0], pts[1]);
      const d = lengthOf(m.points[0], m.points[1], c);
      label(g, pts[1][0], pts[1][1], `${d.value.toFixed(1)} ${d.unit}${d.note}`);
      break;
    }
    case "angle": {
      const [a, v, b] = [pts[0], pts[1], pts[2] || pts[1]];
      el("polyline", { points: `${a.join(",")} ${v.join(",")} ${b.join(",")}`, fill: "none" }, g);
      if (m.points[2] && done) label(g, v[0], v[1], `${angleOf(...m.points, c).toFixed(1)}°`);
      break;
    }
    case "cobb": case "ctr": {
      line(g, pts[0], pts[1]);
      if (pts.length < 4) break;
      line(g, pts[2], pts[3]);
      if (!done) break;
      const text = m.kind === "cobb" ? t("viewer.measure.cobb", { deg: cobbOf(...m.points, c).toFixed(1) })
        : t("viewer.measure.ctr", { ratio: ctrOf(...m.points, c).toFixed(2) });
      label(g, pts[3][0], pts[3][1], text);
      break;
    }
    case "point": {
      const [x, y] = pts[0];
      el("path", { d: `M${x - 6},${y}h12M${x},${y - 6}v12` }, g);
      const v = vp.image && !vp.image.bitmap ? pointValue(vp.image, m.points[0]) : m.value;
      if (v !== null && v !== undefined) m.value = v; // kept for the saved report
      label(g, x, y, t("viewer.measure.point", { value: fixed(v) }) + hu);
      break;
    }
    case "arrow": {
      const [head, tail] = pts, dx = tail[0] - head[0], dy = tail[1] - head[1], n = Math.hypot(dx, dy) || 1;
      const ux = dx / n, uy = dy / n; // the head points at the finding (where the drag began)
      line(g, head, tail);
      el("polygon", { points: `${head.join(",")} ${head[0] + 12 * ux - 5 * uy},${head[1] + 12 * uy + 5 * ux} `
        + `${head[0] + 12 * ux + 5 * uy},${head[1] + 12 * uy - 5 * ux}` }, g);
      if (m.text) label(g, tail[0], tail[1] + 16, m.text);
      break;
    }
    case "text": label(g, pts[0][0] - 6, pts[0][1] + 6, m.text || ""); break;
    default: { // the regions
      const [a, b] = pts;
      if (m.kind === "roi") el("ellipse", { cx: (a[0] + b[0]) / 2, cy: (a[1] + b[1]) / 2, rx: Math.abs(b[0] - a[0]) / 2, ry: Math.abs(b[1] - a[1]) / 2, fill: "none" }, g);
      else if (m.kind === "circle") el("circle", { cx: a[0], cy: a[1], r: Math.hypot(b[0] - a[0], b[1] - a[1]), fill: "none" }, g);
      else { // a rectangle's corners follow the view's rotation: drawn as the polygon of its four
        const corners = m.kind === "rect" ? [m.points[0], [m.points[1][0], m.points[0][1]], m.points[1], [m.points[0][0], m.points[1][1]]]
          .map(([x, y]) => vp.imageToClient(x, y)) : pts;
        const closed = m.kind !== "polygon" || !m.open; // a polygon being drawn stays open
        el("polyline", { points: [...corners, ...(closed ? [corners[0]] : [])].map((p) => p.join(",")).join(" "), fill: "none" }, g);
      }
      const s = regionStats(vp.image, m.kind, m.points, c);
      if (!s.n) break;
      m.stats = { mean: s.mean, sd: s.sd, min: s.min, max: s.max }; // kept for the saved report
      const text = t("viewer.measure.roi", { area: s.area.toFixed(1), unit: s.unit === "mm" ? "mm²" : "px²",
        mean: s.mean.toFixed(1), sd: s.sd.toFixed(1), min: s.min.toFixed(0), max: s.max.toFixed(0) }) + hu;
      const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
      text.split("\n").forEach((ln, i) => label(g, Math.max(...xs), Math.min(...ys) + 16 * i, ln));
    }
  }
}
