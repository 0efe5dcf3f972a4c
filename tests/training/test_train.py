import importlib
import json
import math
import shutil
import signal

import pytest
import torch

import vaelab
from helpers import assert_one_line_error, interrupt_at, metrics, quiet, same_weights, weights
from vaelab.cli import main
from vaelab.errors import Interrupted, RunError, TrainingDiverged
from vaelab.runs.rundir import RunLock
from vaelab.training.loop import train

# `vaelab.train` is the re-exported function; the loop module is reached by name.
train_module = importlib.import_module("vaelab.training.loop")
steps_module = importlib.import_module("vaelab.training.steps")


class TestRunDirectory:
    def test_layout_and_loss_falls(self, trained_run):
        names = {p.name for p in trained_run.iterdir()}
        assert {"config.json", "metrics.jsonl", "summary.json", "samples", "tb",
                "checkpoints"} <= names
        assert sorted(p.name for p in (trained_run / "samples").iterdir()) == [
            "epoch_001.png", "epoch_002.png"]
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(trained_run / "tb"))
        events.Reload()
        tb_val = [e.value for e in events.Scalars("loss/val")]
        records = metrics(trained_run)
        assert [r["epoch"] for r in records] == [1, 2]
        assert records[1]["train_loss"] < records[0]["train_loss"]
        assert records[1]["val_loss"] < records[0]["val_loss"]
        assert tb_val == pytest.approx([r["val_loss"] for r in records])
        assert len(events.Scalars("speed/epoch_seconds")) == 2
        for r in records:  # loss = recon + kl (beta 1), all in nats per image
            assert r["val_loss"] == pytest.approx(r["val_recon"] + r["val_kl"], rel=1e-5)
        summary = json.loads((trained_run / "summary.json").read_text())
        assert math.isfinite(summary["test_loss"]) and summary["best_epoch"] == 2

    def test_without_validation_set_selects_on_training_elbo(self, tiny_config, tmp_path,
                                                             data_dir):
        """recon + beta kl, not the warmed-up loss that was optimised: under KL warm-up
        that one is lowest in the first epochs (a 270-epoch run once 'selected' epoch 3)."""
        cfg = tiny_config.replace({"data.val_size": 0, "objective.warmup_epochs": 2,
                                   "train.epochs": 3})
        run = train(cfg, out=tmp_path / "noval", data_dir=data_dir, log=quiet)
        records = metrics(run)
        assert all("val_loss" not in r for r in records)
        assert records[0]["beta"] < 1 and records[-1]["beta"] == 1
        full = [r["train_recon"] + r["train_kl"] for r in records]
        summary = json.loads((run / "summary.json").read_text())
        assert summary["best_train_neg_elbo"] == pytest.approx(min(full))
        assert summary["best_epoch"] == 1 + full.index(min(full))

    def test_load_api(self, trained_run):
        model = vaelab.load(trained_run)
        assert not model.training
        x = torch.rand(3, 1, 28, 28)
        mu, logvar = model.encode(x)
        assert mu.shape == logvar.shape == (3, 4)
        assert model.sample(5).shape == (5, 1, 28, 28)

    def test_refuses_to_overwrite_a_run(self, trained_run, tiny_config, data_dir):
        with pytest.raises(RunError, match="already holds a run"):
            train(tiny_config, out=trained_run, data_dir=data_dir, log=quiet)

    def test_refuses_a_run_in_use(self, tmp_path, tiny_config, data_dir):
        run = tmp_path / "busy"
        run.mkdir()
        with RunLock(run):
            with pytest.raises(RunError, match="in use by another vaelab train"):
                train(tiny_config, out=run, data_dir=data_dir, log=quiet)
        assert not (run / "checkpoints").exists()


RESUME_VARIANTS = {
    "mlp": {},
    "conv": {"model.arch": "conv", "model.channels": [4, 8], "model.dense": 16},
    "hvae-iwae-ema": {"model.arch": "hvae", "model.layers": 2, "model.width": 32,
                      "objective.kind": "iwae", "objective.k": 3, "train.ema": 0.9,
                      "train.grad_clip": 100.0, "train.skip_threshold": 1e4,
                      "train.nll_every": 2, "train.nll_k": 4, "train.nll_images": 50},
    "cvae-mog": {"model.arch": "cvae", "model.channels": [4, 8], "model.dense": 16,
                 "model.prior": "mog", "model.prior_components": 5},
    "vamp-dreg": {"model.prior": "vamp", "model.prior_components": 5,
                  "objective.kind": "iwae-dreg", "objective.k": 2},
}


