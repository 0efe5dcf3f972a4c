// vaelab explorer: the page of `vaelab serve`. It talks only to the server that sent it
// (same origin, no other network): /api/info and /api/points once, then one small request
// per change. Images arrive as uint8 pixels (H, W, C), channels last, and go straight into
// canvases. A request that is still running when the next change comes is not queued
// behind: only the newest change is sent next ("latest wins"), so decoding keeps up with
// the pointer. window.vaelab holds the round-trip timings (ms, from the input event to the
// image in its canvas) and the last thing each panel showed, for tests and benchmarks.
// This module starts the page and wires together the panels, each a module in js/.
import { get, say } from "./js/api.js";
import { bindPad } from "./js/draw.js";
import { fillClassSelect, sized } from "./js/images.js";
import { bindPath } from "./js/interpolate.js";
import { bindMap, decodeMap, drawLayer, legend, pixelOf, toPoint } from "./js/map.js";
import { buildSliders, decodeSliders, loadTest, randomSample, resetSliders } from "./js/sliders.js";
import { $, V, C, H, W, conditional, info, map, setInfo, sliders } from "./js/state.js";

async function start() {
  const [got, mapped] = await Promise.all([get("/api/info"), get("/api/points")]);
  setInfo(got);
  document.body.classList.toggle("is-conditional", conditional);
  $("run-name").textContent = info.name;
  $("run-facts").textContent = [info.dataset, `${info.arch}`, `${info.latent_dim}-D codes`,
    `${W}x${H}${C === 3 ? " colour" : ""}`, info.mode, conditional ? "conditional" : ""]
    .filter(Boolean).join(" · ");
  const how = info.latent_dim > 2
    ? `the plane of their first two principal components, as <code>vaelab latent</code> draws it: the point (u, v) decodes as the code pca_mean + u·pc1 + v·pc2`
    : info.latent_dim === 2 ? "the codes as they are" : "z[0] across, one row per class";
  $("map-note").innerHTML = `Latent means of ${mapped.points.length.toLocaleString("en")} test images, coloured by class, on ${how}. `
    + `Hover or drag to decode any point; a click pins it.`
    + (conditional ? " Points are encoded with their own labels; the map decodes as the class chosen beside it." : "");
  $("slider-note").textContent = `The ${info.sliders.length} of ${info.latent_dim} dimensions with the most KL `
    + "(as vaelab traverse ranks them), starting at a code; the other dimensions keep its values. "
    + `Random sample draws a code with the run's ${info.sampler} sampler.`;
  for (const id of ["map-image", "slider-image", "recon", "frame-image"]) sized($(id), 168);
  sized($("test-image"), 84);
  Object.assign($("strip"), { width: W * 10, height: H });  // a black strip until a path
  if (conditional) {
    fillClassSelect($("map-class"));
    fillClassSelect($("slider-class"));
    fillClassSelect($("drawn-as"), true);
  }
  $("pen-row").hidden = C !== 3;
  $("frame-row").hidden = !(C === 1 && H === 28 && W === 28);
  $("test-index").max = info.test_count - 1;
  drawLayer(mapped.points, mapped.labels);
  legend(mapped.labels);
  bindMap();
  buildSliders();
  bindPad();
  bindPath();
  $("test-index").addEventListener("change", () => {
    const i = Number($("test-index").value);
    if (Number.isInteger(i) && i >= 0 && i < info.test_count) loadTest(i).catch((e) => say(e.message));
    else say(`test images are numbered 0 to ${info.test_count - 1}`);
  });
  $("reset").addEventListener("click", resetSliders);
  $("random-test").addEventListener("click",
    () => loadTest(Math.floor(Math.random() * info.test_count)).catch((e) => say(e.message)));
  $("random-sample").addEventListener("click", () => randomSample().catch((e) => say(e.message)));
  $("slider-class").addEventListener("change", () => decodeSliders({ code: sliders.code.slice() }));
  const test = await loadTest(info.start);
  map.pin = test.point;
  decodeMap({ point: test.point });
  V.info = info;
  V.toPoint = toPoint;
  V.toPixel = pixelOf;
  V.ready = true;
}
start().catch((e) => { say(`could not start: ${e.message}`); });
