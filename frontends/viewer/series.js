// A series as the viewer sees it: its images (instance x frame) in display order, and what the
// renderer needs from the stored DICOM JSON (PS3.18 Annex F) to turn raw samples into values.
const T = {
  SOPInstanceUID: "00080018", SOPClassUID: "00080016", InstanceNumber: "00200013",
  NumberOfFrames: "00280008", Rows: "00280010", Columns: "00280011", BitsAllocated: "00280100",
  BitsStored: "00280101", PixelRepresentation: "00280103", SamplesPerPixel: "00280002",
  PhotometricInterpretation: "00280004", RescaleSlope: "00281053", RescaleIntercept: "00281052",
  WindowCenter: "00281050", WindowWidth: "00281051", PixelSpacing: "00280030",
  ImagerPixelSpacing: "00181164", SliceThickness: "00180050", SliceLocation: "00201041",
  ImagePositionPatient: "00200032", ImageOrientationPatient: "00200037", Modality: "00080060",
  FrameOfReferenceUID: "00200052",
  PatientName: "00100010", PatientID: "00100020", PatientSex: "00100040", PatientAge: "00101010",
  PatientBirthDate: "00100030", StudyDate: "00080020", StudyDescription: "00081030",
  InstitutionName: "00080080", SeriesDescription: "0008103E", SeriesNumber: "00200011",
  AccessionNumber: "00080050", StudyInstanceUID: "0020000D", SeriesInstanceUID: "0020000E",
  PixelData: "7FE00010", NumberOfSeriesRelatedInstances: "00201209", NumberOfStudyRelatedInstances: "00201208",
  ModalitiesInStudy: "00080061", StudyTime: "00080030", IssuerOfPatientID: "00100021", FrameTime: "00181063", RecommendedDisplayFrameRate: "00082144",
};
export const TAGS = T;

export function value(ds, keyword, i = 0) {
  const el = ds?.[T[keyword] || keyword];
  const v = el?.Value?.[i];
  return v === undefined ? undefined : v;
}

export function values(ds, keyword) {
  return ds?.[T[keyword] || keyword]?.Value || [];
}

/** A person name for display: the ideographic group first (Chinese), then alphabetic. */
export function personName(ds, keyword) {
  const pn = value(ds, keyword);
  if (!pn) return "";
  const parts = [pn.Ideographic, pn.Alphabetic].filter(Boolean).map((s) => s.replace(/\^+/g, " ").trim());
  return [...new Set(parts)].join(" / ");
}

function num(ds, keyword, fallback) {
  const v = Number(value(ds, keyword));
  return Number.isFinite(v) ? v : fallback;
}

/** How the raw samples of one instance are laid out and scaled. */
export function pixelFormat(ds) {
  return {
    rows: num(ds, "Rows", 0), columns: num(ds, "Columns", 0),
    bitsAllocated: num(ds, "BitsAllocated", 16), bitsStored: num(ds, "BitsStored", 16),
    signed: num(ds, "PixelRepresentation", 0) === 1, samples: num(ds, "SamplesPerPixel", 1),
    photometric: String(value(ds, "PhotometricInterpretation") || "MONOCHROME2"),
    slope: num(ds, "RescaleSlope", 1), intercept: num(ds, "RescaleIntercept", 0),
  };
}

/** True when the browser can window the raw samples itself (greyscale, 8 or 16 bits). */
export function isRawDisplayable(f) {
  return f.samples === 1 && f.photometric.startsWith("MONOCHROME") && [8, 16].includes(f.bitsAllocated)
    && f.rows > 0 && f.columns > 0;
}

/** Raw little-endian frame bytes -> a typed array of stored values (sign-extended, masked). */
export function decodeFrame(buffer, f) {
  const n = f.rows * f.columns;
  if (f.bitsAllocated === 8) return new Uint8Array(buffer, 0, n);
  const out = f.signed ? new Int16Array(buffer, 0, n) : new Uint16Array(buffer, 0, n);
  if (f.bitsStored < 16) {
    const shift = 16 - f.bitsStored;
    if (f.signed) for (let i = 0; i < n; i++) out[i] = (out[i] << shift) >> shift;
    else { const mask = (1 << f.bitsStored) - 1; for (let i = 0; i < n; i++) out[i] &= mask; }
  }
  return out;
}

