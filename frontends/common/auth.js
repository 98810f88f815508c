// Sign-in for our own pages (viewer, admin): OAuth 2.0 authorization code + PKCE S256 against the
// archive's own provider as the built-in public client `yunying-web`, the way any browser app
// signs in (RFC 9700 §2.1.1); then refresh-token rotation keeps the short access token fresh.
// Tokens live in sessionStorage: this tab only, gone when it closes. A page opened with
// #access_token=... (a launch or share link, a test harness) uses that token as it is.
import { pickLanguage } from "./i18n.js";

const KEY = "yunying.access_token";
const REFRESH = "yunying.refresh_token";
const EXPIRES = "yunying.expires_at"; // ms since the epoch
const RENEW_AT = "yunying.renew_at"; // ms: when to refresh, ahead of expiry
const PENDING = "yunying.signin"; // {state, verifier, back} while the browser is at the login page
const LINK = "yunying.link_token"; // "1": the token came in the URL fragment (no refresh, no login)
const CLIENT_ID = "yunying-web";
const FORM = { "Content-Type": "application/x-www-form-urlencoded" };

export class Unauthorized extends Error {}
export class SignInUnavailable extends Error {}

/** The page's own path: its redirect URI (registered per page: /viewer/, /admin/). */
function pagePath() {
  return new URL("./", location.href).pathname;
}

function redirectUri() {
  return location.origin + pagePath();
}

export function takeTokenFromFragment() {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  const token = fragment.get("access_token");
  if (token) {
    forget();
    sessionStorage.setItem(KEY, token);
    sessionStorage.setItem(LINK, "1");
    fragment.delete("access_token");
    const rest = fragment.toString();
    history.replaceState(history.state, "", location.pathname + location.search + (rest ? "#" + rest : ""));
  }
  return accessToken();
}

/** Whether a user signed in here (and may sign out), rather than a link handing over a token. */
export function signedInByUser() {
  return Boolean(sessionStorage.getItem(REFRESH));
}

export function accessToken() {
  return sessionStorage.getItem(KEY);
}

function forget() {
  clearTimeout(timer);
  for (const key of [KEY, REFRESH, EXPIRES, RENEW_AT, LINK]) sessionStorage.removeItem(key);
}

let timer = 0;
// The security policy's idle timeout (issue 12) counts from the grant's last refresh: the timer
// renews ahead of expiry only when the person used the page since the last renewal; otherwise
// the token may lapse, and the next request renews it (a 401), or, after the idle time, signs in.
let lastInput = 0;
let lastKept = 0;
for (const kind of ["pointerdown", "keydown", "wheel", "touchstart"]) {
  addEventListener(kind, () => { lastInput = Date.now(); }, { capture: true, passive: true });
}

/** Keep a token response (RFC 6749 §5.1) and plan its refresh a third of its life (at most 60 s) early. */
function keep(body) {
  const now = Date.now(), life = Number(body.expires_in || 0) * 1000;
  sessionStorage.setItem(KEY, body.access_token);
  sessionStorage.removeItem(LINK);
  if (body.refresh_token) sessionStorage.setItem(REFRESH, body.refresh_token);
  sessionStorage.setItem(EXPIRES, String(now + life));
  sessionStorage.setItem(RENEW_AT, String(now + life - Math.min(60_000, life / 3)));
  lastKept = now;
  schedule();
}

function schedule() {
  clearTimeout(timer);
  const at = Number(sessionStorage.getItem(RENEW_AT));
  if (at && sessionStorage.getItem(REFRESH)) {
    timer = setTimeout(() => { if (lastInput > lastKept) renew(); }, Math.max(0, at - Date.now()));
  }
}

function expired() {
  const at = Number(sessionStorage.getItem(EXPIRES));
  return Boolean(at) && Date.now() > at - 5_000;
}

async function tokenRequest(params) {
  const res = await fetch("/oauth/token", { method: "POST", headers: FORM,
    body: new URLSearchParams({ client_id: CLIENT_ID, ...params }) });
  return { ok: res.ok, status: res.status, body: await res.json().catch(() => ({})) };
}

let renewing = null;

/** Refresh the access token (the refresh token rotates); false when it cannot (then sign in again). */
export function renew() {
  renewing ??= (async () => {
    const refresh = sessionStorage.getItem(REFRESH);
    if (!refresh) return false;
    try {
      const r = await tokenRequest({ grant_type: "refresh_token", refresh_token: refresh });
      if (r.ok) { keep(r.body); return true; }
      if (r.status === 400 || r.status === 401) forget(); // expired, revoked or reused: the grant is over
    } catch { /* offline: keep the tokens, the next request tries again */ }
    return false;
  })().finally(() => { renewing = null; });
  return renewing;
}

function b64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

let leaving = null;

