"""Latent-space figures and the HTML report, on small trained runs."""

import os
import shutil
from statistics import NormalDist

import numpy as np
import pytest
import torch
from PIL import Image

import vaelab
from vaelab.cli import main
from vaelab.data.datasets import load_test, to_float
from vaelab.figures import plots
from vaelab.figures.report import checkpoint_time
from vaelab.figures.run_figures import pick_test_index, pick_test_pair
from vaelab.models import latents as explore
from vaelab.runs.rundir import load_run


def run_main(*argv) -> None:
    assert main([str(a) for a in argv]) == 0


def image(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32)


def assert_not_blank(path, threshold=15.0):
    assert image(path).std() > threshold, f"{path} looks blank"


class TestComputations:
    def test_manifold_coordinates_are_gaussian_quantiles(self):
        n = 7
        expected = [NormalDist().inv_cdf((i + 0.5) / n) for i in range(n)]
        np.testing.assert_allclose(explore.gaussian_quantiles(n), expected, rtol=1e-5)
        z = explore.manifold_latents(n, 3, dims=(2, 0)).reshape(n, n, 3)
        np.testing.assert_allclose(z[0, :, 2], expected, rtol=1e-5)  # x along each row
        np.testing.assert_allclose(z[:, 0, 0], expected[::-1], rtol=1e-5)  # y falls downwards
        assert torch.all(z[..., 1] == 0)  # the third dimension is held at 0

    @pytest.mark.parametrize("mode", ["linear", "slerp"])
    def test_interpolation_paths(self, mode):
        a, b = torch.tensor([1.0, 2.0, -1.0]), torch.tensor([-2.0, 0.5, 3.0])
        path = explore.interpolate(a, b, 6, mode)
        assert path.shape == (6, 3)
        torch.testing.assert_close(path[0], a)
        torch.testing.assert_close(path[-1], b)
        if mode == "slerp":  # equal norms: a great circle, at a constant angular rate
            a, b = torch.tensor([3.0, 0.0, 4.0]), torch.tensor([0.0, 5.0, 0.0])
            path = explore.interpolate(a, b, 6, mode)
            cos = torch.nn.functional.cosine_similarity(path[:-1], path[1:])
            torch.testing.assert_close(cos, cos[:1].expand_as(cos))
            torch.testing.assert_close(path.norm(dim=1), torch.full((6,), 5.0))

    def test_traversal_varies_one_dimension_per_row(self):
        base = torch.tensor([0.5, -1.0, 2.0])
        values = torch.tensor([-3.0, 0.0, 3.0])
        z = explore.traversal_latents(base, [2, 0], values).reshape(2, 3, 3)
        assert torch.equal(z[0, :, 2], values) and torch.all(z[0, :, :2] == base[:2])
        assert torch.equal(z[1, :, 0], values) and torch.all(z[1, :, 1:] == base[1:])


