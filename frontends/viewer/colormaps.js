// Pseudo-colour maps: 256 RGB entries indexed by the windowed grey level (NM/PT and perfusion
// are read in colour). Piecewise-linear control points, expanded once.
const POINTS = {
  grey: [[0, 0, 0, 0], [1, 255, 255, 255]],
  hot: [[0, 0, 0, 0], [0.375, 255, 0, 0], [0.75, 255, 255, 0], [1, 255, 255, 255]],
  rainbow: [[0, 0, 0, 128], [0.125, 0, 0, 255], [0.375, 0, 255, 255], [0.625, 255, 255, 0], [0.875, 255, 0, 0], [1, 128, 0, 0]],
  bone: [[0, 0, 0, 0], [0.375, 81, 81, 113], [0.75, 166, 198, 198], [1, 255, 255, 255]],
};
export const COLORMAPS = Object.keys(POINTS);
const cache = new Map();

/** The map `name` as 256 x RGBA bytes. */
export function palette(name) {
  if (cache.has(name)) return cache.get(name);
  const pts = POINTS[name] || POINTS.grey, out = new Uint8Array(256 * 4);
  for (let i = 0; i < 256; i++) {
    const x = i / 255;
    let k = 0;
    while (k < pts.length - 2 && x > pts[k + 1][0]) k++;
    const [x0, ...a] = pts[k], [x1, ...b] = pts[k + 1], f = (x - x0) / (x1 - x0 || 1);
    for (let c = 0; c < 3; c++) out[i * 4 + c] = Math.round(a[c] + (b[c] - a[c]) * f);
    out[i * 4 + 3] = 255;
  }
  cache.set(name, out);
  return out;
}