class TestResume:
    # 2,000 images / batch 100 = 20 batches per epoch; 3 epochs; cosine schedule and
    # warm-up make the result depend on the step count too.
    @pytest.fixture
    def cfg(self, tiny_config):
        return tiny_config.replace({"train.epochs": 3, "train.schedule": "cosine",
                                    "objective.warmup_epochs": 1.5})

    # The signal lands while batch `batch_calls` is drawn; the loop stops at the next
    # boundary: the end of epoch 1 (20 batches), or after batch 7 of epoch 3.
    @pytest.mark.parametrize("variant, batch_calls, where", [
        ("mlp", 20, "at the end of epoch 1"), ("mlp", 47, "at epoch 3, after batch 7"),
        ("conv", 20, "at the end of epoch 1"), ("conv", 47, "at epoch 3, after batch 7"),
        ("hvae-iwae-ema", 47, "at epoch 3, after batch 7"),
        ("cvae-mog", 47, "at epoch 3, after batch 7"),
        ("vamp-dreg", 47, "at epoch 3, after batch 7")])
    def test_interrupted_then_resumed_is_bitwise_equal(self, cfg, tmp_path, data_dir,
                                                      monkeypatch, batch_calls, where, variant):
        cfg = cfg.replace(RESUME_VARIANTS[variant])
        reference = train(cfg, out=tmp_path / "straight", data_dir=data_dir, log=quiet,
                          progress_bar=False)
        run = tmp_path / "interrupted"
        interrupt_at(monkeypatch, batch_calls)
        with pytest.raises(Interrupted) as e:
            train(cfg, out=run, data_dir=data_dir, log=quiet, progress_bar=False)
        assert e.value.exit_code == 128 + signal.SIGTERM
        assert where in str(e.value) and f"vaelab train --resume {run}" in str(e.value)
        monkeypatch.undo()
        train(resume=run, data_dir=data_dir, log=quiet, progress_bar=False)
        assert same_weights(weights(run), weights(reference))
        assert same_weights(weights(run, "best"), weights(reference, "best"))
        ours, theirs = metrics(run), metrics(reference)
        for key in ("train_loss", "val_loss", "step"):
            assert [r[key] for r in ours] == [r[key] for r in theirs]

    def test_resume_after_a_finished_epoch(self, cfg, tmp_path, data_dir):
        # A run trained for 1 epoch, then extended to 3 with --epochs, matches only when
        # the schedule does not depend on the total; use a constant one here.
        constant = cfg.replace({"train.schedule": "constant"})
        straight = train(constant, out=tmp_path / "a", data_dir=data_dir, log=quiet)
        run = train(constant.replace({"train.epochs": 1}), out=tmp_path / "b",
                    data_dir=data_dir, log=quiet)
        train(constant, resume=run, data_dir=data_dir, log=quiet)
        assert same_weights(weights(run), weights(straight))
        assert [r["epoch"] for r in metrics(run)] == [1, 2, 3]

    def test_resume_changing_other_settings_is_refused(self, cfg, trained_run):
        with pytest.raises(vaelab.errors.ConfigError, match="only train.epochs"):
            train(cfg.replace({"train.lr": 0.1}), resume=trained_run, log=quiet)


