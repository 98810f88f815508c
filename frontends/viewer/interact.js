// Pointer, wheel and touch gestures on a viewport: the active tool on one finger / left button,
// pinch (two fingers) zooms and pans, wheel scrolls the stack (ctrl/pinch-wheel zooms).
import { dragSensitivity } from "./presets.js";

const SCROLL_PX = 8; // finger travel per slice with the scroll tool

export function attachGestures(vp, tools) {
  const el = vp.el;
  const pointers = new Map();
  let drag = null;
  let pinch = null;
  let wheelRest = 0;

  const local = (e) => { const r = el.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };

  function startPinch() {
    const [a, b] = [...pointers.values()];
    pinch = { dist: Math.hypot(a[0] - b[0], a[1] - b[1]) || 1, mid: [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2],
      zoom: vp.view.zoom, panX: vp.view.panX, panY: vp.view.panY };
    drag = null;
  }

  el.addEventListener("pointerdown", (e) => {
    if (e.target.closest(".scrollbar")) return;
    el.setPointerCapture(e.pointerId);
    pointers.set(e.pointerId, local(e));
    if (pointers.size === 2) { tools.cancel?.(vp); startPinch(); return; }
    if (pointers.size > 2) return;
    const tool = e.pointerType === "mouse" && e.button === 1 ? "pan" : e.pointerType === "mouse" && e.button === 2 ? "zoom" : tools.active;
    const [x, y] = local(e);
    drag = { tool, x0: x, y0: y, x, y, view: { ...vp.view }, index: vp.index };
    if (tools.start?.(vp, tool, x, y)) drag.handled = true;
  });

  el.addEventListener("pointermove", (e) => {
    if (!pointers.has(e.pointerId)) return;
    pointers.set(e.pointerId, local(e));
    if (pinch && pointers.size >= 2) {
      const [a, b] = [...pointers.values()];
      const dist = Math.hypot(a[0] - b[0], a[1] - b[1]) || 1;
      const mid = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
      zoomAt(vp, pinch, pinch.zoom * (dist / pinch.dist), pinch.mid, mid);
      return;
    }
    if (!drag) return;
    const [x, y] = local(e);
    const dx = x - drag.x0, dy = y - drag.y0;
    if (drag.handled) { tools.move?.(vp, x, y); return; }
    switch (drag.tool) {
      case "wl": {
        const s = dragSensitivity(vp.series?.modality, vp.stats);
        vp.setWindow(drag.view.center + dy * s, drag.view.width + dx * s);
        break;
      }
      case "pan": vp.set({ panX: drag.view.panX + dx, panY: drag.view.panY + dy }); break;
      case "zoom": vp.set({ zoom: clampZoom(drag.view.zoom * Math.exp(-dy / 150)) }); break;
      case "scroll": vp.setIndex(drag.index + Math.round(dy / SCROLL_PX)); break;
      default: break;
    }
  });

  const end = (e) => {
    pointers.delete(e.pointerId);
    if (drag?.handled) tools.end?.(vp);
    if (pointers.size < 2) pinch = null;
    if (pointers.size === 0) drag = null;
  };
  el.addEventListener("pointerup", end);
  el.addEventListener("pointercancel", end);
  el.addEventListener("contextmenu", (e) => e.preventDefault());

  el.addEventListener("wheel", (e) => {
    e.preventDefault();
    const dy = e.deltaMode === 1 ? e.deltaY * 40 : e.deltaY;
    if (e.ctrlKey || e.metaKey) { // trackpad pinch arrives as ctrl+wheel
      const p = local(e);
      zoomAt(vp, { zoom: vp.view.zoom, panX: vp.view.panX, panY: vp.view.panY, mid: p }, vp.view.zoom * Math.exp(-dy / 300), p, p);
      return;
    }
    // one mouse notch = one slice; a trackpad's small deltas add up to one
    wheelRest = Math.abs(dy) >= 50 ? dy : wheelRest + dy;
    if (Math.abs(wheelRest) >= 50) { vp.scroll(Math.sign(wheelRest)); wheelRest = 0; }
  }, { passive: false });
}

function clampZoom(z) { return Math.min(40, Math.max(0.1, z)); }

/** Zoom to `zoom` keeping the image point under `from` (at the start) under `to` (now). */
function zoomAt(vp, start, zoom, from, to) {
  zoom = clampZoom(zoom);
  const w = vp.el.clientWidth, h = vp.el.clientHeight;
  const k = zoom / start.zoom;
  // the point's offset from the pan-shifted centre scales with the zoom
  const ox = from[0] - w / 2 - start.panX, oy = from[1] - h / 2 - start.panY;
  vp.set({ zoom, panX: to[0] - w / 2 - ox * k, panY: to[1] - h / 2 - oy * k });
}

/** The slice scrollbar on the viewport's right edge: drag the thumb (or tap the track). */
export function attachScrollbar(vp) {
  const bar = vp.el.querySelector(".scrollbar"), thumb = bar.querySelector(".thumb");
  const place = () => {
    const n = vp.series?.images.length || 1;
    bar.hidden = n < 2;
    const h = Math.max(24, bar.clientHeight / n);
    thumb.style.height = `${h}px`;
    thumb.style.transform = `translateY(${(bar.clientHeight - h) * (vp.index / Math.max(1, n - 1))}px)`;
  };
  vp.onChange(place);
  const go = (e) => {
    const r = bar.getBoundingClientRect(), n = vp.series?.images.length || 1;
    vp.setIndex(Math.round(((e.clientY - r.top) / r.height) * (n - 1)));
  };
  bar.addEventListener("pointerdown", (e) => { e.stopPropagation(); bar.setPointerCapture(e.pointerId); go(e); });
  bar.addEventListener("pointermove", (e) => { if (bar.hasPointerCapture(e.pointerId)) go(e); });
}
