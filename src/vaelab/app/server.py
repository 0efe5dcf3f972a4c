"""The explorer's web server: one static page (static/) and a small API over an `Explorer`.

    GET  /                     the page; /static/* its script and style sheet
    GET  /api/info             the run: image shape, classes, map axes and plane, sliders
    GET  /api/points           the map: test codes as points, their labels and test indices
    GET  /api/test/{i}         test image i: pixels, label, code, map point
    POST /api/decode           {"codes": [[D numbers]...]} or {"points": [[u, v]...]}, and
                               "labels" for a conditional run -> the images as raw bytes
    POST /api/encode           {"image": base64 H*W*C bytes, "label"?} -> code, point,
                               reconstruction (and every class's decoding, conditional)
    POST /api/sample           {"seed", "label"?} -> a code from the run's sampler, decoded
    POST /api/interpolate      {"from", "to": codes, "labels"?: [a, b], "steps", "mode"}
                               -> the path's images as raw bytes, its map points in
                               X-Points

Images travel as uint8 (H, W, C) pixels, channels last: raw bytes (N images one after
another, `X-Images: N,H,W,C`) from decode and interpolate, base64 inside JSON elsewhere.
Raw pixels go straight into a canvas (ImageData): a 28x28 PNG costs 0.05 ms to encode and
0.9 ms for Chromium to decode, for no fewer bytes.
Malformed requests get a 4xx answer with {"error": ...}. The server reads the run and
never writes to it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import json
import math
import os
import socket
import threading
import time
import webbrowser
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import ConfigError
from ..runs.rundir import require_run
from .explorer import MAX_BATCH, MAX_STEPS, Explorer

STATIC = Path(__file__).parent / "static"
MAX_BODY = 8 * 2**20  # bytes in one request: 256 codes of 1,000 units as JSON fit
MODES = ("slerp", "linear")
BACKLOG = 64


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def create_app(explorer: Explorer) -> Starlette:
    """The explorer's ASGI app (Starlette) over one loaded run."""
    model = explorer.model
    c, h, w = model.image_shape

    async def info(request: Request) -> Response:
        return JSONResponse(explorer.info())

    async def points(request: Request) -> Response:
        return JSONResponse(explorer.points())

    async def test_image(request: Request) -> Response:
        index = request.path_params["index"]
        if not 0 <= index < len(explorer.test):
            raise BadRequest(f"no test image {index}: there are {len(explorer.test)}", 404)
        return image_json(explorer.test_image(index))

    async def decode(request: Request) -> Response:
        data = await read_json(request)
        started = time.perf_counter()
        if ("codes" in data) == ("points" in data):
            raise BadRequest('send either "codes" (N x D numbers) or "points" (N x 2)')
        if "codes" in data:
            codes = matrix(data["codes"], "codes", model.latent_dim)
        else:
            codes = explorer.codes_at(matrix(data["points"], "points", 2))
        images = explorer.images(codes, labels_of(data, len(codes)))
        return raw_images(images, started)

    async def encode(request: Request) -> Response:
        data = await read_json(request)
        try:
            pixels = base64.b64decode(str_of(data, "image"), validate=True)
        except binascii.Error:
            raise BadRequest('"image" must be base64 of the image\'s bytes') from None
        if len(pixels) != h * w * c:
            raise BadRequest(f'"image" must hold {h}x{w}x{c} = {h * w * c} bytes (rows of '
                             f'pixels, channels last), got {len(pixels)}')
        image = torch.frombuffer(bytearray(pixels), dtype=torch.uint8).reshape(h, w, c)
        label = class_of(data, "label", required=False)
        return image_json(explorer.encode(image.numpy(), label))

    async def sample(request: Request) -> Response:
        data = await read_json(request)
        seed = data.get("seed", 0)
        if type(seed) is not int or not 0 <= seed < 2**63:
            raise BadRequest('"seed" must be a whole number from 0 to 2**63 - 1')
        return image_json(explorer.sample(class_of(data, "label"), seed))

    async def path(request: Request) -> Response:
        data = await read_json(request)
        started = time.perf_counter()
        start, end = (vector(data.get(key), key, model.latent_dim) for key in ("from", "to"))
        steps, mode = data.get("steps", 10), data.get("mode", "slerp")
        if type(steps) is not int or not 2 <= steps <= MAX_STEPS:
            raise BadRequest(f'"steps" must be a whole number from 2 to {MAX_STEPS}')
        if mode not in MODES:
            raise BadRequest(f'"mode" must be one of {", ".join(MODES)}')
        ends = None
        if model.conditional:
            pair = data.get("labels")
            if not isinstance(pair, list) or len(pair) != 2:
                raise BadRequest('"labels" must be the two ends\' classes, [a, b]')
            ends = tuple(class_of({"label": v}, "label") for v in pair)
        elif data.get("labels") is not None:
            raise BadRequest("this run is not conditional: send no labels")
        images, points = explorer.interpolate(start, end, steps, mode, ends)
        return raw_images(images, started, {"X-Points": json.dumps(np.round(points, 4).tolist())})

    def labels_of(data: dict, n: int) -> torch.Tensor | None:
        """(n,) class numbers or (n, C) class weights for a conditional model, else None."""
        value = data.get("labels")
        if not model.conditional:
            if value is not None:
                raise BadRequest("this run is not conditional: send no labels")
            return None
        if not isinstance(value, list) or len(value) != n:
            raise BadRequest(f'"labels" must give one class (or a row of '
                             f'{model.num_classes} class weights) per image: {n}')
        if all(isinstance(v, list) for v in value):
            rows = matrix(value, "labels", model.num_classes)
            if (rows < 0).any() or not (rows.sum(1) > 0).all():
                raise BadRequest("class weights must be >= 0, with a positive sum")
            return rows
        return torch.tensor([class_of({"label": v}, "label") for v in value])

    def class_of(data: dict, key: str, required: bool = True) -> int | None:
        value = data.get(key)
        if not model.conditional:
            if value is not None:
                raise BadRequest(f"this run is not conditional: send no {key}")
            return None
        if value is None and not required:
            return None
        if type(value) is not int or not 0 <= value < model.num_classes:
            raise BadRequest(f'"{key}" must be a class number from 0 to '
                             f'{model.num_classes - 1}')
        return value

    routes = [
        Route("/", lambda request: FileResponse(STATIC / "index.html")),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/api/info", info),
        Route("/api/points", points),
        Route("/api/test/{index:int}", test_image),
        Route("/api/decode", decode, methods=["POST"]),
        Route("/api/encode", encode, methods=["POST"]),
        Route("/api/sample", sample, methods=["POST"]),
        Route("/api/interpolate", path, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={BadRequest: bad_request})


async def bad_request(request: Request, error: BadRequest) -> Response:
    return JSONResponse({"error": str(error)}, status_code=error.status)


async def read_json(request: Request) -> dict:
    """The request's body as a JSON object, of at most MAX_BODY bytes."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise BadRequest(f"the request is larger than {MAX_BODY} bytes", 413)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest("the body must be JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def matrix(value, name: str, width: int) -> torch.Tensor:
    """A JSON list of 1..MAX_BATCH rows of `width` finite numbers -> a float tensor."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_BATCH or not all(
            isinstance(row, list) and len(row) == width and
            all(type(v) in (int, float) for v in row) for row in value):
        raise BadRequest(f'"{name}" must be a list of 1 to {MAX_BATCH} lists of {width} '
                         f'numbers')
    try:
        rows = torch.tensor(value, dtype=torch.float64).float()
    except OverflowError:  # an integer beyond any float
        rows = torch.tensor([math.inf])
    if not torch.isfinite(rows).all():
        raise BadRequest(f'"{name}" must be finite numbers (within float32)')
    return rows


