// Cloud film: the server lays the series out on 14x17 in at 300 dpi; shown fitted to the phone,
// a tap zooms to full resolution (pan by scrolling), and saved as PNG or PDF.
import { t } from "../common/i18n.js";

async function filmBlob(study, format, token) {
  const res = await fetch(`/api/portal/film?study=${encodeURIComponent(study)}&format=${format}`,
    { headers: { Authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`film: HTTP ${res.status}`);
  return res.blob();
}

function save(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

export async function showFilm(study, token, card) {
  let box = card.querySelector(".film");
  if (box) { box.remove(); return; }
  box = document.createElement("div");
  box.className = "film";
  box.textContent = t("portal.film.making");
  card.append(box);
  const img = new Image();
  img.alt = t("portal.film.title");
  img.src = URL.createObjectURL(await filmBlob(study, "png", token));
  await img.decode();
  img.onclick = () => img.classList.toggle("zoomed");
  const actions = document.createElement("div");
  actions.className = "actions";
  for (const format of ["png", "pdf"]) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = `film-${format}`;
    b.textContent = t(`portal.film.save.${format}`);
    b.onclick = async () => save(format === "png" ? await (await fetch(img.src)).blob() : await filmBlob(study, "pdf", token),
      `film.${format}`);
    actions.append(b);
  }
  box.replaceChildren(img, actions);
}
