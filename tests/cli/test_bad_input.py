"""Every mistake a user can make gets one line on stderr and exit status 2: no traceback,
and no file left behind that a later command could take for a result."""

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import idx_bytes, no_network, report
from vaelab.cli import main
from vaelab.data import download

TINY = ["--model", "mlp", "--hidden", "32", "--latent-dim", "2", "--limit", "300",
        "--val-size", "100", "--epochs", "1", "--no-progress"]


def toml(tmp: Path, text: str) -> Path:
    path = tmp / "bad.toml"
    path.write_text(text)
    return path


def data_folder(tmp: Path, mutate) -> Path:
    """A data folder holding real-looking MNIST IDX files, one of them damaged by `mutate`."""
    folder = tmp / "data" / "mnist"
    folder.mkdir(parents=True)
    images = np.zeros((20, 28, 28), dtype=np.uint8)
    files = {"train-images-idx3-ubyte": idx_bytes(images),
             "train-labels-idx1-ubyte": idx_bytes(np.arange(20) % 10),
             "t10k-images-idx3-ubyte": idx_bytes(images[:5]),
             "t10k-labels-idx1-ubyte": idx_bytes(np.arange(5) % 10)}
    for name, payload in files.items():
        (folder / name).write_bytes(payload)
    target = folder / "train-images-idx3-ubyte"
    target.write_bytes(mutate(target.read_bytes()))
    return folder.parent


def run_copy(tmp: Path, trained_run: Path, mutate=None) -> Path:
    """A copy of a trained run, with `mutate(best_checkpoint_folder)` applied."""
    run = tmp / "run"
    shutil.copytree(trained_run, run)
    if mutate:
        mutate(run / "checkpoints" / "best")
        mutate(run / "checkpoints" / "last")
    return run


def truncate(name, keep=100):
    def apply(folder):
        path = folder / name
        path.write_bytes(path.read_bytes()[:keep])
    return apply


def flip_byte(name, at):
    def apply(folder):
        path = folder / name
        blob = bytearray(path.read_bytes())
        blob[at] ^= 0xFF
        path.write_bytes(bytes(blob))
    return apply


def other_architecture(folder):
    config = json.loads((folder / "config.json").read_text())
    config["model"]["hidden"] = [64]
    (folder / "config.json").write_text(json.dumps(config))


def garbage_json(folder):
    (folder / "config.json").write_text("{not json")


