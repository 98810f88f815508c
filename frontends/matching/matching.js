// The unmatched-studies page (issue 15 part 4): studies no exam was found for, their candidate
// exams, a search for other open exams, and the operator's choice (or "no exam"). It reaches the
// archive over HTTP only (/api/records), with the operator's token (common/auth.js).
import { signedIn } from "../../common/auth.js";
import { applyTranslations, language, loadLanguage, switchLanguage, t } from "../../common/i18n.js";
import { $, el, say, api } from "../../common/page.js";


const failed = (err) => say("admin.matching.error", { reason: err.message }, true);

function examLabel(e) {
  const when = (e.scheduled || "").replace(/^(\d{4})(\d{2})(\d{2}).*/, "$1-$2-$3");
  return [e.accession, e.exam_type, e.exam_item, when].filter(Boolean).join(" · ");
}

async function choose(study, exam) {
  await api(`/api/records/unmatched/${encodeURIComponent(study)}/resolve`, { method: "POST", body: { exam } });
  say(exam ? "admin.matching.matched" : "admin.matching.dismissed");
  await load();
}

function choice(study, exam) {
  const b = el("button", { type: "button", className: "secondary", textContent: examLabel(exam) });
  b.addEventListener("click", () => choose(study, exam.id).catch(failed));
  return b;
}

function entry(q) {
  const choices = el("div", { className: "choices" }, ...q.candidates.map((e) => choice(q.study, e)));
  const search = el("form", {},
    el("input", { name: "q", placeholder: t("admin.matching.searchHint"), required: true }),
    el("button", { type: "submit", className: "secondary", textContent: t("admin.matching.search") }));
  search.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = new FormData(search).get("q").trim();
    const params = new URLSearchParams({ hospital: q.hospital, [/^\d{8,}|^[A-Z]{1,3}\d/.test(value) ? "accession" : "patient_id"]: value });
    api(`/api/records/exams?${params}`).then(async (found) => {
      let exams = found.exams;
      if (!exams.length && params.has("accession")) {  // an accession-looking patient ID: try that too
        exams = (await api(`/api/records/exams?${new URLSearchParams({ hospital: q.hospital, patient_id: value })}`)).exams;
      }
      choices.replaceChildren(...exams.map((e) => choice(q.study, e)));
      say(exams.length ? "" : "admin.matching.noneFound");
    }).catch(failed);
  });
  const dismiss = el("button", { type: "button", className: "danger", textContent: t("admin.matching.dismiss") });
  dismiss.addEventListener("click", () => choose(q.study, null).catch(failed));
  return el("li", {},
    el("span", { className: "uid", textContent: q.study }),
    el("span", { className: "reason", textContent: q.reason }),
    el("span", { className: "meta", textContent: t("admin.matching.queued", {
      when: new Date(q.queued_at * 1000).toLocaleString(language()), hospital: q.hospital }) }),
    choices, search, dismiss);
}

async function load() {
  const { unmatched } = await api("/api/records/unmatched");
  $("#queue").replaceChildren(...unmatched.map(entry));
  $("#count").textContent = unmatched.length ? t("admin.matching.count", { n: unmatched.length }) : t("admin.matching.empty");
}

async function sweep() {
  const { counts } = await api("/api/records/match", { method: "POST" });
  say("admin.matching.swept", { matched: counts.matched ?? 0, queued: counts.queued ?? 0 });
  await load();
}

async function main() {
  await loadLanguage();
  applyTranslations();
  $("#lang").addEventListener("click", () => switchLanguage(language() === "zh-CN" ? "en" : "zh-CN").then(load).catch(failed));
  $("#sweep").addEventListener("click", () => sweep().catch(failed));
  $("#reload").addEventListener("click", () => load().catch(failed));
  await load();
}

signedIn().then(main, () => {}).catch(failed);
