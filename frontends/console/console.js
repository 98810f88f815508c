// The delivery console (issue 14 part 9): what was collected and delivered, exam search with
// upload status, report preview, delivery switched off per exam or patient, the patients' access
// log. It holds no data of its own: the JSON API under /api/portal/console with the operator's
// token (common/auth.js sign-in). A phone number is sent in a POST body, never in a URL.
import { authFetch, signedIn, signOut } from "../../common/auth.js";
import { applyTranslations, language, loadLanguage, switchLanguage, t } from "../../common/i18n.js";
import { $, el, say, api } from "../../common/page.js";
import { showPages } from "../../common/pdfpages.js";

let shown = "figures";

const failed = (err) => say("console.error", { reason: err.message }, true);

function save(blob, name) {
  const a = el("a", { href: URL.createObjectURL(blob), download: name });
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

const bytes = (n) => n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(1)} GB` : `${(n / (1 << 20)).toFixed(1)} MB`;

/** A table of labelled bars: rows [label, value, text]. */
function bars(table, rows) {
  const max = Math.max(1, ...rows.map((r) => r[1]));
  table.replaceChildren(...rows.map(([label, value, text]) => el("tr", {},
    el("th", { textContent: label }),
    el("td", {}, el("span", { className: "bar", style: `width:${(100 * value / max).toFixed(1)}%` })),
    el("td", { className: "n", textContent: text ?? String(value) }))));
}

async function figures() {
  const s = await api("/api/portal/console/stats");
  $("#t-exams").textContent = s.exams;
  $("#t-images").textContent = s.images;
  $("#t-reports").textContent = s.reports;
  $("#t-qr").textContent = s.delivery.qr_codes;
  $("#t-bound").textContent = s.delivery.bound_to_patients;
  $("#t-off").textContent = s.delivery.delivery_off;
  const collected = (key) => Object.entries(s[`per_${key}`]).map(([k, n]) => [k, n, t("console.collected",
    { exams: n, images: s[`images_per_${key}`][k] || 0, reports: (s[`reports_per_${key}`] || {})[k] || 0 })]);
  bars($("#per-day"), collected("day"));
  bars($("#per-hospital"), collected("hospital"));
  bars($("#per-modality"), Object.entries(s.per_modality).map(([m, n]) => [m, n,
    t("console.modalityFigures", { exams: n, images: s.images_per_modality[m] || 0 })]));
  bars($("#storage"), s.storage.history.map((h) => [h.day, h.total_bytes,
    t("console.storageFigures", { dicom: bytes(h.dicom_bytes), total: bytes(h.total_bytes) })]));
}

function searchParams() {
  const p = new URLSearchParams();
  const form = new FormData($("#search"));
  for (const [k, v] of form) if (v && k !== "from" && k !== "to") p.set(k, v.trim());
  const from = form.get("from").replaceAll("-", ""), to = form.get("to").replaceAll("-", "");
  if (from || to) p.set("date", from === to ? from : `${from}-${to}`);
  return p;
}

function examItem(e) {
  const status = [t("console.status.images", { images: e.images, series: e.series }),
    e.reports ? t("console.status.reports", { reports: e.reports, released: e.released }) : t("console.status.noReport"),
    e.delivery_off ? t("console.status.off") : e.bound ? t("console.status.bound") : e.qr ? t("console.status.qr") : t("console.status.noQr")];
  const who = [e.name, e.sex && t(`console.sex.${e.sex}`), e.age != null && t("console.age", { age: e.age })].filter(Boolean).join(" · ");
  const li = el("li", {},
    el("span", { className: "when", textContent: `${e.date} · ${e.accession} · ${e.hospital}` }),
    el("strong", { textContent: who }),
    el("span", { textContent: [e.modalities.join("/"), e.body_parts.join("/"), e.description, e.visit && t("console.visit", { visit: e.visit })].filter(Boolean).join(" · ") }),
    el("span", { className: e.delivery_off ? "off" : "", textContent: status.join(" · ") }));
  const actions = el("div", { className: "actions" });
  if (e.reports) actions.append(button("console.preview", (ev) => preview(e.study, ev.target.closest("li"))));
  if (e.qr) actions.append(button(e.delivery_off ? "console.switchOn" : "console.switchOff",
    () => switchDelivery({ study: e.study }, e.delivery_off)));
  if (e.patient_id) actions.append(button(e.patient_off ? "console.switchOnPatient" : "console.switchOffPatient",
    () => switchDelivery({ patient: e.patient_id, issuer: e.issuer }, e.patient_off)));
  li.append(actions);
  return li;
}

function button(key, onClick) {
  const b = el("button", { type: "button", className: "secondary", textContent: t(key) });
  b.addEventListener("click", (ev) => onClick(ev).catch(failed));
  return b;
}

async function searchExams() {
  const { exams } = await api(`/api/portal/console/exams?${searchParams()}`);
  $("#exam-list").replaceChildren(...exams.map(examItem));
  $("#exam-count").textContent = exams.length ? t("console.count", { n: exams.length }) : t("console.empty");
}

// The report is shown in place as images of its pages, drawn by the server: the page's
// Content-Security-Policy (object-src 'none') keeps the browser's PDF viewer out of frames and of
// blob: tabs it opens. A document the server cannot draw (422) is saved as the PDF itself.
async function preview(study, item) {
  const box = item.querySelector(".report-pages") || el("div", { className: "report-pages" });
  item.append(box);
  const pageUrl = (n, width) => `/api/portal/console/report?${new URLSearchParams({ study, page: n, width })}`;
  if (await showPages(box, pageUrl, (url) => authFetch(url))) return;
  box.remove();
  save(await api(`/api/portal/console/report?${new URLSearchParams({ study })}`), "report.pdf");
}

async function switchDelivery(target, on) {
  if (!on && !confirm(t(target.patient ? "console.confirmPatient" : "console.confirmExam"))) return;
  const done = await api("/api/portal/delivery", { method: "POST", body: { ...target, on } });
  say(on ? "console.switchedOn" : "console.switchedOff", { n: done.exams.length });
  await searchExams();
}

async function accessLog(ev) {
  ev.preventDefault();
  const body = Object.fromEntries([...new FormData(ev.target)].filter(([, v]) => v.trim()));
  const { records } = await api("/api/portal/console/access", { method: "POST", body });
  $("#access-list").replaceChildren(...records.map((r) => el("li", {},
    el("span", { className: "when", textContent: new Date(r.at_ms).toLocaleString(language()) }),
    el("span", { textContent: `${t(`console.who.${r.principal_kind}`)} ${r.principal_id} ${r.client}` }),
    el("span", { className: r.outcome, textContent: `${r.action} · ${r.status}${r.count > 1 ? " ×" + r.count : ""}` }),
    el("span", { className: "uid", textContent: r.studies }))));
  $("#access-count").textContent = records.length ? t("console.count", { n: records.length }) : t("console.empty");
}

function show(tab) {
  shown = tab;
  for (const b of document.querySelectorAll("[data-tab]")) b.setAttribute("aria-selected", String(b.dataset.tab === tab));
  for (const id of ["figures", "exams", "access"]) $(`#${id}`).hidden = id !== tab;
  say("");
  if (tab === "figures") return figures();
  if (tab === "exams") return searchExams();
  return Promise.resolve();
}

async function start() {
  await loadLanguage();
  applyTranslations();
  await signedIn();
  $("#lang").addEventListener("click", () => switchLanguage(language() === "zh-CN" ? "en" : "zh-CN").then(() => show(shown)).catch(failed));
  $("#logout").addEventListener("click", () => signOut());
  for (const b of document.querySelectorAll("[data-tab]")) b.addEventListener("click", () => show(b.dataset.tab).catch(failed));
  $("#search").addEventListener("submit", (ev) => { ev.preventDefault(); searchExams().catch(failed); });
  $("#access-form").addEventListener("submit", (ev) => accessLog(ev).catch(failed));
  $("#figures-xlsx").addEventListener("click", () => api("/api/portal/console/stats?format=xlsx")
    .then((b) => save(b, "delivery-figures.xlsx")).catch(failed));
  $("#exams-xlsx").addEventListener("click", () => {
    const p = searchParams();
    p.set("format", "xlsx");
    api(`/api/portal/console/exams?${p}`).then((b) => save(b, "exams.xlsx")).catch(failed);
  });
  await show("figures");
}

start().catch(failed);
