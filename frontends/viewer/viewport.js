// One viewport: a stack of images, its view (window, zoom, pan, invert), the quick preview shown
// until the full-fidelity pixels arrive, and the four-corner overlay.
import { t } from "../common/i18n.js";
import { Canvas2dRenderer } from "./canvas2d.js";
import { GlRenderer } from "./gl.js";
import { defaultWindow } from "./presets.js";
import { personName, value } from "./series.js";

/**
 * WebGL2 unless it is missing or software-rendered (SwiftShader, llvmpipe: the canvas 2D path
 * is several times faster there); `wanted`: "webgl2" or "int" (integer textures) forces WebGL2,
 * "2d" the canvas. Returns the renderer; the canvas may have been replaced by a fresh one.
 */
export function createRenderer(canvas, wanted) {
  if (wanted !== "2d") {
    try {
      const gl = GlRenderer.create(canvas, wanted === "int");
      if (gl && (wanted === "webgl2" || wanted === "int" || !gl.software())) return gl;
      if (gl) { // a canvas holding a WebGL context cannot give a 2D one
        gl.gl.getExtension("WEBGL_lose_context")?.loseContext();
        const fresh = document.createElement("canvas");
        canvas.replaceWith(fresh);
        canvas = fresh;
      }
    } catch (err) {
      console.warn("WebGL2 unavailable, using canvas 2D:", err.message);
    }
  }
  return Canvas2dRenderer.create(canvas);
}

const CORNERS = ["tl", "tr", "bl", "br"];

export class Viewport {
  constructor(element, loader, rendererKind) {
    this.el = element;
    this.loader = loader;
    this.canvas = element.querySelector("canvas");
    this.preview = element.querySelector("img.preview");
    this.preview.dataset.owned = "1"; // early.js stops placing the first preview
    this.lens = element.querySelector("canvas.lens");
    this.corners = Object.fromEntries(CORNERS.map((c) => [c, element.querySelector(`.corner.${c}`)]));
    this.rendererKind = rendererKind;
    this.renderer = null; // made at the first full-fidelity draw: WebGL set-up must not delay the preview
    this.series = null;
    this.index = 0;
    this.image = null; // the decoded frame on screen (full fidelity)
    this.view = { center: 40, width: 400, invert: false, zoom: 1, panX: 0, panY: 0, rotate: 0, flipH: false, colormap: "grey", sharpen: 0,
      fn: "LINEAR", voi: false, overlays: true }; // fn, voi: the window's VOI LUT Function, or the image's VOI LUT (lut.js)
    this.windowSet = false;
    this.listeners = new Set();
    this.pending = false;
    this.observer = new ResizeObserver(() => this.resize());
    this.observer.observe(element);
    this.resize();
  }

  onChange(fn) { this.listeners.add(fn); }

