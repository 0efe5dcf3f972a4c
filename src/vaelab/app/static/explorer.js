// vaelab explorer: the page of `vaelab serve`. It talks only to the server that sent it
// (same origin, no other network): /api/info and /api/points once, then one small request
// per change. Images arrive as uint8 pixels (H, W, C), channels last, and go straight into
// canvases. A request that is still running when the next change comes is not queued
// behind: only the newest change is sent next ("latest wins"), so decoding keeps up with
// the pointer. window.vaelab holds the round-trip timings (ms, from the input event to the
// image in its canvas) and the last thing each panel showed, for tests and benchmarks.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const V = (window.vaelab = {
    ready: false, error: null, last: {}, frameShown: 0, pending: 0,
    timings: { map: [], mapParts: [], slider: [], draw: [], class: [] },
  });
  const TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                 "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];  // matplotlib's, as `vaelab latent`
  let info, C, H, W, classes, conditional;

  // --- the server --------------------------------------------------------------------------
  async function answer(response, raw) {
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
      throw new Error(message);
    }
    return raw ? response : response.json();
  }
  const get = async (path) => answer(await fetch(path), false);
  const post = async (path, body, raw = false) => answer(await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  }), raw);
  async function pixelsOf(path, body) {  // raw images: N * H * W * C bytes
    const response = await post(path, body, true);
    return { pixels: new Uint8Array(await response.arrayBuffer()), response };
  }
  function fromBase64(text) {
    const s = atob(text), out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }
  function toBase64(bytes) {
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(s);
  }
  function latest(run) {  // a task runner where only the newest waiting job runs next
    let busy = false, next = null;
    async function pump() {
      busy = true;
      V.pending += 1;  // runners at work: 0 once every answer is shown
      while (next) {
        const job = next;
        next = null;
        try { await run(job); } catch (e) { say(e.message); }
      }
      busy = false;
      V.pending -= 1;
    }
    return (job) => { next = job; if (!busy) pump(); };
  }
  let statusTimer;
  function say(message) {
    V.error = message;
    $("status").textContent = message;
    clearTimeout(statusTimer);
    statusTimer = setTimeout(() => { $("status").textContent = ""; }, 8000);
  }

  // --- images ------------------------------------------------------------------------------
  function sized(canvas, cssWidth) {
    canvas.width = W;
    canvas.height = H;
    if (cssWidth) canvas.style.width = `${Math.round(cssWidth * Math.min(1, W / H))}px`;
  }
  function show(canvas, pixels, index = 0) {  // image `index` of uint8 (N, H, W, C)
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
  const colour = (k) => (classes.length <= 10 ? TAB10[k % 10]
    : `hsl(${Math.round((k * 360) / classes.length)} 65% 45%)`);
  const className = (k) => (classes[k] !== undefined ? classes[k] : String(k));
  function fillClassSelect(select, withAuto) {
    select.innerHTML = "";
    if (withAuto) select.add(new Option("the model's reading", ""));
    classes.forEach((name, k) => select.add(new Option(name === String(k) ? name : `${k}: ${name}`, k)));
  }
  function recordTime(kind, started) {
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

  // --- the latent map ----------------------------------------------------------------------
  const map = { canvas: $("map"), css: 480, pad: { l: 52, r: 12, t: 12, b: 40 },
                layer: null, hover: null, pin: null, dragging: false, path: null, frame: -1 };
  const plotW = () => map.css - map.pad.l - map.pad.r;
  const plotH = () => map.css - map.pad.t - map.pad.b;
  const toX = (u) => map.pad.l + ((u - map.u0) / (map.u1 - map.u0)) * plotW();
  const toY = (v) => map.pad.t + (1 - (v - map.v0) / (map.v1 - map.v0)) * plotH();
  function toPoint(event) {
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
  function codeAt(point) {  // a point's code: mean + u pc1 + v pc2, as the server decodes it
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
  function drawLayer(points, labels) {  // the scatter and axes, drawn once
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
  function pixelOf(point) {  // on the plot, or on its edge for a point beyond it
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
  function redraw() {
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
  const mapClass = () => (conditional ? Number($("map-class").value) : undefined);
  const decodeMap = latest(async ({ point, started, handled }) => {
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
  function bindMap() {
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
  function legend(labels) {
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

  // --- sliders over the most active dimensions ----------------------------------------------
  const sliders = { base: null, code: null, label: undefined, what: "" };
  const decodeSliders = latest(async ({ code, started }) => {
    const label = conditional ? Number($("slider-class").value) : undefined;
    const { pixels } = await pixelsOf("/api/decode",
      { codes: [code], labels: conditional ? [label] : undefined });
    show($("slider-image"), pixels);
    if (started !== undefined) recordTime("slider", started);
    V.last.slider = { code, label, pixels: Array.from(pixels) };
    redraw();
  });
  function buildSliders() {
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
  function resetSliders() {
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
  async function loadTest(index) {
    const test = await get(`/api/test/${index}`);
    $("test-index").value = index;
    show($("test-image"), fromBase64(test.image));
    startFrom(test.code, test.label, `test #${index} (${className(test.label)})`);
    return test;
  }
  let sampleSeed = 0;
  async function randomSample() {
    const label = conditional ? Number($("slider-class").value) : undefined;
    const drawn = await post("/api/sample", { seed: sampleSeed++, label });
    show($("test-image"), fromBase64(drawn.image));
    V.last.sample = drawn;
    startFrom(drawn.code, label, `a sample (${drawn.sampler} sampler)`
      + (conditional ? `, class ${className(label)}` : ""));
  }

  // --- drawing -----------------------------------------------------------------------------
  const pad = $("draw");
  const drawing = { code: null, label: undefined, point: null, inked: false, as: null };
  let pen = null;
  const padContext = () => pad.getContext("2d", { willReadFrequently: true });
  function clearPad() {
    const ctx = padContext();
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, pad.width, pad.height);
    drawing.inked = false;
  }
  function inkBox() {  // the drawn pixels' bounding box on the pad, or null
    const { width, height } = pad, d = padContext().getImageData(0, 0, width, height).data;
    let x0 = width, y0 = height, x1 = -1, y1 = -1;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const o = 4 * (y * width + x);
        if (d[o] + d[o + 1] + d[o + 2] > 60) {
          if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
        }
      }
    }
    return x1 < 0 ? null : [x0, y0, x1 - x0 + 1, y1 - y0 + 1];
  }
  function drawnPixels() {  // the pad at the model's size, uint8 (H, W, C)
    const small = document.createElement("canvas");
    small.width = W;
    small.height = H;
    const ctx = small.getContext("2d");
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, W, H);
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "high";
    const box = $("frame").checked && !$("frame-row").hidden ? inkBox() : null;
    if (box) {  // MNIST's framing: the digit fills a 20x20 box in the middle of 28x28
      const [x, y, w, h] = box, f = (20 / 28) * Math.min(W / w, H / h);
      ctx.drawImage(pad, x, y, w, h, (W - w * f) / 2, (H - h * f) / 2, w * f, h * f);
    } else {
      ctx.drawImage(pad, 0, 0, W, H);
    }
    const d = ctx.getImageData(0, 0, W, H).data, out = new Uint8Array(H * W * C);
    for (let p = 0; p < H * W; p++) {
      if (C === 1) out[p] = Math.round(0.299 * d[4 * p] + 0.587 * d[4 * p + 1] + 0.114 * d[4 * p + 2]);
      else for (let c = 0; c < C; c++) out[p * C + c] = d[4 * p + c];
    }
    return out;
  }
  const encodeDrawing = latest(async ({ started }) => {
    const image = drawnPixels(), chosen = $("drawn-as").value;
    const label = conditional && chosen !== "" ? Number(chosen) : undefined;
    const got = await post("/api/encode", { image: toBase64(image), label });
    Object.assign(drawing, { code: got.code, label: got.label, point: got.point });
    const recon = fromBase64(got.image);
    if (conditional) {
      const every = fromBase64(got.as_classes);
      classes.forEach((_, k) => show($("class-buttons").children[k].querySelector("canvas"), every, k));
      $("drawn-as").options[0].text = `the model's reading: ${className(got.label)}`;
      if (drawing.as !== null) show($("recon"), every, drawing.as);
      else show($("recon"), recon);
      captionRecon();
    } else {
      show($("recon"), recon);
    }
    recordTime("draw", started);
    V.last.drawing = { image: Array.from(image), code: got.code, label: got.label,
                       point: got.point, reconstruction: Array.from(recon) };
    redraw();
  });
  function captionRecon() {
    const reading = drawing.as === null ? drawing.label : drawing.as;
    $("recon-caption").textContent = conditional
      ? `decoded as ${className(reading)}${drawing.as === null ? " (as drawn)" : ""}`
      : "reconstruction";
  }
  const decodeAsClass = latest(async ({ label, started }) => {
    const { pixels } = await pixelsOf("/api/decode", { codes: [drawing.code], labels: [label] });
    show($("recon"), pixels);
    recordTime("class", started);
    V.last.classDecode = { code: drawing.code, label, pixels: Array.from(pixels) };
    captionRecon();
  });
  function bindPad() {
    const k = Math.max(1, Math.ceil(280 / Math.max(W, H)));
    pad.width = W * k;
    pad.height = H * k;
    pad.style.width = `${Math.round(196 * Math.min(1, W / H))}px`;
    clearPad();
    const at = (e) => {
      const box = pad.getBoundingClientRect();
      return [((e.clientX - box.left) / box.width) * pad.width,
              ((e.clientY - box.top) / box.height) * pad.height];
    };
    const ctx = padContext();
    pad.addEventListener("pointerdown", (e) => {
      pad.setPointerCapture(e.pointerId);
      pen = at(e);
      Object.assign(ctx, { lineCap: "round", lineJoin: "round",
                           lineWidth: 0.09 * Math.max(pad.width, pad.height),
                           strokeStyle: $("pen").value, fillStyle: $("pen").value });
      ctx.beginPath();
      ctx.arc(pen[0], pen[1], ctx.lineWidth / 2, 0, 2 * Math.PI);
      ctx.fill();
      drawing.inked = true;
      encodeDrawing({ started: e.timeStamp });
    });
    pad.addEventListener("pointermove", (e) => {
      if (!pen) return;
      const next = at(e);
      ctx.beginPath();
      ctx.moveTo(pen[0], pen[1]);
      ctx.lineTo(next[0], next[1]);
      ctx.stroke();
      pen = next;
      encodeDrawing({ started: e.timeStamp });
    });
    const lift = (e) => {
      if (!pen) return;
      pen = null;
      encodeDrawing({ started: e.timeStamp });
    };
    pad.addEventListener("pointerup", lift);
    pad.addEventListener("pointercancel", lift);
    $("clear").addEventListener("click", () => {
      clearPad();
      Object.assign(drawing, { code: null, point: null });
      $("recon").getContext("2d").clearRect(0, 0, W, H);
      redraw();
    });
    $("drawn-as").addEventListener("change", () => {
      if (drawing.inked) encodeDrawing({ started: performance.now() });
    });
    if (conditional) {
      classes.forEach((name, k) => {
        const button = document.createElement("button"), canvas = document.createElement("canvas");
        sized(canvas);
        canvas.className = "image";
        button.append(canvas, name);
        button.title = `decode the drawing's code as ${name}`;
        button.dataset.label = k;
        button.addEventListener("click", (e) => {
          if (!drawing.code) { say("draw something first"); return; }
          drawing.as = drawing.as === k ? null : k;
          [...$("class-buttons").children].forEach((b, j) => b.classList.toggle("chosen", j === drawing.as));
          decodeAsClass({ label: drawing.as === null ? drawing.label : k, started: e.timeStamp });
        });
        $("class-buttons").append(button);
      });
    }
  }

  // --- interpolation -----------------------------------------------------------------------
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
  function bindPath() {
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

  // --- start -------------------------------------------------------------------------------
  async function start() {
    const [got, mapped] = await Promise.all([get("/api/info"), get("/api/points")]);
    info = got;
    [C, H, W] = info.image_shape;
    classes = info.classes;
    conditional = info.conditional;
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
})();
