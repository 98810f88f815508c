// The patient portal: exam code (from the QR) -> SMS code or ID card -> the patient's exams,
// the viewer, downloads and share links. Tokens stay in the fragment / sessionStorage only.
import { applyTranslations, language, loadLanguage, switchLanguage, t } from "../common/i18n.js";
import { accessToken } from "../common/auth.js";
import { openReport, reportsOf } from "./reports.js";
import { showFilm } from "./film.js";
import { showAccesses } from "./accesses.js";

const $ = (id) => document.getElementById(id);
const EXAM = "yunying.portal.exam";
const TOKEN = "yunying.access_token"; // the key common/auth.js reads: the viewer finds it in this tab
const WECHAT_TRIED = "yunying.portal.wechat"; // asked WeChat once in this tab: never a redirect loop
const inWeChat = () => /MicroMessenger/i.test(navigator.userAgent);

async function post(path, body, token) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(`/api/portal/${path}`, { method: "POST", headers, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json().catch(() => ({})) };
}

/** A refusal as a sentence of the catalog (the server's reasons are English; patients read ours). */
export function reasonText(status, error = "") {
  if (status === 429) return t("portal.error.wait", { reason: (error.match(/(\d+) s/) || [])[1] || "60" });
  if (status === 403) return t("portal.error.locked");
  if (status === 410) return t("portal.error.deliveryOff");
  if (status === 404) return t(/bound/.test(error) ? "portal.error.noAccount" : "portal.error.unknownExam");
  if (/expired/.test(error)) return t("portal.error.codeExpired");
  if (/phone number/.test(error)) return t("portal.error.wrongPhone");
  if (/ID card/.test(error)) return t("portal.error.wrongId");
  if (/name or the date/.test(error)) return t("portal.add.mismatch");
  if (status === 401) return t("portal.error.wrongCode");
  if (status === 400) return t("portal.error.incomplete");
  return t("portal.error.server");
}

function problem(titleKey, textKey) {
  for (const id of ["verify", "home"]) $(id).hidden = true;
  $("problem").hidden = false;
  $("problem-title").textContent = t(titleKey);
  $("problem-text").textContent = t(textKey);
}

function examToken() {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  if (fragment.get("exam")) {
    sessionStorage.setItem(EXAM, fragment.get("exam"));
    history.replaceState(null, "", location.pathname + location.search); // no token in the address bar
  }
  return sessionStorage.getItem(EXAM);
}

function chooseTab(way) {
  $("tab-sms").setAttribute("aria-selected", String(way === "sms"));
  $("tab-id").setAttribute("aria-selected", String(way === "id"));
  $("sms-form").hidden = way !== "sms";
  $("id-form").hidden = way !== "id";
}

async function showVerify(exam) {
  let ways = ["sms"];
  if (exam) {
    const info = await post("verify/exam", { exam });
    if (info.status !== 200) return problem("portal.error.title", info.status === 404 ? "portal.error.unknownExam"
      : info.status === 410 ? "portal.error.deliveryOff" : "portal.error.server");
    ways = info.body.ways;
    if (info.body.phone) $("phone-hint").textContent = t("portal.verify.phoneOnRecord", { phone: info.body.phone });
    if (!ways.length) return problem("portal.error.title", "portal.error.noContact");
  }
  $("tab-sms").hidden = !ways.includes("sms");
  $("tab-id").hidden = !ways.includes("id");
  chooseTab(ways[0]);
  $("verify").hidden = false; // only now: the hint and the ways are filled in
}

function countdown(seconds) {
  const button = $("send");
  button.disabled = true;
  const tick = () => {
    if (seconds <= 0) { button.disabled = false; button.textContent = t("portal.verify.send"); return; }
    button.textContent = t("portal.verify.resendIn", { s: seconds-- });
    setTimeout(tick, 1000);
  };
  tick();
}

async function signedIn(answer) {
  if (answer.status !== 200) { $("verify-message").textContent = reasonText(answer.status, answer.body.error); return; }
  sessionStorage.setItem(TOKEN, answer.body.access_token);
  sessionStorage.removeItem(EXAM); // bound now: a reload shows the exams
  sessionStorage.setItem("yunying.portal.hint", answer.body.hint || "");
  await showHome();
}

