// The toolbar (bottom on phones, top on desktops), the presets menu and keyboard shortcuts.
import { t } from "../common/i18n.js";
import { COLORMAPS } from "./colormaps.js";
import { buildLayoutMenu } from "./tile.js";
import { CT_PRESETS } from "./presets.js";

const VIEWING = ["wl", "scroll", "pan", "zoom", "magnify"]; // always on the bar (patients: the first four)
const MEASURE = ["length", "angle", "cobb", "ctr", "point", "roi", "rect", "circle", "polygon", "freehand", "arrow", "text"];

/**
 * The bar holds the viewing tools, cine and a few menus (as mature viewers group them): Measure
 * (the measurement tools, values shown, save), Presets, Image (invert, colour, sharpen, overlays,
 * rotate, flip, lossy / lossless), Layout, Study (compare, report, export, share). One row on a
 * desktop, a scrolling bottom row on a phone; every button keeps its id inside its menu.
 */
export function buildToolbar(nav, menu, viewer, priors) {
  nav.replaceChildren();
  for (const old of document.querySelectorAll(".menu.group")) old.remove();
  const button = (key, action, id, parent = nav) => {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.i18n = key;
    b.textContent = t(key);
    if (id) b.id = id;
    b.addEventListener("click", action);
    parent.append(b);
    return b;
  };
  const group = (key, id) => { // a bar button opening a menu of its own; a choice in it closes it
    const list = document.createElement("div");
    list.className = "menu group";
    list.id = `menu-${id}`;
    list.hidden = true;
    list.addEventListener("click", (e) => { if (e.target.closest("button")) list.hidden = true; });
    nav.after(list);
    const opener = button(key, () => toggleMenu(list, opener), `group-${id}`);
    opener.classList.add("opens");
    opener.setAttribute("aria-haspopup", "true");
    return [list, opener];
  };
  const tool = (name, parent) => {
    const b = button(`viewer.tool.${name}`, () => viewer.setTool(name), `tool-${name}`, parent);
    b.dataset.tool = name;
    return b;
  };
  const toolButtons = VIEWING.filter((name) => !viewer.patientMode || name !== "magnify").map((name) => tool(name));
  let measure = null;
  if (!viewer.patientMode) {
    const [list, opener] = group("viewer.group.measure", "measure");
    toolButtons.push(...MEASURE.map((name) => tool(name, list)));
    addMeasureActions(button, viewer, list);
    measure = opener;
  }
  viewer.onTool = (active) => {
    for (const b of toolButtons) b.setAttribute("aria-pressed", String(b.dataset.tool === active));
    if (!measure) return;
    const chosen = MEASURE.includes(active); // the bar says which measurement tool is on
    measure.dataset.i18n = chosen ? `viewer.tool.${active}` : "viewer.group.measure";
    measure.textContent = t(measure.dataset.i18n);
    measure.setAttribute("aria-pressed", String(chosen));
  };
  closeMenusOutside();
  viewer.onTool(viewer.tools.active);
  const presets = button("viewer.presets", () => toggleMenu(menu, presets), "open-presets"); // W/L presets: viewing, patients too
  presets.classList.add("opens");
  // patient mode (issue 13 part 7): view, W/L, zoom, scroll and cine only; the rest are doctors' tools
  const image = viewer.patientMode ? nav : group("viewer.group.image", "image")[0];
  if (!viewer.patientMode) addImageTools(button, viewer, image);
  const quality = button("viewer.quality.lossless", () => { viewer.setLossy(!viewer.loader.lossy); qualityLabel(); }, "quality", image);
  const qualityLabel = () => {
    quality.dataset.i18n = viewer.loader.lossy ? "viewer.quality.lossy" : "viewer.quality.lossless";
    quality.textContent = t(quality.dataset.i18n);
    quality.setAttribute("aria-pressed", String(viewer.loader.lossy));
  };
  qualityLabel();
  button("viewer.reset", () => { viewer.active.reset(); viewer.measurements.clear(viewer.active); }, "reset");
  const play = button("viewer.cine.play", () => viewer.cine.toggle(), "cine");
  play.classList.add("starts-group");
  const speed = button("viewer.cine.fps", () => viewer.cine.faster(), "cine-speed");
  button("viewer.cine.reverse", () => viewer.cine.reverse(), "cine-reverse");
  if (!viewer.patientMode) addLayout(button, viewer);
  if (!viewer.patientMode) addStudyTools(button, viewer, priors, group("viewer.group.study", "study")[0]);
  const cineChanged = () => {
    play.dataset.i18n = viewer.cine.playing ? "viewer.cine.pause" : "viewer.cine.play";
    play.textContent = t(play.dataset.i18n);
    speed.removeAttribute("data-i18n");
    speed.textContent = t("viewer.cine.fps", { fps: viewer.cine.fps });
  };
  viewer.cine.onChange = cineChanged;
  window.addEventListener("languagechange", cineChanged);
  cineChanged();
  buildPresets(menu, viewer);
}

