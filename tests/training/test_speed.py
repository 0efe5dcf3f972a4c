"""Speed settings: precision, compile, the learning-rate schedule and how batches split
across processes. Timing itself lives in benchmarks/speed.py, never in a test."""

import math

import pytest
import torch

from helpers import metrics, quiet, weights
from vaelab.config import Config, TrainConfig
from vaelab.errors import ConfigError
from vaelab.training.batches import EpochPlan
from vaelab.training.distributed import World
from vaelab.training.loop import train
from vaelab.training.speed import autocast, build_optimizer, resolve_precision
from vaelab.training.steps import lr_at

CPU = torch.device("cpu")


class TestPrecision:
    def test_auto_follows_the_hardware(self):
        native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
        assert resolve_precision("auto", CPU) == ("bf16" if native else "fp32")
        assert resolve_precision("fp32", CPU) == "fp32"
        assert resolve_precision("auto", torch.device("mps")) == "fp32"
        with pytest.raises(ConfigError, match="not supported on mps"):
            resolve_precision("bf16", torch.device("mps"))

    def test_bf16_autocast_runs_products_in_bf16(self):
        layer = torch.nn.Linear(8, 4)
        with autocast(CPU, "bf16"):
            assert layer(torch.randn(2, 8)).dtype == torch.bfloat16
        with autocast(CPU, "fp32"):
            assert layer(torch.randn(2, 8)).dtype == torch.float32

    def test_fused_adam_where_available(self):
        params = [torch.nn.Parameter(torch.randn(3))]
        optimizer = build_optimizer("adam", params, 1e-3, 0.0, 0.99, CPU)
        assert optimizer.defaults["betas"] == (0.9, 0.99)
        major, minor = (int(v) for v in torch.__version__.split(".")[:2])
        if (major, minor) >= (2, 4):  # fused Adam on CPU arrived in torch 2.4
            assert optimizer.defaults["fused"] is True

    def test_bf16_training_matches_fp32(self, tiny_config, tmp_path, data_dir):
        # Weights, optimizer and likelihood stay float32; only the products are bf16.
        runs = {p: train(tiny_config.replace({"train.precision": p}), out=tmp_path / p,
                         data_dir=data_dir, log=quiet, progress_bar=False)
                for p in ("fp32", "bf16")}
        fp32, bf16 = (metrics(runs[p])[-1] for p in ("fp32", "bf16"))
        assert bf16["val_loss"] == pytest.approx(fp32["val_loss"], abs=1.0)
        assert all(t.dtype == torch.float32 for t in weights(runs["bf16"]).values())

    def test_compiled_training_matches_eager(self, tiny_config, tmp_path, data_dir):
        cfg = tiny_config.replace({"train.precision": "fp32", "train.epochs": 1})
        eager = train(cfg, out=tmp_path / "eager", data_dir=data_dir, log=quiet,
                      progress_bar=False)
        compiled = train(cfg.replace({"train.compile": True}), out=tmp_path / "compiled",
                         data_dir=data_dir, log=quiet, progress_bar=False)
        assert metrics(compiled)[0]["train_loss"] == pytest.approx(
            metrics(eager)[0]["train_loss"], rel=1e-4)


class TestSchedule:
    def test_warmup_then_cosine(self):
        cfg = TrainConfig(lr=0.01, epochs=10, lr_warmup_epochs=1.0, schedule="cosine")
        steps = 100  # per epoch
        assert lr_at(0, steps, cfg) == pytest.approx(0.01 / 100)
        assert lr_at(49, steps, cfg) == pytest.approx(0.005)
        assert lr_at(100, steps, cfg) == pytest.approx(0.01)  # peak after warm-up
        assert lr_at(550, steps, cfg) == pytest.approx(0.005)  # half-way through the decay
        assert lr_at(999, steps, cfg) < 1e-6
        lrs = [lr_at(s, steps, cfg) for s in range(1000)]
        assert all(a <= b for a, b in zip(lrs[:100], lrs[1:101]))
        assert all(a >= b for a, b in zip(lrs[100:], lrs[101:]))

    def test_constant_without_warmup(self):
        cfg = TrainConfig(lr=0.02, schedule="constant", lr_warmup_epochs=0.0)
        assert {lr_at(s, 7, cfg) for s in range(50)} == {0.02}

    def test_warmup_longer_than_training_is_refused(self):
        with pytest.raises(ConfigError, match="lr_warmup_epochs"):
            Config().replace({"train.epochs": 2, "train.lr_warmup_epochs": 3})


class TestEpochPlan:
    @pytest.mark.parametrize("n, batch, size", [(1999, 100, 2), (1000, 128, 3), (10, 4, 1)])
    def test_ranks_cover_every_image_once(self, n, batch, size):
        perm = torch.randperm(n)
        plans = [EpochPlan.make(n, batch, World(rank, size)) for rank in range(size)]
        assert plans[0].sizes == [min(batch, n - s) for s in range(0, n, batch)]
        taken = torch.cat([p.shard_index(perm, batch) for p in plans])
        assert sorted(taken.tolist()) == list(range(n))
        for b, global_size in enumerate(plans[0].sizes):
            counts = [hi - lo for p in plans for lo, hi in [p.rows[b]]]
            assert sum(counts) == global_size and max(counts) - min(counts) <= 1
        for plan in plans:  # offsets walk the shard batch after batch
            lengths = [hi - lo for lo, hi in plan.rows]
            assert plan.offsets == [sum(lengths[:b]) for b in range(len(lengths))]

    def test_single_process_takes_the_permutation_as_is(self):
        perm = torch.randperm(300)
        assert EpochPlan.make(300, 128, World()).shard_index(perm, 128) is perm

    def test_global_batch_mean_from_shares(self):
        # Each rank scales its batch mean by share = n_local * W / n_global; DDP averages over
        # W ranks, which gives the mean over the global batch whatever the split.
        values = torch.randn(99)
        plans = [EpochPlan.make(99, 100, World(rank, 2)) for rank in range(2)]
        parts = [values[lo:hi] for p in plans for lo, hi in [p.rows[0]]]
        shares = [len(part) * 2 / 99 for part in parts]
        averaged = sum(part.mean() * share for part, share in zip(parts, shares)) / 2
        assert math.isclose(averaged.item(), values.mean().item(), rel_tol=1e-6)
