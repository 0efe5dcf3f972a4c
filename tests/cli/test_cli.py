"""The command line as a user meets it: exit statuses, one-line errors, the files written."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import vaelab
from helpers import assert_one_line_error
from vaelab.cli import main
from vaelab.runs.rundir import RunLock

TINY_FLAGS = ["--model", "mlp", "--hidden", "128", "--latent-dim", "4", "--limit", "2000",
              "--val-size", "500", "--batch-size", "100", "--sample-grid", "4",
              "--no-progress"]


def run_cli(*args, cwd=None):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "vaelab", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


class TestBadInput:
    @pytest.mark.parametrize("argv, fragment", [
        (["train", "--model", "resnet"], "invalid choice: 'resnet'"),
        (["train", "--latent-dim", "0"], "latent_dim must be between 1 and 256"),
        (["train", "--epochs", "-3"], "train.epochs must be >= 1"),
        (["train", "--epochs", "three"], "invalid int value: 'three'"),
        (["train", "--lr", "0"], "train.lr must be > 0"),
        (["train", "--hidden", "a,b"], "expected integers"),
        (["train", "--set", "model.depth=3"], "unknown config key(s): model.depth"),
        (["train", "--set", "oops"], "section.key=value"),
        (["train", "--unknown-flag"], "unrecognized arguments"),
        (["train", "--device", "cuda"], None),
        (["sample", "/no/such/run", "--device", "tpu"], "invalid choice: 'tpu'"),
        (["frobnicate"], "invalid choice"),
        (["sample", "/no/such/run"], "run directory not found: /no/such/run"),
        (["reconstruct", "/no/such/run"], "run directory not found"),
        (["export", "/no/such/run", "out"], "run directory not found"),
        (["train", "--resume", "/no/such/run"], "run directory not found"),
    ])
    def test_one_line_and_exit_2(self, capsys, argv, fragment, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        if argv[-1] == "cuda" and torch.cuda.is_available():
            pytest.skip("CUDA is available here")
        assert_one_line_error(capsys, argv, *([fragment] if fragment else []))
        assert not (tmp_path / "runs").exists(), "a refused command writes nothing"

    def test_config_file_with_unknown_key(self, capsys, tmp_path):
        path = tmp_path / "c.toml"
        path.write_text("[model]\ndepth = 3\n")
        assert_one_line_error(capsys, ["train", "--config", str(path)], "model.depth")

    def test_missing_data_offline(self, capsys, tmp_path, monkeypatch):
        import urllib.error

        from vaelab.data import download

        def no_network(*a, **k):
            raise urllib.error.URLError("offline")

        monkeypatch.setattr(download.urllib.request, "urlopen", no_network)
        monkeypatch.chdir(tmp_path)  # the default run folder, runs/<name>, would go here
        err = assert_one_line_error(
            capsys, ["train", "--data-dir", str(tmp_path / "empty")],
            "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "offline",
            "--data-dir or VAELAB_DATA_DIR")
        assert str(tmp_path / "empty" / "mnist") in err
        # the folder, the files, why, the two fixes; no URLs (the temporary folder's name
        # grows with pytest's run counter, so it is left out of the count)
        assert len(err.replace(str(tmp_path), "")) < 270, err
        assert list(tmp_path.iterdir()) == [], "nothing is left behind, not even runs/"

    def test_corrupt_data(self, capsys, tmp_path):
        folder = tmp_path / "mnist"
        folder.mkdir()
        for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                     "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
            (folder / name).write_bytes(b"not a gzip file")
        assert_one_line_error(capsys, ["train", "--data-dir", str(tmp_path), "--out",
                                       str(tmp_path / "run")], "checksum mismatch")

    def test_directory_that_is_not_a_run(self, capsys, tmp_path):
        assert_one_line_error(capsys, ["sample", str(tmp_path)],
                              "is not a vaelab run directory")

    def test_run_in_use(self, capsys, trained_run):
        with RunLock(trained_run):
            # --epochs 3: resumed as it is, the finished run would be refused before the lock
            assert_one_line_error(capsys, ["train", "--resume", str(trained_run), "--epochs",
                                           "3"], "in use by another vaelab train")

    def test_resume_with_other_settings(self, capsys, trained_run):
        assert_one_line_error(capsys, ["train", "--resume", str(trained_run), "--lr", "1"],
                              "only --epochs")

    @pytest.mark.parametrize("argv, fragment", [
        (["--grid", "0"], "--grid must be > 0"),
        (["--temperature", "-1"], "--temperature must be > 0"),
        (["--checkpoint", "middle"], "invalid choice"),
    ])
    def test_sample_values(self, capsys, trained_run, argv, fragment):
        assert_one_line_error(capsys, ["sample", str(trained_run), *argv], fragment)


def test_help_states_every_default():
    from vaelab.cli import build_parser
    from vaelab.cli.training import TRAIN_FLAGS

    parser = build_parser()
    train_parser = parser._subparsers._group_actions[0].choices["train"]
    text = train_parser.format_help()
    for flag, *_ in TRAIN_FLAGS:
        action = next(a for a in train_parser._actions if flag in a.option_strings)
        assert "(default: " in action.help, flag
    assert "--batch-size" in text and "(default: 256)" in text and "(default: 0.003)" in text


def test_end_to_end(tmp_path, data_dir):
    """train -> sample -> reconstruct -> export, as a user runs them."""
    run = tmp_path / "run"
    result = run_cli("train", *TINY_FLAGS, "--epochs", "2", "--out", run,
                     "--data-dir", data_dir)
    assert result.returncode == 0, result.stderr
    assert f"run directory: {run}" in result.stdout
    assert "vaelab sample" in result.stdout  # says what to run next
    losses = re.findall(r"^epoch .*? train\s+([\d.]+)", result.stdout, flags=re.M)
    assert len(losses) == 2 and float(losses[1]) < float(losses[0])

    result = run_cli("sample", run, "--grid", "6", "--scale", "1", "--seed", "3")
    assert result.returncode == 0, result.stderr
    grid = Image.open(run / "figures" / "samples_gmm_t0.8_seed3.png")
    assert grid.size == (6 * 30 + 2, 6 * 30 + 2)  # 28 px tiles, 2 px lines
    assert np.asarray(grid, dtype=np.float32).std() > 20, "the grid is not blank"

    result = run_cli("sample", run, "--count", "7", "--format", "files", "--out",
                     tmp_path / "many", "--scale", "1")
    assert result.returncode == 0, result.stderr
    files = sorted((tmp_path / "many").iterdir())
    assert [f.name for f in files] == [f"sample_{i}.png" for i in range(7)]
    assert Image.open(files[0]).size == (28, 28)

    result = run_cli("reconstruct", run, "--rows", "2", "--cols", "5", "--scale", "1",
                     "--data-dir", data_dir)
    assert result.returncode == 0, result.stderr
    assert Image.open(run / "figures" / "reconstructions.png").size == (
        5 * 30 + 2, 4 * 30 + 2)

    result = run_cli("export", run, tmp_path / "exported")
    assert result.returncode == 0, result.stderr
    encoder = vaelab.load_encoder(tmp_path / "exported" / "encoder")
    decoder = vaelab.load_decoder(tmp_path / "exported" / "decoder")
    model = vaelab.load(run)
    x = torch.rand(3, 1, 28, 28)
    assert all(torch.equal(a, b) for a, b in zip(encoder.encode(x), model.encode(x)))
    z = torch.randn(3, 4)
    assert torch.equal(decoder.decode(z), model.decode(z))
    assert not any(p.name == "trainer.pt" for p in (tmp_path / "exported").rglob("*"))


def test_sample_files_are_native_size(trained_run, tmp_path, data_dir):
    """One PNG per sample is 28x28 unless --scale says otherwise, so that vaelab score reads
    it unchanged; a grid keeps its enlargement of 2."""
    for extra, folder, side in (([], "native", 28), (["--scale", "2"], "scaled", 56)):
        assert main(["sample", str(trained_run), "--count", "2", "--format", "files",
                     "--out", str(tmp_path / folder), *extra]) == 0
        assert Image.open(tmp_path / folder / "sample_0.png").size == (side, side)
    assert main(["sample", str(trained_run), "--grid", "2", "--out",
                 str(tmp_path / "grid.png")]) == 0
    assert Image.open(tmp_path / "grid.png").size == (2 * (2 * 30 + 2),) * 2


def test_sigterm_saves_and_says_how_to_resume(tmp_path, data_dir):
    """A real process, a real signal: exit 143, a checkpoint, a resume command that works."""
    import signal
    import time

    run = tmp_path / "run"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen(
        [sys.executable, "-m", "vaelab", "train", *TINY_FLAGS, "--limit", "20000",
         "--epochs", "50", "--out", str(run), "--data-dir", str(data_dir)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert f"vaelab train --resume {run}" in err
    assert "Traceback" not in err
    result = run_cli("train", "--resume", run, "--epochs", "3", "--no-progress",
                     "--data-dir", data_dir)
    assert result.returncode == 0, result.stderr
    assert "resuming after epoch" in result.stdout
