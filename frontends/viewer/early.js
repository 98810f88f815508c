// The viewer's first script: it needs only sign-in and DICOMweb (a few KB), so the first requests
// (the study's series, a rendered preview of its first image, that image's attributes, the
// principal, the language catalog) leave while the rest of the viewer (main.js and its ~20
// modules) is still being fetched and compiled. main.js takes the answers from here.
import { authFetch, signedIn } from "../common/auth.js";
import { applyTranslations, loadLanguage } from "../common/i18n.js";
import { getJson, imageUrl, searchSeries, studyUrl } from "./dicomweb.js";

// before any request: every DICOMweb call carries the token; without one the page goes to /login
// and stops here (a sign-in that cannot work, e.g. plain http off localhost, says so on the page)
await signedIn().catch(() => new Promise(() => {}));
const params = new URLSearchParams(location.search); // read after sign-in restored the address
const study = params.get("study");
const quiet = (promise) => { promise?.catch(() => {}); return promise; };

/** The quick preview's size: the viewport in CSS pixels, at most 512 (small on a weak link). */
export function previewParams(width, height) {
  const w = Math.round(Math.min(512, Math.max(64, width))), h = Math.round(Math.min(512, Math.max(64, height)));
  return { viewport: `${w},${h}`, quality: "60" };
}

/** The study's series (QIDO-RS). */
export const early = quiet(study ? searchSeries(study) : null);
/** A study alone: its first image (the archive's order = ours: SeriesNumber, InstanceNumber). */
export const earlyPreview = quiet(study && !params.get("series")
  ? imageUrl(`${studyUrl(study)}/rendered`, previewParams(innerWidth, innerHeight - 160)) : null);
/** The first image's own attributes in one small answer (QIDO, the archive's order), so its frame
 * is asked for before the series metadata (hundreds of KB for a long series) has arrived. */
export const earlyFirst = quiet(study ? getJson(`${studyUrl(study, params.get("series")?.split(",")[0])}`
  + `/instances?${new URLSearchParams({ limit: "1", includefield: "all",
    ...(params.get("instance") ? { SOPInstanceUID: params.get("instance") } : {}) })}`) : null);
export const languageReady = loadLanguage().catch((err) => console.warn(err.message));
// the page's own words in the asked language as soon as the catalog is in (the header shows
// above the first preview, before the rest of the viewer has loaded)
languageReady.then(() => applyTranslations());
/** The principal (/api/auth/me): its kind decides patient mode; {} when it cannot be read. */
export const me = params.get("mode") === "patient" ? Promise.resolve(null)
  : quiet(authFetch(new URL("../api/auth/me", import.meta.url)).then((r) => (r.ok ? r.json() : {})));

// the preview shown from here as soon as it is decoded, fitted to the viewport as the viewer first
// shows an image: the rest of the viewer takes it over (and places it exactly) when it has loaded
earlyPreview?.then(async (url) => {
  const stage = document.querySelector("#stage"), img = document.querySelector("#viewports .viewport img.preview");
  if (!stage || !img || img.dataset.owned) return; // the viewer's viewport has it already
  img.src = url;
  await img.decode();
  if (img.dataset.owned) return; // taken over meanwhile: the viewport shows it (or the full image)
  img.classList.add("fitted");
  stage.hidden = false;
  img.hidden = false;
  requestAnimationFrame(() => {
    if (!performance.getEntriesByName("first-image").length) performance.mark("first-image");
  });
}).catch(() => {});

// the rest of the viewer: fetched all at once (no import waterfall) once the first requests are out
for (const href of ["main.js", "series.js", "presets.js", "cache.js", "loader.js", "lut.js", "gl.js", "canvas2d.js", "viewport.js", "interact.js", "toolbar.js", "layout.js", "measure.js", "marks.js", "cine.js", "colormaps.js", "sync.js", "tile.js", "magnifier.js", "refs.js"]) {
  const link = document.createElement("link");
  link.rel = "modulepreload";
  link.href = new URL(href, import.meta.url).href;
  document.head.append(link);
}
import("./main.js").catch((err) => console.error(err));
