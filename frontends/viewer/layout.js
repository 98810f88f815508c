// Viewport layouts (any RxC grid; the menu offers 1x1 to 6x8 and custom, tile.js): one series
// per viewport, or the images of one series tiled; the tapped one active; a series card loads
// into the active viewport.
import { attachGestures, attachScrollbar } from "./interact.js";
import { attachReferences } from "./refs.js";
import { Viewport } from "./viewport.js";

const SERIES_DRAG = "application/x-yunying-series"; // a thumbnail dragged from the series strip

export function createViewport(viewer, el, rendererKind) {
  const vp = new Viewport(el, viewer.loader, rendererKind);
  attachGestures(vp, viewer.tools);
  attachScrollbar(vp);
  el.addEventListener("drawn", () => viewer.measurements.render(vp));
  attachReferences(viewer, vp);
  vp.onChange(() => { viewer.followers?.(vp); viewer.tileFollow?.(vp); });
  el.addEventListener("pointerdown", () => activate(viewer, vp), true);
  el.addEventListener("dragover", (e) => { if (e.dataTransfer.types.includes(SERIES_DRAG)) e.preventDefault(); });
  el.addEventListener("drop", (e) => {
    const uid = e.dataTransfer.getData(SERIES_DRAG);
    if (!uid) return;
    e.preventDefault();
    activate(viewer, vp);
    viewer.openSeries(uid, vp);
  });
  viewer.viewports.push(vp);
  return vp;
}

export function activate(viewer, vp) {
  if (viewer.active === vp) return;
  viewer.cine?.stop();
  viewer.active = vp;
  for (const other of viewer.viewports) other.el.classList.toggle("active", other === vp);
  viewer.onActivate?.(vp);
}

/** Switch to `layout` ("RxC"); new viewports get the next series of `seriesOrder`. */
export async function setLayout(viewer, layout, seriesOrder, loadSeries, rendererKind) {
  const [rows, cols] = layout.split("x").map(Number);
  const grid = document.querySelector("#viewports");
  const template = viewer.viewports[0].el;
  grid.style.gridTemplateRows = `repeat(${rows}, minmax(0, 1fr))`;
  grid.style.gridTemplateColumns = `repeat(${cols}, minmax(0, 1fr))`;
  grid.className = `layout-${layout}${rows * cols > 6 ? " dense" : ""}`; // dense: small tiles, fewer corner texts
  const n = rows * cols;
  while (viewer.viewports.length > n) {
    const vp = viewer.viewports.pop();
    if (viewer.active === vp) activate(viewer, viewer.viewports[0]);
    vp.destroy();
  }
  const shown = new Set(viewer.viewports.map((vp) => vp.series?.series));
  while (viewer.viewports.length < n) {
    const el = template.cloneNode(false);
    el.innerHTML = TEMPLATE;
    el.classList.remove("active");
    grid.append(el);
    const vp = createViewport(viewer, el, rendererKind);
    const next = seriesOrder.find((uid) => !shown.has(uid)) || seriesOrder[0];
    shown.add(next);
    if (next && !viewer.tiled) loadSeries(next).then((s) => vp.setSeries(s)).catch(() => {}); // tiled: tile.js fills it
  }
  viewer.layout = layout;
}

const TEMPLATE = `<canvas></canvas><img class="preview" alt="" hidden><svg class="refs"></svg><svg class="marks"></svg><canvas class="lens" hidden></canvas>
<div class="corner tl"></div><div class="corner tr"></div><div class="corner bl"></div><div class="corner br"></div>
<div class="scrollbar" hidden><div class="thumb"></div></div>`;