def snapshot(run):
    """Every file's bytes and every path's modification time under `run`."""
    return {p.relative_to(run): (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
            for p in [run, *run.rglob("*")]}


class TestResumeEnds:
    """What `--resume` does at either end of a run: one that finished its epochs is refused
    and left as it was; one killed before its first checkpoint starts again."""

    def test_a_finished_run_is_refused_and_left_as_it_was(self, trained_run, tmp_path, capsys):
        run = tmp_path / "finished"
        shutil.copytree(trained_run, run)  # copies mtimes too
        before = snapshot(run)
        assert_one_line_error(capsys, ["train", "--resume", str(run), "--no-progress"],
                              f"vaelab train: error: {run} already finished its 2 epochs; "
                              f"add --epochs N to train longer")
        assert snapshot(run) == before

    def test_a_finished_run_trains_longer_with_epochs(self, trained_run, tmp_path, capsys):
        run = tmp_path / "longer"
        shutil.copytree(trained_run, run)
        assert main(["train", "--resume", str(run), "--epochs", "3", "--no-progress"]) == 0
        assert "resuming after epoch 2" in capsys.readouterr().out
        assert [r["epoch"] for r in metrics(run)] == [1, 2, 3]
        assert metrics(run)[:2] == metrics(trained_run)
        assert json.loads((run / "summary.json").read_text())["epochs"] == 3
        # The run's config.json says how long it trains now: --resume alone continues to 3.
        assert json.loads((run / "config.json").read_text())["train"]["epochs"] == 3
        assert_one_line_error(capsys, ["train", "--resume", str(run)],
                              "already finished its 3 epochs")

    def test_a_run_without_a_checkpoint_starts_again_from_its_config(self, trained_run,
                                                                     tmp_path, capsys):
        """Killed in its first epoch: config.json, no checkpoints/ (an older vaelab may have
        left a metrics line of an epoch it never saved)."""
        run = tmp_path / "early"
        run.mkdir()
        shutil.copy(trained_run / "config.json", run / "config.json")
        (run / "metrics.jsonl").write_text((trained_run / "metrics.jsonl").read_text()
                                           .splitlines()[0] + "\n")
        assert main(["train", "--resume", str(run), "--no-progress"]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"vaelab: {run} has no checkpoint yet; starting it again from "
                              f"its config.json\n")
        assert "resuming" not in out
        assert same_weights(weights(run), weights(trained_run))  # the same run, from the start
        assert [r["epoch"] for r in metrics(run)] == [1, 2]


def test_metrics_agree_with_the_checkpoint_on_resume(tmp_path):
    """Lines of epochs after the checkpoint, and a line torn by a kill, are dropped."""
    from vaelab.training.records import truncate_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epoch": 3}\n{"epo')
    assert truncate_metrics(path, 2) == 2
    assert path.read_text() == '{"epoch": 1}\n{"epoch": 2}\n'
    assert truncate_metrics(path, 5) == 2 and truncate_metrics(tmp_path / "none", 1) == 0
    path.write_text('{"epoch": 1}')  # whole, but its newline never written
    assert truncate_metrics(path, 1) == 1 and path.read_text() == '{"epoch": 1}\n'


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
        tiny_config, tmp_path, data_dir, monkeypatch):
    cfg = tiny_config.replace({"train.epochs": 3})
    run = tmp_path / "nan"
    real = steps_module.negative_elbo
    calls = {"n": 0}

    def poisoned(model, x, *args, **kwargs):
        calls["n"] += 1
        out = real(model, x, *args, **kwargs)
        if model.training and calls["n"] > 25:  # epoch 2 (20 steps per epoch + validation)
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(steps_module, "negative_elbo", poisoned)
    with pytest.raises(TrainingDiverged, match="non-finite .* in epoch 2") as e:
        train(cfg, out=run, data_dir=data_dir, log=quiet)
    assert str(run / "checkpoints" / "last") in str(e.value)
    from vaelab.runs.checkpoint import load_trainer_state

    assert load_trainer_state(run / "checkpoints" / "last")["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in weights(run).values())


class TestUpdateGuard:
    """train_step skips an update whose gradient norm is above the threshold (or not
    finite), and clips the others to the given norm."""

    def make(self, scale: float):
        weight = torch.nn.Parameter(torch.ones(3))
        optimizer = torch.optim.SGD([weight], lr=1.0)

        def loss_fn(x, noise, y, beta):  # gradient = scale * (1, 2, 3): norm 3.74 * scale
            loss = scale * (weight * torch.tensor([1.0, 2.0, 3.0])).sum()
            return {"loss": loss, "recon": loss, "kl": loss * 0}
        return weight, optimizer, loss_fn

    def step(self, loss_fn, optimizer, guard):
        from vaelab.training.steps import train_step

        x = torch.zeros(1)
        return train_step(loss_fn, optimizer, x, x, None, torch.tensor(1.0), 1.0, guard)

    def test_skips_above_the_threshold(self):
        from vaelab.training.steps import UpdateGuard

        weight, optimizer, loss_fn = self.make(scale=100.0)  # norm 374
        assert self.step(loss_fn, optimizer, UpdateGuard(skip_threshold=300.0)) is None
        assert torch.equal(weight.detach(), torch.ones(3))
        assert self.step(loss_fn, optimizer, UpdateGuard(skip_threshold=400.0)) is not None
        assert not torch.equal(weight.detach(), torch.ones(3))

    def test_clips_to_the_norm(self):
        from vaelab.training.steps import UpdateGuard

        weight, optimizer, loss_fn = self.make(scale=100.0)
        self.step(loss_fn, optimizer, UpdateGuard(grad_clip=1.0))
        moved = torch.ones(3) - weight.detach()  # SGD, lr 1: the clipped gradient itself
        assert moved.norm().item() == pytest.approx(1.0, rel=1e-5)
        torch.testing.assert_close(moved / moved.norm(), torch.tensor([1.0, 2, 3]) / 14 ** 0.5)

    def test_non_finite_is_skipped(self):
        from vaelab.training.steps import UpdateGuard

        weight, optimizer, loss_fn = self.make(scale=math.inf)
        assert self.step(loss_fn, optimizer, UpdateGuard(skip_nonfinite=True)) is None
        assert torch.equal(weight.detach(), torch.ones(3))
