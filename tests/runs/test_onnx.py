"""ONNX export: every family's encoder and decoder graphs give, in onnxruntime, what the
PyTorch model gives (to 1e-4 in float32) at batch sizes other than the one traced; the CLI
writes them from a trained run; its mistakes are one line and exit status 2."""

from __future__ import annotations

import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import vaelab
from helpers import assert_one_line_error, train_quietly
from vaelab.cli import main
from vaelab.config import Config
from vaelab.models.vae import build_model
from vaelab.runs import onnx as onnx_export
from vaelab.runs.onnx import EXAMPLE_BATCH, export_onnx

TOLERANCE = 1e-4  # float32: ONNX kernels sum in another order than PyTorch's
BATCHES = (1, 5)  # neither is the traced example batch, so each proves the batch is dynamic
assert EXAMPLE_BATCH not in BATCHES

CONV = {"model.channels": [8, 16], "model.dense": 32, "model.latent_dim": 4}
HVAE = {"model.arch": "hvae", "model.width": 32, "model.latent_dim": 3, "model.layers": 2}
COLOUR = {"model.image_shape": [3, 32, 32], "model.logistic_components": 3}
FAMILIES = {  # small untrained models of every family, conditional and colour variants
    "mlp": {"model.arch": "mlp", "model.hidden": [64], "model.latent_dim": 4},
    "mlp-conditional": {"model.arch": "mlp", "model.hidden": [64], "model.latent_dim": 4,
                        "model.conditional": True},
    "mlp-pad32-gaussian": {"model.arch": "mlp", "model.hidden": [64], "model.latent_dim": 4,
                           "model.pad32": True, "model.likelihood": "gaussian-learned"},
    "conv": {"model.arch": "conv", **CONV},
    "cvae": {"model.arch": "cvae", **CONV},
    "hvae": HVAE,
    "hvae-conditional": {**HVAE, "model.conditional": True},
    "conv-colour": {"model.arch": "conv", **CONV, **COLOUR},
    "hvae-colour": {**HVAE, **COLOUR},
}


def untrained(overrides: dict, seed: int = 0):
    """A model whose zero-initialised heads (hvae's posteriors start at their priors) are
    moved off zero, so that every output depends on its inputs."""
    torch.manual_seed(seed)
    model = build_model(Config().replace(overrides).model).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def onnx_outputs(path, feed: dict[str, torch.Tensor]) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {name: t.numpy() for name, t in feed.items()})


def max_differences(model, folder, n: int) -> dict[str, float]:
    """Largest |onnxruntime - PyTorch| of mu, logvar and image for n random inputs."""
    generator = torch.Generator().manual_seed(n)
    x = torch.rand(n, *model.image_shape, generator=generator)
    z = torch.randn(n, model.latent_dim, generator=generator)
    label = {}
    y = None
    if model.conditional:
        y = torch.nn.functional.one_hot(torch.arange(n) % model.num_classes,
                                        model.num_classes).float()
        label = {"label": y}
    with torch.no_grad():
        mu, logvar = model.encode(x, y)
        image = model.images(z, y)
    onnx_mu, onnx_logvar = onnx_outputs(folder / "encoder.onnx", {"x": x, **label})
    (onnx_image,) = onnx_outputs(folder / "decoder.onnx", {"z": z, **label})
    assert onnx_mu.shape == (n, model.latent_dim) and onnx_image.shape == (n, *model.image_shape)
    return {name: float(np.abs(ours - theirs.numpy()).max())
            for name, ours, theirs in (("mu", onnx_mu, mu), ("logvar", onnx_logvar, logvar),
                                       ("image", onnx_image, image))}


@pytest.mark.parametrize("family", FAMILIES)
def test_onnx_matches_pytorch_at_any_batch_size(family, tmp_path):
    model = untrained(FAMILIES[family])
    written = export_onnx(model, tmp_path)
    assert written == [tmp_path / "encoder.onnx", tmp_path / "decoder.onnx"]
    for n in BATCHES:
        differences = max_differences(model, tmp_path, n)
        assert max(differences.values()) <= TOLERANCE, (family, n, differences)
    with torch.no_grad():  # the comparison is not between two constants
        images = model.images(torch.randn(4, model.latent_dim),
                              torch.arange(4) if model.conditional else None)
    assert images.std() > 1e-3 and 0 <= images.min() and images.max() <= 1