function wire(exam) {
  $("tab-sms").onclick = () => chooseTab("sms");
  $("tab-id").onclick = () => chooseTab("id");
  $("send").onclick = async () => {
    $("verify-message").textContent = "";
    const r = await post("verify/send", { exam, phone: $("phone").value });
    if (r.status === 200) { countdown(r.body.resend_after); $("verify-message").textContent = t("portal.verify.sent"); }
    else $("verify-message").textContent = reasonText(r.status, r.body.error);
  };
  $("sms-form").onsubmit = async (e) => {
    e.preventDefault();
    await signedIn(await post("verify/sms", { exam, phone: $("phone").value, code: $("code").value }));
  };
  $("id-form").onsubmit = async (e) => {
    e.preventDefault();
    await signedIn(await post("verify/id", { exam, id_number: $("id-number").value, name: $("id-name").value }));
  };
  $("lang").onclick = async () => { await switchLanguage(language() === "zh-CN" ? "en" : "zh-CN"); if (!$("home").hidden) await showHome(); };
}

const tag = (json, key) => (json[key] && json[key].Value && json[key].Value[0]) ?? "";
const day = (d) => (d ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}` : "");

async function studiesOf(token) {
  const res = await fetch("/dicomweb/studies?includefield=00081030,00080061,00080080,00180015,00201208",
    { headers: { Authorization: `Bearer ${token}`, Accept: "application/dicom+json" } });
  if (!res.ok) return [];
  return res.json();
}

async function showHome() {
  const token = accessToken();
  const me = await fetch("/api/portal/me", { headers: { Authorization: `Bearer ${token}` } });
  if (me.status === 401) { sessionStorage.removeItem(TOKEN); return start(); }
  const { exams } = await me.json();
  const found = new Map((await studiesOf(token)).map((s) => [tag(s, "0020000D"), s]));
  $("verify").hidden = true;
  $("home").hidden = false;
  $("wechat").hidden = !/MicroMessenger/i.test(navigator.userAgent);
  $("account").textContent = t("portal.home.account", { hint: sessionStorage.getItem("yunying.portal.hint") || "" });
  const rows = exams.map((e) => ({ ...e, json: found.get(e.study) }))
    .sort((a, b) => String(tag(b.json || {}, "00080020")).localeCompare(String(tag(a.json || {}, "00080020"))));
  await Promise.all(rows.map(async (e) => { e.reports = e.json ? await reportsOf(e.study, token) : []; }));
  $("exams").replaceChildren(...rows.map((e) => examCard(e, token)));
  if (rows.length && !$("add-hospital").value) $("add-hospital").value = rows[0].hospital;
  if (!rows.length) $("exams").textContent = t("portal.home.none");
  await listShares();
  const label = (study) => { const j = found.get(study) || {}; return [day(tag(j, "00080020")), tag(j, "00081030")].filter(Boolean).join(" ") || "—"; };
  $("accesses").ontoggle = () => { if ($("accesses").open) showAccesses(token, label); };
  if ($("accesses").open) await showAccesses(token, label); // the language changed while it was open
  await wechatCard(token);
}

/** Report notices in WeChat: inside WeChat, a patient not bound yet (and who never said no) goes
 * through WeChat's silent sign-in once; the card then says where notices go and toggles it. */
async function wechatCard(token) {
  const card = $("wechat-notify");
  const res = await fetch("/api/portal/wechat", { headers: { Authorization: `Bearer ${token}` } });
  const state = res.ok ? await res.json() : { available: false };
  card.hidden = !state.available || (!inWeChat() && !state.bound);
  if (card.hidden) return;
  if (inWeChat() && !state.bound && !state.declined && !sessionStorage.getItem(WECHAT_TRIED)) return bindWeChat(token);
  const failed = sessionStorage.getItem(WECHAT_TRIED) === "failed";
  $("wechat-notify-text").textContent = t(state.bound ? "portal.wechat.bound" : failed ? "portal.wechat.failed" : "portal.wechat.unbound");
  const toggle = $("wechat-notify-toggle");
  toggle.textContent = t(state.bound ? "portal.wechat.unbind" : "portal.wechat.bind");
  toggle.hidden = !state.bound && !inWeChat();
  toggle.onclick = async () => {
    if (!state.bound) return bindWeChat(token);
    await fetch("/api/portal/wechat", { method: "DELETE", headers: { Authorization: `Bearer ${token}` } });
    await wechatCard(token);
  };
}

async function bindWeChat(token) {
  sessionStorage.setItem(WECHAT_TRIED, "1");
  const r = await post("wechat/start", {}, token);
  if (r.status === 200) location.assign(r.body.url); // WeChat comes back to /portal/?code=…&state=…
}

/** Back from WeChat's sign-in: the code leaves the address bar at once and is traded for the binding. */
async function wechatReturn() {
  const query = new URLSearchParams(location.search);
  if (!query.get("code") || !query.get("state")) return;
  history.replaceState(null, "", location.pathname);
  if (!accessToken()) return;
  const r = await post("wechat/bind", { code: query.get("code"), state: query.get("state") }, accessToken());
  if (r.status !== 200) sessionStorage.setItem(WECHAT_TRIED, "failed");
}

function examCard(e, token) {
  const j = e.json || {};
  const li = document.createElement("li");
  li.className = "exam";
  const ready = Number(tag(j, "00201208")) > 0;
  const top = document.createElement("div");
  top.className = "top";
  const date = document.createElement("span");
  date.textContent = day(tag(j, "00080020")) || "—";
  const status = document.createElement("span");
  const report = (e.reports || [])[0];
  status.className = "status" + (ready ? "" : " registered");
  status.textContent = t(report ? "portal.status.report" : ready ? "portal.status.images" : "portal.status.registered");
  top.append(date, status);
  const what = document.createElement("div");
  what.className = "what";
  const modalities = (j["00080061"] && j["00080061"].Value || []).join("/");
  what.textContent = [modalities, tag(j, "00081030"), tag(j, "00180015"), tag(j, "00080080")].filter(Boolean).join(" · ");
  const note = document.createElement("div"); // another system's exam of the same person (the master index)
  note.className = "linked";
  note.textContent = e.linked ? t("portal.home.linked") : "";
  const actions = document.createElement("div");
  actions.className = "actions";
  if (ready) {
    const view = document.createElement("a");
    view.className = "view";
    view.textContent = t("portal.home.view");
    view.href = `/viewer/?study=${encodeURIComponent(e.study)}&lang=${language()}#access_token=${encodeURIComponent(token)}`;
    const download = document.createElement("button");
    download.type = "button";
    download.className = "download";
    download.textContent = t("portal.home.download");
    download.onclick = () => downloadStudy(e.study, token, download);
    const share = document.createElement("button");
    share.type = "button";
    share.className = "share";
    share.textContent = t("portal.home.share");
    share.onclick = () => openShare(e.study);
    const filmButton = document.createElement("button");
    filmButton.type = "button";
    filmButton.className = "film-open";
    filmButton.textContent = t("portal.film.title");
    filmButton.onclick = () => showFilm(e.study, token, li).catch((err) => console.warn(err.message));
    actions.append(view, filmButton, download, share);
  }
  if (report) {
    const open = document.createElement("button");
    open.type = "button";
    open.className = "report";
    open.textContent = t(report.amended ? "portal.home.reportAmended" : "portal.home.report");
    open.onclick = () => openReport(e.study, report, token, li);
    actions.prepend(open);
  }
  li.append(top, what, ...(e.linked ? [note] : []), actions);
  return li;
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/** The ZIP is made in the background (a 2000-image CT takes a while): the box shows its progress,
 * then its size, validity, password and the save button. */
