// The toolbar (bottom on phones, top on desktops), the presets menu and keyboard shortcuts.
import { t } from "../common/i18n.js";
import { COLORMAPS } from "./colormaps.js";
import { buildLayoutMenu } from "./tile.js";
import { CT_PRESETS } from "./presets.js";

const TOOLS = ["wl", "scroll", "pan", "zoom", "magnify", "length", "angle", "roi", "rect", "circle", "freehand", "polygon", "cobb", "ctr", "point", "arrow", "text"];
const VIEWING = new Set(["wl", "scroll", "pan", "zoom"]); // patient mode: viewing tools only

export function buildToolbar(nav, menu, viewer, priors) {
  nav.replaceChildren();
  const button = (key, action, id) => {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.i18n = key;
    b.textContent = t(key);
    if (id) b.id = id;
    b.addEventListener("click", action);
    nav.append(b);
    return b;
  };
  const toolButtons = TOOLS.filter((tool) => !viewer.patientMode || VIEWING.has(tool)).map((tool) => {
    const b = button(`viewer.tool.${tool}`, () => viewer.setTool(tool), `tool-${tool}`);
    b.dataset.tool = tool;
    return b;
  });
  viewer.onTool = (tool) => { for (const b of toolButtons) b.setAttribute("aria-pressed", String(b.dataset.tool === tool)); };
  viewer.onTool(viewer.tools.active);
  button("viewer.presets", () => toggleMenu(menu), "open-presets"); // W/L presets: viewing, patients too
  // patient mode (issue 13 part 7): view, W/L, zoom, scroll and cine only; the rest are doctors' tools
  if (!viewer.patientMode) {
    button("viewer.invert", () => viewer.active.set({ invert: !viewer.active.view.invert }), "invert");
    const colour = button("viewer.colormap", () => {
      viewer.active.set({ colormap: COLORMAPS[(COLORMAPS.indexOf(viewer.active.view.colormap || "grey") + 1) % COLORMAPS.length] });
      colourLabel();
    }, "colormap");
    colour.removeAttribute("data-i18n");
    const colourLabel = () => { colour.textContent = t(`viewer.colormap.${viewer.active.view.colormap || "grey"}`); };
    colourLabel();
    window.addEventListener("languagechange", colourLabel);
    const sharpen = button("viewer.sharpen", () => {
      viewer.active.set({ sharpen: viewer.active.view.sharpen ? 0 : 1 });
      sharpen.setAttribute("aria-pressed", String(!!viewer.active.view.sharpen));
    }, "sharpen");
    sharpen.setAttribute("aria-pressed", "false");
    const overlays = button("viewer.overlays", () => { // the overlay planes (60xx) of the image on or off
      viewer.active.set({ overlays: viewer.active.view.overlays === false });
      overlays.setAttribute("aria-pressed", String(viewer.active.view.overlays));
    }, "overlays");
    overlays.setAttribute("aria-pressed", "true");
    button("viewer.rotate", () => viewer.active.set({ rotate: (viewer.active.view.rotate + 90) % 360 }), "rotate");
    button("viewer.flip", () => viewer.active.set({ flipH: !viewer.active.view.flipH }), "flip");
  }
  const quality = button("viewer.quality.lossless", () => { viewer.setLossy(!viewer.loader.lossy); qualityLabel(); }, "quality");
  const qualityLabel = () => {
    quality.dataset.i18n = viewer.loader.lossy ? "viewer.quality.lossy" : "viewer.quality.lossless";
    quality.textContent = t(quality.dataset.i18n);
    quality.setAttribute("aria-pressed", String(viewer.loader.lossy));
  };
  qualityLabel();
  button("viewer.reset", () => { viewer.active.reset(); viewer.measurements.clear(viewer.active); }, "reset");
  const play = button("viewer.cine.play", () => viewer.cine.toggle(), "cine");
  const speed = button("viewer.cine.fps", () => viewer.cine.faster(), "cine-speed");
  button("viewer.cine.reverse", () => viewer.cine.reverse(), "cine-reverse");
  if (!viewer.patientMode) addLayout(button, viewer);
  if (!viewer.patientMode) addDoctorTools(button, viewer, priors);
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

/** Show `menu` (hiding the other menus) or hide it; true when it is now shown. */
function toggleMenu(menu) {
  const show = menu.hidden;
  for (const other of document.querySelectorAll(".menu")) other.hidden = true;
  menu.hidden = !show;
  return show;
}

/** Saving measurements, compare, the study's report, export, sharing: doctors only. */
function addDoctorTools(button, viewer, priors) {
  const values = button("viewer.values", () => { // the measurements' numbers on or off (the shapes stay)
    const hidden = document.querySelector("#viewports").classList.toggle("hide-values");
    values.setAttribute("aria-pressed", String(!hidden));
  }, "values");
  values.setAttribute("aria-pressed", "true");
  button("viewer.save", () => viewer.save(), "save");
  button("viewer.compare", () => {
    if (!toggleMenu(priors)) return;
    import("./compare.js").then(({ showPriors }) => showPriors(viewer, priors)).catch((err) => console.warn(err.message));
  }, "compare");
  const reportPanel = document.querySelector("#report");
  const report = button("viewer.report", () => {
    if (!toggleMenu(reportPanel)) return;
    import("./report.js").then((m) => m.showReports(viewer, reportPanel, viewer.reports || []));
  }, "report-open");
  report.hidden = !viewer.reports?.length; // shown once the study turns out to have a report
  viewer.onReports = () => { report.hidden = !viewer.reports?.length; };
  const exports = document.querySelector("#exports");
  button("viewer.export", () => { if (toggleMenu(exports)) buildExports(exports, viewer); }, "export");
  if (viewer.me?.permissions?.includes("shares.manage")) { // a doctor shares the study with their department
    const panel = document.querySelector("#share");
    button("viewer.share", () => {
      if (toggleMenu(panel)) import("./share.js").then((m) => m.showShares(viewer, panel)).catch((err) => console.warn(err.message));
    }, "share-open");
  }
}

function addLayout(button, viewer) {
  const sync = button("viewer.sync", () => {
    viewer.sync = !viewer.sync;
    sync.setAttribute("aria-pressed", String(viewer.sync));
    viewer.followers(viewer.active, true);
  }, "sync");
  sync.setAttribute("aria-pressed", "false");
  const layouts = document.querySelector("#layouts");
  const layout = button("viewer.layout", () => { if (toggleMenu(layouts)) buildLayoutMenu(layouts, viewer, layoutLabel); }, "layout");
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
