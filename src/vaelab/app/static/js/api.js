// Talking to the server that sent the page: JSON and raw-pixel requests, base64, the
// "latest wins" runner, and the status line for errors.
import { $, V } from "./state.js";

async function answer(response, raw) {
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return raw ? response : response.json();
}
export const get = async (path) => answer(await fetch(path), false);
export const post = async (path, body, raw = false) => answer(await fetch(path, {
  method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
}), raw);
export async function pixelsOf(path, body) {  // raw images: N * H * W * C bytes
  const response = await post(path, body, true);
  return { pixels: new Uint8Array(await response.arrayBuffer()), response };
}
export function fromBase64(text) {
  const s = atob(text), out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
export function toBase64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}
export function latest(run) {  // a task runner where only the newest waiting job runs next
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
export function say(message) {
  V.error = message;
  $("status").textContent = message;
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => { $("status").textContent = ""; }, 8000);
}
