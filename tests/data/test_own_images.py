"""A user's own images end to end: made-up folders and arrays (grayscale and colour,
labelled and not, odd sizes), trained with `vaelab train --dataset PATH`, then used by the
commands that read a run."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import assert_one_line_error, private_cache
from vaelab.cli import main

QUICK = ["--model", "mlp", "--hidden", "32", "--latent-dim", "2", "--epochs", "1",
         "--val-size", "10", "--batch-size", "16", "--sample-grid", "2", "--no-progress"]
RNG = np.random.default_rng(0)


def shapes_folder(root: Path, size=(18, 14), colour=True, per_class=30,
                  classes=("circles", "squares")) -> Path:
    """Two classes of simple pictures: bright discs or squares on a dark ground."""
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    for k, name in enumerate(classes):
        for i in range(per_class):
            cy, cx, r = RNG.integers(4, h - 4), RNG.integers(4, w - 4), RNG.integers(2, 4)
            mask = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) if k == 0 else (
                (abs(yy - cy) <= r) & (abs(xx - cx) <= r))
            tint = RNG.integers(120, 256, 3) if colour else np.full(3, 255)
            pixels = (mask[..., None] * tint).astype(np.uint8)
            path = root / name / f"{i:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels if colour else pixels[..., 0]).save(path)
    return root


@pytest.fixture(scope="module", autouse=True)
def own_cache(tmp_path_factory):
    """The decoded images and classifiers of these tests go to a folder of their own."""
    with private_cache(tmp_path_factory):
        yield


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    folder = shapes_folder(root / "shapes")
    run = root / "run"
    assert main(["train", "--dataset", str(folder), "--out", str(run), *QUICK]) == 0
    return folder, run


def test_a_colour_folder_trains_and_records_what_it_is(colour_run):
    folder, run = colour_run
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["classes"] == ["circles", "squares"]
    assert config["data"]["mode"] == "colour" and config["data"]["fingerprint"]
    assert config["model"]["image_shape"] == [3, 18, 14]
    assert config["model"]["likelihood"] == "logistic-mixture"
    grid = Image.open(run / "samples" / "epoch_001.png")
    assert grid.mode == "RGB"


@pytest.mark.parametrize("command", [
    ["sample", "{run}", "--grid", "3"],
    ["sample", "{run}", "--count", "4", "--format", "files"],
    ["reconstruct", "{run}", "--rows", "1", "--cols", "3"],
    ["latent", "{run}"],
    ["manifold", "{run}", "--n", "4"],
    ["interpolate", "{run}", "--steps", "4", "--gif"],
    ["traverse", "{run}", "--top", "2", "--steps", "3"],
    ["report", "{run}"],
])
def test_every_command_reads_the_run(colour_run, command, capsys):
    _, run = colour_run
    assert main([part.format(run=run) for part in command]) == 0
    out = capsys.readouterr().out
    written = [Path(word) for word in out.split() if str(run) in word]
    assert written and all(path.exists() for path in written), out


def test_single_sample_files_have_the_run_s_size_and_score_back(colour_run, tmp_path, capsys):
    folder, run = colour_run
    out = tmp_path / "files"
    assert main(["sample", str(run), "--count", "2", "--format", "files", "--out",
                 str(out)]) == 0
    image = Image.open(sorted(out.iterdir())[0])
    assert image.size == (14, 18) and image.mode == "RGB"
    assert main(["score", str(run), str(out), str(folder / "circles" / "000.png")]) == 0
    assert "not 14x18" not in capsys.readouterr().out


def test_evaluate_reports_bits_per_dimension(colour_run, tmp_path):
    _, run = colour_run
    assert main(["evaluate", str(run), "--k", "4", "--no-fid"]) == 0
    results = json.loads((run / "eval.json").read_text())
    dims = 3 * 18 * 14
    assert results["test_bits_per_dim"] == pytest.approx(
        results["test_neg_elbo"] / (dims * np.log(2)))
    assert 0 < results["nll_bits_per_dim"] <= results["test_bits_per_dim"] + 1e-9
    assert results["nll_bits_per_dim"] < 8  # better than a uniform guess over 256 values


def test_fid_uses_a_classifier_of_the_run_s_own_classes(colour_run):
    _, run = colour_run
    assert main(["evaluate", str(run), "--k", "2", "--images", "8"]) == 0
    results = json.loads((run / "eval.json").read_text())
    assert len(results["sample_class_histogram"]) == 2  # circles and squares
    assert sum(results["sample_class_histogram"]) == results["fid_samples"]
    assert results["fid"] >= 0 and 0 <= results["classifier_test_accuracy"] <= 1


def test_conditional_runs_draw_and_restyle_by_class_name(tmp_path, capsys):
    folder = shapes_folder(tmp_path / "shapes", per_class=25)
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(folder), "--conditional", "--out", str(run),
                 *QUICK]) == 0
    assert main(["sample", str(run), "--digit", "squares", "--grid", "2"]) == 0
    assert "of class squares" in capsys.readouterr().out
    assert main(["style", str(run), "--count", "2"]) == 0
    assert main(["sample", str(run), "--grid-by-class", "--grid", "2"]) == 0


def test_an_unlabelled_folder_skips_fid_and_refuses_conditional(tmp_path, capsys):
    flat = tmp_path / "flat"
    for i in range(40):
        flat.mkdir(exist_ok=True)
        Image.fromarray(RNG.integers(0, 256, (12, 12), dtype=np.uint8)).save(flat / f"{i}.png")
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(flat), "--out", str(run), *QUICK]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["classes"] == [] and config["model"]["image_shape"] == [1, 12, 12]
    capsys.readouterr()
    assert main(["evaluate", str(run), "--k", "2"]) == 0
    assert "no FID or classifier score" in capsys.readouterr().out
    assert "fid" not in json.loads((run / "eval.json").read_text())
    assert_one_line_error(capsys, ["train", "--dataset", str(flat), "--conditional",
                                   "--out", str(tmp_path / "r2"), *QUICK], "has no classes")


def test_an_npz_array_trains(tmp_path):
    path = tmp_path / "pictures.npz"
    np.savez(path, x_train=RNG.integers(0, 256, (60, 10, 10, 3), dtype=np.uint8),
             y_train=np.arange(60) % 3, classes=np.array(["a", "b", "c"]))
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(path), "--out", str(run), *QUICK]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["classes"] == ["a", "b", "c"]
    assert config["model"]["image_shape"] == [3, 10, 10]


def test_a_changed_folder_is_refused_rather_than_tested_on_other_images(tmp_path, capsys):
    folder = shapes_folder(tmp_path / "shapes", colour=False, per_class=20)
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(folder), "--out", str(run), *QUICK]) == 0
    Image.fromarray(np.zeros((18, 14), np.uint8)).save(folder / "circles" / "new.png")
    assert_one_line_error(capsys, ["reconstruct", str(run)], "has changed since this run")


@pytest.mark.parametrize("case, fragment", [
    ("missing", "no such folder or file"),
    ("text file", "must be a .npz or .npy array"),
    ("mixed sizes", "pass --image-size S"),
    ("binarized colour", "--data binarized is for grayscale images"),
])
def test_bad_data_is_one_line(tmp_path, capsys, case, fragment):
    folder = shapes_folder(tmp_path / "shapes", per_class=12)
    argv = ["train", "--out", str(tmp_path / "run"), *QUICK, "--dataset"]
    if case == "missing":
        argv += [str(tmp_path / "nope")]
    elif case == "text file":
        (tmp_path / "notes.txt").write_text("hello")
        argv += [str(tmp_path / "notes.txt")]
    elif case == "mixed sizes":
        Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(folder / "circles" / "odd.png")
        argv += [str(folder)]
    else:
        argv += [str(folder), "--data", "binarized"]
    assert_one_line_error(capsys, argv, fragment)
    assert not (tmp_path / "run").exists()
