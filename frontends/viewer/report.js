// The study's reports inside the viewer (doctors: drafts too, marked): Encapsulated PDF opens as
// the PDF, a structured report's text is shown in the panel, both through the portal's report
// reader (one implementation). The viewer's own measurement reports (TID 1500) are not reports.
import { accessToken } from "../common/auth.js";
import { t } from "../common/i18n.js";
import { openReport } from "../portal/reports.js";
import { getJson, studyUrl } from "./dicomweb.js";

const PDF = "1.2.840.10008.5.1.4.1.1.104.1";
const SR = ["1.2.840.10008.5.1.4.1.1.88.11", "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33"];
const MEASUREMENTS = "126000"; // DCM "Imaging Measurement Report": the viewer's saved marks
const first = (ds, tag) => ds?.[tag]?.Value?.[0];

/** The study's reports, newest first: [{series, sop, sr, when, verified, title}]. */
export async function reportsOf(study) {
  const q = new URLSearchParams({ "00080016": [PDF, ...SR].join(","),
    includefield: "0040A493,00080023,00080033,0020000E,00080016,0040A043,00420010" });
  const rows = await getJson(`${studyUrl(study)}/instances?${q}`);
  return rows.filter((ds) => first(first(ds, "0040A043"), "00080100") !== MEASUREMENTS)
    .map((ds) => ({ series: first(ds, "0020000E"), sop: first(ds, "00080018"), sr: SR.includes(first(ds, "00080016")),
      when: `${first(ds, "00080023") || ""}${first(ds, "00080033") || ""}`,
      verified: String(first(ds, "0040A493") || "").toUpperCase() === "VERIFIED",
      title: first(ds, "00420010") || first(first(ds, "0040A043"), "00080104") || "" }))
    .sort((a, b) => b.when.localeCompare(a.when));
}

/** Fill the report panel with the study's reports; a tap opens one. */
export async function showReports(viewer, panel, reports) {
  panel.replaceChildren();
  const close = document.createElement("button");
  close.type = "button";
  close.className = "close";
  close.dataset.i18n = "viewer.report.close";
  close.textContent = t("viewer.report.close");
  close.addEventListener("click", () => { panel.hidden = true; });
  panel.append(close);
  for (const r of reports) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "report-entry";
    const d = r.when.slice(0, 8);
    b.textContent = [d.replace(/^(\d{4})(\d{2})(\d{2})$/, "$1-$2-$3"), r.title || t(r.sr ? "viewer.report.sr" : "viewer.report.pdf"),
      r.verified ? "" : t("viewer.report.draft")].filter(Boolean).join(" · ");
    b.addEventListener("click", () => openReport(viewer.study, r, accessToken(), panel).catch((err) => console.warn(err.message)));
    panel.append(b);
  }
  panel.hidden = false;
}
