// What every administration page shares: element helpers, the #message line, and the JSON API
// call with the page's token (a 401 renews it once, then goes to the login page: auth.js).
import { authFetch } from "./auth.js";
import { t } from "./i18n.js";

export const $ = (sel) => document.querySelector(sel);

export function el(tag, props = {}, ...kids) {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...kids);
  return e;
}

/** Show a catalog message (or clear it) in the page's #message line. */
export function say(key, params = {}, error = false) {
  $("#message").textContent = key ? t(key, params) : "";
  $("#message").classList.toggle("error", error);
}

/** Call the archive's API: `body` is sent as JSON, `raw` as it is (an uploaded file). A JSON answer
 * comes back parsed, anything else as a Blob (exports); a refusal throws its reason and status. */
export async function api(path, { method = "GET", body, raw } = {}) {
  const headers = body === undefined ? {} : { "Content-Type": "application/json" };
  const res = await authFetch(path, { method, headers, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
  const json = res.headers.get("content-type")?.includes("json");
  const data = json ? await res.json().catch(() => ({})) : res.ok ? await res.blob() : {};
  if (!res.ok) throw Object.assign(new Error(data.error || String(res.status)), { status: res.status });
  return data;
}
