// Measurements drawn over a viewport (SVG, image coordinates): length, angle, elliptical ROI
// with area, mean, SD, min and max in modality units (HU on CT). Calibrated by PixelSpacing,
// else ImagerPixelSpacing (the label says so), else in pixels.
import { t } from "../common/i18n.js";
import { spacing } from "./series.js";

const SVG = "http://www.w3.org/2000/svg";
export const MEASURE_TOOLS = ["length", "angle", "roi"];

export class Measurements {
  constructor() {
    this.byImage = new Map(); // "sop/frame" -> [{kind, points}]
    this.draft = null;
  }

  key(vp) { const im = vp.series?.images[vp.index]; return im ? `${im.sop}/${im.frame}` : ""; }
  list(vp) { return this.byImage.get(this.key(vp)) || []; }

  /** Pointer handlers for attachGestures: true when a measuring tool takes the drag. */
  start(vp, tool, x, y) {
    if (!MEASURE_TOOLS.includes(tool) || !vp.image) return false;
    const p = vp.clientToImage(x, y);
    if (this.draft?.kind === "angle" && this.draft.stage === 1) {
      this.draft.points[2] = p; // the second arm: from the vertex to the third point
      this.draft.stage = 2;
    } else {
      this.draft = { kind: tool, points: [p, p], stage: 0, vp };
    }
    this.render(vp);
    return true;
  }

  move(vp, x, y) {
    if (!this.draft) return;
    const p = vp.clientToImage(x, y);
    if (this.draft.stage === 2) this.draft.points[2] = p; else this.draft.points[1] = p;
    this.render(vp);
  }

  end(vp) {
    const d = this.draft;
    if (!d) return;
    if (d.kind === "angle" && d.stage === 0) { d.stage = 1; d.points[2] = d.points[1]; this.render(vp); return; }
    const key = this.key(vp), im = vp.series.images[vp.index];
    this.byImage.set(key, [...(this.byImage.get(key) || []), { kind: d.kind, points: d.points, sop: im.sop, frame: im.frame, ds: im.ds }]);
    this.draft = null;
    this.render(vp);
  }

  cancel(vp) { this.draft = null; this.render(vp); }

  /** Every mark of the study with its image's header (`lookup(sop)` for marks read from a report). */
  all(lookup) {
    const out = [];
    for (const items of this.byImage.values()) {
      for (const m of items) {
        m.ds ??= lookup(m.sop);
        if (m.ds) out.push(m);
      }
    }
    return out;
  }

  /** Marks read back from a saved report ([{kind, sop, frame, points}]) replace those of their images. */
  load(marks) {
    const byKey = new Map();
    for (const m of marks) {
      if (!MEASURE_TOOLS.includes(m.kind) || m.points.length < 2) continue;
      const key = `${m.sop}/${m.frame}`;
      byKey.set(key, [...(byKey.get(key) || []), m]);
    }
    for (const [key, items] of byKey) this.byImage.set(key, items);
  }

  clear(vp) { this.byImage.delete(this.key(vp)); this.draft = null; this.render(vp); }

  /** Draw every measurement of the image on screen (called after each viewport draw). */
  render(vp) {
    const svg = vp.el.querySelector("svg.marks");
    svg.replaceChildren();
    const items = [...this.list(vp), ...(this.draft && this.draft.vp === vp ? [this.draft] : [])];
    for (const m of items) drawOne(svg, vp, m);
  }
}

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  parent.append(node);
  return node;
}

function label(svg, x, y, text) {
  const node = el("text", { x: x + 6, y: y - 6, class: "measure-label" }, svg);
  node.textContent = text;
}

function calibration(vp) { return calibrationOf(vp.series.images[vp.index].ds); }

/** mm per pixel along x and y and a suffix naming the source, or px when uncalibrated. */
function calibrationOf(ds) {
  const s = spacing(ds);
  if (!s) return { sx: 1, sy: 1, unit: "px", note: "" };
  return { sx: s.column, sy: s.row, unit: "mm", note: s.source === "ImagerPixelSpacing" ? t("viewer.measure.detector") : "" };
}

export function lengthOf(vp, a, b, c = calibration(vp)) {
  return { value: Math.hypot((b[0] - a[0]) * c.sx, (b[1] - a[1]) * c.sy), unit: c.unit, note: c.note };
}