class TestCommands:
    def test_latent_scatter(self, trained_run, trained_run_2d, tmp_path, data_dir):
        for run, extra in ((trained_run, ["--method", "pca"]), (trained_run_2d, [])):
            out = tmp_path / f"{run.name}.png"
            run_main("latent", run, "--out", out, "--data-dir", data_dir, *extra)
            assert Image.open(out).size == (950, 750)
            assert_not_blank(out, threshold=10)
        # t-SNE on a subset; equal seeds give identical files
        a, b = tmp_path / "a.png", tmp_path / "b.png"
        for out in (a, b):
            run_main("latent", trained_run, "--method", "tsne", "--points", "300",
                     "--seed", "3", "--out", out, "--data-dir", data_dir)
        assert a.read_bytes() == b.read_bytes()

    def test_every_class_keeps_its_colour(self, trained_run, tmp_path, data_dir):
        """The compact palette must not shift a class colour, however few pixels it has."""
        import matplotlib.pyplot as plt

        out = tmp_path / "l.png"
        run_main("latent", trained_run, "--points", "200", "--out", out, "--data-dir",
                 data_dir)
        pixels = {tuple(p) for p in np.asarray(Image.open(out).convert("RGB")).reshape(-1, 3)}
        for colour in plt.get_cmap("tab10").colors:  # as the legend draws it, over white
            blended = np.array(colour) * plots.SCATTER_ALPHA + (1 - plots.SCATTER_ALPHA)
            assert tuple((blended * 255).round().astype(np.uint8)) in pixels

    def test_one_dimensional_latents_get_a_row_per_class(self, trained_run, tmp_path,
                                                         data_dir, monkeypatch):
        from vaelab.figures import run_figures as figures

        captured = {}
        monkeypatch.setattr(figures.plots, "latent_scatter",
                            lambda xy, labels, *a, **k: captured.update(xy=xy, labels=labels,
                                                                        **k))
        model, cfg = load_run(trained_run)
        model.latent_dim = 1
        model.encoder.forward = lambda x, y=None: (torch.ones(len(x), 1), torch.zeros(len(x), 1))
        figures.latent_plot(model, cfg, load_test(cfg.data, data_dir), "0123456789",
                            tmp_path / "x.png", points=500)
        assert captured["class_rows"] is True
        assert np.all(np.abs(captured["xy"][:, 1] - captured["labels"]) <= 0.3)

    def test_umap_without_the_package_is_one_clear_line(self, trained_run, data_dir, capsys,
                                                        monkeypatch):
        import builtins

        real_import = builtins.__import__

        def no_umap(name, *args, **kwargs):
            if name == "umap":
                raise ImportError("No module named 'umap'")
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", no_umap)
        assert main(["latent", str(trained_run), "--method", "umap",
                     "--data-dir", str(data_dir)]) == 2
        assert "pip install umap-learn" in capsys.readouterr().err

    def test_manifold(self, trained_run_2d, trained_run, tmp_path):
        out = tmp_path / "m.png"
        run_main("manifold", trained_run_2d, "--n", "5", "--out", out)
        tile = 28 * plots.tile_scale(5)
        assert Image.open(out).size == (plots.LEFT["manifold"] + 5 * tile + plots.RIGHT,
                                        plots.TOP + 5 * tile + plots.BOTTOM)
        assert_not_blank(out)
        run_main("manifold", trained_run, "--n", "20", "--dims", "1", "3", "--out", out)
        tile = 28 * plots.tile_scale(20)
        assert Image.open(out).size[0] == plots.LEFT["manifold"] + 20 * tile + plots.RIGHT

    def test_manifold_bad_dims(self, trained_run, capsys):
        assert main(["manifold", str(trained_run), "--dims", "0", "9"]) == 2
        assert "--dims must be two different dimensions in 0..3" in capsys.readouterr().err

    def test_interpolation_endpoints_are_the_reconstructions(self, trained_run, data_dir):
        model, cfg = load_run(trained_run)
        test = load_test(cfg.data, data_dir)
        x = to_float(test.images[[5, 9]])
        mu, _ = model.encode(x)
        for mode in ("linear", "slerp"):
            with torch.no_grad():
                ends = model.decoder.images(explore.interpolate(mu[0], mu[1], 8, mode)[[0, -1]])
            torch.testing.assert_close(ends, model.reconstruct(x), atol=1e-5, rtol=1e-4)

    @pytest.mark.parametrize("name", ["i.png", "i.gif"])
    def test_interpolate_command_with_gif(self, trained_run, tmp_path, data_dir, name, capsys):
        """--out names one file; the strip is the .png and the animation the .gif beside it."""
        run_main("interpolate", trained_run, "--from", "5", "--to", "9", "--steps", "8",
                 "--gif", "--out", tmp_path / name, "--data-dir", data_dir)
        png, gif = tmp_path / "i.png", tmp_path / "i.gif"
        assert capsys.readouterr().out == f"wrote {png} and {gif}\n"
        assert Image.open(png).format == "PNG"
        assert Image.open(png).size[0] > 8 * 28  # the strip of 8 images
        assert_not_blank(png)
        animation = Image.open(gif)
        assert animation.format == "GIF"
        assert animation.n_frames == 2 * 8 - 2  # there and back, ends not repeated
        assert animation.size == (28 * 4, 28 * 4)
        run_main("interpolate", trained_run, "--from-class", "3", "--to-class", "8",
                 "--mode", "linear", "--out", png, "--data-dir", data_dir)
        assert_not_blank(png)
        assert not gif.exists(), "a GIF of another path must not stay beside the PNG"

    def test_traverse(self, trained_run, tmp_path, data_dir):
        out = tmp_path / "t.png"
        run_main("traverse", trained_run, "--steps", "7", "--out", out,
                 "--data-dir", data_dir)
        rows = 4  # the tiny run has 4 latent dimensions; --top 10 shows them all
        tile = 28 * plots.tile_scale(7, rows)
        assert Image.open(out).size == (plots.LEFT["traversal"] + 7 * tile + plots.RIGHT,
                                        plots.TOP + rows * tile + plots.BOTTOM)
        assert_not_blank(out)

    def test_curves_overlay_runs(self, trained_run, trained_run_2d, tmp_path):
        out = tmp_path / "c.png"
        run_main("curves", trained_run, trained_run_2d, "--out", out)
        assert Image.open(out).size == (1500, 460)
        assert_not_blank(out, threshold=5)


