// Released reports of a study (only VerificationFlag VERIFIED reaches the patient; when several
// are, the newest is the amended one): Encapsulated PDF (PS3.3 A.45.1) opens as the PDF, a
// structured report (Basic Text / Enhanced / Comprehensive SR, A.35) is shown as text, built
// with textContent only (the report's text never becomes markup).
import { showPages } from "../common/pdfpages.js";

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

/** Open a report under the exam's card: a PDF as images of its pages (drawn by the server: the
 * page's CSP and WeChat's browser show no PDF), else the PDF in a new tab; an SR as text. */
export async function openReport(study, report, token, card) {
  if (report.sr) return showStructured(study, report, token, card);
  const box = card.querySelector(".report-pages") || document.createElement("div");
  box.className = "report-pages";
  card.append(box);
  const pageUrl = (n, width) => `/api/portal/report/page?${new URLSearchParams({ study, sop: report.sop, page: n, width })}`;
  if (await showPages(box, pageUrl, (url) => fetch(url, auth(token, "image/png")))) return true;
  box.remove();
  const res = await fetch(`${instanceUrl(study, report)}/bulkdata/00420011`, auth(token, "application/octet-stream"));
  if (!res.ok) return false;
  const target = URL.createObjectURL(new Blob([await res.arrayBuffer()], { type: "application/pdf" }));
  if (!window.open(target, "_blank")) location.href = target; // a document PDFium cannot draw: the file itself
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