/** A press outside the bar's menus closes them (the report and share panels have a close button). */
function closeMenusOutside() {
  if (window.yyMenusClose) return;
  window.yyMenusClose = true;
  document.addEventListener("pointerdown", (e) => {
    if (e.target.closest(".menu, #toolbar")) return;
    for (const m of document.querySelectorAll(".menu:not(.report):not(.share)")) m.hidden = true;
  });
}

/** Invert, colour map, sharpen, overlays, rotate, flip: the Image menu. */
function addImageTools(button, viewer, list) {
  button("viewer.invert", () => viewer.active.set({ invert: !viewer.active.view.invert }), "invert", list);
  const colour = button("viewer.colormap", () => {
    viewer.active.set({ colormap: COLORMAPS[(COLORMAPS.indexOf(viewer.active.view.colormap || "grey") + 1) % COLORMAPS.length] });
    colourLabel();
  }, "colormap", list);
  colour.removeAttribute("data-i18n");
  const colourLabel = () => { colour.textContent = t(`viewer.colormap.${viewer.active.view.colormap || "grey"}`); };
  colourLabel();
  window.addEventListener("languagechange", colourLabel);
  const sharpen = button("viewer.sharpen", () => {
    viewer.active.set({ sharpen: viewer.active.view.sharpen ? 0 : 1 });
    sharpen.setAttribute("aria-pressed", String(!!viewer.active.view.sharpen));
  }, "sharpen", list);
  sharpen.setAttribute("aria-pressed", "false");
  const overlays = button("viewer.overlays", () => { // the overlay planes (60xx) of the image on or off
    viewer.active.set({ overlays: viewer.active.view.overlays === false });
    overlays.setAttribute("aria-pressed", String(viewer.active.view.overlays));
  }, "overlays", list);
  overlays.setAttribute("aria-pressed", "true");
  button("viewer.rotate", () => viewer.active.set({ rotate: (viewer.active.view.rotate + 90) % 360 }), "rotate", list);
  button("viewer.flip", () => viewer.active.set({ flipH: !viewer.active.view.flipH }), "flip", list);
}

/** Show `menu` (hiding the other menus) or hide it; true when it is now shown. On a desktop a
 * menu opens under the bar button `from`; on a phone it is a sheet above the bottom bar (CSS). */
function toggleMenu(menu, from) {
  const show = menu.hidden;
  for (const other of document.querySelectorAll(".menu")) other.hidden = true;
  menu.hidden = !show;
  if (show && from && matchMedia("(min-width: 900px)").matches && !menu.matches(".report, .share")) {
    const r = from.getBoundingClientRect();
    Object.assign(menu.style, { top: `${r.bottom + 4}px`, left: `${Math.max(8, Math.min(r.left, innerWidth - menu.offsetWidth - 8))}px` });
  } else menu.style.top = menu.style.left = "";
  return show;
}

/** The measurements' values shown or hidden, and saving them: in the Measure menu. */
function addMeasureActions(button, viewer, list) {
  const values = button("viewer.values", () => { // the measurements' numbers on or off (the shapes stay)
    const hidden = document.querySelector("#viewports").classList.toggle("hide-values");
    values.setAttribute("aria-pressed", String(!hidden));
  }, "values", list);
  values.setAttribute("aria-pressed", "true");
  values.classList.add("starts-group");
  button("viewer.save", () => viewer.save(), "save", list);
}

/** Compare, the study's report, export, sharing: the Study menu, doctors only. */
function addStudyTools(button, viewer, priors, list) {
  const opener = document.querySelector("#group-study");
  button("viewer.compare", () => {
    if (!toggleMenu(priors, opener)) return;
    import("./compare.js").then(({ showPriors }) => showPriors(viewer, priors)).catch((err) => console.warn(err.message));
  }, "compare", list);
  const reportPanel = document.querySelector("#report");
  const report = button("viewer.report", () => {
    if (!toggleMenu(reportPanel)) return;
    import("./report.js").then((m) => m.showReports(viewer, reportPanel, viewer.reports || []));
  }, "report-open", list);
  report.hidden = !viewer.reports?.length; // shown once the study turns out to have a report
  viewer.onReports = () => { report.hidden = !viewer.reports?.length; };
  const exports = document.querySelector("#exports");
  button("viewer.export", () => { if (toggleMenu(exports, opener)) buildExports(exports, viewer); }, "export", list);
  if (viewer.me?.permissions?.includes("shares.manage")) { // a doctor shares the study with their department
    const panel = document.querySelector("#share");
    button("viewer.share", () => {
      if (toggleMenu(panel)) import("./share.js").then((m) => m.showShares(viewer, panel)).catch((err) => console.warn(err.message));
    }, "share-open", list);
  }
}

