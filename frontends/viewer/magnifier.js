// The magnifier: while the finger or button is down, a round lens above the pointer shows the
// viewport's pixels around it enlarged (no smoothing: the pixels a reader wants to see).
export const LENS_ZOOM = 2;

export class Magnifier {
  constructor() { this.vp = null; }

  /** True (the tool takes the drag) and the lens shown at viewport point (x, y). */
  start(vp, x, y) {
    this.vp = vp;
    vp.lens.hidden = false;
    this.move(vp, x, y);
    return true;
  }

  move(vp, x, y) {
    if (this.vp !== vp) return false;
    const lens = vp.lens, dpr = window.devicePixelRatio || 1;
    const size = Math.round(Math.min(180, vp.el.clientWidth / 2.5, vp.el.clientHeight / 2.5)); // CSS pixels
    if (lens.width !== size * dpr) { lens.width = lens.height = size * dpr; }
    Object.assign(lens.style, { width: `${size}px`, height: `${size}px`,
      left: `${Math.min(Math.max(0, x - size / 2), vp.el.clientWidth - size)}px`,
      top: `${y - size - 16 >= 0 ? y - size - 16 : Math.min(y + 16, vp.el.clientHeight - size)}px` }); // above the finger
    const ctx = lens.getContext("2d");
    const span = (size * dpr) / LENS_ZOOM; // device pixels of the viewport shown
    ctx.imageSmoothingEnabled = false;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, lens.width, lens.height);
    ctx.drawImage(vp.canvas, x * dpr - span / 2, y * dpr - span / 2, span, span, 0, 0, lens.width, lens.height);
    lens.dataset.at = `${x},${y}`;
    return true;
  }

  end(vp) {
    if (this.vp !== vp) return false;
    vp.lens.hidden = true;
    this.vp = null;
    return true;
  }
}