# (id, argv builder (tmp, trained_run) -> argv, fragment of the one-line message)
CASES = [
    ("unknown-model", lambda t, r: ["train", "--model", "resnet"], "invalid choice: 'resnet'"),
    ("latent-0", lambda t, r: ["train", "--latent-dim", "0"], "between 1 and 256"),
    ("latent-huge", lambda t, r: ["train", "--latent-dim", "100000"], "between 1 and 256"),
    ("epochs-negative", lambda t, r: ["train", "--epochs", "-3"], "train.epochs must be >= 1"),
    ("epochs-word", lambda t, r: ["train", "--epochs", "three"], "invalid int value"),
    ("lr-zero", lambda t, r: ["train", "--lr", "0"], "train.lr must be > 0"),
    ("lr-nan-word", lambda t, r: ["train", "--lr", "fast"], "invalid float value"),
    ("batch-zero", lambda t, r: ["train", "--batch-size", "0"], "batch_size must be >= 1"),
    ("hidden-letters", lambda t, r: ["train", "--hidden", "a,b"], "expected integers"),
    ("channels-negative", lambda t, r: ["train", "--channels=-4,8"], "positive counts"),
    ("beta2-one", lambda t, r: ["train", "--adam-beta2", "1.0"], "adam_beta2 must be in"),
    ("warmup-too-long", lambda t, r: ["train", "--lr-warmup-epochs", "50"], "lr_warmup_epochs"),
    ("val-too-large", lambda t, r: ["train", *TINY, "--val-size", "60000", "--out",
                                    str(t / "r")], "leaves no training images"),
    ("unknown-set-key", lambda t, r: ["train", "--set", "model.depth=3"], "model.depth"),
    ("set-without-equals", lambda t, r: ["train", "--set", "oops"], "section.key=value"),
    ("unknown-flag", lambda t, r: ["train", "--frobnicate"], "unrecognized arguments"),
    ("misspelt-flag", lambda t, r: ["train", "--modle", "conv"],
     "vaelab train: error: unrecognized arguments: --modle conv; did you mean --model? "
     "(see vaelab train --help)"),
    ("unknown-flag-nested", lambda t, r: ["classifier", "train", "--frobnicate"],
     "vaelab classifier train: error: unrecognized arguments: --frobnicate (see vaelab "
     "classifier train --help)"),
    ("unknown-command", lambda t, r: ["frobnicate"], "invalid choice"),
    ("config-missing", lambda t, r: ["train", "--config", str(t / "nope.toml")],
     "config file not found"),
    ("config-not-toml", lambda t, r: ["train", "--config", str(toml(t, "model = [["))],
     "is not valid TOML"),
    ("config-unknown-key", lambda t, r: ["train", "--config",
                                         str(toml(t, "[model]\ndepth = 3\n"))], "model.depth"),
    ("config-wrong-type", lambda t, r: ["train", "--config",
                                        str(toml(t, '[model]\nlatent_dim = "big"\n'))],
     "model.latent_dim must be an integer"),
    ("data-missing", lambda t, r: ["train", *TINY, "--data-dir", str(t / "empty"),
                                   "--out", str(t / "r")], " lacks "),
    ("idx-truncated", lambda t, r: ["train", *TINY, "--out", str(t / "r"), "--data-dir",
                                    str(data_folder(t, lambda b: b[:-100]))], "truncated IDX"),
    ("idx-bad-magic", lambda t, r: ["train", *TINY, "--out", str(t / "r"), "--data-dir",
                                    str(data_folder(t, lambda b: b"\x01\x02" + b[2:]))],
     "not an IDX file"),
    ("idx-terabytes", lambda t, r: ["train", *TINY, "--out", str(t / "r"), "--data-dir",
                                    str(data_folder(t, lambda b: b[:4] + bytes.fromhex(
                                        "7fffffff7fffffff7fffffff") + b[16:]))],
     "truncated IDX"),
    ("idx-gzip-corrupt", lambda t, r: ["train", *TINY, "--out", str(t / "r"), "--data-dir",
                                       str(_gz_corrupt(t))], "checksum mismatch"),
    ("resume-missing", lambda t, r: ["train", "--resume", str(t / "nope")],
     "run directory not found"),
    ("resume-not-a-run", lambda t, r: ["train", "--resume", str(_plain_dir(t))],
     "not a vaelab run directory"),
    ("resume-other-settings", lambda t, r: ["train", "--resume", str(run_copy(t, r)),
                                            "--lr", "1"], "only --epochs"),
    ("resume-trainer-truncated", lambda t, r: [
        "train", "--resume", str(run_copy(t, r, truncate("trainer.pt"))), "--epochs", "3",
        "--no-progress"], "unreadable or unsafe trainer state"),
    ("sample-missing-run", lambda t, r: ["sample", str(t / "nope")], "run directory not found"),
    ("sample-weights-truncated", lambda t, r: [
        "sample", str(run_copy(t, r, truncate("model.safetensors")))], "unreadable weights"),
    ("sample-weights-bitflip", lambda t, r: [
        "sample", str(run_copy(t, r, flip_byte("model.safetensors", 3)))],
     "unreadable weights"),
    ("sample-other-architecture", lambda t, r: [
        "sample", str(run_copy(t, r, other_architecture))], "another architecture"),
    ("sample-config-garbage", lambda t, r: ["sample", str(run_copy(t, r, garbage_json))],
     "unreadable checkpoint config"),
    ("sample-count-zero", lambda t, r: ["sample", str(r), "--count", "0"], "--count"),
    ("sample-bad-device", lambda t, r: ["sample", str(r), "--device", "tpu"],
     "invalid choice: 'tpu'"),
    ("reconstruct-not-a-run", lambda t, r: ["reconstruct", str(_plain_dir(t))],
     "not a vaelab run directory"),
    ("export-missing-run", lambda t, r: ["export", str(t / "nope"), str(t / "out")],
     "run directory not found"),
    ("evaluate-k-zero", lambda t, r: ["evaluate", str(r), "--k", "0"], "--k"),
    ("latent-umap-missing", lambda t, r: ["latent", str(r), "--method", "umap"], "umap-learn"),
    ("interpolate-bad-index", lambda t, r: ["interpolate", str(r), "--from", "99999",
                                            "--to", "1"], "99999"),
]


def _plain_dir(tmp: Path) -> Path:
    folder = tmp / "plain"
    folder.mkdir(exist_ok=True)
    (folder / "notes.txt").write_text("not a run")
    return folder


def _gz_corrupt(tmp: Path) -> Path:
    root = data_folder(tmp, lambda b: b)
    path = root / "mnist" / "train-images-idx3-ubyte"
    blob = bytearray(gzip.compress(path.read_bytes()))
    blob[len(blob) // 2] ^= 0xFF
    path.unlink()
    (path.parent / (path.name + ".gz")).write_bytes(bytes(blob))
    return root


def snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")}


@pytest.mark.parametrize("argv_of, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_exit_2(argv_of, fragment, tmp_path, trained_run, capsys,
                                             monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(download.urllib.request, "urlopen", no_network)  # tests never download
    argv = argv_of(tmp_path, trained_run)
    before = snapshot(tmp_path)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse exits by itself
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1, f"expected one line, got: {err!r}"
    assert "Traceback" not in err and fragment in err, err
    assert snapshot(tmp_path) == before, "a refused command leaves nothing behind"
    report("bad input: one line, exit 2, nothing left behind", 1, 1)


def test_there_are_at_least_30_distinct_cases():
    assert len({c[0] for c in CASES}) == len(CASES) >= 30
