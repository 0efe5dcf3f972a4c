"""Anomaly scoring (`vaelab score`): MNIST test digits against outliers made here, the
threshold against the validation quantile, the score against the negative ELBO, the CLI."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from helpers import assert_one_line_error, train_quietly
from vaelab.cli import main
from vaelab.config import Config
from vaelab.data.datasets import (
    EVAL_BINARIZE_SEED,
    SPLIT_SEED,
    binarize_once,
    load_dataset,
    load_split,
    to_float,
)
from vaelab.evaluation.score import (
    model_inputs,
    quantile_of,
    reference_split,
    score_images,
    threshold,
)
from vaelab.models.vae import build_model
from vaelab.runs.rundir import load_run
from vaelab.training.objectives import negative_elbo

SMALL = {  # a little more than conftest's TINY, so that the model knows digits from garments
    "data.limit": 10_000, "data.val_size": 1000, "model.arch": "mlp", "model.hidden": [256],
    "model.latent_dim": 8, "train.epochs": 3, "train.batch_size": 100, "train.threads": 2,
    "train.sample_grid": 4}
QUANTILE = 0.99
TEST_DIGITS = 2000
OUTLIERS = 300  # of each kind


def garments(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Fashion-MNIST-like silhouettes, white on black: (n, 28, 28) uint8."""
    out = np.zeros((n, 28, 28), np.uint8)
    for img in out:
        value = rng.integers(160, 256)
        if kind == "rectangle":
            h, w = rng.integers(10, 25, size=2)
            top, left = rng.integers(0, 29 - h), rng.integers(0, 29 - w)
            img[top:top + h, left:left + w] = value
        elif kind == "trousers":  # a waistband and two legs, the full height as in F-MNIST
            top, bottom = rng.integers(1, 4), rng.integers(25, 29)
            left, right = rng.integers(6, 9), rng.integers(20, 23)
            gap, mid = rng.integers(1, 4), (left + right) // 2
            img[top:top + 6, left:right] = value
            img[top:bottom, left:mid - gap // 2] = value
            img[top:bottom, mid + (gap + 1) // 2:right] = value
        else:  # T-shirt: body, sleeves, neckline
            top, bottom = rng.integers(3, 7), rng.integers(22, 27)
            left, right = rng.integers(7, 10), rng.integers(19, 22)
            img[top:bottom, left:right] = value
            sleeve = rng.integers(6, 10)
            img[top:top + sleeve, left - 6:left] = value
            img[top:top + sleeve, right:right + 6] = value
            img[top:top + 2, 12:16] = 0
    return out


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory, data_dir):
    return train_quietly(SMALL, tmp_path_factory, "small", data_dir)


@pytest.fixture(scope="module")
def scores(scored_run, data_dir):
    """Scores of test digits and of each kind of outlier, and the threshold."""
    model, cfg = load_run(scored_run)
    test, _ = load_split("mnist", "test", data_dir)
    rng = np.random.default_rng(0)
    outliers = {"uniform noise": rng.integers(0, 256, (OUTLIERS, 28, 28), dtype=np.uint8),
                **{kind: garments(kind, OUTLIERS, rng)
                   for kind in ("rectangle", "trousers", "tshirt")}}
    result = {"digits": score_images(model, model_inputs(test[:TEST_DIGITS], cfg)).numpy()}
    for kind, images in outliers.items():
        x = model_inputs(torch.from_numpy(images).unsqueeze(1), cfg)
        result[kind] = score_images(model, x).numpy()
    return result, threshold(model, cfg, data_dir, QUANTILE)


@pytest.mark.parametrize("kind", ["uniform noise", "rectangle", "trousers", "tshirt"])
def test_outliers_score_above_test_digits(scores, kind):
    result, limit = scores
    digits, outliers = result["digits"], result[kind]
    labels = np.r_[np.zeros(len(digits)), np.ones(len(outliers))]
    auroc = roc_auc_score(labels, np.r_[digits, outliers])
    assert auroc >= 0.95, f"{kind}: AUROC {auroc:.3f}"
    assert np.median(outliers) > np.median(digits) + 50  # nats per image
    assert (outliers > limit).mean() >= 0.9  # measured 0.96 (rectangles) to 1.0
    assert (digits > limit).mean() <= 0.05  # about 1 - QUANTILE by construction


def test_threshold_is_the_validation_quantile(scored_run, data_dir):
    model, cfg = load_run(scored_run)
    val = load_dataset(cfg.data, data_dir).val  # binarized once, as the threshold sees it
    val_scores = score_images(model, to_float(val.images)).numpy()
    limit = threshold(model, cfg, data_dir, QUANTILE)
    assert limit == pytest.approx(np.quantile(val_scores, QUANTILE), rel=1e-9)
    # 1000 images: the 0.99 quantile lies between the 990th and 991st smallest score
    assert (val_scores > limit).sum() == 10
    assert threshold(model, cfg, data_dir, 0.5) == pytest.approx(np.median(val_scores))
    # with K = 50 importance samples, every score is lower (a tighter bound), and so is
    # the threshold
    assert threshold(model, cfg, data_dir, QUANTILE, k=50) < limit


def test_run_without_validation_set_uses_the_last_5000_training_images(data_dir):
    cfg = Config().replace({"data.val_size": 0, "data.limit": 2000})
    images, labels = load_split("mnist", "train", data_dir)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(SPLIT_SEED))
    last = order[-5000:]  # what a default run (val_size 5000) holds out
    split, source = reference_split(cfg, data_dir)
    assert torch.equal(split.labels, labels[last])
    assert torch.equal(split.images, binarize_once(images[last], EVAL_BINARIZE_SEED + 1))
    assert "no validation set" in source and "optimistic" not in source
    _, source = reference_split(cfg.replace({"data.limit": 0}), data_dir)
    assert "trained on them, so the threshold is optimistic" in source


