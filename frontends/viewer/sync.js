// Synchronised scrolling: the other viewports follow the active one to the slice nearest its
// position along the slice normal (same frame of reference), or to the same index otherwise.
import { value } from "./series.js";

export function attachSync(viewer) {
  let following = false;
  const led = new WeakMap(); // viewport -> the index the others last followed
  viewer.sync = false;
  const follow = (leader, force = false) => {
    if (!viewer.sync || following || leader !== viewer.active || !leader.series) return;
    if (!force && led.get(leader) === leader.index) return; // a window or zoom change: nothing to follow
    led.set(leader, leader.index);
    const image = leader.series.images[leader.index];
    const frame = value(image.ds, "FrameOfReferenceUID");
    following = true; // the followers' own changes must not lead in turn
    try {
      for (const vp of viewer.viewports) {
        if (vp === leader || !vp.series) continue;
        const same = frame && vp.series.images.length && value(vp.series.images[0].ds, "FrameOfReferenceUID") === frame;
        vp.setIndex(same && image.position !== null ? nearest(vp.series.images, image.position) : leader.index);
      }
    } finally {
      following = false;
    }
  };
  viewer.followers = follow;
}

function nearest(images, position) {
  let best = 0;
  for (let i = 1; i < images.length; i++) {
    if (Math.abs(images[i].position - position) < Math.abs(images[best].position - position)) best = i;
  }
  return best;
}
