"""README code runs: every ```python block is executed against a small trained run (the
onnxruntime one against that run's ONNX export, made by the README's own command)."""

import re
from pathlib import Path

import numpy as np
import torch

import vaelab
from vaelab.cli import main

README = Path(__file__).parents[1] / "README.md"
ONNX = "onnxruntime"  # blocks that read what `vaelab export ... --format onnx` wrote


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_snippets_run(trained_run, tmp_path, monkeypatch):
    blocks = [block for block in python_blocks() if ONNX not in block]
    assert blocks, "README has a Python example"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        code = block.replace("runs/my-run", str(trained_run))
        namespace: dict = {}
        exec(compile(code, "README.md", "exec"), namespace)
    images = namespace["images"]
    assert images.shape == (16, 1, 28, 28)
    assert 0 <= images.min() and images.max() <= 1


def test_readme_onnx_snippet_runs(trained_run, tmp_path, monkeypatch):
    blocks = [block for block in python_blocks() if ONNX in block]
    assert blocks, "README shows onnxruntime decoding codes"
    command = re.search(r"^vaelab (export RUN_DIR .*--format onnx)", README.read_text(),
                        flags=re.M)
    assert command, "README shows the ONNX export command"
    monkeypatch.chdir(tmp_path)
    argv = command.group(1).replace("RUN_DIR", str(trained_run)).split()
    assert main(argv) in (0, None)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    images, z = namespace["images"], namespace["z"]
    assert images.shape == (16, 1, 28, 28) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1
    expected = vaelab.load(trained_run).images(torch.from_numpy(z)).detach().numpy()
    assert np.abs(images - expected).max() <= 1e-4  # what the PyTorch model draws


def test_readme_test_command_is_what_ci_runs():
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    command = 'pip install -e ".[dev]" && python -m pytest'
    assert command in README.read_text()
    assert command in ci
