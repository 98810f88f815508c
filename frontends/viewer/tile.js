// The layout menu (1x1 ... 6x8 and a custom grid up to 8x8) and tiling: the images of the active
// series over all viewports, viewport k showing image first + k; scrolling any tile pages them
// all, and the window, invert, colour map and orientation of the active tile apply to every tile.
import { t } from "../common/i18n.js";

export const LAYOUTS = ["1x1", "1x2", "2x2", "2x3", "3x4", "4x6", "6x8"];
const MAX_SIDE = 8;
const SHARED = ["center", "width", "invert", "colormap", "sharpen", "rotate", "flipH", "zoom", "panX", "panY"];

/** "3x4", "3 4", "3×4" -> "3x4" when both sides are 1..8; else null. */
export function parseLayout(text) {
  const m = /^\s*(\d+)\s*[x×*,\s]\s*(\d+)\s*$/i.exec(text || "");
  if (!m) return null;
  const [rows, cols] = [Number(m[1]), Number(m[2])];
  return rows >= 1 && cols >= 1 && rows <= MAX_SIDE && cols <= MAX_SIDE ? `${rows}x${cols}` : null;
}

/** The menu's buttons: each layout, a custom grid, tiling on / off. `changed` relabels the toolbar. */
export function buildLayoutMenu(menu, viewer, changed) {
  menu.replaceChildren();
  const add = (text, key, action, id) => {
    const b = document.createElement("button");
    b.type = "button";
    if (key) { b.dataset.i18n = key; b.textContent = t(key); } else b.textContent = text;
    if (id) b.id = id;
    b.addEventListener("click", async () => { menu.hidden = true; await action(); changed(); });
    menu.append(b);
    return b;
  };
  for (const layout of LAYOUTS) add(layout.replace("x", "×"), null, () => applyLayout(viewer, layout), `layout-${layout}`);
  add(null, "viewer.layout.custom", () => {
    const layout = parseLayout(prompt(t("viewer.layout.customPrompt"), viewer.layout));
    return layout ? applyLayout(viewer, layout) : undefined;
  }, "layout-custom");
  const tile = add(null, "viewer.layout.tile", () => { viewer.tiled = !viewer.tiled; if (viewer.tiled) retile(viewer); }, "layout-tile");
  tile.setAttribute("aria-pressed", String(!!viewer.tiled));
}

async function applyLayout(viewer, layout) {
  await viewer.setLayout(layout);
  if (viewer.tiled) retile(viewer);
}

/** Tiling's paging and shared view: every viewport's change is seen here (layout.js). */
export function attachTiling(viewer) {
  viewer.tiled = false;
  let following = false;
  viewer.tileFollow = (leader) => {
    if (!viewer.tiled || following || leader !== viewer.active || !leader.series) return;
    const at = viewer.viewports.indexOf(leader);
    following = true; // the tiles' own changes must not lead in turn
    try {
      viewer.viewports.forEach((vp, k) => { if (vp !== leader) showTile(vp, leader.series, leader.index - at + k, leader.view); });
    } finally {
      following = false;
    }
  };
}

/** Tile the active series from the active image on. */
function retile(viewer) {
  const leader = viewer.active, series = leader?.series;
  if (!series) return;
  const at = viewer.viewports.indexOf(leader), n = viewer.viewports.length;
  const first = Math.max(0, Math.min(leader.index - at, series.images.length - n)); // a full page where the series allows
  if (leader.index !== first + at) leader.setIndex(first + at);
  viewer.tileFollow(leader);
}

function showTile(vp, series, i, view) {
  if (i < 0 || i >= series.images.length) { // past either end of the series: an empty tile
    vp.series = null;
    vp.image = null;
    for (const corner of Object.values(vp.corners)) corner.textContent = "";
    vp.invalidate();
    return;
  }
  const shared = Object.fromEntries(SHARED.map((k) => [k, view[k]]));
  if (vp.series !== series) vp.setSeries(series, i);
  else if (vp.index !== i) vp.setIndex(i);
  vp.windowSet = true;
  vp.set(shared);
}
