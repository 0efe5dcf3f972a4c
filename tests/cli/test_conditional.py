"""Conditional generation, on one tiny conditional run: the sampler draws the class it is
asked for (checked with vaelab's classifier), and every command that encodes or decodes
passes the right labels: sample --digit / --grid-by-class, style, interpolate, evaluate.

The conditional run (conftest.CONDITIONAL: a small cvae, 2-D latent, 6 epochs on 5,000
images, fp32) trains in about 10 s on 2 CPU cores. With seed 0 its samples are classified
as the asked class 100% of the time (200 per class); seeds 1 and 2 gave 86% and 94%, each
class at least 59%. A sampler that ignored its label would score about 10%."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import assert_one_line_error
from vaelab.cli import main
from vaelab.data.datasets import DATASETS, load_test, to_float
from vaelab.evaluation.classifier import features_and_probs, save_classifier, train_classifier
from vaelab.evaluation.evaluate import conditional_accuracy
from vaelab.figures import plots
from vaelab.models import latents as explore
from vaelab.runs.rundir import load, load_run

NOT_CONDITIONAL = "this run is not conditional; train with --model cvae or --conditional"
TILE = 28


def run_main(*argv) -> None:
    assert main([str(a) for a in argv]) == 0


def gray(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255


def tiles(pixels: np.ndarray, top: int, left: int, rows: int, columns: int, scale: int,
          step: int | None = None) -> torch.Tensor:
    """Cut rows x columns digits (row-major) out of a figure, undoing the enlargement:
    (rows * columns, 1, 28, 28) in [0, 1]. `step`: pixels from one tile to the next."""
    step = step or TILE * scale
    out = [pixels[top + r * step:top + r * step + TILE * scale:scale,
                  left + c * step:left + c * step + TILE * scale:scale]
           for r in range(rows) for c in range(columns)]
    return torch.tensor(np.stack(out))[:, None]


def predicted(classifier, images: torch.Tensor) -> torch.Tensor:
    return features_and_probs(classifier, images)[1].argmax(1)


class TestSampler:
    def test_samples_are_the_asked_class(self, conditional_run, quick_classifier):
        model = load(conditional_run)
        classifier, _ = quick_classifier
        results = conditional_accuracy(model, classifier, per_class=200, seed=0)
        per_class = results["conditional_accuracy_per_class"]
        assert len(per_class) == 10
        assert results["conditional_accuracy"] == pytest.approx(np.mean(per_class))
        assert results["conditional_accuracy"] >= 0.8, per_class
        assert min(per_class) >= 0.5, per_class  # most samples of every class
        # the same samples scored against the wrong labels: the label decides the class
        g = torch.Generator().manual_seed(0)
        wrong = [(predicted(classifier, model.sample(100, generator=g, label=c))
                  == (c + 1) % 10).float().mean().item() for c in range(10)]
        assert np.mean(wrong) < 0.2, wrong

    def test_class_index_by_number_or_name(self):
        fashion = DATASETS["fashion-mnist"].classes
        assert explore.class_index("7", fashion) == 7
        assert explore.class_index("sneaker", fashion) == 7
        assert explore.class_index(" T-SHIRT/TOP", fashion) == 0
        assert explore.class_index("Ankle Boot", fashion) == 9
        with pytest.raises(Exception, match=r"one of: 0 \(T-shirt/top\), 1 \(Trouser\)"):
            explore.class_index("10", fashion)

    def test_balanced_and_blended_labels(self, conditional_run, trained_run):
        model = load(conditional_run)
        assert explore.balanced_labels(model, 23).tolist() == [i % 10 for i in range(23)]
        assert explore.balanced_labels(load(trained_run), 23) is None
        y = explore.blend_labels(3, 8, 5, 10)  # (steps, C)
        assert y.shape == (5, 10)
        torch.testing.assert_close(y.sum(1), torch.ones(5))
        torch.testing.assert_close(y[:, 3], torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
        torch.testing.assert_close(y[:, 8], torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
        assert y[:, [0, 1, 2, 4, 5, 6, 7, 9]].abs().sum() == 0


class TestSampleCommand:
    def test_digit(self, conditional_run, quick_classifier, tmp_path, capsys):
        out = tmp_path / "sevens.png"
        run_main("sample", conditional_run, "--digit", "7", "--grid", "6", "--out", out)
        assert "36 samples of class 7" in capsys.readouterr().out
        side = (6 * (TILE + 2) + 2) * 2  # 2-pixel grid lines, --scale 2
        assert Image.open(out).size == (side, side)
        digits = tiles(gray(out), 4, 4, 6, 6, scale=2, step=(TILE + 2) * 2)
        assert (predicted(quick_classifier[0], digits) == 7).float().mean() >= 0.8

    def test_balanced_mix_by_default(self, conditional_run, quick_classifier, tmp_path,
                                     capsys):
        out = tmp_path / "mix.png"
        run_main("sample", conditional_run, "--grid", "10", "--out", out)
        assert "a balanced mix of the 10 classes" in capsys.readouterr().out
        digits = tiles(gray(out), 4, 4, 10, 10, scale=2, step=(TILE + 2) * 2)
        counts = torch.bincount(predicted(quick_classifier[0], digits), minlength=10)
        assert counts.min() >= 5, counts  # labels cycle 0..9: ten of each asked

    def test_files_of_one_class(self, conditional_run, tmp_path):
        run_main("sample", conditional_run, "--digit", "3", "--count", "5", "--format",
                 "files", "--out", tmp_path / "threes")
        assert len(list((tmp_path / "threes").glob("sample_*.png"))) == 5

    def test_grid_by_class(self, conditional_run, quick_classifier, tmp_path):
        out = tmp_path / "by_class.png"
        run_main("sample", conditional_run, "--grid-by-class", "--grid", "5", "--out", out)
        scale = 2  # --scale's default
        assert Image.open(out).size == (plots.LEFT["classes"] + 5 * TILE * scale + plots.RIGHT,
                                        plots.TOP + 10 * TILE * scale + plots.BOTTOM)
        digits = tiles(gray(out), plots.TOP, plots.LEFT["classes"], 10, 5, scale)
        rows = predicted(quick_classifier[0], digits).reshape(10, 5)
        agree = (rows == torch.arange(10)[:, None]).float().mean(1)  # (10,) row by row
        assert agree.mean() >= 0.8, rows  # the rows are in class order
        # the names at the left: the margin holds dark text beside every row
        margin = gray(out)[plots.TOP:plots.TOP + 10 * TILE * scale, :plots.LEFT["classes"]]
        ink = (margin < 0.5).reshape(10, TILE * scale, -1).sum((1, 2))
        assert np.all(ink > 10), ink


class TestStyle:
    def test_style_figure(self, conditional_run, quick_classifier, tmp_path, data_dir):
        out = tmp_path / "style.png"
        count = 6
        run_main("style", conditional_run, "--count", count, "--seed", "2", "--out", out,
                 "--data-dir", data_dir)
        scale = plots.tile_scale(11, count)
        top, right = plots.style_margins(DATASETS["mnist"].classes)
        assert top == plots.TOP + plots.HEADER and right == plots.RIGHT
        left = plots.LEFT["style"]
        assert Image.open(out).size == (left + (11 * TILE + plots.STYLE_GAP) * scale + right,
                                        top + count * TILE * scale + plots.BOTTOM)
        pixels = gray(out)
        # the first column holds the test images, exactly (the test set is binarized 0/1)
        model, cfg = load_run(conditional_run)
        test = load_test(cfg.data, data_dir)
        index = torch.randperm(len(test), generator=torch.Generator().manual_seed(2))[:count]
        originals = tiles(pixels, top, left, count, 1, scale)
        torch.testing.assert_close(originals, to_float(test.images[index]), atol=0.01, rtol=0)
        # column c of the decoded block is class c, whatever the row's own class
        decoded = tiles(pixels, top, left + (TILE + plots.STYLE_GAP) * scale, count, 10, scale)
        classes = predicted(quick_classifier[0], decoded).reshape(count, 10)
        assert (classes == torch.arange(10)).float().mean() >= 0.8, classes

    def test_style_on_an_unconditional_run(self, trained_run, capsys):
        assert_one_line_error(capsys, ["style", str(trained_run)], NOT_CONDITIONAL)


class TestLabelledFigures:
    def test_interpolation_blends_the_labels(self, conditional_run, data_dir, tmp_path,
                                             monkeypatch):
        from vaelab.figures import run_figures as figures

        model, cfg = load_run(conditional_run)
        test = load_test(cfg.data, data_dir)
        start, end = (int(torch.nonzero(test.labels == c)[0]) for c in (1, 6))
        captured = {}
        monkeypatch.setattr(figures.plots, "strip",
                            lambda images, *a: captured.update(images=images, labels=a[2:]))
        decoded = []
        real_images = model.images
        monkeypatch.setattr(model, "images",
                            lambda z, y=None: decoded.append(y) or real_images(z, y))
        figures.interpolation_plot(model, test, tmp_path / "i.png", start, end, mode="linear",
                                   steps=5, classes=DATASETS["mnist"].classes)
        y = decoded[-1].cpu()  # the labels the path was decoded with: (steps, C)
        torch.testing.assert_close(y, explore.blend_labels(1, 6, 5, 10))
        assert captured["labels"] == (f"test #{start} (1)", f"test #{end} (6)")
        # the ends are the two reconstructions, each with its own label
        x = to_float(test.images[[start, end]])
        ends = captured["images"][[0, -1]]
        torch.testing.assert_close(ends, model.reconstruct(x, torch.tensor([1, 6])),
                                   atol=1e-5, rtol=1e-4)
        # between class means: the same blend, from --from-class to --to-class
        figures.interpolation_plot(model, test, tmp_path / "c.png", from_class=3, to_class=8,
                                   steps=4)
        torch.testing.assert_close(decoded[-1].cpu(), explore.blend_labels(3, 8, 4, 10))

    def test_class_interpolation_ends_at_the_two_classes(self, conditional_run, data_dir,
                                                         quick_classifier, tmp_path):
        out = tmp_path / "classes.png"
        run_main("interpolate", conditional_run, "--from-class", "2", "--to-class", "9",
                 "--steps", "6", "--gif", "--out", out, "--data-dir", data_dir)
        frames = Image.open(tmp_path / "classes.gif")
        ends = []
        for i in (0, 5):  # the GIF's frames are the path, 4x enlarged
            frames.seek(i)
            ends.append(np.asarray(frames.convert("L"), dtype=np.float32)[::4, ::4] / 255)
        assert predicted(quick_classifier[0], torch.tensor(np.stack(ends))[:, None]).tolist() \
            == [2, 9]

    def test_every_figure_command_runs(self, conditional_run, data_dir, tmp_path):
        for command, extra in (("reconstruct", []), ("latent", []), ("traverse", []),
                               ("manifold", ["--digit", "4", "--n", "5"]),
                               ("interpolate", ["--from", "0", "--to", "1"])):
            out = tmp_path / f"{command}.png"
            data = [] if command == "manifold" else ["--data-dir", data_dir]
            run_main(command, conditional_run, *extra, *data, "--out", out)
            assert gray(out).std() > 0.05, command

    def test_reconstruct_uses_each_images_label(self, conditional_run, data_dir):
        """Reconstructions with the true labels beat those with wrong labels."""
        model, cfg = load_run(conditional_run)
        test = load_test(cfg.data, data_dir)
        x, y = to_float(test.images[:500]), test.labels[:500]
        right = (model.reconstruct(x, y) - x).square().mean()
        wrong = (model.reconstruct(x, (y + 5) % 10) - x).square().mean()
        assert right < 0.8 * wrong, (right, wrong)

    def test_report_has_the_style_figure(self, conditional_run, data_dir, tmp_path):
        run = tmp_path / "run"
        shutil.copytree(conditional_run, run, ignore=shutil.ignore_patterns("eval.json"))
        run_main("report", run, "--data-dir", data_dir)
        text = (run / "report.html").read_text()
        assert "<h2>Style transfer</h2>" in text and "conditional on the class" in text
        assert (run / "figures" / "style.png").exists()
        assert (run / "figures" / "manifold_z0-1.png").exists()  # 2-D latents: class 0


class TestEvaluate:
    def test_conditional_accuracy_in_eval_json(self, conditional_run, quick_classifier,
                                               data_dir, tmp_path, monkeypatch, capsys):
        monkeypatch.setenv("VAELAB_CACHE_DIR", str(tmp_path / "cache"))
        save_classifier(quick_classifier[0], "mnist", quick_classifier[1], epochs=2)
        run = tmp_path / "run"
        shutil.copytree(conditional_run, run)
        assert main(["evaluate", str(run), "--k", "10", "--images", "20",
                     "--data-dir", str(data_dir)]) == 0
        printed = capsys.readouterr().out
        results = json.loads((run / "eval.json").read_text())
        assert results["conditional_accuracy"] >= 0.8
        assert len(results["conditional_accuracy_per_class"]) == 10
        assert results["conditional_accuracy"] == pytest.approx(
            np.mean(results["conditional_accuracy_per_class"]))
        assert results["conditional_samples_per_class"] == 1000
        assert "conditional_accuracy_per_class" in printed
        # the FID samples are a balanced mix of classes, as the test set is
        histogram = results["sample_class_histogram"]
        assert sum(histogram) == 10_000 and min(histogram) >= 500, histogram
        assert results["nll_images"] == 20 and results["nll"] > 0

    def test_classifier_trains_under_no_grad(self, data_dir):
        """evaluate's first use trains the classifier inside sample_quality's no_grad."""
        with torch.no_grad():
            _, accuracy = train_classifier("mnist", data_dir, epochs=1, limit=1000,
                                           log=lambda *_: None)
        assert accuracy > 0.5

    def test_no_fid_skips_the_classifier(self, conditional_run, data_dir, tmp_path,
                                         monkeypatch):
        from vaelab.evaluation import evaluate as evaluate_module

        def refuse(*a, **k):
            raise AssertionError("--no-fid must not load the classifier")

        monkeypatch.setattr(evaluate_module, "load_classifier", refuse)
        monkeypatch.setattr(evaluate_module, "latent_quality", lambda *a: {})  # (slow, beside
        #                                                                    the point here)
        run = tmp_path / "run"
        shutil.copytree(conditional_run, run)
        assert main(["evaluate", str(run), "--k", "5", "--images", "10", "--no-fid",
                     "--data-dir", str(data_dir)]) == 0
        results = json.loads((run / "eval.json").read_text())
        assert "conditional_accuracy" not in results and "fid" not in results


class TestErrors:
    @pytest.mark.parametrize("argv, fragment", [
        (["sample", "{cond}", "--digit", "12"],
         "--digit must be a class number or name, one of: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9; "
         "got '12'"),
        (["sample", "{cond}", "--digit", "sneaker"], "got 'sneaker'"),
        (["sample", "{cond}", "--grid-by-class", "--digit", "3"], "does not combine"),
        (["sample", "{plain}", "--digit", "3"], f"--digit: {NOT_CONDITIONAL}"),
        (["sample", "{plain}", "--grid-by-class"], f"--grid-by-class: {NOT_CONDITIONAL}"),
        (["manifold", "{plain}", "--digit", "3"], f"--digit: {NOT_CONDITIONAL}"),
        (["manifold", "{cond}", "--digit", "ten"], "--digit must be a class number"),
        (["interpolate", "{cond}", "--from-class", "3", "--to-class", "x"],
         "--to-class must be a class number or name"),
        (["style", "{cond}", "--count", "0"], "--count must be > 0"),
    ])
    def test_one_line_and_exit_2(self, capsys, conditional_run, trained_run, argv, fragment):
        argv = [a.format(cond=conditional_run, plain=trained_run) for a in argv]
        assert_one_line_error(capsys, argv, fragment)
