// Window presets [center, width] in HU (CT) and the modality-aware default window.
import { headerWindow } from "./series.js";

export const CT_PRESETS = {
  lung: [-600, 1500], mediastinum: [40, 400], abdomen: [60, 400], bone: [400, 1800],
  brain: [40, 80], heart: [50, 350], head: [40, 120],
};

/** The window an image opens with: the header's, else CT mediastinum, else the values' range. */
export function defaultWindow(modality, ds, stats) {
  const header = headerWindow(ds);
  if (header) return header;
  if (modality === "CT") return CT_PRESETS.mediastinum;
  const lo = stats?.min ?? 0, hi = stats?.max ?? 255;
  return [(lo + hi) / 2, Math.max(1, hi - lo)];
}

/** Window change per CSS pixel of drag: HU on CT, else a share of the image's value range. */
export function dragSensitivity(modality, stats) {
  if (modality === "CT") return 2;
  const range = (stats?.max ?? 255) - (stats?.min ?? 0);
  return Math.max(range / 500, 0.05);
}
