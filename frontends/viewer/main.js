// The viewer's entry: /viewer/?study=UID[&series=UID[,UID...][&instance=UID[&frame=N]]][&lang=en]
// [&renderer=2d]; without a study, the doctors' study list. Token: #access_token=... once (a link),
// else this tab's sign-in, else the login page (common/auth.js), which comes back to this address.
import { signedInByUser, signOut, Unauthorized } from "../common/auth.js";
import { applyTranslations, language, switchLanguage, t } from "../common/i18n.js";
import { HttpError, imageUrl, seriesMetadata, studyUrl } from "./dicomweb.js";
import { early, earlyFirst, earlyPreview, languageReady, me, previewParams } from "./early.js";
import { Cine } from "./cine.js";
import { createViewport, setLayout } from "./layout.js";
import { Loader } from "./loader.js";
import { Magnifier } from "./magnifier.js";
import { Measurements } from "./measure.js";
import { attachSync } from "./sync.js";
import { attachTiling } from "./tile.js";
import { seriesImages, value } from "./series.js";
import { attachKeys, buildToolbar } from "./toolbar.js";

const params = new URLSearchParams(location.search); // early.js waited for sign-in
const $ = (sel) => document.querySelector(sel);
const NOT_IMAGES = new Set(["SR", "KO", "PR", "DOC"]);

const lens = new Magnifier();
const viewer = {
  // ?cacheMb=N bounds the decoded-pixel cache (an embedding app that knows its memory)
  viewports: [], active: null, loader: new Loader((Number(params.get("cacheMb")) || 0) * 2 ** 20 || undefined),
  series: new Map(), seriesOrder: [], measurements: new Measurements(), cine: null, layout: "1x1",
  tools: {
    active: "wl",
    start: (vp, tool, x, y) => (tool === "magnify" ? lens.start(vp, x, y) : viewer.measurements.start(vp, tool, x, y)),
    move: (vp, x, y) => lens.move(vp, x, y) || viewer.measurements.move(vp, x, y),
    end: (vp) => lens.end(vp) || viewer.measurements.end(vp),
    cancel: (vp) => lens.end(vp) || viewer.measurements.cancel(vp),
  },
  patientMode: params.get("mode") === "patient", // share or patient links: viewing tools only
  setTool(tool) { this.tools.active = tool; this.measurements.cancel(this.active); this.onTool?.(tool); },
  /** Load series `uid` of the open study into viewport `vp` (the active one by default). */
  openSeries(uid, vp = this.active) {
    return loadSeries(this.study, uid, params.get("instance")).then((s) => { vp.setSeries(s); markCurrent(); }, fail);
  },
  /** Store every measurement of the study as a DICOM SR (TID 1500) through STOW-RS. */
  async save() {
    status("viewer.sr.saving");
    try {
      const { saveMeasurements } = await import("./sr.js");
      status(await saveMeasurements(this) ? "viewer.sr.saved" : "viewer.sr.nothing");
    } catch (err) {
      if (err instanceof Unauthorized) return;
      console.warn(err.message);
      status("viewer.sr.failed");
    }
    setTimeout(() => status(""), 3000);
  },
  loadSeries: (study, uid) => loadSeries(study, uid, null),
  status: (key) => status(key),
  rendererKind: params.get("renderer"),
  setLayout(layout) {
    return setLayout(this, layout, this.seriesOrder, (uid) => loadSeries(this.study, uid, params.get("instance")), params.get("renderer"));
  },
};
viewer.loader.lossy = params.get("quality") === "lossy"; // ?quality=lossy: small JPEGs from the start (a weak link)
/** The lossy / lossless switch: the images on screen are fetched again in the other form. */
viewer.setLossy = (on) => {
  viewer.loader.lossy = on;
  for (const vp of viewer.viewports) if (vp.series) vp.setIndex(vp.index);
};
window.yunyingViewer = viewer; // for embedding pages, tests and benchmarks
// the token decides the mode too (issue 13 part 7): a share or patient link opens in patient mode
// whatever its address says (the portal's links carry no mode=patient); asked after the pixels
const PATIENT_KINDS = new Set(["share", "patient"]);
const modeKnown = me.then((who) => {
  if (!who) return;
  viewer.me = who;
  if (PATIENT_KINDS.has(who.kind)) viewer.patientMode = true;
}, (err) => console.warn(err.message));
attachSync(viewer);
attachTiling(viewer);

