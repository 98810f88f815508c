// Released reports of a study (only VerificationFlag VERIFIED reaches the patient; when several
// are, the newest is the amended one): Encapsulated PDF (PS3.3 A.45.1) opens as the PDF, a
// structured report (Basic Text / Enhanced / Comprehensive SR, A.35) is shown as text, built
// with textContent only (the report's text never becomes markup).
const PDF = "1.2.840.10008.5.1.4.1.1.104.1";
const SR = ["1.2.840.10008.5.1.4.1.1.88.11", "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33"];
const v = (json, tag) => (json[tag] && json[tag].Value && json[tag].Value[0]) ?? "";
const auth = (token, accept) => ({ headers: { Authorization: `Bearer ${token}`, Accept: accept } });

/** The study's released reports, newest first: [{series, sop, sr, when, amended}]. */
export async function reportsOf(study, token) {
  const url = `/dicomweb/studies/${encodeURIComponent(study)}/instances?00080016=${[PDF, ...SR].join(",")}`
    + "&includefield=0040A493,00080023,00080033,0020000E,00080016";
  const res = await fetch(url, auth(token, "application/dicom+json"));
  if (!res.ok) return [];
  const found = (res.status === 204 ? [] : await res.json())
    .filter((j) => String(v(j, "0040A493")).toUpperCase() === "VERIFIED")
    .map((j) => ({ series: v(j, "0020000E"), sop: v(j, "00080018"), sr: SR.includes(v(j, "00080016")),
      when: `${v(j, "00080023")}${v(j, "00080033")}` }))
    .sort((a, b) => b.when.localeCompare(a.when));
  return found.map((r, i) => ({ ...r, amended: i === 0 && found.length > 1 }));
}

function instanceUrl(study, report) {
  return `/dicomweb/studies/${encodeURIComponent(study)}/series/${encodeURIComponent(report.series)}`
    + `/instances/${encodeURIComponent(report.sop)}`;
}

/** Open a report: a PDF in a new tab, an SR as text under the exam's card. */
export async function openReport(study, report, token, card) {
  if (report.sr) return showStructured(study, report, token, card);
  const tab = window.open("", "_blank"); // opened by the tap itself, or popup blockers refuse it
  const res = await fetch(`${instanceUrl(study, report)}/bulkdata/00420011`, auth(token, "application/octet-stream"));
  if (!res.ok) { if (tab) tab.close(); return false; }
  const target = URL.createObjectURL(new Blob([await res.arrayBuffer()], { type: "application/pdf" }));
  if (tab) tab.location.href = target; else location.href = target;
  return true;
}

function item(node, depth) {
  const name = v(v(node, "0040A043") || {}, "00080104");
  const type = v(node, "0040A040");
  const out = [];
  let text = "";
  if (type === "TEXT") text = v(node, "0040A160");
  else if (type === "CODE") text = v(v(node, "0040A168") || {}, "00080104");
  else if (type === "NUM") {
    const m = v(node, "0040A300") || {};
    text = `${v(m, "0040A30A")} ${v(v(m, "004008EA") || {}, "00080100")}`.trim();
  } else if (type === "DATE" || type === "DATETIME" || type === "PNAME") {
    text = String(type === "PNAME" ? (v(node, "0040A123").Alphabetic || "") : v(node, type === "DATE" ? "0040A121" : "0040A120"));
  }
  if (type === "CONTAINER" && name) {
    const h = document.createElement(depth === 0 ? "h3" : "h4");
    h.textContent = name;
    out.push(h);
  } else if (name || text) {
    const p = document.createElement("p");
    if (name && type !== "TEXT") { const b = document.createElement("strong"); b.textContent = `${name}: `; p.append(b); }
    else if (name) { const b = document.createElement("strong"); b.textContent = name; out.push(b); }
    p.append(document.createTextNode(text));
    out.push(p);
  }
  for (const child of (node["0040A730"] && node["0040A730"].Value) || []) out.push(...item(child, depth + 1));
  return out;
}

async function showStructured(study, report, token, card) {
  const res = await fetch(`${instanceUrl(study, report)}/metadata`, auth(token, "application/dicom+json"));
  if (!res.ok) return false;
  const [json] = await res.json();
  let box = card.querySelector(".sr");
  if (!box) { box = document.createElement("section"); box.className = "sr card"; card.append(box); }
  box.replaceChildren(...item(json, 0));
  return true;
}
