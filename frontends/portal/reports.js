// Reports stored in the study as Encapsulated PDF (PS3.3 A.45.1): only released ones
// (VerificationFlag VERIFIED) reach the patient; when several are, the newest is the amended one.
const PDF = "1.2.840.10008.5.1.4.1.1.104.1";
const v = (json, tag) => (json[tag] && json[tag].Value && json[tag].Value[0]) ?? "";

/** The study's released PDF reports, newest first: [{series, sop, when, amended}]. */
export async function reportsOf(study, token) {
  const url = `/dicomweb/studies/${encodeURIComponent(study)}/instances?00080016=${PDF}`
    + "&includefield=0040A493,00080023,00080033,0020000E";
  const res = await fetch(url, { headers: { Authorization: `Bearer ${token}`, Accept: "application/dicom+json" } });
  if (!res.ok) return [];
  const found = (res.status === 204 ? [] : await res.json())
    .filter((j) => String(v(j, "0040A493")).toUpperCase() === "VERIFIED")
    .map((j) => ({ series: v(j, "0020000E"), sop: v(j, "00080018"), when: `${v(j, "00080023")}${v(j, "00080033")}` }))
    .sort((a, b) => b.when.localeCompare(a.when));
  return found.map((r, i) => ({ ...r, amended: i === 0 && found.length > 1 }));
}

/** Open a report's PDF (EncapsulatedDocument bulk data) in a new tab. */
export async function openReport(study, report, token) {
  const tab = window.open("", "_blank"); // opened by the tap itself, or popup blockers refuse it
  const url = `/dicomweb/studies/${encodeURIComponent(study)}/series/${encodeURIComponent(report.series)}`
    + `/instances/${encodeURIComponent(report.sop)}/bulkdata/00420011`;
  const res = await fetch(url, { headers: { Authorization: `Bearer ${token}`, Accept: "application/octet-stream" } });
  if (!res.ok) { if (tab) tab.close(); return false; }
  const blob = new Blob([await res.arrayBuffer()], { type: "application/pdf" });
  const target = URL.createObjectURL(blob);
  if (tab) tab.location.href = target; else location.href = target;
  return true;
}
