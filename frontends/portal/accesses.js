// "Who opened my exams" (issue 12 part 3): the patient's own access list from GET /api/audit/mine,
// newest first, in plain words. Loaded when the patient opens the section (reading it is itself
// recorded), and again after a language switch while it is open. Built with textContent only.
import { language, t } from "../common/i18n.js";
import { el } from "../common/page.js";

// the trail's patient-data actions (yunying/audit/store.py PATIENT_ACTIONS) as a patient would say them
const ACTIONS = {
  query: "portal.accesses.action.query",
  metadata: "portal.accesses.action.metadata",
  frames: "portal.accesses.action.images",
  rendered: "portal.accesses.action.images",
  thumbnail: "portal.accesses.action.images",
  reformat: "portal.accesses.action.images",
  bulkdata: "portal.accesses.action.bulkdata",
  retrieve: "portal.accesses.action.retrieve",
  store: "portal.accesses.action.store",
  delete: "portal.accesses.action.delete",
};
// staff roles (yunying/auth/roles.py) in plain words; an administrator's or a custom role keeps its name
const ROLES = {
  doctor: "portal.accesses.role.doctor",
  radiologist: "portal.accesses.role.radiologist",
  qc_expert: "portal.accesses.role.qc",
  delivery_operator: "portal.accesses.role.delivery",
};
const SAME_VISIT_MS = 10 * 60 * 1000; // one viewing fetches many frames: one line per person, action and exam

function who(a) {
  if (a.you || a.kind === "patient") return t("portal.accesses.you");
  if (a.kind === "share") return t("portal.accesses.share");
  if (a.kind === "user") {
    const roles = a.roles.split(" ").filter(Boolean).map((r) => (ROLES[r] ? t(ROLES[r]) : r));
    return t("portal.accesses.staff", { who: a.who, roles: roles.join(language() === "zh-CN" ? "、" : ", ") || "—" });
  }
  if (["system", "peer", "launch"].includes(a.kind)) return t("portal.accesses.system", { who: a.who });
  return t("portal.accesses.other");
}

/** Consecutive records of the same person, action and exam within minutes become one line. */
function visits(rows) {
  const out = [];
  for (const a of rows) {
    const ms = Date.parse(a.time);
    const last = out[out.length - 1];
    const key = [a.kind, a.who, a.you, ACTIONS[a.action] || a.action, a.studies].join("\n");
    if (last && last.key === key && last.oldest - ms <= SAME_VISIT_MS) { last.oldest = ms; continue; }
    out.push({ ...a, key, ms, oldest: ms });
  }
  return out;
}

/** Fill the section; `label(study)` names an exam as its card does (date and modality). */
export async function showAccesses(token, label) {
  const state = document.getElementById("accesses-state");
  const list = document.getElementById("accesses-list");
  state.textContent = t("portal.accesses.loading");
  state.className = "hint";
  list.replaceChildren();
  let rows;
  try {
    const res = await fetch("/api/audit/mine", { headers: { Authorization: `Bearer ${token}` } });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    rows = visits(await res.json());
  } catch (err) {
    state.textContent = t("portal.accesses.error");
    state.className = "message";
    console.warn("accesses:", err.message);
    return;
  }
  state.textContent = rows.length ? "" : t("portal.accesses.none");
  const when = new Intl.DateTimeFormat(language(), { dateStyle: "medium", timeStyle: "short" });
  list.replaceChildren(...rows.map((a) => el("li", { className: "access" },
    el("div", { className: "access-top" }, el("strong", { className: "access-who", textContent: who(a) }),
      el("time", { dateTime: a.time, textContent: when.format(a.ms) })),
    el("div", { className: "access-what", textContent: [t(ACTIONS[a.action] || "portal.accesses.action.other"),
      ...a.studies.split(" ").filter(Boolean).map(label), a.kind === "user" ? a.hospital : ""].filter(Boolean).join(" · ") }))));
}
