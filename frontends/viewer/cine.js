// Cine: play the stack at a frame rate (the header's for multi-frame cine, else 30 fps), forward
// or reverse, looping. A slice not yet in memory holds the clock instead of showing a blank.
import { value } from "./series.js";

export const SPEEDS = [5, 10, 15, 20, 30, 60];

export class Cine {
  constructor(vp) {
    this.vp = vp;
    this.playing = false;
    this.fps = 30;
    this.direction = 1;
    this.shown = 0; // frames shown since start (for the measured rate)
    this.started = 0;
  }

  /** The rate a series asks for: RecommendedDisplayFrameRate or 1000 / FrameTime, else 30. */
  static defaultFps(series) {
    const ds = series?.images[0]?.ds;
    const rate = Number(value(ds, "RecommendedDisplayFrameRate")) || 1000 / Number(value(ds, "FrameTime"));
    return Number.isFinite(rate) && rate > 0 ? Math.min(60, Math.round(rate)) : 30;
  }

  toggle() { if (this.playing) this.stop(); else this.start(); }

  start() {
    if (this.playing || !this.vp.series) return;
    this.playing = true;
    this.shown = 0;
    this.started = performance.now();
    let next = this.started;
    const tick = (now) => {
      if (!this.playing) return;
      if (now >= next) {
        const n = this.vp.series.images.length;
        const i = (this.vp.index + this.direction + n) % n;
        if (this.vp.loader.cached(this.vp.series, i)) {
          this.vp.setIndex(i);
          this.shown++;
          // keep the rhythm without drifting; after a stall, restart it from now
          next = now - next > 250 ? now + 1000 / this.fps : next + 1000 / this.fps;
        } else {
          this.vp.loader.load(this.vp.series, i, 0).catch(() => {});
        }
      }
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    this.onChange?.();
  }

  stop() { this.playing = false; this.onChange?.(); }

  /** Frames shown per second since start. */
  measured() { return (this.shown * 1000) / Math.max(1, performance.now() - this.started); }

  /** The next speed, wrapping from the fastest to the slowest (one button on a phone). */
  faster() { this.fps = SPEEDS[(SPEEDS.indexOf(this.fps) + 1) % SPEEDS.length]; this.onChange?.(); }
  slower() { this.fps = SPEEDS[Math.max(0, SPEEDS.indexOf(this.fps) - 1)] || 30; this.onChange?.(); }
  reverse() { this.direction = -this.direction; this.onChange?.(); }
}