/** Go to the login page (through /oauth/authorize) and come back here; never resolves. */
export function signIn() {
  leaving ??= (async () => {
    // PKCE's S256 needs WebCrypto, which browsers offer only on https or localhost: say so
    if (!window.isSecureContext || !crypto.subtle) {
      await notice("common.signin.insecure");
      throw new SignInUnavailable("sign-in needs https (or localhost)");
    }
    const verifier = b64url(crypto.getRandomValues(new Uint8Array(48))); // 64 chars (RFC 7636 §4.1)
    const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
    const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
    sessionStorage.setItem(PENDING, JSON.stringify({ state, verifier,
      back: location.pathname + location.search + location.hash }));
    // ask for every scope the provider knows: the token carries only what the user holds
    const config = await (await fetch("/.well-known/openid-configuration")).json();
    // the login page speaks the page's language (it reads this cookie, which it also sets)
    document.cookie = `yunying_lang=${pickLanguage()}; path=/; max-age=31536000; samesite=lax`;
    location.assign("/oauth/authorize?" + new URLSearchParams({
      response_type: "code", client_id: CLIENT_ID, redirect_uri: redirectUri(), state,
      scope: config.scopes_supported.join(" "), code_challenge: challenge, code_challenge_method: "S256" }));
    return new Promise(() => {}); // the page is being replaced
  })();
  return leaving;
}

/** Back from the provider with ?code=&state= (or ?error=): redeem the code, restore the address. */
async function completeSignIn() {
  const q = new URLSearchParams(location.search);
  if (!q.has("state") || !(q.has("code") || q.has("error"))) return;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  const redirect = redirectUri();
  // the code and state leave the address bar and the history at once
  history.replaceState(history.state, "", pending?.state === q.get("state") ? pending.back : pagePath());
  if (pending?.state !== q.get("state")) return; // not the sign-in this tab started: start afresh
  const r = q.has("code") ? await tokenRequest({ grant_type: "authorization_code", code: q.get("code"),
    redirect_uri: redirect, code_verifier: pending.verifier }) : { ok: false };
  if (!r.ok) {
    await notice("common.signin.failed", pagePath());
    throw new SignInUnavailable(`sign-in failed: ${q.get("error") || r.body.error || r.status}`);
  }
  keep(r.body);
}

/**
 * The page's access token: from the URL fragment, a sign-in that just came back, this tab's
 * session (refreshed when due), or the login page (which comes back here: never resolves).
 * Throws SignInUnavailable when signing in cannot work here (shown on the page).
 */
export async function signedIn() {
  takeTokenFromFragment();
  await completeSignIn();
  if (accessToken() && !expired()) {
    schedule();
    return accessToken();
  }
  if (await renew()) return accessToken();
  return signIn();
}

/** fetch() with `Authorization: Bearer`; a 401 renews the token once, then goes to the login page. */
export async function authFetch(url, init = {}) {
  const send = () => {
    const headers = new Headers(init.headers || {});
    const token = accessToken();
    if (token) headers.set("Authorization", `Bearer ${token}`);
    return fetch(url, { ...init, headers });
  };
  let res = await send();
  if (res.status === 401 && await renew()) res = await send();
  if (res.status === 401) {
    redirectToLogin();
    throw new Unauthorized(`401 from ${new URL(url, location.href).pathname}`);
  }
  return res;
}

/**
 * A 401 that renewal could not cure: sign in again. A token this module did not get from a
 * sign-in (a link's, or one the patient portal put in this tab) cannot be renewed by logging in
 * as a doctor: say it has expired instead.
 */
export function redirectToLogin() {
  if (sessionStorage.getItem(LINK) || (accessToken() && !sessionStorage.getItem(EXPIRES))) {
    notice("common.signin.linkExpired");
    return;
  }
  forget();
  signIn().catch(() => {});
}

/** Sign out: revoke the grant (its refresh and access tokens), end the login session, back here. */
export async function signOut() {
  const refresh = sessionStorage.getItem(REFRESH);
  forget();
  if (refresh) {
    await fetch("/oauth/revoke", { method: "POST", headers: FORM, body: new URLSearchParams({
      token: refresh, token_type_hint: "refresh_token", client_id: CLIENT_ID }) }).catch(() => {});
  }
  location.assign("/login/logout?" + new URLSearchParams({ post_logout_redirect_uri: redirectUri() }));
}

/**
 * A message in both languages at once (it may show before the page chose one), from the shared
 * catalogs; with `again`, a link that starts over.
 */
async function notice(key, again) {
  if (document.getElementById("signin-notice")) return;
  const box = Object.assign(document.createElement("div"), { id: "signin-notice" });
  box.setAttribute("role", "alert");
  document.body.append(box);
  for (const lang of ["zh-CN", "en"]) {
    const catalog = await fetch(`/i18n/${lang}.json`).then((r) => r.json()).catch(() => ({}));
    const p = Object.assign(document.createElement("p"), { lang, textContent: catalog[key] || key });
    if (again) p.append(" ", Object.assign(document.createElement("a"), { href: again,
      textContent: catalog["common.signin.again"] || "↻" }));
    box.append(p);
  }
}
