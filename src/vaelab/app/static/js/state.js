// The page's shared state: window.vaelab (the hooks that tests and benchmarks read), the
// run's facts from /api/info, and what the map, the sliders and the drawing show now.
export const $ = (id) => document.getElementById(id);
export const V = (window.vaelab = {
  ready: false, error: null, last: {}, frameShown: 0, pending: 0,
  timings: { map: [], mapParts: [], slider: [], draw: [], class: [] },
});
export const TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                      "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];  // matplotlib's, as `vaelab latent`

// the run, from /api/info: set once by start() in explorer.js
export let info, C, H, W, classes, conditional;
export function setInfo(got) {
  info = got;
  [C, H, W] = info.image_shape;
  classes = info.classes;
  conditional = info.conditional;
}

export const map = { canvas: $("map"), css: 480, pad: { l: 52, r: 12, t: 12, b: 40 },
                     layer: null, hover: null, pin: null, dragging: false, path: null, frame: -1 };
export const sliders = { base: null, code: null, label: undefined, what: "" };
export const drawing = { code: null, label: undefined, point: null, inked: false, as: null };
