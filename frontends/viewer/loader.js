// Frames for the viewports: from the bounded cache, else fetched and decoded; prefetch keeps a
// window around the current slice in memory, then warms the HTTP cache with the rest.
import { frame, renderedBitmap, studyUrl } from "./dicomweb.js";
import { FetchQueue, FrameCache, isPhone } from "./cache.js";
import { applyModalityLut, hasModalityLut, invertsGrey, overlayMask, voiFunction, voiLut } from "./lut.js";
import { defaultWindow } from "./presets.js";
import { decodeFrame, isRawDisplayable, pixelFormat } from "./series.js";

/** Downloading a whole series ahead (hundreds of MB) only on unmetered links: never with
 * Save-Data, and on a phone only over Wi-Fi or Ethernet as far as the browser tells. */
function warmAllowed() {
  const c = navigator.connection;
  if (c?.saveData) return false;
  return !isPhone() || ["wifi", "ethernet"].includes(c?.type);
}

export class Loader {
  constructor(budget) {
    this.cache = budget ? new FrameCache(budget) : new FrameCache();
    this.queue = new FetchQueue(6);
    this.warmQueue = new FetchQueue(2);
    this.fetched = 0; // frames downloaded and decoded (for the benchmark)
    this.lossy = false; // the lossy / lossless switch: small JPEGs for weak links, or the original pixels
  }

  key(series, image) { return `${series.series}/${image.sop}/${image.frame}${this.lossy ? "~lossy" : ""}`; }

  cached(series, i) {
    const image = series.images[i];
    return image ? this.cache.get(this.key(series, image)) : undefined;
  }

  /** The decoded frame `i` of `series` (a promise), fetched at `priority` (0 = now). */
  load(series, i, priority = 0) {
    const image = series.images[i];
    const key = this.key(series, image);
    const hit = this.cache.get(key);
    if (hit) return Promise.resolve(hit);
    return this.queue.request(key, priority, async () => {
      const format = pixelFormat(image.ds);
      if (!isRawDisplayable(format)) { // colour, palette, float...: the server's rendering at full size
        const bitmap = await renderedBitmap(`${studyUrl(series.study, series.series, image.sop)}/frames/${image.frame}/rendered`,
          { quality: "95" });
        const entry = { bitmap, rows: bitmap.height, columns: bitmap.width, pixels: { byteLength: bitmap.width * bitmap.height * 4 } };
        this.cache.put(key, entry);
        this.fetched++;
        return entry;
      }
      if (this.lossy) {
        const entry = await lossyFrame(series, image);
        this.cache.put(key, entry);
        this.fetched++;
        return entry;
      }
      const buffer = await frame(series.study, series.series, image.sop, image.frame);
      let pixels = decodeFrame(buffer, format), { slope, intercept } = format;
      if (hasModalityLut(image.ds)) { // a table, not a rescale: applied once here, so both renderers and the measurements see modality values
        pixels = await applyModalityLut(image.ds, pixels);
        [slope, intercept] = [1, 0];
      }
      const [voi, overlay] = await Promise.all([voiLut(image.ds), overlayMask(image.ds, format.rows, format.columns, image.frame)]);
      let min = Infinity, max = -Infinity;
      for (let k = 0; k < pixels.length; k++) { const v = pixels[k]; if (v < min) min = v; if (v > max) max = v; }
      const [a, b] = [min * slope + intercept, max * slope + intercept];
      const entry = {
        pixels, rows: format.rows, columns: format.columns, slope, intercept, voi, overlay, fn: voiFunction(image.ds),
        monochrome1: invertsGrey(image.ds), min: Math.min(a, b), max: Math.max(a, b),
      };
      this.cache.put(key, entry);
      this.fetched++;
      return entry;
    });
  }

  /** Prefetch around `i`: nearest first, within what the cache can hold; then warm the rest. */
  prefetch(series, i) {
    const n = series.images.length;
    const bytes = series.bytesPerFrame || 512 * 512 * 2;
    const half = Math.min(n, Math.floor(this.cache.capacity(bytes) * 0.4));
    const wanted = new Set();
    for (let d = 1; d <= half; d++) {
      for (const j of [i + d, i - d]) {
        if (j < 0 || j >= n) continue;
        wanted.add(this.key(series, series.images[j]));
        this.load(series, j, d).catch(() => {});
      }
    }
    wanted.add(this.key(series, series.images[i]));
    this.queue.prune((key) => wanted.has(key) || !key.startsWith(series.series + "/"));
    if (half < n / 2 && warmAllowed() && !this.lossy) this.warm(series, i, half); // lossy: a weak link
  }

  /** Download (not decode) the frames outside the window, so the disk cache answers later. */
  warm(series, i, half) {
    const n = series.images.length;
    for (let d = half + 1; d < n; d++) {
      for (const j of [i + d, i - d]) {
        if (j < 0 || j >= n) continue;
        const image = series.images[j];
        this.warmQueue.request(this.key(series, image), d, () =>
          frame(series.study, series.series, image.sop, image.frame).then(() => undefined)).catch(() => {});
      }
    }
  }
}

/**
 * Lossy: the server's JPEG of the frame through the image's own window (quality 80), its grey
 * levels turned back into modality values across that window (PS3.3 C.11.2.1.2.1 inverted), so
 * W/L, invert, colour maps and measurements still work, coarser and clipped to that window.
 */
async function lossyFrame(series, image) {
  const [c, w] = defaultWindow(series.modality, image.ds, null);
  const bitmap = await renderedBitmap(`${studyUrl(series.study, series.series, image.sop)}/frames/${image.frame}/rendered`,
    { quality: "80", window: `${c},${w},linear` });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height), ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, canvas.width, canvas.height).data, pixels = new Uint8Array(canvas.width * canvas.height);
  for (let i = 0; i < pixels.length; i++) pixels[i] = rgba[i * 4];
  const slope = Math.max(w - 1, 1) / 255, intercept = c - 0.5 - Math.max(w - 1, 1) / 2;
  return { pixels, rows: canvas.height, columns: canvas.width, slope, intercept, monochrome1: false, lossy: true,
    min: intercept, max: 255 * slope + intercept };
}
