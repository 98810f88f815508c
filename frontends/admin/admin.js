// The system administrator's page: users, roles, self-registrations, hospitals and departments,
// OAuth clients, through the JSON admin API (/api/admin). The security policy and the audit trail
// are other administrators' pages (/admin/security/, /admin/audit/): separation of duties.
// It holds no data of its own and reaches the archive over HTTP only, with the admin's token;
// it signs in through the archive's one login page (common/auth.js), forced password change included.
import { signedIn, signOut } from "../common/auth.js";
import { applyTranslations, language, loadLanguage, switchLanguage, t } from "../common/i18n.js";
import { $, say, api } from "../common/page.js";


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

async function loadHospitals() {
  const hospitals = await api("/api/admin/hospitals");
  const rows = [];
  for (const h of hospitals) {
    const deps = await api(`/api/admin/hospitals/${encodeURIComponent(h.id)}/departments`);
    rows.push(item(`${h.name} (${h.id})`, deps.map((d) => d.name).join(" · ") || t("admin.hospital.noDepartments"),
      button("admin.department.add", async () => {
        const name = prompt(t("admin.department.name"));
        if (!name) return;
        await api(`/api/admin/hospitals/${encodeURIComponent(h.id)}/departments`, { method: "POST", body: { name } });
        await loadHospitals();
      })));
  }
  $("#hospital-list").replaceChildren(...rows);
}

async function loadClients() {
  const clients = await api("/api/admin/oauth-clients");
  $("#client-list").replaceChildren(...clients.map((c) => item(
    `${c.name} (${c.client_id})`,
    `${c.public ? t("admin.client.isPublic") : t("admin.client.isConfidential")} · ${c.hospital} · ${c.scope}`,
    ...(c.client_id === "yunying-web" ? [] : [button("admin.client.remove", async () => {
      if (!confirm(t("admin.client.confirmRemove", { name: c.name }))) return;
      await api(`/api/admin/oauth-clients/${encodeURIComponent(c.client_id)}`, { method: "DELETE" });
      await loadClients();
    }, "danger")]),
  )));
}

async function addHospital(e) {
  e.preventDefault();
  const form = new FormData(e.target);
  await api("/api/admin/hospitals", { method: "POST", body: { id: form.get("id"), name: form.get("name") } });
  e.target.reset();
  say("admin.hospital.added", { id: form.get("id") });
  await loadHospitals();
}

async function addClient(e) {
  e.preventDefault();
  const form = new FormData(e.target);
  const redirect = form.get("redirect");
  const r = await api("/api/admin/oauth-clients", { method: "POST", body: {
    name: form.get("name"), scope: form.get("scope"), public: form.get("public") === "on",
    redirect_uris: redirect ? [redirect] : [] } });
  say(r.client_secret ? "admin.client.secret" : "admin.client.added", { id: r.client_id, secret: r.client_secret || "" });
  await loadClients();
}

const TABS = { users: loadUsers, roles: () => loadRoles($("#role-q").value), registrations: loadRegistrations,
  hospitals: loadHospitals, clients: loadClients };

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
  $("#add-hospital").addEventListener("submit", (e) => addHospital(e).catch(failed));
  $("#add-client").addEventListener("submit", (e) => addClient(e).catch(failed));
  $("#user-q").addEventListener("input", () => loadUsers().catch(failed));
  $("#role-q").addEventListener("input", () => loadRoles($("#role-q").value).catch(failed));
  for (const b of document.querySelectorAll("[data-tab]")) b.addEventListener("click", () => openTab(b.dataset.tab).catch(failed));
  await enter();
}

// signed in first: with no token the page goes to /login and comes back; a sign-in that cannot
// work here (plain http off localhost) says so on the page
signedIn().then(main, () => {}).catch(failed);
