// The audit admin's page: search, export and verify the trail through /api/audit (issue 12).
// It holds no data of its own and reaches the archive over HTTP only, with the auditor's token
// (from the archive's one login page, second factor included, or a URL fragment: common/auth.js).
import { authFetch, signedIn, signOut } from "../../common/auth.js";
import { applyTranslations, language, loadLanguage, switchLanguage, t } from "../../common/i18n.js";

const $ = (sel) => document.querySelector(sel);

function show() {
  $("#panel").hidden = false;
  $("#logout").hidden = false;
}

function say(key, params = {}, cls = "") {
  $("#message").textContent = key ? t(key, params) : "";
  $("#message").className = cls;
}

async function api(path) {
  const res = await authFetch(path); // a 401 renews the token once, then goes to the login page
  if (!res.ok) {
    const data = res.headers.get("content-type")?.includes("json") ? await res.json() : {};
    throw new Error(data.error || String(res.status));
  }
  return res;
}

function query() {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData($("#filters"))) {
    if (!v) continue;
    params.set(k, k === "since" || k === "until" ? new Date(v).toISOString() : v);
  }
  return params;
}

function row(r) {
  const li = document.createElement("li");
  const line = (cls, text) => Object.assign(document.createElement("span"), { className: cls, textContent: text });
  li.append(
    line("when", new Date(r.at_ms).toLocaleString(language())),
    line("who", `${r.principal_kind}:${r.principal_id} ${r.client}`),
    line(r.outcome, `${r.action} · ${t(`audit.outcome.${r.outcome}`)} (${r.status})${r.count > 1 ? " ×" + r.count : ""}`),
  );
  if (r.patient_id) li.append(line("patient", t("audit.patient", { id: r.patient_id })));
  if (r.studies) li.append(line("studies", r.studies));
  return li;
}

async function search() {
  const records = await (await api(`/api/audit/records?${query()}&limit=200`)).json();
  $("#records").replaceChildren(...records.map(row));
  $("#count").textContent = records.length ? t("audit.count", { n: records.length }) : t("audit.empty");
}

async function exportAs(format) {
  const params = query();
  params.set("format", format);
  const blob = await (await api(`/api/audit/export?${params}`)).blob();
  const a = Object.assign(document.createElement("a"), {
    href: URL.createObjectURL(blob), download: `audit.${format === "dicom" ? "xml" : format}` });
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

async function verify() {
  const v = await (await api("/api/audit/verify")).json();
  if (v.intact) say("audit.verify.intact", { n: v.checked }, "ok");
  else say("audit.verify.broken", { problems: v.problems.join("; ") }, "error");
}

const failed = (err) => say("audit.error", { reason: err.message }, "error");

async function start() {
  await loadLanguage();
  applyTranslations();
  $("#lang").addEventListener("click", () => switchLanguage(language() === "zh-CN" ? "en" : "zh-CN").then(search).catch(failed));
  $("#logout").addEventListener("click", () => signOut());
  $("#filters").addEventListener("submit", (ev) => { ev.preventDefault(); search().catch(failed); });
  for (const b of document.querySelectorAll("[data-export]")) {
    b.addEventListener("click", () => exportAs(b.dataset.export).catch(failed));
  }
  $("#verify").addEventListener("click", () => verify().catch(failed));
  show();
  await search().catch(failed);
}

// signed in first: with no token the page goes to /login and comes back here
signedIn().then(start, () => {}).catch(failed);
