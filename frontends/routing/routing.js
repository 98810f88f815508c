// The routing page: rules with their queue counts, adding and pausing rules, retrying or dropping
// failed forwards, pausing all sending, through /api/routing. Refreshes every 5 s while open; holds nothing of its own.
import { signedIn } from "../../common/auth.js";
import { applyTranslations, language, loadLanguage, switchLanguage, t } from "../../common/i18n.js";
import { $, el, say, api } from "../../common/page.js";


const failed = (err) => say("routing.error", { reason: err.message }, true);

function button(key, onClick, cls = "secondary") {
  const b = el("button", { type: "button", className: cls, textContent: t(key) });
  b.dataset.i18n = key;
  b.addEventListener("click", () => onClick().then(refresh).catch(failed));
  return b;
}

function where(d) {
  return d.kind === "dicom" ? `${d.aet}@${d.host}:${d.port}` : d.url;
}

async function refresh() {
  const [rules, jobs, queue, paused] = await Promise.all([api("/api/routing/rules"), api("/api/routing/jobs"),
    api("/api/routing/queue?state=failed&limit=50"), api("/api/routing/paused")]);
  $("#sending").replaceChildren(
    el("span", { className: "meta", textContent: t(paused.paused ? "routing.allPaused" : "routing.allSending") }),
    button(paused.paused ? "routing.resumeAll" : "routing.pauseAll",
      () => api(paused.paused ? "/api/routing/resume" : "/api/routing/pause", { method: "POST" })));
  const state = Object.fromEntries(jobs.map((j) => [j.name, j]));
  $("#rule-list").replaceChildren(...rules.map((r) => {
    const job = state[r.name] || { state: "idle", errors: [] };
    const c = r.counts;
    return el("li", {},
      el("span", { className: "name", textContent: `${r.name} → ${where(r.destination)}` }),
      el("span", { className: "meta", textContent: t("routing.counts", { pending: c.pending, done: c.done, failed: c.failed }) + " · " + t(`routing.state.${job.state}`) }),
      ...job.errors.map((e) => el("span", { className: "meta", textContent: e })),
      button(r.enabled ? "routing.pause" : "routing.resume", () => api(`/api/routing/rules/${r.id}`, { method: "PUT", body: { enabled: !r.enabled } })),
      ...(c.failed ? [button("routing.retry", () => api(`/api/routing/rules/${r.id}/retry`, { method: "POST" }))] : []),
      button("routing.delete", () => api(`/api/routing/rules/${r.id}`, { method: "DELETE" }), "danger"));
  }));
  $("#queue-list").replaceChildren(...queue.map((q) => el("li", {},
    el("span", { className: "name", textContent: q.sop }),
    el("span", { className: "meta", textContent: `${t("routing.attempts", { n: q.attempts })} · ${q.last_error}` }),
    button("routing.retryItem", () => api("/api/routing/queue/retry", { method: "POST", body: { items: [q.id] } })),
    button("routing.drop", () => api("/api/routing/queue/drop", { method: "POST", body: { items: [q.id] } }), "danger"))));
}

const list = (v) => v.split(",").map((s) => s.trim()).filter(Boolean);

async function addRule(ev) {
  ev.preventDefault();
  const f = Object.fromEntries(new FormData(ev.target));
  const destination = f.kind === "dicom" ? { kind: "dicom", aet: f.aet, host: f.host, port: Number(f.port) }
    : { kind: "dicomweb", url: f.url };
  await api("/api/routing/rules", { method: "POST", body: { name: f.name, destination, syntax: f.syntax,
    match: { modalities: list(f.modalities), source_aes: list(f.source_aes), hospitals: list(f.hospitals),
      body_parts: list(f.body_parts), hours: f.hours.trim() } } });
  ev.target.reset();
  say("routing.saved", { name: f.name });
  await refresh();
}

function showKind() {
  const kind = $("#add-rule [name=kind]").value;
  for (const l of document.querySelectorAll("#add-rule .dicom")) l.hidden = kind !== "dicom";
  for (const l of document.querySelectorAll("#add-rule .dicomweb")) l.hidden = kind !== "dicomweb";
}

async function main() {
  await loadLanguage();
  applyTranslations();
  $("#panel").hidden = false;
  $("#lang").addEventListener("click", () => switchLanguage(language() === "zh-CN" ? "en" : "zh-CN").then(refresh).catch(failed));
  $("#add-rule").addEventListener("submit", (ev) => addRule(ev).catch(failed));
  $("#add-rule [name=kind]").addEventListener("change", showKind);
  await refresh();
  setInterval(() => { if (!document.hidden) refresh().catch(failed); }, 5000);
}

signedIn().then(main, () => {}).catch(failed);
