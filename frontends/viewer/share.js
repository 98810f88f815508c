// A doctor shares the open study with their own department (or one named colleague) for 24 or
// 72 hours, sees this study's current shares with their expiry and withdraws one (issue 14 part
// 6). The archive's grants API decides: only studies the doctor sees, grantees of their hospital.
import { el, api } from "../common/page.js";
import { t } from "../common/i18n.js";

const GRANTS = new URL("../api/admin/grants", import.meta.url).href;
const HOURS = [24, 72];

const when = (seconds) => new Date(seconds * 1000).toLocaleString(document.documentElement.lang || undefined,
  { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });

/** Fill the share panel for the open study: the 24 h / 72 h buttons, a colleague field, the shares. */
export async function showShares(viewer, panel) {
  const message = el("p", { className: "share-message", role: "status" });
  const colleague = el("input", { id: "share-user", type: "text", autocomplete: "off", placeholder: t("viewer.share.colleague") });
  const list = el("div", { className: "share-list" });
  const say = (key, params, error = false) => { message.textContent = key ? t(key, params) : ""; message.classList.toggle("error", error); };
  const refresh = async () => {
    const mine = (await api(GRANTS)).filter((g) => g.study_uid === viewer.study);
    list.replaceChildren(...(mine.length ? mine.map((g) => el("div", { className: "share-row" },
      el("span", { textContent: `${g.username || (g.department_id === viewer.me?.department_id
        ? t("viewer.share.department") : t("viewer.share.otherDepartment", { id: g.department_id }))} · ${g.expires_at
        ? t("viewer.share.until", { when: when(g.expires_at) }) : t("viewer.share.noExpiry")}` }),
      el("button", { type: "button", className: "share-withdraw", textContent: t("viewer.share.withdraw"),
        onclick: () => api(`${GRANTS}/${g.id}`, { method: "DELETE" })
          .then(() => { say("viewer.share.withdrawn"); return refresh(); }, (err) => say("viewer.share.failed", { reason: err.message }, true)) })))
      : [el("p", { className: "share-none", textContent: t("viewer.share.none") })]));
  };
  const share = async (hours) => {
    const username = colleague.value.trim();
    if (!username && viewer.me?.department_id == null) { say("viewer.share.noDepartment", {}, true); return; }
    try {
      await api(GRANTS, { method: "POST", body: { study: viewer.study, expires_in: hours * 3600,
        ...(username ? { username } : { department_id: viewer.me.department_id }) } });
      colleague.value = "";
      say(username ? "viewer.share.sharedUser" : "viewer.share.shared", { hours, user: username });
      await refresh();
    } catch (err) { say("viewer.share.failed", { reason: err.message }, true); }
  };
  panel.replaceChildren(
    el("button", { type: "button", className: "close", textContent: t("viewer.report.close"), onclick: () => { panel.hidden = true; } }),
    el("h3", { textContent: t("viewer.share.title") }),
    el("label", { className: "share-user" }, t("viewer.share.colleagueLabel"), colleague),
    el("div", { className: "share-hours" }, ...HOURS.map((hours) => el("button", { type: "button", id: `share-${hours}h`,
      textContent: t("viewer.share.for", { hours }), onclick: () => share(hours) }))),
    message, el("h4", { textContent: t("viewer.share.current") }), list);
  panel.hidden = false;
  await refresh().catch((err) => say("viewer.share.failed", { reason: err.message }, true));
}
