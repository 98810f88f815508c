// The marks of the open study, per image, and the pointer gestures that draw them: one drag for
// a length, a region (ellipse, rectangle, circle from its centre, freehand along the path) or an
// arrow, a tap for a point value or text, two drags for an angle (the second arm from the
// vertex), a Cobb angle or a cardiothoracic ratio (two lines each); a polygon by a tap per
// corner, closed by a tap on its first corner.
import { t } from "../common/i18n.js";
import { drawOne, FREEHAND, MEASURE_TOOLS, ONE_POINT, TWO_STEP, WITH_TEXT } from "./marks.js";

export { MEASURE_TOOLS };

export class Measurements {
  constructor() {
    this.byImage = new Map(); // "sop/frame" -> [{kind, points, sop, frame, ds, text?}]
    this.draft = null;
    this.ask = (question) => prompt(question, ""); // the label of an arrow or a text (tests may replace it)
  }

  key(vp) { const im = vp.series?.images[vp.index]; return im ? `${im.sop}/${im.frame}` : ""; }
  list(vp) { return this.byImage.get(this.key(vp)) || []; }

  /** Pointer handlers for attachGestures: true when a measuring tool takes the drag. */
  start(vp, tool, x, y) {
    if (!MEASURE_TOOLS.includes(tool) || !vp.image) return false;
    const p = vp.clientToImage(x, y), d = this.draft;
    if (tool === "polygon") return this.corner(vp, p, x, y);
    if (d?.stage === 1 && d.vp === vp && d.kind === tool) {
      if (d.kind === "angle") d.points[2] = p; // the second arm: from the vertex to the third point
      else d.points.push(p, p); // the second line
      d.stage = 2;
    } else {
      this.draft = { kind: tool, points: FREEHAND.has(tool) ? [p] : [p, p], stage: 0, vp };
    }
    this.render(vp);
    return true;
  }

  /** A polygon's tap: a new corner, or the first corner again (within 10 CSS pixels) closes it. */
  corner(vp, p, x, y) {
    const d = this.draft;
    if (d?.kind !== "polygon" || d.vp !== vp) {
      this.draft = { kind: "polygon", points: [p], open: true, stage: 0, vp };
    } else {
      const [fx, fy] = vp.imageToClient(...d.points[0]);
      if (d.points.length >= 3 && Math.hypot(fx - x, fy - y) <= 10) {
        this.draft = null;
        const key = this.key(vp), im = vp.series.images[vp.index];
        this.byImage.set(key, [...(this.byImage.get(key) || []), { kind: "polygon", points: d.points, sop: im.sop, frame: im.frame, ds: im.ds }]);
      } else d.points.push(p);
    }
    this.render(vp);
    return true;
  }

  move(vp, x, y) {
    const d = this.draft;
    if (!d || ONE_POINT.has(d.kind) || d.kind === "polygon") return;
    const p = vp.clientToImage(x, y), last = d.points[d.points.length - 1];
    if (!FREEHAND.has(d.kind)) d.points[d.points.length - 1] = p;
    else if (Math.hypot(p[0] - last[0], p[1] - last[1]) >= 1) d.points.push(p); // the path, an image pixel apart at least
    this.render(vp);
  }

  end(vp) {
    const d = this.draft;
    if (!d || d.kind === "polygon") return; // a polygon ends at the tap on its first corner
    if (TWO_STEP.has(d.kind) && d.stage === 0) {
      d.stage = 1;
      if (d.kind === "angle") d.points[2] = d.points[1];
      this.render(vp);
      return;
    }
    this.draft = null;
    if (FREEHAND.has(d.kind) && d.points.length < 3) { this.render(vp); return; } // a tap: no region
    const mark = { kind: d.kind, points: ONE_POINT.has(d.kind) ? d.points.slice(0, 1) : d.points };
    if (WITH_TEXT.has(d.kind)) {
      mark.text = (this.ask(t("viewer.measure.askText")) || "").trim().slice(0, 200);
      if (!mark.text && d.kind === "text") { this.render(vp); return; }
    }
    const key = this.key(vp), im = vp.series.images[vp.index];
    this.byImage.set(key, [...(this.byImage.get(key) || []), { ...mark, sop: im.sop, frame: im.frame, ds: im.ds }]);
    this.render(vp);
  }

  cancel(vp) { this.draft = null; if (vp) this.render(vp); }

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

  /** Marks read back from a saved report ([{kind, sop, frame, points, text}]) replace those of their images. */
  load(marks) {
    const byKey = new Map();
    for (const m of marks) {
      if (!MEASURE_TOOLS.includes(m.kind) || !m.points.length) continue;
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
    if (!vp.series) return;
    const items = [...this.list(vp), ...(this.draft && this.draft.vp === vp ? [this.draft] : [])];
    for (const m of items) drawOne(svg, vp, m);
  }
}