def test_graph_names_and_dynamic_batch(tmp_path):
    model = untrained(FAMILIES["hvae-conditional"])
    export_onnx(model, tmp_path)

    def signature(values):
        return [(v.name, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
                for v in values]

    encoder = onnx.load(tmp_path / "encoder.onnx")
    decoder = onnx.load(tmp_path / "decoder.onnx")
    assert signature(encoder.graph.input) == [("x", ["batch", 1, 28, 28]),
                                              ("label", ["batch", 10])]
    assert signature(encoder.graph.output) == [("mu", ["batch", 6]), ("logvar", ["batch", 6])]
    assert signature(decoder.graph.input) == [("z", ["batch", 6]), ("label", ["batch", 10])]
    assert signature(decoder.graph.output) == [("image", ["batch", 1, 28, 28])]
    assert [o.version for o in encoder.opset_import if o.domain == ""] == [onnx_export.OPSET]
    onnx.checker.check_model(encoder)
    onnx.checker.check_model(decoder)


def test_cli_exports_a_trained_run(trained_run, tmp_path, capsys):
    out = tmp_path / "exported"
    assert main(["export", str(trained_run), str(out), "--format", "onnx"]) in (0, None)
    printed = capsys.readouterr().out
    assert f"{out / 'encoder.onnx'} and {out / 'decoder.onnx'}" in printed
    assert (out / "encoder" / "model.safetensors").is_file()  # kept beside the graphs
    assert (out / "decoder" / "model.safetensors").is_file()
    model = vaelab.load(trained_run)
    for n in BATCHES:
        assert max(max_differences(model, out, n).values()) <= TOLERANCE


def test_cli_exports_a_conditional_hvae_run(tmp_path_factory, tmp_path, data_dir, capsys):
    run = train_quietly({**HVAE, "model.conditional": True, "data.limit": 600,
                         "data.val_size": 200, "train.epochs": 1, "train.batch_size": 100,
                         "train.threads": 2, "train.sample_grid": 2,
                         "train.precision": "fp32"},
                        tmp_path_factory, "hvae-conditional", data_dir)
    out = tmp_path / "exported"
    assert main(["export", str(run), str(out), "--format", "onnx"]) in (0, None)
    printed = capsys.readouterr().out
    assert "share its top-down path" in printed
    assert sorted(p.name for p in out.iterdir()) == ["decoder.onnx", "encoder.onnx"]
    model = vaelab.load(run)
    for n in BATCHES:
        assert max(max_differences(model, out, n).values()) <= TOLERANCE
    # the safetensors split still cannot be made, and says what can
    assert_one_line_error(capsys, ["export", str(run), str(tmp_path / "parts")],
                          "cannot be split into safetensors parts", "--format onnx")
    assert not (tmp_path / "parts").exists()


def test_missing_packages_name_the_extra(trained_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # `import onnxscript` now fails
    out = tmp_path / "exported"
    assert_one_line_error(capsys, ["export", str(trained_run), str(out), "--format", "onnx"],
                          "onnxscript", 'pip install "vaelab[onnx]"')
    assert not out.exists(), "nothing is written before the packages are checked"


@pytest.mark.parametrize("argv, fragment", [
    (["export", "{tmp}/no-run", "{tmp}/out", "--format", "onnx"], "run directory not found"),
    (["export", "{run}", "{tmp}/out", "--format", "tflite"], "invalid choice: 'tflite'"),
    (["export", "{run}", "{tmp}/a-file", "--format", "onnx"], "a file of that name exists"),
])
def test_user_errors(argv, fragment, trained_run, tmp_path, capsys):
    (tmp_path / "a-file").write_text("not a folder")
    argv = [a.format(tmp=tmp_path, run=trained_run) for a in argv]
    assert_one_line_error(capsys, argv, fragment)
    assert not (tmp_path / "out").exists()
