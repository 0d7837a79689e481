// The TwinGAN page: pick a photo (and maybe a character), send it to /api/translate, show the result
// beside the photo, and the nearest faces from /api/neighbors when the server has an index.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { photo: null, reference: null, referenceId: null, health: null, urls: [] };

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function detail(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

function objectUrl(blob) {
  const url = URL.createObjectURL(blob);
  state.urls.push(url);
  return url;
}

function forgetUrls() {
  state.urls.forEach((url) => URL.revokeObjectURL(url));
  state.urls = [];
}

function thumb(picture, caption) {
  const figure = document.createElement("figure");
  const img = document.createElement("img");
  img.src = picture.url;
  img.alt = picture.name;
  img.title = picture.name;
  img.loading = "lazy";
  figure.append(img);
  if (caption) {
    const label = document.createElement("figcaption");
    label.textContent = caption;
    figure.append(label);
  }
  return figure;
}

async function loadHealth() {
  const response = await fetch("/api/health");
  if (!response.ok) throw new Error(await detail(response));
  const health = await response.json();
  state.health = health;
  const m = health.model;
  $("about").textContent = `${m.name} model at ${m.resolution} px on ${m.device} (${m.checkpoint})` +
    (health.index ? `; index of ${health.index.photos} photos and ${health.index.anime} anime pictures` : "");
  if (m.character !== "none") {
    $("character").hidden = false;
    if (health.index) await loadGallery();
  }
}

async function loadGallery() {
  const response = await fetch("/api/gallery?limit=48");
  if (!response.ok) return;
  const gallery = await response.json();
  const box = $("gallery");
  box.replaceChildren();
  for (const picture of gallery.pictures) {
    const figure = thumb(picture);
    figure.tabIndex = 0;
    figure.dataset.id = picture.id;
    figure.addEventListener("click", () => chooseGallery(picture, figure));
    box.append(figure);
  }
}

function chooseGallery(picture, figure) {
  const again = state.referenceId === picture.id;
  clearReference();
  if (again) return;
  state.referenceId = picture.id;
  figure.classList.add("chosen");
  $("reference-name").textContent = picture.name;
  $("reference-clear").hidden = false;
}

function clearReference() {
  state.reference = null;
  state.referenceId = null;
  $("reference").value = "";
  $("reference-name").textContent = "";
  $("reference-clear").hidden = true;
  document.querySelectorAll("#gallery .chosen").forEach((el) => el.classList.remove("chosen"));
}

function choosePhoto(file) {
  if (!file) return;
  state.photo = file;
  forgetUrls();
  $("photo-preview").src = objectUrl(file);
  $("photo-preview").hidden = false;
  $("go").disabled = false;
  translate();
}

function form(extra) {
  const data = new FormData();
  data.append("photo", state.photo, state.photo.name || "photo.png");
  data.append("face", $("face").value);
  for (const [key, value] of Object.entries(extra)) data.append(key, value);
  return data;
}

async function translate() {
  if (!state.photo) return;
  document.body.dataset.state = "working";
  $("go").disabled = true;
  setStatus("Translating…");
  const extra = {};
  if (state.reference) extra.reference = state.reference;
  else if (state.referenceId !== null) extra.reference_id = String(state.referenceId);
  const started = performance.now();
  try {
    const neighbours = state.health && state.health.index ? findNeighbours() : Promise.resolve();
    const response = await fetch("/api/translate", { method: "POST", body: form(extra) });
    if (!response.ok) throw new Error(await detail(response));
    const blob = await response.blob();
    const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
    const faces = Number(response.headers.get("X-TwinGAN-Faces") || 0);
    const url = objectUrl(blob);
    $("photo-view").src = $("photo-preview").src;
    $("anime-view").src = url;
    $("download").href = url;
    $("download").download = name ? name[1] : "anime.png";
    $("result").hidden = false;
    await neighbours;
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    setStatus(`Done in ${seconds} s` + (faces ? ` (${faces} face${faces > 1 ? "s" : ""} translated)` : "") + ".");
    document.body.dataset.state = "done";
  } catch (error) {
    setStatus(error.message, true);
    document.body.dataset.state = "error";
  } finally {
    $("go").disabled = false;
  }
}

async function findNeighbours() {
  const response = await fetch("/api/neighbors", { method: "POST", body: form({ k: "6" }) });
  if (!response.ok) throw new Error(await detail(response));
  const found = await response.json();
  const fill = (id, hits) => $(id).replaceChildren(...hits.map((h) => thumb(h, h.distance.toFixed(3))));
  fill("near-anime", found.anime);
  fill("near-photos", found.photos);
  $("neighbours").hidden = false;
}

function wire() {
  const drop = $("drop");
  $("photo").addEventListener("change", (e) => choosePhoto(e.target.files[0]));
  $("reference").addEventListener("change", (e) => {
    const file = e.target.files[0];
    clearReference();
    if (!file) return;
    state.reference = file;
    $("reference-name").textContent = file.name;
    $("reference-clear").hidden = false;
  });
  $("reference-clear").addEventListener("click", clearReference);
  $("go").addEventListener("click", translate);
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    choosePhoto(e.dataTransfer.files[0]);
  });
}

wire();
loadHealth()
  .then(() => { document.body.dataset.state = "ready"; })
  .catch((error) => { setStatus(`The server did not answer: ${error.message}`, true); });
