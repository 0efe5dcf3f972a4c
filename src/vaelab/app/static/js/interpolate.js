// Interpolation between two ends (a test image, a class mean, the drawing, the map point or
// the sliders' code): the strip of images, the path on the map, a scrubber and Play.
import { get, pixelsOf, say } from "./api.js";
import { className, fillClassSelect, show, sized } from "./images.js";
import { codeAt, mapClass, redraw } from "./map.js";
import { $, V, H, W, conditional, drawing, info, map, sliders } from "./state.js";

const KINDS = { test: "test image", class: "class mean", drawing: "drawing",
                map: "map point", sliders: "slider code" };
const ends = { from: null, to: null };  // {code, label, what}
const endBox = (which) => document.querySelector(`.end[data-end="${which}"]`);
function snapshot(kind) {  // the current code of a panel, as an end
  if (kind === "drawing") {
    if (!drawing.code) throw new Error("draw something first");
    return { code: drawing.code, label: drawing.label, what: `the drawing (as ${className(drawing.label)})` };
  }
  if (kind === "map") {
    const point = map.pin || map.hover;
    if (!point) throw new Error("hover over or click on the map first");
    return { code: codeAt(point), label: mapClass(),
             what: `map (${point[0].toFixed(2)}, ${point[1].toFixed(2)})` };
  }
  if (kind === "sliders") {
    const label = conditional ? Number($("slider-class").value) : undefined;
    return { code: sliders.code.slice(), label, what: `sliders around ${sliders.what}` };
  }
  return null;
}
async function resolveEnd(which) {
  const box = endBox(which), kind = box.querySelector(".kind").value;
  if (kind === "test") {
    const index = Number(box.querySelector(".index").value);
    const test = await get(`/api/test/${index}`);
    ends[which] = { code: test.code, label: test.label, what: `test #${index} (${className(test.label)})` };
  } else if (kind === "class") {
    const k = Number(box.querySelector(".class").value);
    ends[which] = { code: info.class_means[k], label: k, what: `mean code of class ${className(k)}` };
  } else if (!ends[which] || ends[which].kind !== kind) {
    ends[which] = snapshot(kind);
  }
  ends[which].kind = kind;
  box.querySelector(".what").textContent = ends[which].what;
  return ends[which];
}
function showKind(which) {
  const box = endBox(which), kind = box.querySelector(".kind").value;
  box.querySelector(".index").hidden = kind !== "test";
  box.querySelector(".class").hidden = kind !== "class";
  box.querySelector(".what").textContent = ["test", "class"].includes(kind) ? "" : "(now)";
}
function useAs(which, kind) {
  try {
    const box = endBox(which);
    box.querySelector(".kind").value = kind;
    showKind(which);
    ends[which] = { ...snapshot(kind), kind };
    box.querySelector(".what").textContent = ends[which].what;
  } catch (e) { say(e.message); }
}
const path = { frames: null, n: 0, timer: null, at: 0, step: 1 };
async function runInterpolation() {
  stopPlaying();
  const [a, b] = [await resolveEnd("from"), await resolveEnd("to")];
  const steps = Number($("steps").value);
  const { pixels, response } = await pixelsOf("/api/interpolate", {
    from: a.code, to: b.code, steps, mode: $("mode").value,
    labels: conditional ? [a.label, b.label] : undefined,
  });
  Object.assign(path, { frames: pixels, n: steps, at: 0, step: 1 });
  map.path = JSON.parse(response.headers.get("X-Points"));
  const strip = $("strip");
  strip.width = W * steps;
  strip.height = H;
  const tile = document.createElement("canvas");
  sized(tile);
  for (let i = 0; i < steps; i++) {
    show(tile, pixels, i);
    strip.getContext("2d").drawImage(tile, i * W, 0);
  }
  Object.assign($("scrub"), { max: steps - 1, value: 0, disabled: false });
  $("play").disabled = false;
  $("path-caption").textContent = `${$("mode").value} path of ${steps} images from A: ${a.what} to B: ${b.what}`
    + (conditional ? "; class labels blended linearly" : "");
  V.last.path = { steps, from: a, to: b, pixels: Array.from(pixels) };
  showFrame(0);
}
function showFrame(i) {
  path.at = i;
  show($("frame-image"), path.frames, i);
  $("scrub").value = i;
  map.frame = i;
  V.frameShown += 1;
  redraw();
}
function stopPlaying() {
  clearInterval(path.timer);
  path.timer = null;
  $("play").textContent = "Play";
}
function togglePlay() {
  if (path.timer) { stopPlaying(); return; }
  $("play").textContent = "Pause";
  path.timer = setInterval(() => {  // there and back, as `interpolate --gif` plays it
    let next = path.at + path.step;
    if (next >= path.n || next < 0) { path.step = -path.step; next = path.at + path.step; }
    showFrame(Math.max(0, Math.min(path.n - 1, next)));
  }, 110);
}
export function bindPath() {
  for (const which of ["from", "to"]) {
    const box = endBox(which), kind = box.querySelector(".kind");
    for (const [value, text] of Object.entries(KINDS)) {
      if (value === "class" && !Object.keys(info.class_means).length) continue;
      kind.add(new Option(text, value));
    }
    fillClassSelect(box.querySelector(".class"));
    box.querySelector(".index").max = info.test_count - 1;
    box.querySelector(".index").value = info.pair[which === "from" ? 0 : 1];
    box.querySelector(".class").value = Object.keys(info.class_means)[which === "from" ? 0 : 1] || 0;
    kind.addEventListener("change", () => {
      showKind(which);
      if (!["test", "class"].includes(kind.value)) useAs(which, kind.value);
    });
    showKind(which);
  }
  document.querySelectorAll("button[data-end]").forEach((button) => {
    button.addEventListener("click", () => useAs(button.dataset.end, button.dataset.source));
  });
  $("interpolate").addEventListener("click", () => runInterpolation().catch((e) => say(e.message)));
  $("play").addEventListener("click", togglePlay);
  $("scrub").addEventListener("input", () => { stopPlaying(); showFrame(Number($("scrub").value)); });
}
