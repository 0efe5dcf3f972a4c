"""`--time`: the epochs are fitted to a wall-clock budget."""

from __future__ import annotations

import json

import pytest

from helpers import assert_one_line_error, quiet
from vaelab.cli import main
from vaelab.cli.training import duration
from vaelab.errors import ConfigError
from vaelab.training.budget import TimeBudget
from vaelab.training.loop import train


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("5m", 300),
                                           ("1h30m", 5400), ("1.5h", 5400), ("2m 30s", 150)])
def test_durations(text, seconds):
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "0", "-5m", "5x"])
def test_a_bad_duration_is_one_line(text, capsys):
    assert_one_line_error(capsys, ["train", "--time", text], "--time")


def test_the_fit_takes_the_most_epochs_that_fit():
    budget = TimeBudget(seconds=100.0, steps_per_epoch=100, val_batches=30)
    budget.started -= 10.0  # 10 s spent on the first 25 steps
    # 1 s an epoch's steps and validation: 90 s left, a quarter of an epoch done
    assert budget._fit(budget.started + 10.0, 25, 0.01, 1.0) == 90
    assert budget._fit(budget.started + 99.0, 25, 0.01, 1.0) == 1  # at least one epoch
    assert budget._fit(budget.started + 99.5, 100, 0.01, 1.0) == 1  # the first one is done
    warm = TimeBudget(seconds=1.0, steps_per_epoch=100, val_batches=0, min_epochs=2)
    assert warm._fit(warm.started, 0, 0.01, 1.0) == 2  # the lr warm-up must fit


class StepClock:
    """A clock that moves only when a training step is taken, `step` seconds each: the
    budget's arithmetic checked exactly, whatever else the machine is doing."""

    def __init__(self, step: float):
        self.now, self.step = 1000.0, step

    def perf_counter(self) -> float:
        return self.now


def test_training_stops_within_its_budget(tiny_config, tmp_path, data_dir, monkeypatch):
    import types

    from vaelab.training import budget as budget_module
    from vaelab.training import loop

    clock = StepClock(step=0.02)  # TINY: 20 steps an epoch, 0.4 s an epoch's steps
    fake_time = types.SimpleNamespace(perf_counter=clock.perf_counter)
    monkeypatch.setattr(budget_module, "time", fake_time)
    monkeypatch.setattr(loop, "time", fake_time)
    real_step = loop.train_step

    def timed_step(*args, **kwargs):
        clock.now += clock.step
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", timed_step)
    cfg = tiny_config.replace({"train.epochs": 1, "train.time_budget": 4.0,
                               "train.lr_warmup_epochs": 0.3})
    run = train(cfg, out=tmp_path / "timed", data_dir=data_dir, log=quiet)
    config = json.loads((run / "config.json").read_text())
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert config["train"]["epochs"] == len(lines) in (9, 10)  # 4 s of 0.4 s epochs
    seconds = sum(json.loads(line)["epoch_seconds"] for line in lines)
    assert 3.6 - 1e-6 <= seconds <= 4.0 + 1e-6  # the steps of all epochs fill the budget
    summary = json.loads((run / "summary.json").read_text())
    assert summary["train_seconds_this_session"] == pytest.approx(seconds, abs=0.05)
    assert summary["epochs"] == config["train"]["epochs"]
    # Its fitted epochs are its length: resumed, it has finished.
    with pytest.raises(ConfigError, match=f"already finished its {summary['epochs']} epochs"):
        train(resume=run, data_dir=data_dir, log=quiet)


def test_time_flag_reaches_the_config(tmp_path, data_dir):
    out = tmp_path / "cli"
    assert main(["train", "--model", "mlp", "--hidden", "64", "--latent-dim", "2",
                 "--limit", "1000", "--val-size", "200", "--batch-size", "100",
                 "--time", "3s", "--threads", "1", "--sample-grid", "2", "--no-progress",
                 "--out", str(out), "--data-dir", str(data_dir)]) == 0
    assert json.loads((out / "config.json").read_text())["train"]["time_budget"] == 3.0
