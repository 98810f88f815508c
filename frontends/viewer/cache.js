// Decoded frames kept in memory within a byte budget (a 1000-image series must not exhaust a
// phone), fetched through a small priority queue that prefetches around the current slice.
// Frames dropped here stay in the browser's HTTP cache (ETag, max-age), so coming back is cheap.

/** A touch screen narrower than 600 CSS pixels. */
export function isPhone() {
  return matchMedia("(pointer: coarse)").matches && Math.min(screen.width, screen.height) < 600;
}

/** The memory budget for decoded pixels: smaller on phones (deviceMemory where the browser says). */
export function defaultBudget() {
  const gb = navigator.deviceMemory || 4;
  const mb = isPhone() ? Math.min(160, gb * 32) : Math.min(512, gb * 96);
  return mb * 1024 * 1024;
}

export class FrameCache {
  constructor(budget = defaultBudget()) {
    this.budget = budget;
    this.bytes = 0;
    this.map = new Map(); // insertion order = least recently used first
  }

  get(key) {
    const entry = this.map.get(key);
    if (entry) { this.map.delete(key); this.map.set(key, entry); }
    return entry;
  }

  has(key) { return this.map.has(key); }

  put(key, entry) {
    if (this.map.has(key)) this.bytes -= this.map.get(key).pixels.byteLength;
    this.map.set(key, entry);
    this.bytes += entry.pixels.byteLength;
    for (const [k, e] of this.map) {
      if (this.bytes <= this.budget || k === key) break;
      this.map.delete(k);
      this.bytes -= e.pixels.byteLength;
      e.bitmap?.close(); // a rendered image's decoded pixels
    }
  }

  /** How many frames of `bytesEach` fit: the prefetch window must stay below it. */
  capacity(bytesEach) { return Math.max(1, Math.floor(this.budget / Math.max(1, bytesEach))); }
}

/** Runs fetch jobs `concurrency` at a time, highest priority first; re-prioritised on scroll. */
export class FetchQueue {
  constructor(concurrency = 6) {
    this.concurrency = concurrency;
    this.running = 0;
    this.jobs = new Map(); // key -> {priority, run, resolve, reject}
    this.inflight = new Map(); // key -> promise
  }

  /** Enqueue (or re-prioritise) `key`; lower priority numbers run first. */
  request(key, priority, run) {
    if (this.inflight.has(key)) return this.inflight.get(key);
    const queued = this.jobs.get(key);
    if (queued) { queued.priority = Math.min(queued.priority, priority); return queued.promise; }
    const job = { priority, run };
    job.promise = new Promise((resolve, reject) => { job.resolve = resolve; job.reject = reject; });
    job.promise.catch(() => {}); // a dropped prefetch is not an error anyone waits for
    this.jobs.set(key, job);
    this.pump();
    return job.promise;
  }

  /** Forget queued (not running) jobs that `keep(key)` rejects: old prefetch after a jump. */
  prune(keep) {
    for (const [key, job] of this.jobs) if (!keep(key)) { this.jobs.delete(key); job.reject(new Error("dropped")); }
  }

  pump() {
    while (this.running < this.concurrency && this.jobs.size) {
      let best = null;
      for (const [key, job] of this.jobs) if (!best || job.priority < best[1].priority) best = [key, job];
      const [key, job] = best;
      this.jobs.delete(key);
      this.running++;
      const p = job.run();
      this.inflight.set(key, job.promise);
      p.then(job.resolve, job.reject).finally(() => {
        this.inflight.delete(key);
        this.running--;
        this.pump();
      });
    }
  }
}
