// A share link: #t=<token> (kept out of the address bar and of every server log), the access
// code, then the viewer with a short access token for that exam only.
import { applyTranslations, language, loadLanguage, switchLanguage, t } from "../common/i18n.js";

const $ = (id) => document.getElementById(id);
const KEY = "yunying.portal.share";

function shareToken() {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  if (fragment.get("t")) {
    sessionStorage.setItem(KEY, fragment.get("t"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY);
}

function problem(state) {
  $("code-form").hidden = true;
  $("problem").hidden = false;
  $("problem-title").textContent = t(`portal.shared.${state}.title`);
  $("problem-text").textContent = t(`portal.shared.${state}.text`);
}

async function post(url, body) {
  const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json().catch(() => ({})) };
}

let studies = [];
async function start() {
  const token = shareToken();
  if (!token) return problem("unknown");
  const r = await post("/api/portal/verify/share", { token });
  if (r.status === 410) return problem("off");
  if (r.status !== 200) return problem("unknown");
  if (r.body.state !== "active") return problem(r.body.state);
  studies = r.body.studies;
  $("code-form").hidden = false;
  $("code-form").onsubmit = async (e) => {
    e.preventDefault();
    const x = await post("/api/auth/exchange", { token, code: $("access-code").value.trim() });
    if (x.status === 200) {
      location.assign(`/viewer/?study=${encodeURIComponent(studies[0])}&lang=${language()}#access_token=${encodeURIComponent(x.body.access_token)}`);
    } else if (x.status === 403 || /expired|revoked|unknown/.test(x.body.error || "")) {
      return problem(x.status === 403 ? "locked" : /expired/.test(x.body.error) ? "expired" : "revoked");
    } else {
      $("message").textContent = t("portal.shared.wrongCode");
    }
  };
}

await loadLanguage();
applyTranslations();
$("lang").onclick = () => switchLanguage(language() === "zh-CN" ? "en" : "zh-CN").then(() => {
  if (!$("problem").hidden) location.reload();
});
try {
  await start();
} catch (err) {
  problem("unknown");
  console.warn("share:", err.message);
}
