// Images into canvases (uint8 (N, H, W, C) pixels), class names and colours, and the
// round-trip timings kept in window.vaelab.timings.
import { $, V, TAB10, C, H, W, classes } from "./state.js";

export function sized(canvas, cssWidth) {
  canvas.width = W;
  canvas.height = H;
  if (cssWidth) canvas.style.width = `${Math.round(cssWidth * Math.min(1, W / H))}px`;
}
export function show(canvas, pixels, index = 0) {  // image `index` of uint8 (N, H, W, C)
  const ctx = canvas.getContext("2d"), image = ctx.createImageData(W, H), d = image.data;
  for (let p = 0, q = index * H * W * C; p < H * W; p++, q += C) {
    const o = 4 * p;
    d[o] = pixels[q];
    d[o + 1] = pixels[q + (C > 1 ? 1 : 0)];
    d[o + 2] = pixels[q + (C > 1 ? 2 : 0)];
    d[o + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}
export const colour = (k) => (classes.length <= 10 ? TAB10[k % 10]
  : `hsl(${Math.round((k * 360) / classes.length)} 65% 45%)`);
export const className = (k) => (classes[k] !== undefined ? classes[k] : String(k));
export function fillClassSelect(select, withAuto) {
  select.innerHTML = "";
  if (withAuto) select.add(new Option("the model's reading", ""));
  classes.forEach((name, k) => select.add(new Option(name === String(k) ? name : `${k}: ${name}`, k)));
}
export function recordTime(kind, started) {
  const ms = performance.now() - started;
  V.timings[kind].push(ms);
  if (kind === "map") showLatency();
  return ms;
}
function showLatency() {
  const t = V.timings.map.slice(-200).sort((a, b) => a - b);
  const at = (q) => t[Math.min(t.length - 1, Math.floor(q * t.length))];
  $("latency").textContent = `map decode round trip: median ${at(0.5).toFixed(1)} ms, `
    + `p95 ${at(0.95).toFixed(1)} ms (last ${t.length})`;
}
