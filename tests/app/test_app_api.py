"""The explorer's API, without a browser (Starlette's TestClient): every endpoint on every
model family (mlp, conv, cvae, hvae; conditional or not; codes of 1, 2, 3 and 4 units;
grayscale 28x28 and, for the conv run, colour 12x10), its numbers against the model's own
encode and decode, a 4xx answer (never a server error) for malformed requests, and a run
directory left byte for byte as it was."""

from __future__ import annotations

import base64
import json
import shutil

import numpy as np
import pytest
import torch
from app_helpers import fingerprint
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.decomposition import PCA

from vaelab.data.datasets import load_test, to_float
from vaelab.models.latents import encode_split, interpolate, kl_per_dimension

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx`")  # newer Starlette: httpx2

RUNS = ["trained_run", "conditional_run", "hvae-conditional", "mlp-1d", "colour"]


def run_named(request, name: str):
    if name in ("trained_run", "conditional_run"):
        return request.getfixturevalue(name)
    if name == "colour":
        return request.getfixturevalue("colour_run")
    return request.getfixturevalue("family_runs")[name]


@pytest.fixture(params=RUNS)
def served(request, explorers):
    """(explorer, test client) of each run."""
    from starlette.testclient import TestClient

    from vaelab.app.server import create_app

    explorer = explorers(run_named(request, request.param))
    with TestClient(create_app(explorer)) as client:
        yield explorer, client


def images_of(response, explorer) -> np.ndarray:
    """A raw-images answer as uint8 (N, H, W, C)."""
    assert response.status_code == 200, response.text
    c, h, w = explorer.model.image_shape
    n, *shape = map(int, response.headers["X-Images"].split(","))
    assert shape == [h, w, c] and len(response.content) == n * h * w * c
    return np.frombuffer(response.content, np.uint8).reshape(n, h, w, c)


def decoded(explorer, codes: torch.Tensor, labels=None) -> np.ndarray:
    """What the model decodes, as uint8 (N, H, W, C): the reference for every image."""
    model = explorer.model
    with torch.no_grad():
        y = labels if model.conditional else None
        x = model.likelihood.mean(model.decode(codes, y))
    return (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """Pixels equal up to one level of 255 (float rounding on the way)."""
    return a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).max() <= 1


def labels_for(explorer, n: int):
    return list(range(n)) if explorer.model.conditional else None


def test_info_and_the_map_are_what_latent_and_traverse_compute(served):
    explorer, client = served
    model = explorer.model
    info, points = client.get("/api/info").json(), client.get("/api/points").json()
    assert info["image_shape"] == list(model.image_shape)
    assert info["latent_dim"] == model.latent_dim and info["conditional"] == model.conditional
    test = load_test(explorer.cfg.data)
    mu, logvar = encode_split(model, test)
    kl = kl_per_dimension(mu, logvar)
    assert [s["dim"] for s in info["sliders"]] == kl.argsort(descending=True)[:10].tolist()
    assert all(s["min"] <= -3 and s["max"] >= 3 for s in info["sliders"])
    xy, labels = np.array(points["points"]), np.array(points["labels"])
    index = np.array(points["indices"])
    assert len(xy) == min(10_000, len(test)) and (labels == test.labels[index].numpy()).all()
    mu = mu[index].numpy()
    if model.latent_dim >= 3:  # the PCA plane of `vaelab latent`
        expected = PCA(n_components=2, random_state=0).fit(mu).transform(mu)
        assert info["map"]["axes"][0].startswith("PC 1")
    elif model.latent_dim == 2:
        expected = mu
    else:  # z[0] across, the class's row down
        expected = np.stack([mu[:, 0], labels], 1)
        assert np.abs(xy[:, 1] - labels).max() <= 0.3 + 1e-3
        xy[:, 1] = labels
    assert np.allclose(xy, expected, atol=2e-3)


def test_map_points_decode_as_pca_mean_plus_u_pc1_plus_v_pc2(served):
    explorer, client = served
    info = client.get("/api/info").json()
    points = [[0.3, -0.2], [1.0, 1.0], [-1.5, 0.25]]
    labels = labels_for(explorer, 3)
    got = images_of(client.post("/api/decode", json={"points": points, "labels": labels}),
                    explorer)
    mean, pcs = torch.tensor(info["map"]["mean"]), torch.tensor(info["map"]["pcs"])
    codes = mean + torch.tensor(points) @ pcs
    y = None if labels is None else torch.tensor(labels)
    assert close(got, decoded(explorer, codes, y))
    assert got[0].any() and not (got[0] == got[1]).all()


def test_codes_decode_in_one_batch_as_the_model_decodes_them(served):
    explorer, client = served
    codes = torch.randn(5, explorer.model.latent_dim, generator=torch.Generator().manual_seed(0))
    labels = labels_for(explorer, 5)
    got = images_of(client.post("/api/decode", json={"codes": codes.tolist(),
                                                     "labels": labels}), explorer)
    assert len(got) == 5
    assert close(got, decoded(explorer, codes, None if labels is None else torch.tensor(labels)))


def test_a_test_image_and_an_encoded_image_give_the_model_s_code(served):
    explorer, client = served
    model, test = explorer.model, explorer.test
    answer = client.get("/api/test/3").json()
    pixels = test.images[3].permute(1, 2, 0).numpy()  # (H, W, C)
    assert base64.b64decode(answer["image"]) == pixels.tobytes()
    label = int(test.labels[3])
    y = torch.tensor([label]) if model.conditional else None
    with torch.no_grad():
        mu, _ = model.encode(to_float(test.images[3:4]), y)
    assert np.allclose(answer["code"], mu[0].numpy(), atol=1e-5)
    assert answer["label"] == label
    body = {"image": base64.b64encode(pixels.tobytes()).decode(),
            "label": label if model.conditional else None}
    encoded = client.post("/api/encode", json=body).json()
    assert np.allclose(encoded["code"], mu[0].numpy(), atol=1e-5)
    reconstruction = np.frombuffer(base64.b64decode(encoded["image"]), np.uint8)
    assert close(reconstruction.reshape(1, *pixels.shape), decoded(explorer, mu, y))
    assert np.allclose(encoded["point"], explorer.point_of(mu)[0], atol=1e-5)
    if model.conditional:  # the drawing decoded as every class: the style figure's row
        c = model.num_classes
        every = np.frombuffer(base64.b64decode(encoded["as_classes"]), np.uint8)
        assert close(every.reshape(c, *pixels.shape),
                     decoded(explorer, mu.expand(c, -1), torch.arange(c)))
        guessed = client.post("/api/encode", json={"image": body["image"]}).json()
        assert guessed["guessed"] and 0 <= guessed["label"] < c


def test_random_samples_come_from_the_run_s_sampler_and_repeat_with_their_seed(served):
    explorer, client = served
    body = {"seed": 7, "label": 1 if explorer.model.conditional else None}
    first, again = (client.post("/api/sample", json=body).json() for _ in range(2))
    other = client.post("/api/sample", json={**body, "seed": 8}).json()
    assert first["sampler"] == "gmm" and first["code"] == again["code"] != other["code"]
    code = torch.tensor([first["code"]])
    image = np.frombuffer(base64.b64decode(first["image"]), np.uint8)
    y = torch.tensor([1]) if explorer.model.conditional else None
    assert close(image.reshape(decoded(explorer, code, y).shape), decoded(explorer, code, y))


def test_an_interpolation_is_one_batch_along_the_path_of_vaelab_interpolate(served):
    explorer, client = served
    model = explorer.model
    a, b = torch.randn(2, model.latent_dim, generator=torch.Generator().manual_seed(1))
    body = {"from": a.tolist(), "to": b.tolist(), "steps": 6, "mode": "slerp",
            "labels": [2, 5] if model.conditional else None}
    response = client.post("/api/interpolate", json=body)
    got = images_of(response, explorer)
    path = interpolate(a, b, 6, "slerp")
    y = None
    if model.conditional:  # one-hot labels of the two ends, blended
        t = torch.linspace(0, 1, 6)[:, None]
        y = (1 - t) * torch.eye(model.num_classes)[2] + t * torch.eye(model.num_classes)[5]
    assert close(got, decoded(explorer, path, y))
    assert np.allclose(json.loads(response.headers["X-Points"]), explorer.point_of(path),
                       atol=1e-3)


# --- malformed requests: a 4xx answer with a message, never a server error ---------------

CODE4 = [0.0, 0.0, 0.0, 0.0]
BAD_ANYWHERE = [  # (method, path, body) for the 4-D unconditional mlp run
    ("POST", "/api/decode", b""), ("POST", "/api/decode", b"not json"),
    ("POST", "/api/decode", b"[1, 2]"), ("POST", "/api/decode", b"null"),
    ("POST", "/api/decode", b"\xff\xfe"), ("POST", "/api/decode", b"[" * 100_000),
    ("POST", "/api/decode", {}), ("POST", "/api/decode", {"codes": []}),
    ("POST", "/api/decode", {"codes": [[1, 2]]}), ("POST", "/api/decode", {"codes": CODE4}),
    ("POST", "/api/decode", {"codes": [[1, 2, 3, "4"]]}),
    ("POST", "/api/decode", {"codes": [[1, 2, 3, True]]}),
    ("POST", "/api/decode", {"codes": [[1e39, 0, 0, 0]]}),
    ("POST", "/api/decode", {"codes": [[10**400, 0, 0, 0]]}),
    ("POST", "/api/decode", b'{"codes": [[NaN, 0, 0, 0]]}'),
    ("POST", "/api/decode", b'{"points": [[Infinity, 0]]}'),
    ("POST", "/api/decode", {"codes": [CODE4] * 257}),
    ("POST", "/api/decode", {"codes": [CODE4], "points": [[0, 0]]}),
    ("POST", "/api/decode", {"points": "0,0"}), ("POST", "/api/decode", {"points": [[0, 0, 0]]}),
    ("POST", "/api/decode", {"points": [[0, 0]], "labels": [1]}),
    ("POST", "/api/decode", b" " * (9 * 2**20)),
    ("GET", "/api/decode", None), ("GET", "/api/nothing", None), ("GET", "/static/../x", None),
    ("GET", "/api/test/10000", None), ("GET", "/api/test/-1", None),
    ("GET", "/api/test/one", None),
    ("POST", "/api/encode", {}), ("POST", "/api/encode", {"image": 5}),
    ("POST", "/api/encode", {"image": "!!!"}),
    ("POST", "/api/encode", {"image": base64.b64encode(bytes(10)).decode()}),
    ("POST", "/api/encode", {"image": base64.b64encode(bytes(784)).decode(), "label": 3}),
    ("POST", "/api/sample", {"seed": -1}), ("POST", "/api/sample", {"seed": "a"}),
    ("POST", "/api/sample", {"seed": 1.5}), ("POST", "/api/sample", {"seed": 2**70}),
    ("POST", "/api/sample", {"label": 1}),
    ("POST", "/api/interpolate", {"from": CODE4}),
    ("POST", "/api/interpolate", {"from": [CODE4], "to": CODE4}),
    ("POST", "/api/interpolate", {"from": CODE4, "to": [0, 0, 0]}),
    ("POST", "/api/interpolate", {"from": CODE4, "to": CODE4, "steps": 1}),
    ("POST", "/api/interpolate", {"from": CODE4, "to": CODE4, "steps": 101}),
    ("POST", "/api/interpolate", {"from": CODE4, "to": CODE4, "steps": "10"}),
    ("POST", "/api/interpolate", {"from": CODE4, "to": CODE4, "mode": "cubic"}),
    ("POST", "/api/interpolate", {"from": CODE4, "to": CODE4, "labels": [1, 2]}),
]
CODE2 = [0.0, 0.0]
BAD_CONDITIONAL = [  # for the 2-D cvae run: labels missing, out of range or of the wrong kind
    ("POST", "/api/decode", {"points": [[0, 0]]}),
    ("POST", "/api/decode", {"points": [[0, 0]], "labels": [10]}),
    ("POST", "/api/decode", {"points": [[0, 0]], "labels": [-1]}),
    ("POST", "/api/decode", {"points": [[0, 0]], "labels": ["3"]}),
    ("POST", "/api/decode", {"points": [[0, 0]], "labels": [True]}),
    ("POST", "/api/decode", {"points": [[0, 0]], "labels": [1, 2]}),
    ("POST", "/api/decode", {"points": [[0, 0]], "labels": [[0] * 10]}),
    ("POST", "/api/decode", {"points": [[0, 0]], "labels": [[1] * 9]}),
    ("POST", "/api/decode", {"points": [[0, 0]], "labels": [[-1] + [1] * 9]}),
    ("POST", "/api/sample", {"seed": 1}), ("POST", "/api/sample", {"seed": 1, "label": 10}),
    ("POST", "/api/encode", {"image": base64.b64encode(bytes(784)).decode(), "label": 10}),
    ("POST", "/api/encode", {"image": base64.b64encode(bytes(784)).decode(), "label": "3"}),
    ("POST", "/api/interpolate", {"from": CODE2, "to": CODE2}),
    ("POST", "/api/interpolate", {"from": CODE2, "to": CODE2, "labels": [1]}),
    ("POST", "/api/interpolate", {"from": CODE2, "to": CODE2, "labels": [1, 99]}),
]


@pytest.mark.parametrize("run, cases", [("trained_run", BAD_ANYWHERE),
                                        ("conditional_run", BAD_CONDITIONAL)])
def test_malformed_requests_get_a_4xx_answer_that_says_why(request, explorers, run, cases):
    from starlette.testclient import TestClient

    from vaelab.app.server import create_app

    client = TestClient(create_app(explorers(request.getfixturevalue(run))))  # server errors
    for method, path, body in cases:                                           # raise here
        content = body if isinstance(body, bytes | None) else json.dumps(body).encode()
        response = client.request(method, path, content=content)
        assert 400 <= response.status_code < 500, (path, body, response.text)
        if path.startswith("/api/") and response.status_code == 400:
            assert response.json()["error"], (path, body)


def test_conditional_runs_take_class_weights_too(conditional_run, explorers):
    from starlette.testclient import TestClient

    from vaelab.app.server import create_app

    explorer = explorers(conditional_run)
    client = TestClient(create_app(explorer))
    half = [0.5 if k in (3, 8) else 0.0 for k in range(10)]
    got = images_of(client.post("/api/decode", json={"codes": [[0.1, -0.2]],
                                                     "labels": [half]}), explorer)
    assert close(got, decoded(explorer, torch.tensor([[0.1, -0.2]]), torch.tensor([half])))


def test_serving_writes_nothing_into_the_run_even_when_it_fits_the_sampler(
        trained_run, tmp_path, capsys):
    """A run without its gmm.safetensors (trained before the mixture existed): the first
    random sample fits the mixture, which stays in memory; every file stays as it was."""
    from starlette.testclient import TestClient

    from vaelab.app.explorer import Explorer
    from vaelab.app.server import create_app

    run = shutil.copytree(trained_run, tmp_path / "run")
    (run / "checkpoints" / "best" / "gmm.safetensors").unlink()
    before = fingerprint(run)
    explorer = Explorer.from_run(run)
    client = TestClient(create_app(explorer))
    for path in ("/", "/static/explorer.js", "/static/explorer.css", "/api/info",
                 "/api/points", "/api/test/0"):
        assert client.get(path).status_code == 200
    for path, body in [("/api/decode", {"points": [[0, 0]]}),
                       ("/api/encode", {"image": base64.b64encode(bytes(784)).decode()}),
                       ("/api/sample", {"seed": 0}), ("/api/sample", {"seed": 1}),
                       ("/api/interpolate", {"from": CODE4, "to": [1.0] * 4})]:
        assert client.post(path, json=body).status_code == 200
    assert "fitting the gmm sampler" in capsys.readouterr().err
    assert explorer.model.code_samplers["gmm"]._mixture is not None  # fitted, kept in memory
    assert fingerprint(run) == before


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(
        st.sampled_from(["codes", "points", "labels", "image", "label", "seed", "from", "to",
                         "steps", "mode"]) | st.text(max_size=4), inner, max_size=5),
    max_leaves=24)


@settings(max_examples=300, deadline=None, database=None)
@given(path=st.sampled_from(["/api/decode", "/api/encode", "/api/sample", "/api/interpolate"]),
       body=JSON)
def test_any_json_body_gets_an_answer_never_a_server_error(conditional_run, explorers, path,
                                                           body):
    from starlette.testclient import TestClient

    from vaelab.app.server import create_app

    client = TestClient(create_app(explorers(conditional_run)))  # a server error raises
    response = client.post(path, content=json.dumps(body).encode())
    assert response.status_code == 200 or 400 <= response.status_code < 500