function addLayout(button, viewer) {
  const sync = button("viewer.sync", () => {
    viewer.sync = !viewer.sync;
    sync.setAttribute("aria-pressed", String(viewer.sync));
    viewer.followers(viewer.active, true);
  }, "sync");
  sync.setAttribute("aria-pressed", "false");
  sync.classList.add("starts-group");
  const layouts = document.querySelector("#layouts");
  const layout = button("viewer.layout", () => { if (toggleMenu(layouts, layout)) buildLayoutMenu(layouts, viewer, layoutLabel); }, "layout");
  layout.classList.add("opens");
  layout.removeAttribute("data-i18n"); // its text carries the layout too
  const layoutLabel = () => { layout.textContent = `${t("viewer.layout")} ${viewer.layout.replace("x", "×")}${viewer.tiled ? " ▦" : ""}`; };
  layoutLabel();
  window.addEventListener("languagechange", layoutLabel);
}

function buildPresets(menu, viewer) {
  menu.replaceChildren();
  const add = (key, apply) => {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.i18n = key;
    b.textContent = t(key);
    b.addEventListener("click", () => { apply(); menu.hidden = true; });
    menu.append(b);
  };
  add("viewer.preset.default", () => viewer.active.reset());
  for (const [name, [c, w]] of Object.entries(CT_PRESETS)) add(`viewer.preset.${name}`, () => viewer.active.setWindow(c, w));
  add("viewer.preset.custom", () => {
    const v = viewer.active.view;
    const answer = prompt(t("viewer.preset.customPrompt"), `${Math.round(v.width)} ${Math.round(v.center)}`);
    const [w, c] = (answer || "").split(/[\s,/]+/).map(Number);
    if (Number.isFinite(w) && Number.isFinite(c) && w > 0) viewer.active.setWindow(c, w);
  });
}

/** The export menu: the viewport as JPEG, images from..to as PNG or JPEG, the series as MP4. */
function buildExports(menu, viewer) {
  const vp = viewer.active, n = vp.series?.images.length || 1;
  menu.innerHTML = `<button type="button" id="export-shot"></button>
    <label><span></span> <input id="export-from" type="number" min="1" max="${n}" value="${vp.index + 1}"></label>
    <label><span></span> <input id="export-to" type="number" min="1" max="${n}" value="${vp.index + 1}"></label>
    <button type="button" id="export-png"></button><button type="button" id="export-jpeg"></button>
    <button type="button" id="export-mp4"></button>`;
  const texts = { "#export-shot": "viewer.export.shot", "#export-png": "viewer.export.png", "#export-jpeg": "viewer.export.jpeg",
    "#export-mp4": "viewer.export.mp4", "label:nth-of-type(1) span": "viewer.export.from", "label:nth-of-type(2) span": "viewer.export.to" };
  for (const [sel, key] of Object.entries(texts)) { const el = menu.querySelector(sel); el.dataset.i18n = key; el.textContent = t(key); }
  const run = (work) => async () => {
    menu.hidden = true;
    viewer.status?.("viewer.export.working");
    try {
      const m = await import("./export.js");
      await work(m);
      viewer.status?.("");
    } catch (err) {
      console.warn("export failed:", err.message);
      viewer.status?.("viewer.export.failed");
    }
  };
  const range = () => [Number(menu.querySelector("#export-from").value) || 1, Number(menu.querySelector("#export-to").value) || 1];
  menu.querySelector("#export-shot").addEventListener("click", run(async (m) => m.download(await m.screenshot(vp), "viewport.jpg")));
  menu.querySelector("#export-png").addEventListener("click", run((m) => m.exportImages(vp, ...range(), "image/png")));
  menu.querySelector("#export-jpeg").addEventListener("click", run((m) => m.exportImages(vp, ...range(), "image/jpeg")));
  menu.querySelector("#export-mp4").addEventListener("click", run((m) => m.exportCine(vp, viewer.cine.fps)));
}

export function attachKeys(viewer) {
  window.addEventListener("keydown", (e) => {
    if (e.target.closest("input, textarea, select")) return;
    const vp = viewer.active;
    const n = vp.series?.images.length || 1;
    const step = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1, PageDown: 10, PageUp: -10 }[e.key];
    if (step) { vp.scroll(step); e.preventDefault(); return; }
    if (e.key === "Home") vp.setIndex(0);
    else if (e.key === "End") vp.setIndex(n - 1);
    else if (e.key >= "1" && e.key <= "7") vp.setWindow(...Object.values(CT_PRESETS)[Number(e.key) - 1]);
    else if (e.key === "i" && !viewer.patientMode) vp.set({ invert: !vp.view.invert });
    else if (e.key === "r") vp.reset();
    else if (e.key === "w") viewer.setTool("wl");
    else if (e.key === "s") viewer.setTool("scroll");
    else if (e.key === "p") viewer.setTool("pan");
    else if (e.key === "z") viewer.setTool("zoom");
    else if (e.key === "l" && !viewer.patientMode) viewer.setTool("length");
    else if (e.key === "m" && !viewer.patientMode) viewer.setTool("magnify");
    else if (e.key === " ") { viewer.cine.toggle(); e.preventDefault(); }
    else if (e.key === "Escape") viewer.measurements.cancel(vp);
  });
}
