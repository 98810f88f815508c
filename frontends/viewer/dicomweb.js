// The viewer's only way to the archive: DICOMweb (PS3.18) with the user's bearer token.
import { authFetch } from "../common/auth.js";

export const ROOT = new URL("../dicomweb", new URL(".", import.meta.url)).href.replace(/\/$/, "");

export class HttpError extends Error {
  constructor(status, url) {
    super(`HTTP ${status} for ${new URL(url).pathname}`);
    this.status = status;
  }
}

const REFETCH_TRIES = 120; // a purged study comes back from its source archive: wait up to ~10 min

/** Fetch; a 503 naming a re-fetch in progress (a study purged from the delivery cache, issue 15)
 * is waited out as its Retry-After says, with a "yy-refetch" event carrying the progress so the
 * page shows it instead of an error. */
async function ok(url, init) {
  for (let tries = 0; ; tries++) {
    const res = await authFetch(url, init);
    if (res.ok) return res;
    const progress = res.status === 503 && tries < REFETCH_TRIES ? await refetchProgress(res) : null;
    if (!progress || progress.state === "failed") throw new HttpError(res.status, url);
    window.dispatchEvent(new CustomEvent("yy-refetch", { detail: progress }));
    const wait = Math.min(10, Math.max(1, Number(res.headers.get("Retry-After")) || 5));
    await new Promise((resolve, reject) => {
      const timer = setTimeout(resolve, wait * 1000);
      init?.signal?.addEventListener("abort", () => { clearTimeout(timer); reject(init.signal.reason); }, { once: true });
    });
  }
}

async function refetchProgress(res) {
  try {
    const body = await res.json();
    return body && typeof body.refetch === "object" ? body.refetch : null;
  } catch {
    return null;
  }
}

export function studyUrl(study, series, sop) {
  let url = `${ROOT}/studies/${study}`;
  if (series) url += `/series/${series}`;
  if (sop) url += `/instances/${sop}`;
  return url;
}

export async function getJson(url, signal) {
  const res = await ok(url, { headers: { Accept: "application/dicom+json" }, signal });
  return res.status === 204 ? [] : res.json();
}

const SERIES_FIELDS = ["SeriesDescription", "SeriesNumber", "Modality", "NumberOfSeriesRelatedInstances", "SeriesDate"];

export function searchSeries(study) {
  const q = new URLSearchParams({ includefield: SERIES_FIELDS.join(",") });
  return getJson(`${studyUrl(study)}/series?${q}`);
}

export function seriesMetadata(study, series, signal) {
  return getJson(`${studyUrl(study, series)}/metadata`, signal);
}

export function searchStudies(params, signal) {
  return getJson(`${ROOT}/studies?${params}`, signal);
}

/** One frame's pixels, uncompressed little-endian (the server may compress the transfer). */
export async function frame(study, series, sop, n, signal) {
  const url = `${studyUrl(study, series, sop)}/frames/${n}`;
  const res = await ok(url, { headers: { Accept: "application/octet-stream" }, signal });
  return res.arrayBuffer();
}

/** A server-rendered JPEG (preview, thumbnail, colour images) as an object URL. */
export async function imageUrl(path, params = {}, signal) {
  const q = new URLSearchParams(params).toString();
  const res = await ok(`${path}${q ? "?" + q : ""}`, { headers: { Accept: "image/jpeg" }, signal });
  return URL.createObjectURL(await res.blob());
}

/** A server-rendered image decoded for drawing (colour and other images the browser cannot window). */
export async function renderedBitmap(path, params = {}, signal) {
  const q = new URLSearchParams(params).toString();
  const res = await ok(`${path}${q ? "?" + q : ""}`, { headers: { Accept: "image/jpeg" }, signal });
  return createImageBitmap(await res.blob());
}
