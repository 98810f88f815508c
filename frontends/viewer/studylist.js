// The doctors' study list (/viewer/ without a study): QIDO-RS search by name (Chinese characters
// or pinyin: fuzzy matching on every name group), patient ID, accession number, date range and
// modality; newest first; a patient's other exams one tap away.
import { applyTranslations, t } from "../common/i18n.js";
import { attachDatePickers, normalizeDate } from "./datepicker.js";
import { searchStudies } from "./dicomweb.js";
import { personName, value, values } from "./series.js";

const FIELDS = ["PatientName", "PatientID", "IssuerOfPatientID", "PatientSex", "PatientBirthDate", "StudyDate",
  "StudyTime", "StudyDescription", "AccessionNumber", "ModalitiesInStudy", "NumberOfStudyRelatedInstances"];
const MODALITIES = ["", "CT", "MR", "CR", "DX", "US", "MG", "XA", "RF", "NM", "PT", "OT"];
const PAGE = 50;

const FORM = `<form id="search" autocomplete="off">
  <input name="name" type="search" data-i18n-placeholder="viewer.list.name">
  <input name="id" type="search" data-i18n-placeholder="viewer.list.patientId">
  <input name="accession" type="search" data-i18n-placeholder="viewer.list.accession">
  <label><span data-i18n="viewer.list.from"></span> <input name="from" class="date" inputmode="numeric" data-i18n-placeholder="viewer.list.dateFormat"></label>
  <label><span data-i18n="viewer.list.to"></span> <input name="to" class="date" inputmode="numeric" data-i18n-placeholder="viewer.list.dateFormat"></label>
  <select name="modality">${MODALITIES.map((m) => `<option value="${m}"${m ? "" : ' data-i18n="viewer.list.anyModality"'}>${m}</option>`).join("")}</select>
  <button type="submit" data-i18n="viewer.list.search"></button>
  <div class="quick"></div>
</form>
<p id="list-count" role="status"></p>
<ol id="results"></ol>
<button id="more" type="button" hidden data-i18n="viewer.list.more"></button>`;

/** QIDO-RS parameters for the form's values (PS3.18 10.6.1.2; fuzzymatching for names). */
export function queryOf(form) {
  const q = new URLSearchParams({ includefield: FIELDS.join(","), limit: String(PAGE) });
  const name = form.name.trim();
  if (name) { q.set("PatientName", name); q.set("fuzzymatching", "true"); }
  if (form.id.trim()) q.set("PatientID", `*${form.id.trim()}*`);
  if (form.accession.trim()) q.set("AccessionNumber", `*${form.accession.trim()}*`);
  const day = (d) => (normalizeDate(d) || "").replaceAll("-", ""); // a field that is not a date is left out
  if (day(form.from) || day(form.to)) q.set("StudyDate", `${day(form.from)}-${day(form.to)}`);
  if (form.modality) q.set("ModalitiesInStudy", form.modality);
  return q;
}

export async function openStudyList(root, params) {
  root.hidden = false;
  root.innerHTML = FORM;
  const form = root.querySelector("#search");
  attachDatePickers(form, form.querySelector(".quick"));
  applyTranslations(root);
  for (const key of ["name", "id", "accession", "from", "to", "modality"]) {
    if (params.get(key)) form.elements[key].value = params.get(key);
  }
  let query = null, offset = 0;
  const results = root.querySelector("#results");
  const run = async (append) => {
    const q = new URLSearchParams(query);
    q.set("offset", String(offset));
    results.setAttribute("aria-busy", "true");
    const rows = await searchStudies(q).finally(() => results.setAttribute("aria-busy", "false"));
    show(root, rows, append, (pid) => { // every exam of this patient: the exact ID, nothing else
      form.reset();
      form.elements.id.value = pid;
      query = queryOf({ name: "", id: "", accession: "", modality: "" });
      query.set("PatientID", pid);
      offset = 0;
      run(false).catch(() => {});
    });
    root.querySelector("#more").hidden = rows.length < PAGE;
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const values = Object.fromEntries(new FormData(form));
    query = queryOf(values);
    offset = 0;
    const url = new URL(location.href); // the search survives a reload and the back button
    for (const [k, v] of Object.entries(values)) { if (v) url.searchParams.set(k, v); else url.searchParams.delete(k); }
    history.replaceState(null, "", url);
    run(false).catch((err) => { root.querySelector("#list-count").textContent = t("viewer.error.load"); console.warn(err.message); });
  });
  root.querySelector("#more").addEventListener("click", () => { offset += PAGE; run(true).catch(() => {}); });
  window.addEventListener("languagechange", () => applyTranslations(root));
  form.requestSubmit();
}

function show(root, rows, append, samePatient) {
  const list = root.querySelector("#results");
  if (!append) list.replaceChildren();
  for (const ds of rows) {
    const li = document.createElement("li");
    li.className = "study";
    const link = document.createElement("a");
    const target = new URL(location.pathname, location.href);
    target.searchParams.set("study", value(ds, "StudyInstanceUID"));
    const lang = new URLSearchParams(location.search).get("lang");
    if (lang) target.searchParams.set("lang", lang);
    link.href = target.pathname + target.search;
    const date = String(value(ds, "StudyDate") || "").replace(/^(\d{4})(\d{2})(\d{2})$/, "$1-$2-$3");
    const line = (cls, text) => { const s = document.createElement("span"); s.className = cls; s.textContent = text; return s; };
    link.append(
      line("name", personName(ds, "PatientName") || "—"),
      line("meta", [value(ds, "PatientID"), value(ds, "PatientSex"), date].filter(Boolean).join(" · ")),
      line("desc", [values(ds, "ModalitiesInStudy").join("/"), value(ds, "StudyDescription"),
        t("viewer.images", { n: value(ds, "NumberOfStudyRelatedInstances") ?? "?" })].filter(Boolean).join(" · ")),
      line("meta", value(ds, "AccessionNumber") ? `${t("viewer.list.accessionShort")} ${value(ds, "AccessionNumber")}` : ""));
    const other = document.createElement("button");
    other.type = "button";
    other.className = "btn same-patient";
    other.dataset.i18n = "viewer.list.samePatient";
    other.textContent = t("viewer.list.samePatient");
    other.addEventListener("click", () => samePatient(value(ds, "PatientID")));
    li.append(link, other);
    list.append(li);
  }
  root.querySelector("#list-count").textContent = t("viewer.list.count", { n: list.children.length });
}
