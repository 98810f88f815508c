// The greyscale pipeline of PS3.3 C.11 as the server's rendering follows it (yunying/pixels/lut.py):
// Modality LUT Sequence (applied once to the decoded samples), VOI LUT Sequence or a window with
// its VOI LUT Function (LINEAR, LINEAR_EXACT, SIGMOID), Presentation LUT Shape; and the overlay
// planes of the instance (C.9.2, 60xx,3000), fetched as bulk data when the metadata has a URI.
import { authFetch } from "../common/auth.js";
import { value } from "./series.js";

const MODALITY_LUT = "00283000", VOI_LUT = "00283010", DESCRIPTOR = "00283002", DATA = "00283006";
const OVERLAY_GROUPS = Array.from({ length: 16 }, (_, i) => (0x6000 + 2 * i).toString(16).toUpperCase());

/** The first item of a LUT sequence of `ds`, or null. */
function lutItem(ds, tag) {
  const item = ds?.[tag]?.Value?.[0];
  return item?.[DESCRIPTOR]?.Value?.length === 3 && item[DATA] ? item : null;
}

/** A binary DICOM JSON element's bytes: InlineBinary, or fetched from its BulkDataURI. */
async function bytesOf(element, signal) {
  if (element.InlineBinary) return Uint8Array.from(atob(element.InlineBinary), (c) => c.charCodeAt(0));
  if (element.BulkDataURI) {
    const res = await authFetch(element.BulkDataURI, { headers: { Accept: "application/octet-stream" }, signal });
    if (!res.ok) throw new Error(`bulk data HTTP ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  }
  return null;
}

const tables = new WeakMap(); // LUT item -> its table (a promise): every frame of an instance shares one

/** {table, first, bits} of a LUT item (C.11.1.1.1: entries 0 = 65536, first mapped value US or SS). */
function readLut(item, signal) {
  if (!tables.has(item)) tables.set(item, parseLut(item, signal).catch((err) => { tables.delete(item); throw err; }));
  return tables.get(item);
}

async function parseLut(item, signal) {
  const [entries, first, bits] = item[DESCRIPTOR].Value.map(Number);
  const n = entries || 65536, el = item[DATA];
  let table;
  if (el.Value) table = Float32Array.from(el.Value.slice(0, n).map(Number));
  else {
    const bytes = await bytesOf(el, signal);
    if (!bytes) return null;
    const words = bytes.length === n ? bytes : new Uint16Array(bytes.buffer, bytes.byteOffset, Math.min(n, bytes.length >> 1));
    table = Float32Array.from(words);
  }
  return table.length ? { table, first: first > 32767 ? first - 65536 : first, bits: bits || 16 } : null;
}

/** True when stored values go through a Modality LUT Sequence (only without any rescale, as the server). */
export function hasModalityLut(ds) {
  return !!lutItem(ds, MODALITY_LUT) && value(ds, "RescaleSlope") === undefined && value(ds, "RescaleIntercept") === undefined;
}

/** Stored samples -> modality values through the Modality LUT (outside its range: the end entries). */
export async function applyModalityLut(ds, pixels, signal) {
  const lut = await readLut(lutItem(ds, MODALITY_LUT), signal);
  if (!lut) return pixels;
  const { table, first } = lut, last = table.length - 1, out = new Uint16Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) {
    const k = pixels[i] - first;
    out[i] = table[k < 0 ? 0 : k > last ? last : k];
  }
  return out;
}

/** The VOI LUT of `ds` as [0, 1] values over its input range, when the image opens with it: it has
 * one and no window (a window takes precedence, as in the server's rendering); else null. */
export async function voiLut(ds, signal) {
  const item = lutItem(ds, VOI_LUT);
  if (!item || Number.isFinite(Number(value(ds, "WindowWidth")))) return null;
  const lut = await readLut(item, signal);
  if (!lut) return null;
  let top = 2 ** lut.bits - 1, max = 0;
  for (const v of lut.table) if (v > max) max = v;
  if (max > 0 && max < top / 2 && lut.bits > 8) top = 2 ** Math.ceil(Math.log2(max + 1)) - 1; // 16 declared, 12 used
  const unit = Float32Array.from(lut.table, (v) => Math.min(1, Math.max(0, v / top)));
  return { unit, first: lut.first, count: unit.length };
}

/** The VOI LUT Function (0028,1056) the header names for its window. */
export function voiFunction(ds) {
  const f = String(value(ds, "00281056") || "LINEAR").trim().toUpperCase().replace("-", "_");
  return ["LINEAR_EXACT", "SIGMOID"].includes(f) ? f : "LINEAR";
}

/** MONOCHROME1 or an INVERSE Presentation LUT Shape: low values shown bright (C.7.6.3.1.2, C.11.6). */
export function invertsGrey(ds) {
  return value(ds, "PhotometricInterpretation") === "MONOCHROME1" || String(value(ds, "20500020") || "").trim() === "INVERSE";
}

/** Modality value -> [0, 1] through the image's VOI LUT or the view's window and function. */
export function unit(v, view, voi) {
  if (voi && view.voi) {
    const k = Math.round(v) - voi.first;
    return voi.unit[k < 0 ? 0 : k >= voi.count ? voi.count - 1 : k];
  }
  const c = view.center, w = view.width;
  if (view.fn === "SIGMOID") return 1 / (1 + Math.exp(-4 * (v - c) / Math.max(w, 1e-9)));
  if (view.fn === "LINEAR_EXACT") return Math.min(1, Math.max(0, (v - c) / Math.max(w, 1e-9) + 0.5));
  return Math.min(1, Math.max(0, (v - (c - 0.5)) / Math.max(w - 1, 1) + 0.5));
}

/** One byte per pixel (1 where any overlay plane of `ds` covers frame `frame`, 1-based), or null. */
export async function overlayMask(ds, rows, columns, frame, signal) {
  let mask = null;
  for (const g of OVERLAY_GROUPS) {
    const data = ds[`${g}3000`];
    if (!data) continue;
    const num = (e, i = 0, d = 0) => { const v = Number(ds[`${g}${e}`]?.Value?.[i]); return Number.isFinite(v) ? v : d; };
    if (num("0100", 0, 1) !== 1) continue; // bits embedded in the pixel data (retired): not drawn
    const oRows = num("0010"), oCols = num("0011"), k = frame - num("0051", 0, 1);
    if (!oRows || !oCols || k < 0 || k >= num("0015", 0, 1)) continue;
    const bits = await bytesOf(data, signal).catch((err) => { console.warn("overlay not loaded:", err.message); return null; });
    if (!bits) continue;
    const r0 = num("0050", 0, 1) - 1, c0 = num("0050", 1, 1) - 1, start = k * oRows * oCols;
    mask ??= new Uint8Array(rows * columns);
    for (let r = Math.max(0, -r0); r < oRows && r + r0 < rows; r++) {
      for (let c = Math.max(0, -c0); c < oCols && c + c0 < columns; c++) {
        const bit = start + r * oCols + c; // PS3.5 8.1.2: bit-packed, the first pixel in the lowest bit
        if (bits[bit >> 3] >> (bit & 7) & 1) mask[(r + r0) * columns + c + c0] = 1;
      }
    }
  }
  return mask;
}