async function downloadStudy(study, token, button) {
  button.disabled = true;
  const r = await post("downloads", { study, contents: "both", background: true }, token); // DICOM for doctors, JPEGs for anyone
  if (r.status !== 201 && r.status !== 202) { button.disabled = false; alert(reasonText(r.status, r.body.error)); return; }
  const box = document.createElement("div");
  box.className = "zip card";
  const bar = document.createElement("progress");
  bar.className = "zip-progress";
  const info = document.createElement("p");
  info.className = "zip-info";
  box.append(bar, info);
  button.closest(".exam").append(box);
  let state = r.status === 201 ? { state: "ready", done: 1, total: 1, ...r.body } : r.body;
  while (state.state === "queued" || state.state === "running") {
    bar.max = state.total;
    bar.value = state.done;
    info.textContent = t("portal.download.preparing", { done: state.done, total: state.total });
    await sleep(1000);
    const res = await fetch(`/api/portal/downloads/${encodeURIComponent(r.body.id)}/progress`,
      { headers: { Authorization: `Bearer ${token}` } });
    state = res.ok ? await res.json() : { state: "failed", status: res.status };
  }
  button.disabled = false;
  bar.max = state.total;
  bar.value = state.state === "ready" ? state.total : state.done;
  if (state.state !== "ready") {
    info.textContent = state.status ? reasonText(state.status) : t("portal.download.failed");
    return;
  }
  info.textContent = t("portal.download.ready", {
    size: (state.size / 1048576).toFixed(1), until: new Date(state.expires_at * 1000).toLocaleString(language()) });
  const password = document.createElement("p");
  password.innerHTML = `${t("portal.download.password")}: <strong class="zip-password"></strong>`;
  password.querySelector("strong").textContent = r.body.password;
  const save = document.createElement("button");
  save.type = "button";
  save.className = "primary zip-save";
  save.textContent = t("portal.download.save");
  save.onclick = async () => {
    const res = await fetch(`/api/portal/downloads/${encodeURIComponent(r.body.id)}`, { headers: { Authorization: `Bearer ${token}` } });
    if (!res.ok) { alert(reasonText(res.status)); return; }
    const a = document.createElement("a");
    a.href = URL.createObjectURL(await res.blob());
    a.download = "exam.zip";
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  };
  box.append(password, save);
}