function normal(ds) {
  const o = values(ds, "ImageOrientationPatient").map(Number);
  if (o.length !== 6) return null;
  return [o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]];
}

// and what lut.js reads: Modality and VOI LUT Sequences, VOI LUT Function, Presentation LUT Shape
const KEPT = new Set([...Object.values(T), "00283000", "00283010", "00281056", "20500020"]);
const OVERLAY = /^60[01][02468ACE](0010|0011|0015|0050|0051|0100|3000)$/; // C.9.2 overlay planes

/** Only the attributes the viewer reads: a 1000-image series' full metadata would stay on the heap. */
function slim(ds) {
  const out = {};
  for (const tag in ds) if (KEPT.has(tag) || OVERLAY.test(tag)) out[tag] = ds[tag];
  return out;
}

const SHARED = "52009229", PER_FRAME = "52009230";
// the functional group macros (PS3.3 C.7.6.16.2) whose attributes the viewer reads: Pixel Value
// Transformation (rescale), Frame VOI LUT (window, function), Pixel Measures, Plane Position, Plane Orientation
const FRAME_GROUPS = ["00289145", "00289132", "00289110", "00209113", "00209116"];

/** Frame `f` (1-based) of an enhanced multi-frame instance as a flat data set: the shared, then the
 * frame's own functional groups over the top level (as the server's rendering reads them). */
function frameDataset(ds, f) {
  const shared = ds[SHARED]?.Value?.[0], own = ds[PER_FRAME]?.Value?.[f - 1];
  const out = { ...ds };
  for (const item of [shared, own]) {
    for (const g of FRAME_GROUPS) { const inner = item?.[g]?.Value?.[0]; if (inner) Object.assign(out, inner); }
  }
  return slim(out);
}

/** Images of a series' metadata in display order: InstanceNumber, then position, then frame. */
export function seriesImages(metadata) {
  const withPixels = metadata.filter((ds) => ds[T.PixelData] || value(ds, "Rows"));
  const enhanced = (ds) => !!(ds[SHARED] || ds[PER_FRAME]);
  const first = withPixels[0] && (enhanced(withPixels[0]) ? frameDataset(withPixels[0], 1) : withPixels[0]);
  const n = first ? normal(first) : null;
  const position = (ds) => {
    const p = values(ds, "ImagePositionPatient").map(Number);
    return n && p.length === 3 ? p[0] * n[0] + p[1] * n[1] + p[2] * n[2] : 0;
  };
  const at = (ds) => (values(ds, "ImagePositionPatient").length === 3 ? position(ds) : null); // mm along the normal
  withPixels.sort((a, b) => num(a, "InstanceNumber", 0) - num(b, "InstanceNumber", 0) || position(a) - position(b));
  const images = [];
  for (const full of withPixels) {
    const frames = num(full, "NumberOfFrames", 1), sop = value(full, "SOPInstanceUID");
    const ds = enhanced(full) ? null : slim(full); // one slimmed data set for all frames of a classic instance
    for (let f = 1; f <= frames; f++) {
      const own = ds || frameDataset(full, f);
      images.push({ ds: own, sop, frame: f, frames, position: at(own) });
    }
  }
  return images;
}

/** The window the header recommends, if any: [center, width]. */
export function headerWindow(ds) {
  const c = Number(value(ds, "WindowCenter")), w = Number(value(ds, "WindowWidth"));
  return Number.isFinite(c) && Number.isFinite(w) && w > 0 ? [c, w] : null;
}

/** Millimetres per pixel [row, column] and where it came from (PixelSpacing or ImagerPixelSpacing). */
export function spacing(ds) {
  for (const key of ["PixelSpacing", "ImagerPixelSpacing"]) {
    const s = values(ds, key).map(Number);
    if (s.length === 2 && s.every((x) => x > 0)) return { row: s[0], column: s[1], source: key };
  }
  return null;
}
