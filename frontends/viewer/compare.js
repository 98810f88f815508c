// Compare mode: the patient's prior exams, newest first; the one picked opens in the second
// viewport beside the current exam. Priors are the whole history of the person the patient master
// index links this patient to, across hospitals and systems (QIDO-RS `person=`, still within what
// this user may see); without a master-index entry, the exact PatientID and its issuer.
import { authFetch, Unauthorized } from "../common/auth.js";
import { t } from "../common/i18n.js";
import { ROOT, searchSeries, searchStudies } from "./dicomweb.js";
import { setLayout } from "./layout.js";
import { value } from "./series.js";

const FIELDS = ["StudyDate", "StudyTime", "StudyDescription", "ModalitiesInStudy", "IssuerOfPatientID"];
const NOT_IMAGES = new Set(["SR", "KO", "PR", "DOC"]);

/** The other studies of the patient of `ds` (the current image's header), newest first. */
export async function priorsOf(ds, study) {
  const pid = value(ds, "PatientID");
  if (!pid) return [];
  const q = new URLSearchParams({ PatientID: pid, includefield: FIELDS.join(","), limit: "50" });
  const issuer = value(ds, "IssuerOfPatientID");
  if (issuer) q.set("IssuerOfPatientID", issuer); // a patient is an ID qualified by its issuer
  const person = issuer ? await personOf(pid, issuer) : null;
  if (person) {
    q.delete("PatientID");
    q.delete("IssuerOfPatientID");
    q.set("person", person);
  }
  const rows = (await searchStudies(q)).filter((s) => value(s, "StudyInstanceUID") !== study);
  const when = (s) => `${value(s, "StudyDate") || ""}${value(s, "StudyTime") || ""}`;
  return rows.sort((a, b) => (when(a) < when(b) ? 1 : -1));
}

/** The master index's person of a patient this user can see, or null (none, or no master index). */
async function personOf(pid, issuer) {
  const q = new URLSearchParams({ PatientID: pid, IssuerOfPatientID: issuer });
  try {
    const res = await authFetch(`${ROOT.replace(/\/dicomweb$/, "")}/api/mpi/lookup?${q}`);
    return res.ok ? (await res.json()).person || null : null;
  } catch (err) {
    if (err instanceof Unauthorized) throw err;
    return null;
  }
}

/** Open `prior` in the second viewport (from a single one: side by side, or one above the other on a
 * portrait screen), the series like the current one first. */
export async function openPrior(viewer, prior) {
  const series = (await searchSeries(prior)).filter((s) => !NOT_IMAGES.has(value(s, "Modality")));
  if (!series.length) throw new Error("the prior exam has no image series");
  const modality = viewer.active?.series?.modality;
  const pick = series.find((s) => value(s, "Modality") === modality) || series[0];
  const uid = value(pick, "SeriesInstanceUID");
  const load = (u) => viewer.loadSeries(prior, u);
  const layout = innerHeight > innerWidth ? "2x1" : "1x2";
  if (viewer.viewports.length < 2) await setLayout(viewer, layout, [uid], load, viewer.rendererKind);
  else viewer.viewports[1].setSeries(await load(uid));
  viewer.layout = viewer.layout === "1x1" ? "1x2" : viewer.layout;
  return uid;
}

/** The compare button's menu: one entry per prior exam (date, modalities, description). */
export async function showPriors(viewer, menu) {
  menu.replaceChildren();
  const current = viewer.viewports[0]?.series?.images[0]?.ds;
  const rows = current ? await priorsOf(current, viewer.study) : [];
  if (!rows.length) {
    const none = document.createElement("p");
    none.textContent = t("viewer.compare.none");
    menu.append(none);
  }
  for (const s of rows) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "prior";
    b.dataset.study = value(s, "StudyInstanceUID");
    const d = String(value(s, "StudyDate") || "");
    b.textContent = [d.length === 8 ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6)}` : d,
      (s["00080061"]?.Value || []).join("/"), value(s, "StudyDescription") || ""].filter(Boolean).join(" · ");
    b.addEventListener("click", () => {
      menu.hidden = true;
      openPrior(viewer, b.dataset.study).catch((err) => console.warn("prior not opened:", err.message));
    });
    menu.append(b);
  }
  menu.hidden = false;
}