let shareStudy = null;
function openShare(study) {
  shareStudy = study;
  $("share-panel").hidden = false;
  $("share-result").hidden = true;
  $("share-panel").scrollIntoView();
}

async function createShare() {
  const r = await post("shares", { study: shareStudy, hours: Number($("share-hours").value) }, accessToken());
  if (r.status !== 201) { alert(reasonText(r.status, r.body.error)); return; }
  $("share-code").textContent = r.body.code;
  $("share-url").value = r.body.url;
  $("share-qr").innerHTML = r.body.qr_svg; // made by the server (segno): no user text inside
  $("share-result").hidden = false;
  await listShares();
}

async function listShares() {
  const res = await fetch("/api/portal/shares", { headers: { Authorization: `Bearer ${accessToken()}` } });
  if (!res.ok) return;
  const { shares } = await res.json();
  const now = Date.now() / 1000;
  $("shares").replaceChildren(...shares.map((s) => {
    const li = document.createElement("li");
    const text = document.createElement("span");
    const state = s.revoked_at ? "portal.share.revoked" : s.expires_at <= now ? "portal.share.expired" : "portal.share.until";
    text.textContent = t(state, { until: new Date(s.expires_at * 1000).toLocaleString(language()) });
    li.append(text);
    if (!s.revoked_at && s.expires_at > now) {
      const revoke = document.createElement("button");
      revoke.type = "button";
      revoke.className = "secondary revoke";
      revoke.textContent = t("portal.share.revoke");
      revoke.onclick = async () => {
        await fetch(`/api/portal/shares/${encodeURIComponent(s.id)}`, { method: "DELETE", headers: { Authorization: `Bearer ${accessToken()}` } });
        await listShares();
      };
      li.append(revoke);
    }
    return li;
  }));
}

async function start() {
  const exam = examToken();
  wire(exam);
  $("share-create").onclick = createShare;
  $("add-form").onsubmit = async (e) => {
    e.preventDefault();
    const r = await post("me/exams", { hospital: $("add-hospital").value, accession: $("add-accession").value,
      date: $("add-date").value, name: $("add-name").value }, accessToken());
    if (r.status !== 201) {
      $("add-message").textContent = r.status === 401 && !/match/.test(r.body.error || "") ? t("portal.error.server")
        : r.status === 404 ? t("portal.add.notFound") : reasonText(r.status, r.body.error);
      return;
    }
    sessionStorage.setItem(TOKEN, r.body.access_token);
    $("add-form").reset();
    $("add-exam").open = false;
    await showHome();
  };
  await wechatReturn();
  if (accessToken() && !exam) return showHome();
  sessionStorage.removeItem(TOKEN); // a newly scanned exam: verify again (binds it too)
  return showVerify(exam);
}

await loadLanguage();
applyTranslations();
try {
  await start();
} catch (err) {
  problem("portal.error.title", "portal.error.server");
  console.warn("portal:", err.message);
}
