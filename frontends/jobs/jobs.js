// The jobs page: every collector and background job (GET /api/jobs), refreshed every 5 s, with
// "sync now", "resume backfill" and a real-time refresh of one accession or patient
// (POST /api/collect/sources/{source}/runs). It reaches the archive over HTTP only, with the
// operator's token (common/auth.js).
import { signedIn } from "../../common/auth.js";
import { applyTranslations, language, loadLanguage, switchLanguage, t } from "../../common/i18n.js";
import { $, say, api } from "../../common/page.js";

const EVERY_MS = 5000;

const failed = (err) => say("jobs.error", { reason: err.message }, true);

function when(seconds) {
  if (!seconds) return t("jobs.never");
  return new Date(seconds * 1000).toLocaleString(language(), { dateStyle: "short", timeStyle: "short" });
}

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function counts(job) {
  const dl = el("dl");
  for (const [key, value] of Object.entries(job.counts)) {  // a running collector's run_* counts included
    // a known count has a label in the catalogs; another subsystem's shows its own key
    const label = t(`jobs.count.${key}`);
    dl.append(el("dt", { textContent: label.startsWith("jobs.count.") ? key : label }),
      el("dd", { textContent: Number(value).toLocaleString(language()) }));
  }
  return dl;
}

function run(source, body) {
  return api(`/api/collect/sources/${encodeURIComponent(source)}/runs`, { method: "POST", body })
    .then(() => { say("jobs.started", { source }); return load(); }, failed);
}

function card(job) {
  const li = el("li", { className: "job" });
  li.dataset.kind = job.kind;
  li.dataset.name = job.name;
  const state = el("span", { className: `state ${job.state}`, textContent: t(`jobs.state.${job.state}`) });
  li.append(el("div", { className: "head" }, el("span", { className: "name", textContent: `${t(`jobs.kind.${job.kind}`).startsWith("jobs.") ? job.kind : t(`jobs.kind.${job.kind}`)} · ${job.name}` }), state));
  li.append(el("div", { className: "meta", textContent: t("jobs.schedule", { schedule: job.schedule || "-", last: when(job.last_run), next: when(job.next_run) }) }));
  if (job.progress?.window) li.append(el("div", { className: "meta", textContent: t("jobs.window", { kind: job.progress.kind, window: job.progress.window }) }));
  if (job.backfill_next) li.append(el("div", { className: "meta", textContent: t("jobs.backfillNext", { day: job.backfill_next }) }));
  li.append(counts(job));
  if (job.errors.length) li.append(el("ol", { className: "errors" }, ...job.errors.slice(-5).map((e) => el("li", { textContent: e }))));
  if (job.kind === "collect") {
    const sync = el("button", { type: "button", textContent: t("jobs.sync") });
    sync.addEventListener("click", () => run(job.name, { kind: "sync" }));
    const backfill = el("button", { type: "button", className: "secondary", textContent: t("jobs.backfill") });
    backfill.addEventListener("click", () => run(job.name, { kind: "backfill" }));
    li.append(el("div", { className: "actions" }, sync, backfill));
  }
  return li;
}

let sources = "";

async function load() {
  const { jobs } = await api("/api/jobs");
  $("#jobs").replaceChildren(...(jobs.length ? jobs.map(card) : [el("li", { className: "job", textContent: t("jobs.none") })]));
  const names = jobs.filter((j) => j.kind === "collect").map((j) => j.name);
  if (names.join() !== sources) {  // keep the operator's choice across refreshes
    sources = names.join();
    $("#refresh-source").replaceChildren(...names.map((n) => new Option(n, n)));
  }
  $("#refresh").hidden = !names.length;
  $("#updated").textContent = new Date().toLocaleTimeString(language());
}

async function main() {
  await loadLanguage();
  applyTranslations();
  $("#lang").addEventListener("click", () => switchLanguage(language() === "zh-CN" ? "en" : "zh-CN").then(load));
  $("#refresh").addEventListener("submit", (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    const body = { kind: "refresh" };
    for (const key of ["accession", "patient_id"]) if (form.get(key).trim()) body[key] = form.get(key).trim();
    if (Object.keys(body).length === 1) return say("jobs.refresh.need", {}, true);
    run(form.get("source"), body).then(() => e.target.reset());
  });
  $("#panel").hidden = false;
  await load();
  setInterval(() => load().catch(failed), EVERY_MS);
}

signedIn().then(main, () => {}).catch(failed);