function status(key, params) { languageReady.then(() => { $("#status").textContent = key ? t(key, params) : ""; }); }

// a study purged from the delivery cache is being fetched back from its source archive (issue 15)
window.addEventListener("yy-refetch", (event) => {
  const { instances = 0, expected = 0 } = event.detail || {};
  status(expected ? "viewer.refetch.progress" : "viewer.refetch.waiting", { done: instances, total: expected });
});

function fail(err) {
  if (err instanceof Unauthorized) return; // redirectToLogin() already said so
  console.warn(err.message);
  status(err instanceof HttpError && err.status === 404 ? "viewer.error.notFound" : "viewer.error.load");
}

function startPreview(vp, study, series, sop, frame) {
  let path = studyUrl(study, series, sop);
  path += sop && frame > 1 ? `/frames/${frame}/rendered` : "/rendered";
  return imageUrl(path, previewParams(vp.el.clientWidth, vp.el.clientHeight)).then((url) => vp.showPreview(url)).catch(() => {});
}

async function loadSeries(study, uid, sop) {
  if (viewer.series.has(uid)) return viewer.series.get(uid);
  const metadata = await seriesMetadata(study, uid);
  let images = seriesImages(metadata);
  if (sop && images.some((im) => im.sop === sop)) images = images.filter((im) => im.sop === sop); // the launch named one image
  const ds = images[0]?.ds;
  const series = {
    study, series: uid, images, modality: value(ds, "Modality") || "",
    bytesPerFrame: (Number(value(ds, "Rows")) || 512) * (Number(value(ds, "Columns")) || 512)
      * ((Number(value(ds, "BitsAllocated")) || 16) / 8),
  };
  viewer.series.set(uid, series);
  return series;
}

/** Shows the first image from its QIDO attributes alone; returns {series, sop, frame} or null. */
async function showFirstImage(vp, study, frame) {
  const row = (await earlyFirst)?.[0];
  if (!row || !value(row, "Rows")) return null; // not an image (an SR first): wait for the series
  // LUT sequences or overlay planes: QIDO leaves their bulk data out, the series metadata has it
  if (Object.keys(row).some((tag) => /^(00283000|00283010|60[01][0-9A-F]....)$/.test(tag))) return null;
  const images = seriesImages([row]).filter((im) => im.frame === frame);
  if (!images.length) return null;
  const uid = value(row, "SeriesInstanceUID");
  vp.setSeries({ study, series: uid, images, modality: value(row, "Modality") || "" }, 0);
  return { series: uid, sop: images[0].sop, frame };
}

function firstViewport() {
  const vp = createViewport(viewer, $("#viewports .viewport"), params.get("renderer"));
  vp.el.classList.add("active");
  viewer.active = vp;
  viewer.cine = new Cine(vp);
  viewer.onActivate = (active) => {
    const fps = viewer.cine.fps, direction = viewer.cine.direction, onChange = viewer.cine.onChange;
    viewer.cine = Object.assign(new Cine(active), { fps, direction, onChange });
    markCurrent();
  };
  return vp;
}