def test_k1_score_is_the_negative_elbo_of_each_image(scored_run, data_dir):
    model, cfg = load_run(scored_run)
    test, _ = load_split("mnist", "test", data_dir)
    x = model_inputs(test[:20], cfg)
    for i in range(len(x)):  # the same noise: the same number, image by image
        noise = torch.randn(1, model.latent_dim, generator=torch.Generator().manual_seed(i))
        with torch.no_grad():
            expected = negative_elbo(model, x[i:i + 1], noise=noise)["loss"].item()
        assert score_images(model, x[i:i + 1], seed=i).item() == pytest.approx(expected,
                                                                                rel=1e-5)
    # independent noise: the mean of 4000 draws of one image's score equals negative_elbo's
    # mean over 4000 draws, within Monte-Carlo error
    draws = 4000
    repeated = x[:1].expand(draws, -1, -1, -1)
    ours = score_images(model, repeated, seed=1)
    torch.manual_seed(2)
    with torch.no_grad():
        theirs = negative_elbo(model, repeated)["loss"].item()
    stderr = ours.std().item() / draws ** 0.5
    assert abs(ours.mean().item() - theirs) < 5 * 2 ** 0.5 * stderr + 1e-3
    assert ours.std().item() > 0  # the draws do differ


def test_conditional_model_keeps_the_best_class():
    torch.manual_seed(0)
    cfg = Config().replace({"model.arch": "mlp", "model.conditional": True,
                            "model.hidden": [32], "model.latent_dim": 2})
    model = build_model(cfg.model).eval()
    x = torch.rand(6, 1, 28, 28)
    best = score_images(model, x, seed=3)
    per_class = torch.stack([score_images(model, x, seed=3, y=torch.full((6,), c))
                             for c in range(10)], 1)  # (6, 10)
    assert torch.allclose(best, per_class.min(1).values)
    assert (per_class.max(1).values - best > 0).all()  # the classes do score differently


