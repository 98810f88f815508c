// The security administrator's page (issue 12 part 5): the password, lockout, session and second-factor
// policy, removing a user's second factor, and the MLPS statement as the running system meets it.
// It holds no data of its own and reaches the archive over HTTP only, with the admin's token.
import { signedIn, signOut } from "../../common/auth.js";
import { applyTranslations, language, loadLanguage, switchLanguage, t } from "../../common/i18n.js";
import { $, say, api } from "../../common/page.js";

let lookedUp = "";

const failed = (err) => say(err.status === 403 ? "security.forbidden" : "security.error", { reason: err.message }, true);

async function loadPolicy() {
  const { policy, ranges } = await api("/api/admin/security-policy");
  for (const [name, value] of Object.entries(policy)) {
    const input = $(`#policy [name=${name}]`);
    if (!input) continue;
    if (input.type === "checkbox") input.checked = value;
    else Object.assign(input, { value, min: ranges[name][0], max: ranges[name][1], required: true });
  }
}

async function savePolicy(ev) {
  ev.preventDefault();
  const body = {};
  for (const input of document.querySelectorAll("#policy input")) {
    body[input.name] = input.type === "checkbox" ? input.checked : Number(input.value);
  }
  await api("/api/admin/security-policy", { method: "PUT", body });
  say("security.saved");
  await loadPolicy();
}

async function lookUp(ev) {
  ev.preventDefault();
  lookedUp = new FormData(ev.target).get("username").trim();
  const s = await api(`/api/admin/users/${encodeURIComponent(lookedUp)}/second-factor`);
  $("#factor-status").textContent = s.enrolled
    ? t("security.factor.on", { user: lookedUp, n: s.recovery_codes_left }) : t("security.factor.off", { user: lookedUp });
  $("#factor-reset").hidden = !s.enrolled;
}

async function resetFactor() {
  if (!confirm(t("security.factor.confirm", { user: lookedUp }))) return;
  await api(`/api/admin/users/${encodeURIComponent(lookedUp)}/second-factor`, { method: "DELETE" });
  say("security.factor.removed", { user: lookedUp });
  $("#factor-reset").hidden = true;
  $("#factor-status").textContent = t("security.factor.off", { user: lookedUp });
}

async function loadStatement() {
  const controls = await api("/api/security/statement");
  const zh = language() === "zh-CN";
  $("#controls").replaceChildren(...controls.map((c) => {
    const li = document.createElement("li");
    const span = (cls, text) => Object.assign(document.createElement("span"), { className: cls, textContent: text });
    li.append(span("name", `${c.clause} ${zh ? c.zh : c.en}`),
      span(`status ${c.status.replace(" ", "-")}`, t(`security.status.${c.status.replace(" ", "_")}`)),
      span("meta", zh ? c.how_zh : c.how_en));
    return li;
  }));
}

const TABS = { policy: loadPolicy, factors: async () => {}, statement: loadStatement };

async function openTab(name) {
  for (const b of document.querySelectorAll("[data-tab]")) b.setAttribute("aria-selected", String(b.dataset.tab === name));
  for (const tab of document.querySelectorAll(".tab")) tab.hidden = tab.id !== name;
  await TABS[name]();
}

async function main() {
  await loadLanguage();
  applyTranslations();
  $("#lang").addEventListener("click", () => switchLanguage(language() === "zh-CN" ? "en" : "zh-CN"));
  $("#logout").addEventListener("click", () => signOut());
  $("#policy").addEventListener("submit", (ev) => savePolicy(ev).catch(failed));
  $("#factor-form").addEventListener("submit", (ev) => lookUp(ev).catch(failed));
  $("#factor-reset").addEventListener("click", () => resetFactor().catch(failed));
  for (const b of document.querySelectorAll("[data-tab]")) b.addEventListener("click", () => openTab(b.dataset.tab).catch(failed));
  $("#panel").hidden = false;
  $("#logout").hidden = false;
  await openTab("policy");
}

// signed in first: with no token the page goes to /login (second factor included) and comes back
signedIn().then(main, () => {}).catch(failed);
