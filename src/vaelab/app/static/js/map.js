// The latent map: the scatter of the test set's codes on a plane, decoded at the pointer,
// with markers for the pinned point, the sliders' code, the drawing and the path.
import { latest, pixelsOf } from "./api.js";
import { className, colour, recordTime, show } from "./images.js";
import { $, V, TAB10, classes, conditional, drawing, info, map, sliders } from "./state.js";

const plotW = () => map.css - map.pad.l - map.pad.r;
const plotH = () => map.css - map.pad.t - map.pad.b;
const toX = (u) => map.pad.l + ((u - map.u0) / (map.u1 - map.u0)) * plotW();
const toY = (v) => map.pad.t + (1 - (v - map.v0) / (map.v1 - map.v0)) * plotH();
export function toPoint(event) {
  const box = map.canvas.getBoundingClientRect();
  const x = ((event.clientX - box.left) / box.width) * map.css;
  const y = ((event.clientY - box.top) / box.height) * map.css;
  const u = map.u0 + ((x - map.pad.l) / plotW()) * (map.u1 - map.u0);
  const v = map.v0 + (1 - (y - map.pad.t) / plotH()) * (map.v1 - map.v0);
  return [u, v];
}
function project(code) {  // a code's point: ((z - mean) . pc1, (z - mean) . pc2)
  const { mean, pcs } = info.map;
  return [0, 1].map((r) => code.reduce((s, z, i) => s + (z - mean[i]) * pcs[r][i], 0));
}
export function codeAt(point) {  // a point's code: mean + u pc1 + v pc2, as the server decodes it
  const { mean, pcs } = info.map;
  return mean.map((m, i) => m + point[0] * pcs[0][i] + point[1] * pcs[1][i]);
}
function quantile(values, q) {
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}
function niceTicks(lo, hi) {
  const raw = (hi - lo) / 5, power = 10 ** Math.floor(Math.log10(raw));
  const step = power * ([1, 2, 5, 10].find((m) => m * power >= raw) || 10);
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) ticks.push(+t.toFixed(6));
  return ticks;
}
export function drawLayer(points, labels) {  // the scatter and axes, drawn once
  const dpr = window.devicePixelRatio || 1;
  for (const c of [map.canvas, (map.layer = document.createElement("canvas"))]) {
    c.width = map.css * dpr;
    c.height = map.css * dpr;
  }
  const us = points.map((p) => p[0]), vs = points.map((p) => p[1]);
  const range = (lo, hi) => { const m = (hi - lo) * 0.06 || 1; return [lo - m, hi + m]; };
  [map.u0, map.u1] = range(quantile(us, 0.002), quantile(us, 0.998));
  [map.v0, map.v1] = info.latent_dim === 1 ? [-0.7, classes.length - 0.3]
    : range(quantile(vs, 0.002), quantile(vs, 0.998));
  const ctx = map.layer.getContext("2d");
  ctx.scale(dpr, dpr);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, map.css, map.css);
  ctx.save();
  ctx.beginPath();
  ctx.rect(map.pad.l, map.pad.t, plotW(), plotH());
  ctx.clip();
  ctx.globalAlpha = 0.55;
  points.forEach(([u, v], i) => {
    ctx.fillStyle = classes.length ? colour(labels[i]) : TAB10[0];
    ctx.beginPath();
    ctx.arc(toX(u), toY(v), 1.7, 0, 2 * Math.PI);
    ctx.fill();
  });
  ctx.restore();
  ctx.strokeStyle = "#9aa4af";
  ctx.strokeRect(map.pad.l, map.pad.t, plotW(), plotH());
  ctx.fillStyle = "#4a5561";
  ctx.font = "11px system-ui, sans-serif";
  ctx.textAlign = "center";
  for (const t of niceTicks(map.u0, map.u1)) {
    ctx.fillRect(toX(t), map.pad.t + plotH(), 1, 4);
    ctx.fillText(String(t), toX(t), map.pad.t + plotH() + 15);
  }
  ctx.textAlign = "right";
  const vTicks = info.latent_dim === 1 ? classes.map((_, k) => k) : niceTicks(map.v0, map.v1);
  for (const t of vTicks) {
    ctx.fillRect(map.pad.l - 4, toY(t), 4, 1);
    ctx.fillText(info.latent_dim === 1 ? className(t) : String(t), map.pad.l - 6, toY(t) + 4);
  }
  ctx.font = "12px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.fillText(info.map.axes[0], map.pad.l + plotW() / 2, map.css - 6);
  ctx.save();
  ctx.translate(13, map.pad.t + plotH() / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText(info.map.axes[1], 0, 0);
  ctx.restore();
}
export function pixelOf(point) {  // on the plot, or on its edge for a point beyond it
  const clamp = (value, lo, hi) => Math.max(lo, Math.min(hi, value));
  return [clamp(toX(point[0]), map.pad.l, map.pad.l + plotW()),
          clamp(toY(point[1]), map.pad.t, map.pad.t + plotH())];
}
function marker(ctx, point, kind) {
  if (!point) return;
  const [x, y] = pixelOf(point);
  ctx.lineWidth = 2;
  if (kind === "drawing") {  // a red cross on a white halo
    for (const [width, ink] of [[5, "#fff"], [2.5, "#d62728"]]) {
      ctx.lineWidth = width;
      ctx.strokeStyle = ink;
      ctx.beginPath();
      ctx.moveTo(x - 6, y - 6); ctx.lineTo(x + 6, y + 6);
      ctx.moveTo(x + 6, y - 6); ctx.lineTo(x - 6, y + 6);
      ctx.stroke();
    }
  } else if (kind === "sliders") {
    ctx.fillStyle = "#ff8c00"; ctx.strokeStyle = "#000";
    ctx.fillRect(x - 5, y - 5, 10, 10); ctx.strokeRect(x - 5, y - 5, 10, 10);
  } else {  // the decoded point: a ring, filled when pinned
    ctx.strokeStyle = "#000";
    ctx.fillStyle = kind === "pin" ? "rgba(255,255,255,0.9)" : "rgba(255,255,255,0)";
    ctx.beginPath(); ctx.arc(x, y, 6, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
    ctx.beginPath(); ctx.arc(x, y, 1.5, 0, 2 * Math.PI); ctx.fillStyle = "#000"; ctx.fill();
  }
}
export function redraw() {
  const ctx = map.canvas.getContext("2d"), dpr = window.devicePixelRatio || 1;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.drawImage(map.layer, 0, 0);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  if (map.path) {
    ctx.strokeStyle = "#111"; ctx.lineWidth = 1.5;
    ctx.beginPath();
    map.path.forEach(([u, v], i) => (i ? ctx.lineTo(toX(u), toY(v)) : ctx.moveTo(toX(u), toY(v))));
    ctx.stroke();
    map.path.forEach(([u, v], i) => {
      ctx.fillStyle = i === map.frame ? "#ffd400" : "#111";
      ctx.beginPath(); ctx.arc(toX(u), toY(v), i === map.frame ? 5 : 2.5, 0, 2 * Math.PI);
      ctx.fill(); ctx.stroke();
    });
    ctx.fillStyle = "#111"; ctx.font = "bold 12px system-ui, sans-serif";
    const [a, b] = [map.path[0], map.path[map.path.length - 1]];
    ctx.fillText("A", toX(a[0]) + 7, toY(a[1]) - 7);
    ctx.fillText("B", toX(b[0]) + 7, toY(b[1]) - 7);
  }
  if (sliders.code) marker(ctx, project(sliders.code), "sliders");
  if (drawing.point) marker(ctx, drawing.point, "drawing");
  marker(ctx, map.pin, "pin");
  if (map.hover && map.hover !== map.pin) marker(ctx, map.hover, "hover");
}
export const mapClass = () => (conditional ? Number($("map-class").value) : undefined);
export const decodeMap = latest(async ({ point, started, handled }) => {
  const label = mapClass(), sent = performance.now();
  const { pixels, response } = await pixelsOf("/api/decode",
    { points: [point], labels: conditional ? [label] : undefined });
  const arrived = performance.now();
  show($("map-image"), pixels);
  const ms = started === undefined ? null : recordTime("map", started);
  if (ms !== null) {  // where the time went: event to handler, queue, request, drawing
    const server = /dur=([\d.]+)/.exec(response.headers.get("Server-Timing") || "");
    V.timings.mapParts.push({ dispatch: handled - started, queued: sent - handled,
                              request: arrived - sent, server: server ? Number(server[1]) : null,
                              draw: performance.now() - arrived });
  }
  V.last.map = { point, label, ms, pixels: Array.from(pixels) };
  $("map-coords").textContent = `u ${point[0].toFixed(3)}, v ${point[1].toFixed(3)}`;
  map.hover = point;
  redraw();
});
export function bindMap() {
  const inside = ([u, v]) => u >= map.u0 && u <= map.u1 && v >= map.v0 && v <= map.v1;
  map.canvas.addEventListener("pointerdown", (e) => {
    const point = toPoint(e);
    if (!inside(point)) return;
    map.canvas.setPointerCapture(e.pointerId);
    map.dragging = true;
    map.pin = point;
    decodeMap({ point, started: e.timeStamp, handled: performance.now() });
  });
  // Chromium's pointerrawupdate comes as the input arrives; pointermove waits for the
  // next animation frame, which added 10 ms to the median round trip (benchmarks/).
  const move = "onpointerrawupdate" in window ? "pointerrawupdate" : "pointermove";
  map.canvas.addEventListener(move, (e) => {
    const point = toPoint(e);
    if (!inside(point)) return;
    if (map.dragging) map.pin = point;
    decodeMap({ point, started: e.timeStamp, handled: performance.now() });
  });
  const stop = () => { map.dragging = false; };
  map.canvas.addEventListener("pointerup", stop);
  map.canvas.addEventListener("pointercancel", stop);
  map.canvas.addEventListener("pointerleave", () => {  // back to the pinned point
    if (!map.dragging && map.pin) decodeMap({ point: map.pin });
  });
  $("map-class").addEventListener("change", () => {
    legendChosen();
    if (map.hover) decodeMap({ point: map.hover });
  });
}
export function legend(labels) {
  const list = $("legend"), counts = new Map();
  labels.forEach((y) => counts.set(y, (counts.get(y) || 0) + 1));
  list.innerHTML = "";
  if (!classes.length) {
    list.innerHTML = "<li>no classes</li>";
    return;
  }
  classes.forEach((name, k) => {
    const item = document.createElement("li");
    item.innerHTML = `<i style="background:${colour(k)}"></i>`;
    item.append(`${name}`);
    item.title = `${counts.get(k) || 0} test images`
      + (conditional ? `; click to decode the map as ${name}` : "");
    if (conditional) {
      item.classList.add("pick");
      item.addEventListener("click", () => {
        $("map-class").value = k;
        $("map-class").dispatchEvent(new Event("change"));
      });
    }
    list.append(item);
  });
  legendChosen();
}
function legendChosen() {
  if (!conditional) return;
  [...$("legend").children].forEach((li, k) => li.classList.toggle("chosen", k === mapClass()));
}
