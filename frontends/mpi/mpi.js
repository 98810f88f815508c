// The patient master index page: the review queue, finding a patient's identities (unlink, undo),
// and the exam code table, through /api/mpi. Numbers arrive masked; nothing is kept here.
import { signedIn } from "../../common/auth.js";
import { applyTranslations, language, loadLanguage, switchLanguage, t } from "../../common/i18n.js";
import { $, el, say, api } from "../../common/page.js";

const failed = (err) => say("mpi.error", { reason: err.message }, true);

function button(key, onClick, cls = "secondary") {
  const b = el("button", { type: "button", className: cls, textContent: t(key) });
  b.dataset.i18n = key;
  b.addEventListener("click", () => onClick().catch(failed));
  return b;
}

function describe(i) {
  const sex = i.sex ? t(`mpi.sex.${i.sex}`) : "";
  const lines = [`${i.name || "—"} ${sex} ${i.birth_date || ""}`,
    [i.hospital, i.issuer, i.patient_id].filter(Boolean).join(" · ")];
  if (i.id_number) lines.push(t("mpi.idNumber", { value: i.id_number }));
  if (i.id_invalid) lines.push(t("mpi.idInvalid"));
  if (i.phone) lines.push(t("mpi.phone", { value: i.phone }));
  return el("div", { className: "side" }, el("b", { textContent: lines[0] }), ...lines.slice(1).map((l) => el("span", { textContent: l })));
}

async function loadReviews() {
  const data = await api("/api/mpi/reviews?status=open");
  $("#review-count").textContent = data.total ? t("mpi.reviews.count", { n: data.total }) : t("mpi.reviews.empty");
  $("#review-list").replaceChildren(...data.items.map((r) => el("li", {},
    el("span", { className: "score", textContent: t("mpi.score", { score: r.score, levels: r.levels }) }),
    el("div", { className: "pair" }, describe(r.identity), ...r.candidate.identities.slice(0, 3).map(describe)),
    button("mpi.review.link", async () => { await api(`/api/mpi/reviews/${r.id}/link`, { method: "POST" }); say("mpi.done"); await loadReviews(); }, ""),
    button("mpi.review.reject", async () => { await api(`/api/mpi/reviews/${r.id}/reject`, { method: "POST" }); say("mpi.done"); await loadReviews(); }))));
}

async function loadEvents(identity) {
  const events = await api(`/api/mpi/events?identity=${identity}`);
  $("#event-list").replaceChildren(...events.map((e) => el("li", {},
    el("span", { className: "name", textContent: `${t(`mpi.action.${e.action}`)} · ${new Date(e.at * 1000).toLocaleString(language())}` }),
    el("span", { className: "meta", textContent: `${e.actor} · ${e.reason}` }),
    ...(e.from_person && !e.reverted_by ? [button("mpi.revert", async () => {
      await api(`/api/mpi/events/${e.id}/revert`, { method: "POST" }); say("mpi.done"); await search(); await loadEvents(identity);
    })] : []))));
}

async function search() {
  const q = $("#q").value.trim();
  if (!q) { $("#identity-list").replaceChildren(); return; }
  const found = await api(`/api/mpi/identities?q=${encodeURIComponent(q)}`);
  const persons = [...new Set(found.map((i) => i.person))];
  const members = await Promise.all(persons.map((p) => api(`/api/mpi/identities?person=${p}`)));
  $("#identity-list").replaceChildren(...members.map((ids, n) => el("li", {},
    el("span", { className: "name", textContent: t("mpi.person", { id: persons[n], n: ids.length }) }),
    ...ids.map((i) => el("div", { className: "pair" }, describe(i), el("div", {},
      button("mpi.unlink", async () => { await api(`/api/mpi/identities/${i.id}/unlink`, { method: "POST" }); say("mpi.done"); await search(); }),
      button("mpi.history", () => loadEvents(i.id))))))));
}

async function loadCodes() {
  const rows = await api("/api/mpi/codes");
  $("#code-list").replaceChildren(...rows.map((r) => el("li", {},
    el("span", { className: "name", textContent: `${r.hospital} · ${r.local_code} ${r.local_name}` }),
    el("span", { className: "meta", textContent: `→ ${r.standard_code} ${r.standard_name}` }))));
}

async function upload(ev) {
  ev.preventDefault();
  const file = $("#table").files[0];
  const done = await api("/api/mpi/codes", { method: "POST", raw: await file.arrayBuffer() });
  say("mpi.codes.imported", { n: done.imported });
  await loadCodes();
}

const loaders = { reviews: loadReviews, search, codes: loadCodes };
async function openTab(name) {
  for (const b of document.querySelectorAll("[data-tab]")) b.setAttribute("aria-selected", String(b.dataset.tab === name));
  for (const tab of document.querySelectorAll(".tab")) tab.hidden = tab.id !== name;
  await loaders[name]();
}

async function main() {
  await loadLanguage();
  applyTranslations();
  $("#panel").hidden = false;
  $("#lang").addEventListener("click", () => switchLanguage(language() === "zh-CN" ? "en" : "zh-CN").then(loadReviews).catch(failed));
  for (const b of document.querySelectorAll("[data-tab]")) b.addEventListener("click", () => openTab(b.dataset.tab).catch(failed));
  let timer;
  $("#q").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => search().catch(failed), 250); });
  $("#upload").addEventListener("submit", (ev) => upload(ev).catch(failed));
  await openTab("reviews");
}

signedIn().then(main, () => {}).catch(failed);
