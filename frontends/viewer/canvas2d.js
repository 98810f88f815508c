// The canvas 2D path where WebGL2 is missing (some WeChat builds): one 8-bit lookup table
// indexed by the raw stored value (rescale, window or VOI LUT, inversion folded in: lut.js),
// rebuilt only when the window changes; overlays painted white on top; then a scaled drawImage
// for zoom and pan.
import { palette } from "./colormaps.js";
import { unit } from "./lut.js";

export class Canvas2dRenderer {
  static create(canvas) {
    const ctx = canvas.getContext("2d", { alpha: false });
    return ctx ? new Canvas2dRenderer(ctx) : null;
  }

  constructor(ctx) {
    this.kind = "canvas2d";
    this.ctx = ctx;
    this.scratch = document.createElement("canvas");
    this.lutKey = "";
    this.lut = null;
    this.imageKey = null;
  }

  table(image, v) {
    const invert = v.invert !== image.monochrome1;
    const signed = image.pixels instanceof Int16Array;
    const size = image.pixels instanceof Uint8Array ? 256 : 65536;
    const voi = v.voi ? image.voi : null;
    const key = [size, signed, image.slope, image.intercept, v.center, v.width, v.fn, invert, v.colormap].join();
    if (key === this.lutKey && voi === this.lutVoi) return this.lut;
    const lut = new Uint8ClampedArray(size); // its stores round half to even, as the server's np.rint
    const lo = v.center - 0.5, w = Math.max(v.width - 1, 1), linear = !voi && (!v.fn || v.fn === "LINEAR");
    for (let i = 0; i < size; i++) {
      const x = (signed ? i - 32768 : i) * image.slope + image.intercept;
      let g = linear ? (x - lo) / w + 0.5 : unit(x, v, voi); // the common linear window inline: a W/L drag rebuilds this
      g = g < 0 ? 0 : g > 1 ? 1 : g;
      lut[i] = (invert ? 1 - g : g) * 255;
    }
    this.lutKey = key;
    this.lutVoi = voi;
    this.lut = lut;
    this.imageKey = null;
    return lut;
  }

  draw(image, v) {
    const ctx = this.ctx, canvas = ctx.canvas;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (!image) return;
    if (image.bitmap) {
      const m = v.toCanvas;
      ctx.setTransform(m.a, m.b, m.c, m.d, m.e, m.f);
      ctx.filter = v.invert ? "invert(1)" : "none";
      ctx.drawImage(image.bitmap, 0, 0);
      ctx.filter = "none";
      return;
    }
    const lut = this.table(image, v);
    const overlay = v.overlays !== false ? image.overlay : null;
    if (this.imageKey !== image || this.sharpenKey !== (v.sharpen || 0) || this.overlayKey !== overlay) {
      const { columns: w, rows: h } = image;
      if (v.sharpen && (this.sharp?.image !== image || this.sharp.weight !== v.sharpen)) { // kept: a W/L drag re-LUTs only
        this.sharp = { image, weight: v.sharpen, pixels: sharpened(image.pixels, w, h, v.sharpen) };
      }
      const pixels = v.sharpen ? this.sharp.pixels : image.pixels;
      this.sharpenKey = v.sharpen || 0;
      this.scratch.width = w;
      this.scratch.height = h;
      const sctx = this.scratch.getContext("2d");
      const out = sctx.createImageData(w, h);
      const d = out.data, offset = pixels instanceof Int16Array ? 32768 : 0;
      if (!v.colormap || v.colormap === "grey") {
        for (let i = 0, j = 0; i < pixels.length; i++, j += 4) {
          const g = lut[pixels[i] + offset];
          d[j] = d[j + 1] = d[j + 2] = g;
          d[j + 3] = 255;
        }
      } else {
        const map = palette(v.colormap);
        for (let i = 0, j = 0; i < pixels.length; i++, j += 4) {
          const k = lut[pixels[i] + offset] * 4;
          d[j] = map[k]; d[j + 1] = map[k + 1]; d[j + 2] = map[k + 2]; d[j + 3] = 255;
        }
      }
      if (overlay) for (let i = 0, j = 0; i < overlay.length; i++, j += 4) if (overlay[i]) d[j] = d[j + 1] = d[j + 2] = 255;
      sctx.putImageData(out, 0, 0);
      this.imageKey = image;
      this.overlayKey = overlay;
    }
    const m = v.toCanvas;
    ctx.setTransform(m.a, m.b, m.c, m.d, m.e, m.f);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(this.scratch, 0, 0);
  }
}

/** The raw samples through the 3x3 kernel of gl.js (centre + weight x Laplacian), edges clamped. */
export function sharpened(px, w, h, weight) {
  const out = new px.constructor(px.length); // typed arrays clamp or wrap: clamp to the type's range first
  const lo = px instanceof Int16Array ? -32768 : 0, hi = px instanceof Int16Array ? 32767 : px instanceof Uint8Array ? 255 : 65535;
  for (let y = 0; y < h; y++) {
    const up = (y > 0 ? y - 1 : 0) * w, row = y * w, down = (y < h - 1 ? y + 1 : y) * w;
    for (let x = 0; x < w; x++) {
      const c = px[row + x], left = px[row + (x > 0 ? x - 1 : 0)], right = px[row + (x < w - 1 ? x + 1 : x)];
      const v = Math.round(c + weight * (4 * c - left - right - px[up + x] - px[down + x]));
      out[row + x] = v < lo ? lo : v > hi ? hi : v;
    }
  }
  return out;
}
