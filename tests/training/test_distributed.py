"""Data-parallel training under torchrun, on CPU with the gloo backend and 2 processes.

Two processes that each take half of every global batch must follow the same trajectory as
one process with the whole batch (up to the order of float sums), and checkpoints must
move between world sizes in both directions.
"""

import os
import subprocess
import sys

import pytest
import torch

from helpers import interrupt_at, metrics, quiet, weights
from vaelab.config import Config
from vaelab.training.loop import train

# 1,999 images in global batches of 100: the last batch (99) splits unevenly, 49 + 50.
FLAGS = ["--model", "mlp", "--hidden", "64", "--latent-dim", "4", "--limit", "1999",
         "--val-size", "500", "--batch-size", "100", "--precision", "fp32", "--threads", "1",
         "--sample-grid", "4", "--schedule", "constant", "--no-progress"]
SETTINGS = {"model.arch": "mlp", "model.hidden": [64], "model.latent_dim": 4,
            "data.limit": 1999, "data.val_size": 500, "train.batch_size": 100,
            "train.precision": "fp32", "train.threads": 1, "train.sample_grid": 4,
            "train.schedule": "constant"}  # extending a run keeps a constant schedule


def torchrun(args, data_dir, nproc=2):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", str(nproc), "-m", "vaelab", "train", *args]
    env = {**os.environ, "VAELAB_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def assert_same_trajectory(run, reference):
    ours, theirs = metrics(run), metrics(reference)
    assert [r["step"] for r in ours] == [r["step"] for r in theirs]
    for key in ("train_loss", "train_kl", "val_loss"):
        assert [r[key] for r in ours] == pytest.approx([r[key] for r in theirs], rel=1e-5)
    a, b = weights(run), weights(reference)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=2e-5, rtol=1e-4)


@pytest.fixture
def cfg():
    return Config().replace({**SETTINGS, "train.epochs": 3})


def test_two_processes_follow_the_single_process_trajectory(cfg, tmp_path, data_dir):
    schedule = {"train.schedule": "cosine", "objective.warmup_epochs": 1.0}
    reference = train(cfg.replace(schedule), out=tmp_path / "one", data_dir=data_dir,
                      log=quiet, progress_bar=False)
    run = tmp_path / "two"
    done = torchrun([*FLAGS, "--epochs", "3", "--schedule", "cosine", "--warmup-epochs", "1",
                     "--out", str(run)], data_dir)
    assert "x 2 processes" in done.stdout
    assert done.stdout.count("done: test negative ELBO") == 1  # only rank 0 reports
    assert not list(run.glob("**/*.tmp"))
    assert_same_trajectory(run, reference)


def test_a_two_process_run_resumes_with_one(cfg, tmp_path, data_dir):
    reference = train(cfg, out=tmp_path / "one", data_dir=data_dir, log=quiet,
                      progress_bar=False)
    run = tmp_path / "two"
    torchrun([*FLAGS, "--epochs", "2", "--out", str(run)], data_dir)
    train(cfg, resume=run, data_dir=data_dir, log=quiet, progress_bar=False)
    assert [r["epoch"] for r in metrics(run)] == [1, 2, 3]
    assert_same_trajectory(run, reference)


def test_a_run_interrupted_mid_epoch_resumes_with_two_processes(cfg, tmp_path, data_dir,
                                                                monkeypatch):
    reference = train(cfg, out=tmp_path / "one", data_dir=data_dir, log=quiet,
                      progress_bar=False)
    run = tmp_path / "split"
    interrupt_at(monkeypatch, 27)  # stops in epoch 2, after batch 7: the sums carry over
    with pytest.raises(Exception, match="after batch 7"):
        train(cfg, out=run, data_dir=data_dir, log=quiet, progress_bar=False)
    monkeypatch.undo()
    torchrun(["--resume", str(run), "--no-progress"], data_dir)
    assert_same_trajectory(run, reference)
