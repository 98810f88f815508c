// The admin page: users, roles and self-registrations through the JSON admin API (/api/admin).
// It holds no data of its own and reaches the archive over HTTP only, with the admin's token;
// it signs in through the archive's one login page (common/auth.js), forced password change included.
import { authFetch, signedIn, signOut } from "../common/auth.js";
import { applyTranslations, language, loadLanguage, switchLanguage, t } from "../common/i18n.js";

const $ = (sel) => document.querySelector(sel);

function say(key, params = {}, error = false) {
  $("#message").textContent = key ? t(key, params) : "";
  $("#message").classList.toggle("error", error);
}

async function api(path, { method = "GET", body } = {}) {
  const headers = body === undefined ? {} : { "Content-Type": "application/json" };
  // a 401 renews the token once, then goes to the login page (and comes back here)
  const res = await authFetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = res.headers.get("content-type")?.includes("json") ? await res.json() : await res.blob();
  if (!res.ok) throw Object.assign(new Error(data.error || res.status), { status: res.status });
  return data;
}

function failed(err) { say("admin.error", { reason: err.message }, true); }

function item(name, meta, ...buttons) {
  const li = document.createElement("li");
  const n = Object.assign(document.createElement("span"), { className: "name", textContent: name });
  const m = Object.assign(document.createElement("span"), { className: "meta", textContent: meta });
  li.append(n, m, ...buttons);
  return li;
}

function button(key, onClick, cls = "secondary") {
  const b = Object.assign(document.createElement("button"), { type: "button", className: cls, textContent: t(key) });
  b.dataset.i18n = key;
  b.addEventListener("click", () => onClick().catch(failed));
  return b;
}

async function loadRoles(q = "") {
  const roles = await api(`/api/admin/roles?q=${encodeURIComponent(q)}`);
  $("#role-list").replaceChildren(...roles.map((r) => item(r.name, r.permissions.join(", "))));
  return roles;
}

async function fillRoleSelects() {
  const roles = await api("/api/admin/roles");
  for (const sel of document.querySelectorAll(".role-select")) {
    sel.replaceChildren(...roles.filter((r) => !r.platform).map((r) => new Option(r.name, r.name)));
    sel.value = "doctor";
  }
}

async function loadUsers() {
  const users = await api(`/api/admin/users?q=${encodeURIComponent($("#user-q").value)}`);
  $("#user-list").replaceChildren(...users.map((u) => item(
    u.username,
    `${u.hospital_id} · ${u.roles.map((r) => r.role + (r.level ? `:${r.level}` : "")).join(", ")}`
      + (u.disabled ? ` · ${t("admin.user.disabled")}` : ""),
    button(u.disabled ? "admin.user.enable" : "admin.user.disable", async () => {
      await api(`/api/admin/users/${u.username}`, { method: "PATCH", body: { disabled: !u.disabled } });
      await loadUsers();
    }),
    button("admin.user.reset", async () => {
      const r = await api(`/api/admin/users/${u.username}/password`, { method: "POST" });
      say("admin.user.oneTime", { user: u.username, password: r.one_time_password });
    }),
    button("admin.user.delete", async () => {
      if (!confirm(t("admin.user.confirmDelete", { user: u.username }))) return;
      await api(`/api/admin/users/${u.username}`, { method: "DELETE" });
      await loadUsers();
    }, "danger"),
  )));
}

async function photo(reg, p) {
  const blob = await api(`/api/admin/registrations/${reg.id}/photos/${p.id}`);
  const img = Object.assign(document.createElement("img"), { alt: t(`admin.photo.${p.kind}`) });
  img.src = URL.createObjectURL(blob);
  return img;
}

async function loadRegistrations() {
  const regs = await api("/api/admin/registrations");
  if (!regs.length) {
    $("#registration-list").replaceChildren(item(t("admin.registration.none"), ""));
    return;
  }
  const rows = [];
  for (const reg of regs) {
    const role = Object.assign(document.createElement("select"), { className: "role-select" });
    const li = item(`${reg.display_name} (${reg.username})`, `${reg.hospital_id} · ${reg.department} · ${reg.title} · ${reg.phone}`);
    li.append(role,
      button("admin.registration.approve", async () => {
        await api(`/api/admin/registrations/${reg.id}/approve`, { method: "POST", body: { roles: [{ role: role.value }] } });
        say("admin.registration.approved", { user: reg.username });
        await loadRegistrations();
      }, ""),
      button("admin.registration.reject", async () => {
        const reason = prompt(t("admin.registration.reason"));
        if (!reason) return;
        await api(`/api/admin/registrations/${reg.id}/reject`, { method: "POST", body: { reason } });
        await loadRegistrations();
      }, "danger"));
    for (const p of reg.photos) li.append(await photo(reg, p));
    rows.push(li);
  }
  $("#registration-list").replaceChildren(...rows);
  await fillRoleSelects();
}

const TABS = { users: loadUsers, roles: () => loadRoles($("#role-q").value), registrations: loadRegistrations };

async function openTab(name) {
  for (const b of document.querySelectorAll("[data-tab]")) b.setAttribute("aria-selected", String(b.dataset.tab === name));
  for (const tab of document.querySelectorAll(".tab")) tab.hidden = tab.id !== name;
  await TABS[name]();
}

async function enter() {
  $("#panel").hidden = false;
  $("#logout").hidden = false;
  await fillRoleSelects();
  await openTab("users");
}

async function main() {
  await loadLanguage();
  applyTranslations();
  $("#lang").addEventListener("click", () => switchLanguage(language() === "zh-CN" ? "en" : "zh-CN"));
  $("#logout").addEventListener("click", () => signOut());
  $("#add-user").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    try {
      const r = await api("/api/admin/users", { method: "POST", body: { username: form.get("username"), roles: [{ role: form.get("role") }] } });
      say("admin.user.oneTime", { user: r.username, password: r.one_time_password });
      e.target.reset();
      await loadUsers();
    } catch (err) { failed(err); }
  });
  $("#user-q").addEventListener("input", () => loadUsers().catch(failed));
  $("#role-q").addEventListener("input", () => loadRoles($("#role-q").value).catch(failed));
  for (const b of document.querySelectorAll("[data-tab]")) b.addEventListener("click", () => openTab(b.dataset.tab).catch(failed));
  await enter();
}

// signed in first: with no token the page goes to /login and comes back; a sign-in that cannot
// work here (plain http off localhost) says so on the page
signedIn().then(main, () => {}).catch(failed);