def vector(value, name: str, width: int) -> torch.Tensor:
    """A JSON list of `width` finite numbers -> a float tensor (width,)."""
    if not isinstance(value, list) or len(value) != width:
        raise BadRequest(f'"{name}" must be a list of {width} numbers')
    return matrix([value], name, width)[0]


def str_of(data: dict, key: str) -> str:
    if not isinstance(data.get(key), str):
        raise BadRequest(f'"{key}" must be a string')
    return data[key]


def raw_images(images, started: float, headers: dict | None = None) -> Response:
    """uint8 (N, H, W, C) -> their bytes, the shape in X-Images, the server's time in
    Server-Timing (which the page's timings can read beside the round trip)."""
    ms = (time.perf_counter() - started) * 1000
    return Response(images.tobytes(), media_type="application/octet-stream", headers={
        "X-Images": ",".join(map(str, images.shape)), "Server-Timing": f"model;dur={ms:.2f}",
        "Cache-Control": "no-store", **(headers or {})})


def image_json(answer: dict) -> Response:
    """A JSON answer whose uint8 arrays ("image", "as_classes") go as base64 strings."""
    encoded = {key: base64.b64encode(value.tobytes()).decode() if hasattr(value, "tobytes")
               else value for key, value in answer.items()}
    return JSONResponse(encoded, headers={"Cache-Control": "no-store"})


# --- listening and serving -------------------------------------------------------------------

def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port (0: any free port). A port in use, or a host this
    machine cannot listen on, is a user error, found before the run is loaded."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise ConfigError(f"--host {host}: not an address of this machine ({e})") from None
    # proto=IPPROTO_TCP, not 0: asyncio switches Nagle's algorithm off (TCP_NODELAY) only on
    # connections of a socket that says it is TCP; with Nagle on, every answer waited for the
    # browser's delayed ACK: 44 ms a round trip instead of 2.
    sock = socket.socket(family, kind, proto)
    if os.name != "nt":  # restart at once after Ctrl-C; a listening server still holds it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is in use: stop what holds it or pick "
                              f"another with --port (--port 0 takes any free one)") from None
        raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def uvicorn_server(explorer: Explorer) -> uvicorn.Server:
    """A uvicorn server for the app that logs only warnings and errors (no access log)."""
    return uvicorn.Server(uvicorn.Config(create_app(explorer), log_level="warning",
                                         access_log=False, lifespan="off",
                                         timeout_graceful_shutdown=2))


@contextlib.contextmanager
def running(explorer: Explorer, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve in a background thread while the block runs; yields the page's URL (for
    tests, benchmarks and screenshots)."""
    sock = listen(host, port)
    server = uvicorn_server(explorer)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def serve(run: str | Path, *, host: str = "127.0.0.1", port: int = 8000,
          open_browser: bool = False, checkpoint: str = "best", device: str = "cpu",
          data_dir: str | Path | None = None, threads: int | None = 1, log=print) -> None:
    """Serve the explorer of a run until Ctrl-C (see `vaelab.serve`)."""
    require_run(run)  # a wrong directory, then a port in use: one line each, before loading
    sock = listen(host, port)
    before = torch.get_num_threads()
    try:
        explorer = Explorer.from_run(run, checkpoint, device, data_dir)
        if threads:
            torch.set_num_threads(threads)
        url = url_of(sock)
        log(f"vaelab explorer of {run} at {url} (Ctrl-C stops it)")
        if open_browser:
            webbrowser.open(url)
        uvicorn_server(explorer).run(sockets=[sock])  # returns, or raises, on Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        torch.set_num_threads(before)
    log("vaelab serve: stopped")