async function openStudy(study) {
  $("#stage").hidden = false;
  const wanted = (params.get("series") || "").split(",").filter(Boolean);
  const sop = params.get("instance") || null;
  const frame = Math.max(1, Number(params.get("frame")) || 1);
  viewer.study = study;
  const vp = firstViewport();
  // the requests start before the language catalog is in: the first image waits for nothing
  let preview = wanted.length ? startPreview(vp, study, wanted[0], sop, frame)
    : earlyPreview.then((url) => vp.showPreview(url)).catch(() => {});
  const shown = showFirstImage(vp, study, frame).catch(() => null);
  let seriesList = [];
  try {
    seriesList = (await early).sort((a, b) => (Number(value(a, "SeriesNumber")) || 0) - (Number(value(b, "SeriesNumber")) || 0));
  } catch (err) { fail(err); return; }
  // no series at all: the study is not in the archive or not visible to this user (the same answer)
  const absent = !seriesList.length;
  seriesList = seriesList.filter((s) => !NOT_IMAGES.has(value(s, "Modality"))); // reports, key images, states
  if (wanted.length) seriesList = seriesList.filter((s) => wanted.includes(value(s, "SeriesInstanceUID")));
  viewer.seriesOrder = seriesList.map((s) => value(s, "SeriesInstanceUID"));
  const firstShown = await shown;
  const first = wanted[0] || firstShown?.series || value(seriesList[0], "SeriesInstanceUID");
  if (!first) { status(absent ? "viewer.error.notFound" : "viewer.error.empty"); return; }
  if (!preview) preview = startPreview(vp, study, first, null, 1);
  if (!performance.getEntriesByName("first-image").length) status("viewer.loading");
  try {
    const series = await loadSeries(study, first, sop);
    const same = firstShown?.series === first;
    const at = same ? series.images.findIndex((im) => im.sop === firstShown.sop && im.frame === firstShown.frame) : 0;
    vp.setSeries(series, Math.max(0, at), same && at >= 0); // the same image: the view stays as the user left it
    viewer.cine.fps = Cine.defaultFps(series);
    viewer.cine.onChange?.();
    status("");
  } catch (err) { fail(err); return; }
  await preview;
  status("");
  buildStrip(study, seriesList);
  await modeKnown;
  if (!viewer.patientMode) { // the study's reports (the toolbar's report button appears)
    import("./report.js").then(({ reportsOf }) => reportsOf(study))
      .then((found) => { viewer.reports = found; viewer.onReports?.(); }, (err) => console.warn("reports not read:", err.message));
  }
  if (!viewer.patientMode) { // the newest saved measurement report, drawn again
    import("./sr.js").then(({ loadMeasurements }) => loadMeasurements(viewer, study))
      .then((n) => { viewer.savedMarks = n; }, (err) => console.warn("saved measurements not read:", err.message));
  }
}

function buildStrip(study, seriesList) {
  const strip = $("#series-strip");
  strip.replaceChildren();
  for (const s of seriesList) {
    const uid = value(s, "SeriesInstanceUID");
    const card = document.createElement("button");
    card.type = "button";
    card.className = "series-card";
    card.dataset.series = uid;
    const img = document.createElement("img");
    img.alt = "";
    const label = document.createElement("span");
    label.textContent = `${value(s, "SeriesNumber") ?? ""} ${value(s, "Modality") || ""} ${value(s, "SeriesDescription") || ""}`.trim();
    const count = document.createElement("span");
    count.textContent = t("viewer.images", { n: value(s, "NumberOfSeriesRelatedInstances") ?? "?" });
    card.append(img, label, count);
    card.draggable = true; // desktop: drop a series onto any viewport
    card.addEventListener("dragstart", (e) => e.dataTransfer.setData("application/x-yunying-series", uid));
    card.addEventListener("click", () => viewer.openSeries(uid));
    strip.append(card);
    imageUrl(`${studyUrl(study, uid)}/thumbnail`).then((url) => { img.src = url; }).catch(() => {});
  }
  markCurrent();
}

function markCurrent() {
  const uid = viewer.active?.series?.series;
  for (const card of document.querySelectorAll(".series-card")) card.classList.toggle("current", card.dataset.series === uid);
}

async function main() {
  const study = params.get("study");
  const opened = study ? openStudy(study) : null;
  await languageReady;
  applyTranslations();
  $("#lang").addEventListener("click", async () => {
    await switchLanguage(language() === "zh-CN" ? "en" : "zh-CN");
    for (const vp of viewer.viewports) vp.changed();
    window.dispatchEvent(new Event("resize"));
  });
  const listLink = () => { $("#to-list").href = `./?lang=${encodeURIComponent(language())}`; };
  listLink();
  window.addEventListener("languagechange", listLink);
  if (signedInByUser()) {
    $("#signout").hidden = false;
    $("#signout").addEventListener("click", () => signOut());
  }
  if (!study) {
    $("#to-list").hidden = true;
    const { openStudyList } = await import("./studylist.js");
    await openStudyList($("#studylist"), params);
    return;
  }
  await modeKnown;
  if (viewer.patientMode) {
    $("#patient-notice").hidden = false;
    $("#to-list").hidden = true;
  }
  buildToolbar($("#toolbar"), $("#presets"), viewer, $("#priors"));
  attachKeys(viewer);
  for (const vp of viewer.viewports) vp.changed();
  await opened;
}

main().catch(fail);
