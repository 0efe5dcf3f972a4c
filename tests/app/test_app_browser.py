"""The explorer as a person uses it, in real headless Chromium (Playwright) against a real
uvicorn server: drag on the latent map, move a slider, draw a stroke, pick a class,
interpolate and play. Each image on the page is read back from its canvas and checked
against the model's own decode of the code it shows; every request the page makes must go
to the server on 127.0.0.1, and the run directory must be byte for byte as before."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from app_helpers import fingerprint
from sklearn.decomposition import PCA

from vaelab.data.datasets import load_test, to_float
from vaelab.models.latents import class_means, encode_split, interpolate

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no Chromium here (Debian package 'chromium'; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


class Session:
    """A page of the explorer of one run, served by uvicorn in a background thread."""

    def __init__(self, browser, run, explorers):
        from vaelab.app.server import running

        self.run, self.before = run, fingerprint(run)
        self.explorer = explorers(run)
        self.model = self.explorer.model
        self.server = running(self.explorer)
        self.url = self.server.__enter__()
        self.requested: list[str] = []
        self.page = browser.new_page(viewport={"width": 1200, "height": 1000})
        self.page.on("request", lambda request: self.requested.append(request.url))
        self.page.goto(self.url)
        self.page.wait_for_function("window.vaelab && window.vaelab.ready", timeout=30_000)
        self.c, self.h, self.w = self.model.image_shape

    def close(self):
        self.page.close()
        self.server.__exit__(None, None, None)

    def js(self, expression: str):
        return self.page.evaluate(expression)

    def last(self, panel: str):
        return self.js(f"window.vaelab.last.{panel}")

    def wait(self, condition: str):
        self.page.wait_for_function(condition, timeout=15_000)

    def canvas(self, element: str, index: int = 0) -> np.ndarray:
        """The pixels a canvas shows, uint8 (H, W, C); `element` is a CSS selector."""
        rgba = self.js(f"""(() => {{ const c = document.querySelectorAll({json.dumps(element)})
            [{index}]; return Array.from(c.getContext("2d").getImageData(0, 0, c.width,
            c.height).data); }})()""")
        return np.array(rgba, np.uint8).reshape(self.h, self.w, 4)[..., :self.c]

    def pixels(self, values) -> np.ndarray:
        return np.array(values, np.uint8).reshape(-1, self.h, self.w, self.c)

    def box(self, selector: str) -> dict:
        return self.page.locator(selector).first.bounding_box()

    def stroke(self, selector: str, points: list[tuple[float, float]]):
        """Press, move through `points` (fractions of the element's box), release."""
        box = self.box(selector)
        at = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
        self.page.mouse.move(*at[0])
        self.page.mouse.down()
        for x, y in at[1:]:
            self.page.mouse.move(x, y, steps=6)
        self.page.mouse.up()
        return at[-1]

    def decoded(self, codes, labels=None) -> np.ndarray:
        """The model's own decode, uint8 (N, H, W, C): what every canvas must show."""
        with torch.no_grad():
            codes = torch.as_tensor(np.asarray(codes), dtype=torch.float32).reshape(
                -1, self.model.latent_dim)
            y = None if labels is None else torch.as_tensor(labels)
            x = self.model.likelihood.mean(self.model.decode(codes, y))
        return (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def close(a: np.ndarray, b: np.ndarray, levels: int = 1) -> bool:
    return a.shape == b.shape and int(np.abs(a.astype(int) - b.astype(int)).max()) <= levels


@pytest.fixture(scope="module")
def plain(browser, trained_run, explorers):
    session = Session(browser, trained_run, explorers)
    yield session
    session.close()


@pytest.fixture(scope="module")
def conditional(browser, conditional_run, explorers):
    session = Session(browser, conditional_run, explorers)
    yield session
    session.close()


def test_dragging_on_the_map_decodes_the_point_under_the_pointer(plain):
    s = plain
    s.wait("window.vaelab.last.map")
    before = s.canvas("#map-image")
    x, y = s.stroke("#map", [(0.35, 0.4), (0.5, 0.5), (0.7, 0.3)])
    target = s.js(f"window.vaelab.toPoint({{clientX: {x}, clientY: {y}}})")
    s.wait(f"(p => p && Math.abs(p[0] - {target[0]}) + Math.abs(p[1] - {target[1]}) < 1e-4)"
           "(window.vaelab.last.map.point)")  # the pointer's last position, to float32
    target, shown = s.last("map")["point"], s.canvas("#map-image")
    # The plane of `vaelab latent`, fitted here anew: (u, v) is mean + u pc1 + v pc2.
    mu, _ = encode_split(s.model, load_test(s.explorer.cfg.data))
    pca = PCA(n_components=2, random_state=0).fit(mu.numpy())
    code = pca.mean_ + target[0] * pca.components_[0] + target[1] * pca.components_[1]
    assert close(shown, s.decoded(code)[0], levels=2)
    assert not np.array_equal(shown, before)
    assert len(s.js("window.vaelab.timings.map")) >= 3  # each move decoded, and timed


def test_a_slider_moves_one_dimension_of_the_test_image_s_code(plain):
    s = plain
    s.wait("window.vaelab.last.slider")
    start, before = s.last("slider")["code"], s.canvas("#slider-image")
    box = s.box("#sliders input")
    s.page.mouse.click(box["x"] + 0.9 * box["width"], box["y"] + box["height"] / 2)
    s.wait(f"window.vaelab.last.slider.code.some((v, i) => v !== {json.dumps(start)}[i])")
    s.wait("window.vaelab.pending === 0")  # the newest slider decode is back and shown
    code = s.last("slider")["code"]
    dim = s.js("window.vaelab.info.sliders[0].dim")
    changed = [d for d, (a, b) in enumerate(zip(start, code)) if a != b]
    assert changed == [dim] and code[dim] > start[dim]
    shown = s.canvas("#slider-image")
    assert close(shown, s.decoded(code)[0]) and not np.array_equal(shown, before)


def test_a_drawing_is_encoded_reconstructed_and_marked_on_the_map(plain):
    s = plain
    s.stroke("#draw", [(0.3, 0.2), (0.6, 0.25), (0.45, 0.8)])
    s.wait("window.vaelab.last.drawing && !document.querySelector('#recon')"
           ".getContext('2d').getImageData(0, 0, 28, 28).data.every(v => v === 0)")
    s.wait("window.vaelab.pending === 0")  # every encoding sent while drawing is back
    drawing = s.last("drawing")
    image = s.pixels(drawing["image"])
    assert image.max() > 200 and (image > 0).mean() < 0.5  # a stroke, not a blank or a blot
    with torch.no_grad():
        mu, _ = s.model.encode(to_float(torch.from_numpy(image).permute(0, 3, 1, 2)))
    assert np.allclose(drawing["code"], mu[0].numpy(), atol=1e-4)
    assert close(s.canvas("#recon"), s.decoded(mu)[0])
    dpr = s.js("window.devicePixelRatio")
    x, y = s.js(f"window.vaelab.toPixel({json.dumps(drawing['point'])})")
    r, g, b = s.js(f"""Array.from(document.getElementById('map').getContext('2d')
        .getImageData({round(x * dpr)}, {round(y * dpr)}, 1, 1).data)""")[:3]
    assert r > 150 and g < 110 and b < 110  # the red cross of the drawing


def test_an_interpolation_between_two_test_images_plays(plain):
    s = plain
    s.page.click("#interpolate")
    s.wait("window.vaelab.last.path")
    path = s.last("path")
    test = s.explorer.test
    ends = [path["from"], path["to"]]
    indices = [int(s.page.input_value(f'.end[data-end="{e}"] .index')) for e in ("from", "to")]
    with torch.no_grad():
        mu, _ = s.model.encode(to_float(test.images[indices]))
    assert np.allclose([e["code"] for e in ends], mu.numpy(), atol=1e-5)
    frames = s.pixels(path["pixels"])
    assert close(frames, s.decoded(interpolate(mu[0], mu[1], path["steps"], "slerp")))
    shown = s.js("window.vaelab.frameShown")
    s.page.click("#play")
    s.wait(f"window.vaelab.frameShown >= {shown + 4}")
    s.page.click("#play")  # pause
    on_screen = s.canvas("#frame-image")
    assert any(np.array_equal(on_screen, frame) for frame in frames)


def test_the_plain_page_stays_on_localhost_and_leaves_the_run_as_it_was(plain):
    assert plain.requested and plain.js("window.vaelab.error") is None
    # A few data: URLs (the page's empty icon) are not requests to any host.
    assert all(url.startswith(plain.url) for url in plain.requested
               if not url.startswith("data:")), plain.requested
    assert plain.url.startswith("http://127.0.0.1:")
    assert fingerprint(plain.run) == plain.before


def test_a_conditional_map_decodes_as_the_class_picked_in_the_legend(conditional):
    s = conditional
    s.page.click("#legend li:nth-child(4)")  # class 3
    x, y = s.stroke("#map", [(0.3, 0.3), (0.55, 0.45)])
    target = s.js(f"window.vaelab.toPoint({{clientX: {x}, clientY: {y}}})")
    s.wait(f"(m => m && m.label === 3 && Math.abs(m.point[0] - {target[0]}) < 1e-4)"
           "(window.vaelab.last.map)")
    target = s.last("map")["point"]
    assert close(s.canvas("#map-image"), s.decoded(target, [3])[0])  # 2-D: the point is the code


def test_class_buttons_decode_a_drawing_as_every_class(conditional):
    s = conditional
    s.stroke("#draw", [(0.5, 0.15), (0.5, 0.85)])
    s.wait("window.vaelab.last.drawing")
    s.wait("window.vaelab.pending === 0")
    drawing = s.last("drawing")
    code = np.array(drawing["code"])
    every = s.decoded(np.tile(code, (10, 1)), list(range(10)))
    for k in range(10):  # the style row, decoded live for the drawing
        assert close(s.canvas("#class-buttons canvas", k), every[k])
    s.page.click('#class-buttons button[data-label="5"]')
    s.wait("window.vaelab.last.classDecode && window.vaelab.last.classDecode.label === 5")
    assert close(s.canvas("#recon"), every[5])
    assert not np.array_equal(every[5], every[drawing["label"]]) or drawing["label"] == 5


def test_an_interpolation_between_two_classes_blends_their_labels(conditional):
    s = conditional
    for end, k in (("from", "1"), ("to", "7")):
        s.page.select_option(f'.end[data-end="{end}"] .kind', "class")
        s.page.select_option(f'.end[data-end="{end}"] .class', k)
    s.page.click("#interpolate")
    s.wait("window.vaelab.last.path && window.vaelab.last.path.from.label === 1")
    path = s.last("path")
    mu, _ = encode_split(s.model, s.explorer.test)
    a, b = (class_means(mu, s.explorer.test.labels, k) for k in (1, 7))
    steps = path["steps"]
    t = torch.linspace(0, 1, steps)[:, None]
    labels = (1 - t) * torch.eye(10)[1] + t * torch.eye(10)[7]
    assert close(s.pixels(path["pixels"]), s.decoded(interpolate(a, b, steps, "slerp"), labels),
                 levels=2)
    shown = s.js("window.vaelab.frameShown")
    s.page.click("#play")
    s.wait(f"window.vaelab.frameShown >= {shown + 3}")


def test_the_conditional_page_stays_on_localhost_and_leaves_the_run_as_it_was(conditional):
    s = conditional
    assert s.js("window.vaelab.error") is None
    assert all(url.startswith(s.url) for url in s.requested if not url.startswith("data:"))
    assert fingerprint(s.run) == s.before
