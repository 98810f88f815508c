// Measurements kept in the archive as a DICOM SR measurement report (TID 1500): the server
// route /api/viewer/sr builds the SR from our JSON, we store it with STOW-RS (the archive's one
// ingest path, with the user's token); on opening a study the newest such report is read back
// from its DICOM JSON metadata (QIDO-RS: the study's SR series) and its marks drawn again.
import { authFetch } from "../common/auth.js";
import { getJson, HttpError, studyUrl } from "./dicomweb.js";
import { valueOf } from "./marks.js";
import { TAGS, value, values } from "./series.js";

const API = new URL("../api/viewer/sr", new URL(".", import.meta.url)).href;
const PREFIX = "yunying-viewer:"; // each measurement group's Tracking Identifier
// the referenced images' attributes an SR copies (patient, study, frame of reference, spacing)
const HEADER = ["SpecificCharacterSet", "SOPClassUID", "SOPInstanceUID", "StudyDate", "StudyTime", "AccessionNumber",
  "Modality", "ReferringPhysicianName", "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate",
  "PatientSex", "StudyInstanceUID", "SeriesInstanceUID", "StudyID", "FrameOfReferenceUID", "NumberOfFrames",
  "PixelSpacing", "ImagerPixelSpacing"];
const EXTRA_TAGS = { SpecificCharacterSet: "00080005", ReferringPhysicianName: "00080090", StudyID: "00200010" };
const C = { ValueType: "0040A040", Concept: "0040A043", Text: "0040A160", Content: "0040A730", GraphicType: "00700023",
  GraphicData: "00700022", RefSOP: "00081199", RefSOPUID: "00081155", RefFrame: "00081160",
  CodeValue: "00080100", Template: "0040A504", TemplateId: "0040DB00", ContentDate: "00080023", ContentTime: "00080033" };

function headerOf(ds) {
  const out = {};
  for (const kw of HEADER) {
    const tag = TAGS[kw] || EXTRA_TAGS[kw];
    if (ds[tag]) out[tag] = ds[tag];
  }
  return out;
}

/** Store every measurement of the open study as one new SR; resolves to the SR's SOP Instance UID. */
export async function saveMeasurements(viewer) {
  const items = viewer.measurements.all((sop) => {
    for (const s of viewer.series.values()) for (const im of s.images) if (im.sop === sop) return im.ds;
    return null;
  }).filter((m) => m.kind !== "point" || Number.isFinite(m.value)); // a point on a colour image has no value
  if (!items.length) return null;
  const images = {};
  for (const m of items) images[m.sop] = headerOf(m.ds);
  const body = { images, measurements: items.map((m) => ({ kind: m.kind, sop: m.sop, frame: m.frame, points: m.points,
    ...valueOf(m, m.ds) })) };
  const built = await authFetch(API, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  if (!built.ok) throw new HttpError(built.status, API);
  const sr = await built.arrayBuffer();
  const boundary = `yunying-${crypto.randomUUID()}`;
  const stowed = await authFetch(studyUrl(viewer.study), { method: "POST", body: new Blob([
    `--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`, sr, `\r\n--${boundary}--\r\n`]),
  headers: { "Content-Type": `multipart/related; type="application/dicom"; boundary=${boundary}`, Accept: "application/dicom+json" } });
  if (!stowed.ok) throw new HttpError(stowed.status, studyUrl(viewer.study));
  return true;
}

const num = (ds, tag) => ds?.[tag]?.Value?.[0];

/** The SR instances of the study that are TID 1500 reports, newest first (QIDO-RS, then metadata). */
async function reports(study) {
  const series = await getJson(`${studyUrl(study)}/series?Modality=SR`);
  const found = [];
  for (const s of series) {
    for (const ds of await getJson(`${studyUrl(study, value(s, "SeriesInstanceUID"))}/metadata`)) {
      const template = ds[C.Template]?.Value?.[0]?.[C.TemplateId]?.Value?.[0];
      const title = ds[C.Concept]?.Value?.[0]?.[C.CodeValue]?.Value?.[0];
      if (template === "1500" || title === "126000") found.push(ds);
    }
  }
  const when = (ds) => `${num(ds, C.ContentDate) || ""}${num(ds, C.ContentTime) || ""}${String(value(ds, "InstanceNumber") || 0).padStart(10, "0")}`;
  return found.sort((a, b) => (when(a) < when(b) ? 1 : -1));
}

function* walk(items) {
  for (const item of items || []) {
    yield item;
    yield* walk(item[C.Content]?.Value);
  }
}

/** The marks of one report: [{kind, sop, frame, points}] from its groups' Tracking Identifier and SCOORD. */
export function marksOf(report) {
  const marks = [];
  for (const group of walk(report[C.Content]?.Value)) {
    if (group[C.ValueType]?.Value?.[0] !== "CONTAINER") continue;
    const children = group[C.Content]?.Value || [];
    const tracking = children.find((c) => num(c, C.ValueType) === "TEXT" && String(num(c, C.Text) || "").startsWith(PREFIX));
    if (!tracking) continue;
    const scoord = [...walk(children)].find((c) => num(c, C.ValueType) === "SCOORD");
    const image = scoord && [...walk(scoord[C.Content]?.Value)].find((c) => c[C.RefSOP]);
    const ref = image?.[C.RefSOP].Value[0];
    if (!ref) continue;
    const data = values(scoord, C.GraphicData).map(Number);
    let points = [];
    for (let i = 0; i + 1 < data.length; i += 2) points.push([data[i], data[i + 1]]);
    const kind = num(tracking, C.Text).slice(PREFIX.length);
    if (num(scoord, C.GraphicType) === "ELLIPSE" && points.length === 4) { // axis endpoints -> the bounding box
      const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
      points = [[Math.min(...xs), Math.min(...ys)], [Math.max(...xs), Math.max(...ys)]];
    }
    if (kind === "rect" && points.length === 5) { // the closed outline -> two corners
      const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
      points = [[Math.min(...xs), Math.min(...ys)], [Math.max(...xs), Math.max(...ys)]];
    }
    if ((kind === "freehand" || kind === "polygon") && points.length > 3) points = points.slice(0, -1); // the closing point
    const finding = children.find((c) => num(c, C.ValueType) === "TEXT" && c !== tracking);
    const text = finding ? String(num(finding, C.Text) || "") : undefined;
    marks.push({ kind, sop: num(ref, C.RefSOPUID), frame: Number(num(ref, C.RefFrame)) || 1, points,
      ...(text !== undefined ? { text: kind === "arrow" && text === "Arrow" ? "" : text } : {}) });
  }
  return marks;
}

/** Draw the newest saved report of the study again; resolves to the number of marks. */
export async function loadMeasurements(viewer, study) {
  const [newest] = await reports(study);
  if (!newest) return 0;
  const marks = marksOf(newest);
  viewer.measurements.load(marks);
  for (const vp of viewer.viewports) viewer.measurements.render(vp);
  return marks.length;
}