export function angleOf(vp, a, v, b, c = calibration(vp)) {
  const u = [(a[0] - v[0]) * c.sx, (a[1] - v[1]) * c.sy], w = [(b[0] - v[0]) * c.sx, (b[1] - v[1]) * c.sy];
  const cos = (u[0] * w[0] + u[1] * w[1]) / (Math.hypot(...u) * Math.hypot(...w) || 1);
  return (Math.acos(Math.max(-1, Math.min(1, cos))) * 180) / Math.PI;
}

/** Statistics of the modality values inside the ellipse inscribed in the box a-b. */
export function ellipseStats(vp, a, b) {
  const img = vp.image, c = calibration(vp);
  if (img.bitmap) return { n: 0 }; // a rendered colour image has no modality values
  const cx = (a[0] + b[0]) / 2, cy = (a[1] + b[1]) / 2, rx = Math.abs(b[0] - a[0]) / 2, ry = Math.abs(b[1] - a[1]) / 2;
  let n = 0, sum = 0, sq = 0, min = Infinity, max = -Infinity;
  for (let y = Math.max(0, Math.floor(cy - ry)); y <= Math.min(img.rows - 1, Math.ceil(cy + ry)); y++) {
    for (let x = Math.max(0, Math.floor(cx - rx)); x <= Math.min(img.columns - 1, Math.ceil(cx + rx)); x++) {
      const dx = (x + 0.5 - cx) / (rx || 1), dy = (y + 0.5 - cy) / (ry || 1); // pixel centres inside
      if (dx * dx + dy * dy > 1) continue;
      const v = img.pixels[y * img.columns + x] * img.slope + img.intercept;
      n++; sum += v; sq += v * v;
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  const mean = n ? sum / n : NaN;
  return { n, mean, sd: n ? Math.sqrt(Math.max(0, sq / n - mean * mean)) : NaN, min, max,
    area: Math.PI * rx * ry * c.sx * c.sy, unit: c.unit };
}

/** What a saved report records of mark `m` on the image with header `ds`: {value, unit, stats}. */
export function valueOf(m, ds) {
  const c = calibrationOf(ds), [a, b] = m.points;
  if (m.kind === "length") return { value: lengthOf(null, a, b, c).value, unit: c.unit };
  if (m.kind === "angle") return { value: angleOf(null, ...m.points, c), unit: "deg" };
  const area = Math.PI * (Math.abs(b[0] - a[0]) / 2) * (Math.abs(b[1] - a[1]) / 2) * c.sx * c.sy;
  return { value: area, unit: c.unit, ...(m.stats ? { stats: m.stats } : {}) };
}

function drawOne(svg, vp, m) {
  const pts = m.points.map(([x, y]) => vp.imageToClient(x, y));
  const g = el("g", { class: `measure ${m.kind}` }, svg);
  if (m.kind === "length") {
    el("line", { x1: pts[0][0], y1: pts[0][1], x2: pts[1][0], y2: pts[1][1] }, g);
    const d = lengthOf(vp, ...m.points);
    label(g, pts[1][0], pts[1][1], `${d.value.toFixed(1)} ${d.unit}${d.note}`);
  } else if (m.kind === "angle") {
    const [a, v, b] = [pts[0], pts[1], pts[2] || pts[1]];
    el("polyline", { points: `${a.join(",")} ${v.join(",")} ${b.join(",")}`, fill: "none" }, g);
    if (m.points[2] && m.stage !== 1) label(g, v[0], v[1], `${angleOf(vp, ...m.points).toFixed(1)}°`);
  } else if (m.kind === "roi") {
    const [a, b] = pts;
    el("ellipse", { cx: (a[0] + b[0]) / 2, cy: (a[1] + b[1]) / 2, rx: Math.abs(b[0] - a[0]) / 2, ry: Math.abs(b[1] - a[1]) / 2, fill: "none" }, g);
    const s = ellipseStats(vp, ...m.points);
    if (s.n) {
      m.stats = { mean: s.mean, sd: s.sd, min: s.min, max: s.max }; // kept for the saved report
      const unit = vp.series.modality === "CT" ? " HU" : "";
      const text = t("viewer.measure.roi", { area: s.area.toFixed(1), unit: s.unit === "mm" ? "mm²" : "px²",
        mean: s.mean.toFixed(1), sd: s.sd.toFixed(1), min: s.min.toFixed(0), max: s.max.toFixed(0) }) + unit;
      text.split("\n").forEach((line, i) => label(g, Math.max(a[0], b[0]), Math.min(a[1], b[1]) + 16 * i, line));
    }
  }
}
