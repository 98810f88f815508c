// The user's bearer token: handed over in the URL fragment (#access_token=..., never sent to a
// server or kept in history), then kept in sessionStorage for this tab only.
const KEY = "yunying.access_token";

export function takeTokenFromFragment() {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  const token = fragment.get("access_token");
  if (token) {
    sessionStorage.setItem(KEY, token);
    fragment.delete("access_token");
    const rest = fragment.toString();
    history.replaceState(history.state, "", location.pathname + location.search + (rest ? "#" + rest : ""));
  }
  return accessToken();
}

export function accessToken() {
  return sessionStorage.getItem(KEY);
}

export class Unauthorized extends Error {}

/** fetch() with `Authorization: Bearer`; a 401 calls redirectToLogin() and throws Unauthorized. */
export async function authFetch(url, init = {}) {
  const headers = new Headers(init.headers || {});
  const token = accessToken();
  if (token) headers.set("Authorization", `Bearer ${token}`);
  const res = await fetch(url, { ...init, headers });
  if (res.status === 401) {
    redirectToLogin();
    throw new Unauthorized(`401 from ${new URL(url, location.href).pathname}`);
  }
  return res;
}

/**
 * What happens when the archive answers 401. Today: a bilingual "please log in" message (the
 * login page of branch `oidc` has not landed). When /login/ exists this becomes
 * `location.assign("/login/?next=" + encodeURIComponent(location.href))`.
 */
export function redirectToLogin() {
  if (document.getElementById("login-required")) return;
  const box = document.createElement("div");
  box.id = "login-required";
  box.setAttribute("role", "alert");
  // both languages on purpose: this may show before any catalog could be fetched (it needs no token)
  box.innerHTML = "<p lang='zh-CN'>请先登录：您的会话已失效或没有访问令牌。</p>"
    + "<p lang='en'>Please log in: your session has expired or there is no access token.</p>";
  document.body.append(box);
}
