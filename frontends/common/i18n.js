// Shared i18n for every page: one flat catalog per language (/i18n/<lang>.json, keys prefixed
// by page). Language: ?lang=, then navigator.language, zh-CN by default (hospitals in China).
export const LANGUAGES = ["zh-CN", "en"];
const DEFAULT = "zh-CN";
let catalog = {};
let current = DEFAULT;

export function pickLanguage(search = location.search, nav = navigator.language || "") {
  const asked = new URLSearchParams(search).get("lang");
  const match = (tag) => LANGUAGES.find((l) => l.toLowerCase() === tag.toLowerCase())
    || LANGUAGES.find((l) => l.split("-")[0] === tag.toLowerCase().split("-")[0]);
  return (asked && match(asked)) || (nav && match(nav)) || DEFAULT;
}

export function language() {
  return current;
}

/** Load the catalog of `lang` (or the picked language) and make it current. */
export async function loadLanguage(lang = pickLanguage()) {
  const url = new URL(`../i18n/${lang}.json`, import.meta.url);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`i18n catalog ${lang}: HTTP ${res.status}`);
  catalog = await res.json();
  current = lang;
  document.documentElement.lang = lang;
  return lang;
}

/** The text of `key` with {name} placeholders filled; the key itself when missing (tests catch it). */
export function t(key, params = {}) {
  const text = catalog[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

/** Fill every [data-i18n] (text), [data-i18n-title], [data-i18n-placeholder], [data-i18n-aria-label] under root. */
export function applyTranslations(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const attr of ["title", "placeholder", "aria-label"]) {
    const data = "i18n" + attr.replace(/(^|-)(\w)/g, (m, d, c) => c.toUpperCase());
    for (const el of root.querySelectorAll(`[data-i18n-${attr}]`)) el.setAttribute(attr, t(el.dataset[data]));
  }
}

/** Switch language in place: reload the catalog, re-apply, and keep ?lang= in the address. */
export async function switchLanguage(lang) {
  await loadLanguage(lang);
  applyTranslations();
  const url = new URL(location.href);
  url.searchParams.set("lang", lang);
  history.replaceState(history.state, "", url);
  window.dispatchEvent(new CustomEvent("languagechange", { detail: lang }));
}
