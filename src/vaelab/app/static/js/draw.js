// The drawing pad: the drawing is encoded as it is drawn (scaled to the model's size,
// framed like MNIST if asked), and its code decoded as every class for conditional runs.
import { fromBase64, latest, pixelsOf, post, say, toBase64 } from "./api.js";
import { className, recordTime, show, sized } from "./images.js";
import { redraw } from "./map.js";
import { $, V, C, H, W, classes, conditional, drawing } from "./state.js";

const pad = $("draw");
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
export function bindPad() {
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