@pytest.fixture(scope="module")
def report(trained_run_2d, tmp_path_factory, data_dir):
    run = tmp_path_factory.mktemp("report") / "run"
    shutil.copytree(trained_run_2d, run)
    run_main("report", run, "--data-dir", data_dir)
    return run / "report.html"


class TestReport:
    def test_self_contained(self, report):
        text = report.read_text()
        assert text.count("<img") == text.count('src="data:image/')
        assert "http://" not in text and "https://" not in text
        for section in ("Training curves", "Metrics per epoch", "Sample progression",
                        "Reconstructions", "Latent space", "decoded grid of Gaussian "
                        "quantiles", "Interpolation", "Latent traversal", "Configuration",
                        "Summary"):
            assert section in text
        assert "<td>0.003</td>" in text  # config values as written (train.lr), not rounded
        assert "<td>128</td>" in text and "<td>binarized</td>" in text
        made = {p.name for p in (report.parent / "figures").iterdir()}
        start, end = pick_test_pair(10_000, None, None, seed=0)  # the report's seed
        index = pick_test_index(10_000, None, seed=0)
        assert {"curves.png", "latent.png", "manifold_z0-1.png",  # 2-D codes: no PCA
                f"interpolation_test{start}-{end}.png", f"interpolation_test{start}-{end}.gif",
                f"traversal_test{index}.png", "reconstructions.png"} <= made

    def test_figures_older_than_the_checkpoint_are_remade(self, report, tmp_path, data_dir):
        run = tmp_path / "run"
        shutil.copytree(report.parent, run)
        figures = sorted((run / "figures").iterdir())
        trained = checkpoint_time(run, "best")
        for path in figures:  # all made before the checkpoint was written, but one
            age = 1 if path.name == "reconstructions.png" else -100
            os.utime(path, (trained + age, trained + age))
        run_main("report", run, "--data-dir", data_dir)
        ages = {path.name: path.stat().st_mtime - trained for path in figures}
        assert ages["reconstructions.png"] == pytest.approx(1)  # newer: kept
        assert all(age > 0 for age in ages.values()), ages  # the others: remade
        # the last checkpoint's report has figures of its own, and leaves these alone
        run_main("report", run, "--checkpoint", "last", "--data-dir", data_dir)
        assert (run / "report_last.html").exists()
        assert {"latent_last.png", "reconstructions_last.png"} <= {
            p.name for p in (run / "figures").iterdir()}
        assert {path.name: path.stat().st_mtime - trained for path in figures} == ages

    def test_every_image_loads_in_headless_chromium(self, report):
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            pytest.skip("no Chromium here (Debian package 'chromium'; .ci/run installs it)")
        sync_api = pytest.importorskip("playwright.sync_api",
                                       reason="playwright is a dev dependency")
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page()
            requested = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto(report.as_uri(), wait_until="load")
            images = page.evaluate(
                "Array.from(document.images, i => [i.complete, i.naturalWidth])")
            browser.close()
        assert len(images) >= 10
        assert all(complete and width > 0 for complete, width in images)
        # Nothing but the page itself (and inline data) was requested.
        assert [u for u in requested if not u.startswith("data:")] == [report.as_uri()]


def test_api_load_then_figures(trained_run_2d, tmp_path):
    """The figure functions work from the Python API too."""
    from vaelab.figures.run_figures import manifold_plot

    out = manifold_plot(vaelab.load(trained_run_2d), tmp_path / "m.png", n=4)
    assert_not_blank(out)
