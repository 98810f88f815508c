// The study list's dates: text fields in ISO form (YYYY-MM-DD, also the Chinese national form)
// with a localized placeholder and a month calendar whose month and weekday names follow the
// page's language (Intl), not the browser's; <input type=date> shows the browser's own
// mm/dd/yyyy in a zh-CN page. Typed dates are accepted as 2024-3-1, 2024/3/1, 20240301, 2024年3月1日.
import { language, t } from "../common/i18n.js";

const pad = (n) => String(n).padStart(2, "0");
export const iso = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;

/** "YYYY-MM-DD" for a typed date, "" for nothing, null for something that is not a date. */
export function normalizeDate(text) {
  const s = String(text || "").trim();
  if (!s) return "";
  const m = s.match(/^(\d{4})[-/.年]?(\d{1,2})[-/.月]?(\d{1,2})日?$/) || s.match(/^(\d{4})(\d{2})(\d{2})$/);
  if (!m) return null;
  const d = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  return d.getFullYear() === Number(m[1]) && d.getMonth() === Number(m[2]) - 1 && d.getDate() === Number(m[3]) ? iso(d) : null;
}

function check(input) {
  const v = normalizeDate(input.value);
  if (v !== null) input.value = v;
  input.setAttribute("aria-invalid", String(v === null));
}

/** A calendar below `input` (one at a time); picking a day fills the field. */
function openCalendar(input, shown) {
  document.querySelector(".calendar")?.remove();
  const box = document.createElement("div");
  box.className = "calendar";
  box.setAttribute("role", "dialog");
  const lang = language();
  const draw = (month) => {
    box.replaceChildren();
    const head = document.createElement("div");
    head.className = "cal-head";
    const nav = (text, delta, cls) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = cls;
      b.textContent = text;
      b.addEventListener("click", () => draw(new Date(month.getFullYear(), month.getMonth() + delta, 1)));
      return b;
    };
    const title = document.createElement("span");
    title.className = "cal-title";
    title.textContent = new Intl.DateTimeFormat(lang, { year: "numeric", month: "long" }).format(month);
    head.append(nav("‹", -1, "cal-prev"), title, nav("›", 1, "cal-next"));
    const grid = document.createElement("div");
    grid.className = "cal-grid";
    const weekday = new Intl.DateTimeFormat(lang, { weekday: "narrow" });
    for (let i = 0; i < 7; i++) { // Monday first (GB/T 7408, and most of the world)
      const w = document.createElement("span");
      w.className = "cal-wd";
      w.textContent = weekday.format(new Date(2024, 0, 1 + i));
      grid.append(w);
    }
    const lead = (new Date(month.getFullYear(), month.getMonth(), 1).getDay() + 6) % 7;
    for (let i = 0; i < lead; i++) grid.append(document.createElement("span"));
    const days = new Date(month.getFullYear(), month.getMonth() + 1, 0).getDate();
    for (let d = 1; d <= days; d++) {
      const b = document.createElement("button");
      b.type = "button";
      const value = iso(new Date(month.getFullYear(), month.getMonth(), d));
      b.textContent = String(d);
      b.dataset.date = value;
      if (value === input.value) b.className = "picked";
      b.addEventListener("click", () => {
        input.value = value;
        check(input);
        box.remove();
        input.dispatchEvent(new Event("change", { bubbles: true }));
      });
      grid.append(b);
    }
    box.append(head, grid);
  };
  draw(shown);
  document.body.append(box);
  const r = input.getBoundingClientRect(), width = Math.min(280, innerWidth - 16);
  Object.assign(box.style, { width: `${width}px`, left: `${Math.max(8, Math.min(r.left, innerWidth - width - 8))}px`,
    top: `${Math.min(r.bottom + 4, innerHeight - 300)}px` });
  const close = (e) => {
    if (box.contains(e.target) || e.target === input || e.target.closest?.(".cal-open")) return;
    box.remove();
    document.removeEventListener("pointerdown", close, true);
  };
  document.addEventListener("pointerdown", close, true);
}

/** Make the form's date fields ISO text with a calendar button and quick ranges. */
export function attachDatePickers(form, quick) {
  for (const input of form.querySelectorAll("input.date")) {
    input.addEventListener("change", () => check(input));
    const open = document.createElement("button");
    open.type = "button";
    open.className = "cal-open";
    open.dataset.i18nAriaLabel = "viewer.list.calendar";
    open.setAttribute("aria-label", t("viewer.list.calendar"));
    open.textContent = "▦";
    open.addEventListener("click", () => { // an empty field opens at the other field's month
      const v = normalizeDate(input.value) || normalizeDate(form.elements[input.name === "from" ? "to" : "from"].value);
      openCalendar(input, v ? new Date(`${v}T00:00`) : new Date());
    });
    input.after(open);
  }
  for (const [key, days] of [["viewer.list.today", 0], ["viewer.list.week", 6], ["viewer.list.month", 29], ["viewer.list.anyDate", null]]) {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.i18n = key;
    b.textContent = t(key);
    b.addEventListener("click", () => {
      const today = new Date();
      form.elements.from.value = days === null ? "" : iso(new Date(today.getFullYear(), today.getMonth(), today.getDate() - days));
      form.elements.to.value = days === null ? "" : iso(today);
      form.requestSubmit();
    });
    quick.append(b);
  }
}