def test_quantile_of_interpolates_like_numpy():
    values = torch.tensor([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    for q in (0.1, 0.5, 0.99):
        assert quantile_of(values, q) == pytest.approx(np.quantile(values.numpy(), q))


def write_png(path, pixels: np.ndarray):
    Image.fromarray(pixels).save(path)
    return path


def test_cli_table_json_and_flags(scored_run, data_dir, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    test, _ = load_split("mnist", "test", data_dir)
    digits = [write_png(folder / f"digit{i}.png", test[i, 0].numpy()) for i in range(5)]
    noise = write_png(folder / "noise.png",
                      np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8))
    big = tmp_path / "big.jpg"  # a digit at 56x56: resized, and said so once
    Image.fromarray(test[5, 0].numpy()).resize((56, 56)).save(big)
    (folder / "notes.txt").write_text("not an image; a folder expands to image files only")
    out = tmp_path / "scores.json"
    assert main(["score", str(scored_run), str(folder), str(big), "--json", str(out),
                 "--data-dir", str(data_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines
            if line.split()[0] in {str(p) for p in (*digits, noise, big)}}
    assert len(rows) == 7
    assert rows[str(noise)][-1] == "yes"
    assert sum(rows[str(p)][-1] == "no" for p in (*digits, big)) >= 5
    assert sum("resized" in line for line in lines) == 1
    assert "binarized" in lines[0] and "negative ELBO" in lines[0]
    assert lines[-2].startswith("threshold") and "flagged" in lines[-2]
    results = json.loads(out.read_text())
    model, cfg = load_run(scored_run)
    assert results["threshold"] == pytest.approx(threshold(model, cfg, data_dir, QUANTILE))
    assert results["reference_images"] == 1000 and results["quantile"] == QUANTILE
    assert [e["path"] for e in results["images"]][:6] == [str(p) for p in sorted(
        (*digits, noise))]  # a folder's files, sorted by name
    assert results["flagged"] == sum(e["flagged"] for e in results["images"]) >= 1
    by_path = {e["path"]: e["score"] for e in results["images"]}
    assert by_path[str(noise)] > results["threshold"]
    assert by_path[str(noise)] > 2 * max(by_path[str(p)] for p in (*digits, big))


@pytest.mark.parametrize("case, fragment", [
    ("missing", "no such file or folder"),
    ("text.png", "not a readable image"),
    ("empty folder", "no image files in this folder"),
    ("quantile", "--quantile must be between 0 and 1"),
    ("label", "--label is for conditional runs"),
])
def test_cli_errors_are_one_line(scored_run, tmp_path, capsys, case, fragment):
    image = write_png(tmp_path / "ok.png", np.zeros((28, 28), np.uint8))
    argv = ["score", str(scored_run)]
    if case == "missing":
        argv += [str(tmp_path / "nope.png")]
    elif case == "text.png":
        (tmp_path / "text.png").write_text("hello")
        argv += [str(tmp_path / "text.png")]
    elif case == "empty folder":
        (tmp_path / "empty").mkdir()
        argv += [str(tmp_path / "empty")]
    elif case == "quantile":
        argv += [str(image), "--quantile", "1.5"]
    else:
        argv += [str(image), "--label", "3"]
    assert_one_line_error(capsys, argv, fragment)


def test_unreadable_inputs_are_named_and_the_rest_scored(scored_run, data_dir, tmp_path,
                                                         capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    test, _ = load_split("mnist", "test", data_dir)
    digits = [write_png(folder / f"digit{i}.png", test[i, 0].numpy()) for i in range(3)]
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "scores.json"
    argv = ["score", str(scored_run), str(folder), "/dev/null", str(tmp_path / "nope.png"),
            "--json", str(out), "--data-dir", str(data_dir)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err.startswith("vaelab score: error: 3 inputs could not be read (the "
                                   "other 3 scored)")
    for fragment in ("broken.png: not a readable image",
                     "/dev/null: not an image file (a character device)",
                     "nope.png: no such file or folder"):
        assert fragment in captured.err and fragment.split(":")[0] in captured.out
    results = json.loads(out.read_text())  # written for the readable ones all the same
    assert [e["path"] for e in results["images"]] == [str(p) for p in digits]
    assert {Path(e["path"]).name for e in results["unreadable"]} == {
        "broken.png", "null", "nope.png"}


def test_dev_null_alone_says_what_it_is(scored_run, capsys):
    assert_one_line_error(capsys, ["score", str(scored_run), "/dev/null"],
                          "/dev/null: not an image file (a character device)")


def test_reference_scores_are_cached_per_checkpoint_and_k(scored_run, data_dir, tmp_path,
                                                          monkeypatch, capsys):
    import shutil

    from safetensors.torch import load_file, save_file

    from vaelab.evaluation import score

    run = tmp_path / "run"
    shutil.copytree(scored_run, run)
    for cached in (run / "checkpoints" / "best").glob("score_reference*"):
        cached.unlink()  # left by the other tests' `vaelab score`
    calls = []
    real = score.reference_scores

    def counted(*args, **kwargs):
        calls.append(kwargs.get("k", args[3] if len(args) > 3 else 1))
        return real(*args, **kwargs)

    monkeypatch.setattr(score, "reference_scores", counted)
    image = write_png(tmp_path / "digit.png", load_split("mnist", "test", data_dir)[0][0, 0]
                      .numpy())

    def threshold_line(*flags):
        assert main(["score", str(run), str(image), "--data-dir", str(data_dir), *flags]) == 0
        return capsys.readouterr().out.splitlines()[-1]

    first = threshold_line()
    assert calls == [1] and "(cached)" not in first
    again = threshold_line()
    assert calls == [1] and again == first.replace("images;", "images (cached);")
    assert threshold_line("--quantile", "0.5") != first and calls == [1]  # same scores
    threshold_line("--k", "2")
    assert calls == [1, 2]  # another score kind is another file
    assert sorted(p.name for p in (run / "checkpoints" / "best").glob("score_reference*")) == [
        "score_reference_k1_seed0.safetensors", "score_reference_k2_seed0.safetensors"]
    weights = run / "checkpoints" / "best" / "model.safetensors"  # the checkpoint changes
    tensors = load_file(weights)
    name = next(iter(tensors))
    tensors[name] = tensors[name] * 1.5
    save_file(tensors, weights, metadata={"format": "vaelab-checkpoint-1"})
    changed = threshold_line()
    assert calls == [1, 2, 1] and "(cached)" not in changed and changed != first
