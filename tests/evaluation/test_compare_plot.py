"""`vaelab compare --plot`: the beta, rate and distortion columns and the rate-distortion
figure (Alemi et al. 2018), from run directories written by hand (no training)."""

import json

import numpy as np
import pytest
from PIL import Image

from helpers import assert_one_line_error
from vaelab.cli import main
from vaelab.config import Config
from vaelab.evaluation.evaluate import rate_distortion_points

RUNS = {  # name: (beta, rate, distortion), given out of beta order
    "b2": (2.0, 8.0, 150.0), "b05": (0.5, 21.0, 131.5), "b1": (1.0, 14.0, 138.0)}


def make_run(folder, beta: float, rate: float, distortion: float, mode: str = "binarized"):
    folder.mkdir()
    cfg = Config().replace({"objective.beta": beta, "data.mode": mode})
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    (folder / "eval.json").write_text(json.dumps({
        "data_mode": mode, "test_neg_elbo": rate + distortion, "test_kl": rate,
        "test_recon": distortion, "nll": rate + distortion - 5, "nll_k": 50}))
    return folder


@pytest.fixture
def runs(tmp_path):
    return [make_run(tmp_path / name, *values) for name, values in RUNS.items()]


def test_table_and_plot(runs, tmp_path, capsys):
    out = tmp_path / "figs" / "rd.png"
    assert main(["compare", *map(str, runs), "--plot", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = [cell.strip() for cell in lines[0].split("|")[1:-1]]
    assert header[:6] == ["run", "data", "beta", "test -ELBO", "rate", "distortion"]
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.split("|")[1:-1]]
                                          for line in lines[2:5])}
    assert rows["b05"][2:6] == ["0.5", "152.50", "21.00", "131.50"]
    assert rows["b2"][2] == "2"
    assert lines[-1] == f"wrote {out}"
    image = Image.open(out)
    assert image.size == (750, 750)
    rgb = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    blue = (np.abs(rgb - [31, 119, 180]).sum(1) < 30).sum()  # tab10 C0: points and line
    red = (np.abs(rgb - [214, 39, 40]).sum(1) < 30).sum()  # the lowest -ELBO: ring, label
    assert blue > 100 and red > 30  # measured 233 and 116
    assert 10_000 < out.stat().st_size < 200_000


def test_points_in_beta_order(runs):
    points = rate_distortion_points(runs)
    assert [p["beta"] for p in points] == [0.5, 1.0, 2.0]
    assert [(p["rate"], p["distortion"]) for p in points] == [(21.0, 131.5), (14.0, 138.0),
                                                              (8.0, 150.0)]
    assert points[0]["protocol"] == "mnist, binarized, bernoulli likelihood"


def test_mixed_protocols_refused(runs, tmp_path, capsys):
    gray = make_run(tmp_path / "gray", 1.0, 20.0, 60.0, mode="grayscale")
    out = tmp_path / "rd.png"
    err = assert_one_line_error(capsys, ["compare", *map(str, runs), str(gray),
                                         "--plot", str(out)],
                                "different data protocols", "grayscale", "binarized")
    assert "gray" in err and not out.exists()
    capsys.readouterr()
    assert main(["compare", *map(str, runs), str(gray)]) == 0  # a table may mix them


def test_run_without_config_or_terms(runs, tmp_path, capsys):
    (runs[0] / "config.json").unlink()
    assert_one_line_error(capsys, ["compare", str(runs[0])], "has no config.json")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text(json.dumps(Config().to_dict()))
    (bare / "eval.json").write_text(json.dumps({"nll": 90.0}))
    assert main(["compare", str(bare)]) == 0  # the table shows "-" for missing numbers
    assert_one_line_error(capsys, ["compare", str(bare), "--plot", str(tmp_path / "x.png")],
                          "lacks test_kl, test_recon")
