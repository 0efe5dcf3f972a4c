// Sliders over the most active dimensions (by KL), starting at a test image's code or a
// random sample.
import { fromBase64, get, latest, pixelsOf, post } from "./api.js";
import { className, recordTime, show } from "./images.js";
import { redraw } from "./map.js";
import { $, V, conditional, info, sliders } from "./state.js";

export const decodeSliders = latest(async ({ code, started }) => {
  const label = conditional ? Number($("slider-class").value) : undefined;
  const { pixels } = await pixelsOf("/api/decode",
    { codes: [code], labels: conditional ? [label] : undefined });
  show($("slider-image"), pixels);
  if (started !== undefined) recordTime("slider", started);
  V.last.slider = { code, label, pixels: Array.from(pixels) };
  redraw();
});
export function buildSliders() {
  const box = $("sliders");
  box.innerHTML = "";
  for (const { dim, kl, min, max } of info.sliders) {
    const name = document.createElement("span"), note = document.createElement("span");
    const input = document.createElement("input"), value = document.createElement("span");
    name.textContent = `z[${dim}]`;
    note.textContent = `KL ${kl.toFixed(2)}`;
    note.className = "kl";
    value.className = "value";
    Object.assign(input, { type: "range", min, max, step: (max - min) / 500 });
    input.dataset.dim = dim;
    input.setAttribute("aria-label", `z[${dim}]`);
    input.addEventListener("input", (e) => {
      sliders.code[dim] = Number(input.value);
      value.textContent = Number(input.value).toFixed(2);
      decodeSliders({ code: sliders.code.slice(), started: e.timeStamp });
    });
    box.append(name, note, input, value);
  }
}
export function resetSliders() {
  sliders.code = sliders.base.slice();
  for (const input of $("sliders").querySelectorAll("input")) {
    input.value = sliders.code[input.dataset.dim];
    input.nextElementSibling.textContent = Number(input.value).toFixed(2);
  }
  decodeSliders({ code: sliders.code.slice() });
}
function startFrom(code, label, what) {
  sliders.base = code;
  sliders.what = what;
  if (conditional) $("slider-class").value = label;
  $("start-caption").textContent = what;
  $("slider-caption").textContent = "decoded from the sliders";
  resetSliders();
}
export async function loadTest(index) {
  const test = await get(`/api/test/${index}`);
  $("test-index").value = index;
  show($("test-image"), fromBase64(test.image));
  startFrom(test.code, test.label, `test #${index} (${className(test.label)})`);
  return test;
}
let sampleSeed = 0;
export async function randomSample() {
  const label = conditional ? Number($("slider-class").value) : undefined;
  const drawn = await post("/api/sample", { seed: sampleSeed++, label });
  show($("test-image"), fromBase64(drawn.image));
  V.last.sample = drawn;
  startFrom(drawn.code, label, `a sample (${drawn.sampler} sampler)`
    + (conditional ? `, class ${className(label)}` : ""));
}