  destroy() {
    this.observer.disconnect();
    this.renderer?.gl?.getExtension("WEBGL_lose_context")?.loseContext();
    this.el.remove();
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(this.el.clientWidth * dpr)), h = Math.max(1, Math.round(this.el.clientHeight * dpr));
    if (this.canvas.width !== w || this.canvas.height !== h) { this.canvas.width = w; this.canvas.height = h; }
    this.invalidate();
  }

  /** Image size in pixels (from the header, before any pixel arrived). */
  imageSize() {
    const ds = this.series?.images[this.index]?.ds;
    return ds ? [Number(value(ds, "Columns")) || 1, Number(value(ds, "Rows")) || 1] : [1, 1];
  }

  /** Image pixel -> canvas (device pixel) transform. */
  toCanvas() {
    const [cols, rows] = this.imageSize();
    const cw = this.canvas.width, ch = this.canvas.height, dpr = window.devicePixelRatio || 1;
    const v = this.view, turned = v.rotate % 180 !== 0;
    const s = Math.min(cw / (turned ? rows : cols), ch / (turned ? cols : rows)) * v.zoom;
    return new DOMMatrix().translate(cw / 2 + v.panX * dpr, ch / 2 + v.panY * dpr)
      .scale(s).rotate(v.rotate).scale(v.flipH ? -1 : 1, 1).translate(-cols / 2, -rows / 2);
  }

  /** Image pixel (x, y) -> CSS pixel inside the viewport element. */
  imageToClient(x, y) {
    const p = this.toCanvas().transformPoint(new DOMPoint(x, y)), dpr = window.devicePixelRatio || 1;
    return [p.x / dpr, p.y / dpr];
  }

  clientToImage(x, y) {
    const dpr = window.devicePixelRatio || 1;
    const p = this.toCanvas().inverse().transformPoint(new DOMPoint(x * dpr, y * dpr));
    return [p.x, p.y];
  }

  /** Show `series` starting at image `index`; `keepView` keeps window, zoom and pan. */
  setSeries(series, index = 0, keepView = false) {
    this.series = series;
    if (!keepView) {
      this.image = null;
      this.windowSet = false;
      this.view = { ...this.view, invert: false, zoom: 1, panX: 0, panY: 0, rotate: 0, flipH: false, colormap: "grey", sharpen: 0 };
    }
    this.setIndex(index);
  }

  setIndex(i) {
    if (!this.series) return;
    const n = this.series.images.length;
    this.index = Math.max(0, Math.min(n - 1, i));
    const want = this.index;
    const hit = this.loader.cached(this.series, want);
    if (hit) {
      this.show(hit);
      this.loader.prefetch(this.series, want);
    } else {
      // the slice on screen first, alone: on a weak link prefetch would share its bandwidth
      this.loader.load(this.series, want, 0).then((img) => {
        if (this.index === want) this.show(img);
        if (this.index === want) this.loader.prefetch(this.series, want);
      }, (err) => this.failed(err));
    }
    this.changed();
  }

  scroll(delta) { this.setIndex(this.index + delta); }

  show(image) {
    if (!this.windowSet) {
      const ds = this.series.images[this.index].ds;
      [this.view.center, this.view.width] = defaultWindow(this.series.modality, ds, image);
      this.view.fn = image.fn || "LINEAR";
      this.view.voi = !!image.voi;
      if (image.voi) [this.view.center, this.view.width] = [image.voi.first + image.voi.count / 2, image.voi.count]; // a W/L drag starts from the table's input range
      this.windowSet = true;
    }
    this.image = image;
    this.stats = image;
    this.preview.hidden = true;
    this.invalidate();
    if (!performance.getEntriesByName("full-fidelity").length) {
      requestAnimationFrame(() => {
        if (!performance.getEntriesByName("first-image").length) performance.mark("first-image");
        if (!image.lossy && !performance.getEntriesByName("full-fidelity").length) performance.mark("full-fidelity");
      });
    }
  }

  failed(err) {
    if (err?.message === "dropped") return;
    console.warn("frame not loaded:", err?.message);
  }

  /** The quick preview (a server-rendered JPEG) until the raw pixels are drawn. */
  showPreview(url) {
    if (this.image) { URL.revokeObjectURL(url); return Promise.resolve(); }
    this.preview.src = url;
    return this.preview.decode().then(() => {
      if (this.image) return;
      this.placePreview();
      this.preview.hidden = false;
      requestAnimationFrame(() => {
        if (!performance.getEntriesByName("first-image").length) performance.mark("first-image");
      });
    }).catch(() => {});
  }

  placePreview() {
    // before the image's attributes: fitted, as the viewer first shows it (viewer.css)
    this.preview.classList.toggle("fitted", !this.series);
    if (!this.series) { Object.assign(this.preview.style, { width: "", height: "", transform: "" }); return; }
    const [cols, rows] = this.imageSize();
    const m = this.toCanvas(), dpr = window.devicePixelRatio || 1;
    Object.assign(this.preview.style, { width: `${cols}px`, height: `${rows}px`, transformOrigin: "0 0",
      transform: `matrix(${m.a / dpr},${m.b / dpr},${m.c / dpr},${m.d / dpr},${m.e / dpr},${m.f / dpr})` });
  }

  setWindow(center, width) {
    this.view.center = center;
    this.view.width = Math.max(1, width);
    this.view.voi = false; // a window the user chose replaces the image's VOI LUT (back with reset)
    this.windowSet = true;
    this.changed();
  }

  set(changes) { Object.assign(this.view, changes); this.changed(); }

  reset() {
    this.windowSet = false;
    this.view = { ...this.view, invert: false, zoom: 1, panX: 0, panY: 0, rotate: 0, flipH: false, colormap: "grey", sharpen: 0 };
    if (this.image) this.show(this.image);
    this.changed();
  }

  changed() {
    this.invalidate();
    for (const fn of this.listeners) fn(this);
  }

  invalidate() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  ensureRenderer() {
    if (this.renderer) return this.renderer;
    this.renderer = createRenderer(this.canvas, this.rendererKind);
    this.canvas = this.el.querySelector("canvas");
    this.resize();
    this.el.dataset.renderer = this.renderer.kind + (this.renderer.floatLinear ? "-float" : "");
    return this.renderer;
  }

  draw() {
    const m = this.toCanvas();
    const inv = m.inverse();
    if (!this.image && !this.renderer) { this.drawOverlay(); return; } // the canvas is black already
    this.ensureRenderer().draw(this.image, { ...this.view, toCanvas: m,
      toImage: new Float32Array([inv.a, inv.b, 0, inv.c, inv.d, 0, inv.e, inv.f, 1]) });
    if (!this.preview.hidden) this.placePreview();
    this.drawOverlay();
    this.el.dispatchEvent(new CustomEvent("drawn"));
  }

  drawOverlay() {
    const image = this.series?.images[this.index];
    if (!image) return;
    const ds = image.ds;
    const fmt = (x) => (Number.isFinite(Number(x)) ? Number(Number(x).toFixed(2)) : x);
    const lines = {
      tl: [personName(ds, "PatientName"), value(ds, "PatientID"),
        [value(ds, "PatientSex"), value(ds, "PatientAge")].filter(Boolean).join(" ")],
      tr: [value(ds, "InstitutionName"), value(ds, "StudyDescription"), formatDate(value(ds, "StudyDate"))],
      bl: [t("viewer.overlay.series", { n: value(ds, "SeriesNumber") ?? "" }) + " " + (value(ds, "SeriesDescription") || ""),
        t("viewer.overlay.image", { i: this.index + 1, n: this.series.images.length }),
        value(ds, "SliceLocation") !== undefined ? t("viewer.overlay.location", { mm: fmt(value(ds, "SliceLocation")) }) : "",
        value(ds, "SliceThickness") !== undefined ? t("viewer.overlay.thickness", { mm: fmt(value(ds, "SliceThickness")) }) : ""],
      br: [this.view.voi && this.image?.voi ? t("viewer.overlay.voiLut")
        : t("viewer.overlay.window", { w: Math.round(this.view.width), c: Math.round(this.view.center) }),
        t("viewer.overlay.zoom", { z: (this.view.zoom * this.fitScale()).toFixed(2) })],
    };
    for (const c of CORNERS) {
      const text = lines[c].filter((s) => s !== undefined && s !== null && String(s).trim()).join("\n");
      if (this.corners[c].textContent !== text) this.corners[c].textContent = text;
    }
  }

  /** Screen pixels per image pixel at zoom 1 (shown as the zoom factor, 1 = native size). */
  fitScale() {
    const [cols, rows] = this.imageSize();
    return Math.min(this.el.clientWidth / cols, this.el.clientHeight / rows) * (window.devicePixelRatio || 1);
  }
}

function formatDate(da) {
  return typeof da === "string" && da.length === 8 ? `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6)}` : da;
}
