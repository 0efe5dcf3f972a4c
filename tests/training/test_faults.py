"""Faults a long training run meets: SIGKILL at any moment, disks that fail, non-finite
numbers, downloads that go wrong. Each test says what must survive.

The counts grow with environment variables (`benchmarks/faults.py` sets them for the full
runs): VAELAB_FAULT_TRIALS kill trials (default 2). Each finished test adds its tallies to
the file named by VAELAB_FAULT_REPORT, if set.
"""

import errno
import hashlib
import http.server
import importlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from helpers import metrics, quiet, report, same_weights, weights
from vaelab.data.datasets import ensure_files
from vaelab.errors import DataError, RunError, TrainingDiverged
from vaelab.models.vae import build_model
from vaelab.runs import checkpoint
from vaelab.runs.checkpoint import load_trainer_state, load_weights, resolve
from vaelab.training.loop import train

train_module = importlib.import_module("vaelab.training.loop")

# Few batches per epoch and many epochs: checkpoints are written often, so random kills
# land in every phase (start-up, steps, evaluation, sample grid, checkpoint writes).
KILL_FLAGS = ["--model", "mlp", "--hidden", "64", "--latent-dim", "4", "--limit", "600",
              "--val-size", "200", "--batch-size", "100", "--epochs", "12", "--threads", "1",
              "--sample-grid", "2", "--no-progress"]


def vaelab_train(args, data_dir, **kwargs):
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "vaelab", "train", *map(str, args),
                             "--data-dir", str(data_dir)], env=env, text=True, **kwargs)


def saved_epoch(run) -> int:
    """The epoch that `checkpoints/last` holds (0 without a checkpoint)."""
    last = resolve(run / "checkpoints" / "last")
    return load_trainer_state(last)["epoch"] if last is not None else 0


def recorded_epochs(run, printed: str = "") -> list[int]:
    """Every epoch a record of the run shows: metrics.jsonl lines, TensorBoard's scalars,
    and the epoch lines in `printed` (a process's output)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    shown = [int(n) for n in re.findall(r"^epoch +(\d+)/", printed, flags=re.M)]
    if (run / "metrics.jsonl").exists():
        shown += [r["epoch"] for r in metrics(run)]
    if (run / "tb").exists():
        events = EventAccumulator(str(run / "tb"))
        events.Reload()
        if "loss/train" in events.Tags()["scalars"]:
            shown += [e.step for e in events.Scalars("loss/train")]
    return shown


def checkpoint_is_readable(run) -> bool | None:
    """None if no checkpoint was written yet; else whether `last` loads completely."""
    last = resolve(run / "checkpoints" / "last")
    if last is None:
        return None
    try:
        cfg = checkpoint.read_config(last)
        load_weights(last, build_model(cfg.model))
        load_trainer_state(last)
    except RunError:
        return False
    return True


class TestKill:
    def test_sigkill_at_random_moments_loses_nothing(self, tmp_path, data_dir):
        trials = int(os.environ.get("VAELAB_FAULT_TRIALS", "2"))
        rng = random.Random(int(os.environ.get("VAELAB_FAULT_SEED", "0")))
        reference = tmp_path / "reference"
        process = vaelab_train([*KILL_FLAGS, "--out", reference], data_dir,
                               stdout=subprocess.PIPE)
        started = time.perf_counter()
        process.stdout.readline()  # "vaelab: training ...": start-up is over
        training = time.perf_counter() - started
        process.communicate()
        assert process.returncode == 0
        duration = time.perf_counter() - started
        expected = weights(reference)
        tally = {"resumed": 0, "equal": 0, "unreadable": 0, "restarted": 0, "finished": 0}
        for trial in range(trials):
            run = tmp_path / f"trial{trial}"
            process = vaelab_train([*KILL_FLAGS, "--out", run], data_dir,
                                   stdout=subprocess.DEVNULL)
            # One trial in four may land anywhere, start-up included; the others land
            # while it trains, evaluates and writes checkpoints.
            time.sleep(rng.uniform(0.1, duration) if trial % 4 == 0 else
                       rng.uniform(training, duration))
            process.send_signal(signal.SIGKILL)
            process.wait()
            readable = checkpoint_is_readable(run)
            if readable is False:
                tally["unreadable"] += 1
                continue
            assert max(recorded_epochs(run), default=0) <= saved_epoch(run), \
                "the records show an epoch that no checkpoint holds"
            # Resume, which starts a run killed before its first checkpoint again; killed
            # before its config.json was written, the directory holds no run: start anew.
            args = ["--resume", run, "--no-progress"] if (run / "config.json").exists() \
                else [*KILL_FLAGS, "--out", run]
            tally["resumed" if readable else "restarted"] += 1
            resumed = vaelab_train(args, data_dir, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
            err = resumed.communicate()[1]
            # A kill that came after the end finds a finished run, which --resume leaves.
            finished = resumed.returncode == 2 and "already finished its 12 epochs" in err
            tally["finished"] += finished
            if (resumed.returncode == 0 or finished) and same_weights(weights(run), expected) \
                    and [r["epoch"] for r in metrics(run)] == list(range(1, 13)):
                tally["equal"] += 1
        report("SIGKILL at a random moment, then resume", trials, tally["equal"], **tally)
        assert tally["unreadable"] == 0
        assert tally["equal"] == trials, tally


# Runs `vaelab` and SIGKILLs itself at the nth call of a function whose first argument's
# name ends with a suffix: a kill at an exact point of an epoch.
KILL_AT = """
import importlib, os, signal, sys
from pathlib import Path
from vaelab.cli import main
module, name, nth, suffix = sys.argv[1:5]
target, calls = importlib.import_module(module), []
real = getattr(target, name)
def killing(*args, **kwargs):
    if Path(str(args[0])).name.endswith(suffix):
        calls.append(args[0])
        if len(calls) == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
setattr(target, name, killing)
sys.exit(main(sys.argv[5:]))
"""
WINDOW_FLAGS = [*KILL_FLAGS[:KILL_FLAGS.index("--epochs")], "--epochs", "3",
                *KILL_FLAGS[KILL_FLAGS.index("--epochs") + 2:]]
LOOP, RECORDS = "vaelab.training.loop", "vaelab.training.records"
# Each epoch ends: checkpoints (best if it improved, then last, each swapped in atomically),
# then its records (sample grid, TensorBoard, metrics line), then its printed line.
KILL_WINDOWS = {  # window: (module, function, nth call, name suffix, epoch saved after it)
    "epoch 1, before the first checkpoint": (LOOP, "save_checkpoint", 1, "", 0),
    "epoch 2's work done, before its checkpoints": (LOOP, "save_checkpoint", 3, "", 1),
    "between epoch 2's best and last checkpoints": (LOOP, "save_checkpoint", 2, "last", 1),
    "inside epoch 2's swap of last": ("os", "rename", 2, ".last.tmp", 1),
    "epoch 2's checkpoints durable, before its records": (LOOP, "write_epoch", 2, "", 2),
    "epoch 2's grid and TensorBoard written, before its metrics line":
        (RECORDS, "append_metrics", 2, "", 2),
}


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()  # the in-process runs set --threads 1
    yield
    torch.set_num_threads(threads)


class TestKillWindows:
    """A SIGKILL in each window between an epoch's work and its records: no record shows an
    epoch that no checkpoint holds, and `--resume` ends bitwise-equal to a run never killed,
    with each epoch's metrics line, TensorBoard scalars, sample grid and printed line once."""

    @pytest.fixture(scope="class")
    def reference(self, tmp_path_factory, data_dir):
        run = tmp_path_factory.mktemp("windows") / "reference"
        assert vaelab_train([*WINDOW_FLAGS, "--out", run], data_dir,
                            stdout=subprocess.DEVNULL).wait() == 0
        return run

    @pytest.mark.parametrize("window", KILL_WINDOWS)
    def test_kill_then_resume(self, window, reference, tmp_path, data_dir, capsys,
                              restore_threads):
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        from vaelab.cli import main

        module, function, nth, suffix, saved = KILL_WINDOWS[window]
        run = tmp_path / "run"
        killed = subprocess.run(
            [sys.executable, "-c", KILL_AT, module, function, str(nth), suffix, "train",
             *WINDOW_FLAGS, "--out", str(run), "--data-dir", str(data_dir)],
            env={**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"},
            capture_output=True, text=True)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert checkpoint_is_readable(run) is not False and saved_epoch(run) == saved
        printed = killed.stdout
        assert max(recorded_epochs(run, printed), default=0) <= saved, \
            "the records show an epoch that no checkpoint holds"

        # TensorBoard reads events files in name order, and a name starts with the second
        # it was made in: one made within the killed run's last second could come first.
        time.sleep(1.01 - time.time() % 1)
        assert main(["train", "--resume", str(run), "--no-progress",
                     "--data-dir", str(data_dir)]) == 0
        resumed = capsys.readouterr().out
        if saved == 0:
            assert f"vaelab: {run} has no checkpoint yet; starting it again from its " \
                   f"config.json" in resumed
        assert same_weights(weights(run), weights(reference))
        assert same_weights(weights(run, "best"), weights(reference, "best"))
        ours, theirs = metrics(run), metrics(reference)
        for key in ("epoch", "step", "train_loss", "val_loss"):
            assert [r[key] for r in ours] == [r[key] for r in theirs]
        events = EventAccumulator(str(run / "tb"))
        events.Reload()
        assert [(e.step, e.value) for e in events.Scalars("loss/val")] == \
            [(r["epoch"], pytest.approx(r["val_loss"])) for r in theirs]
        assert sorted(recorded_epochs(run, printed + resumed)) == [1, 1, 1, 2, 2, 2, 3, 3, 3]
        grids = sorted(p.name for p in (run / "samples").iterdir())
        assert grids == [f"epoch_00{n}.png" for n in (1, 2, 3)]
        assert all((run / "samples" / g).read_bytes() ==
                   (reference / "samples" / g).read_bytes() for g in grids)
        report(f"SIGKILL {window}, then resume", 1, 1)


class TestDisk:
    @pytest.mark.parametrize("code, text", [(errno.ENOSPC, "No space left on device"),
                                            (errno.EROFS, "Read-only file system")])
    def test_failed_checkpoint_write_keeps_the_previous_one(self, tiny_config, tmp_path,
                                                             data_dir, monkeypatch, code, text):
        real, calls = checkpoint.save_file, {"n": 0}

        def failing(*args, **kwargs):  # epoch 1 saves best and last; epoch 2's save fails
            calls["n"] += 1
            if calls["n"] > 2:
                raise OSError(code, text)
            return real(*args, **kwargs)

        monkeypatch.setattr(checkpoint, "save_file", failing)
        run = tmp_path / "run"
        with pytest.raises(RunError, match=f"{text}.*previous checkpoint .*(best|last) is intact"):
            train(tiny_config.replace({"train.epochs": 3}), out=run, data_dir=data_dir,
                  log=quiet, progress_bar=False)
        assert checkpoint_is_readable(run)
        assert load_trainer_state(run / "checkpoints" / "last")["epoch"] == 1
        assert not list((run / "checkpoints").glob(".*"))  # no temporary left behind
        monkeypatch.undo()
        train(resume=run, data_dir=data_dir, log=quiet, progress_bar=False)
        assert [r["epoch"] for r in metrics(run)] == [1, 2, 3]
        report(f"checkpoint write fails ({text})", 1, 1)

    def test_run_directory_vanishes(self, tiny_config, tmp_path, data_dir, monkeypatch):
        run = tmp_path / "run"
        real = train_module.evaluate_loss
        calls = {"n": 0}

        def vanish_then_evaluate(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:  # during epoch 2, after epoch 1's checkpoint
                shutil.rmtree(run)
            return real(*args, **kwargs)

        monkeypatch.setattr(train_module, "evaluate_loss", vanish_then_evaluate)
        # The epoch's checkpoint is written first, and the vanished directory is not made again.
        with pytest.raises(RunError, match="cannot write checkpoint .*No such file"):
            train(tiny_config.replace({"train.epochs": 3}), out=run, data_dir=data_dir,
                  log=quiet, progress_bar=False)
        report("run directory deleted during training", 1, 1)

    def test_read_only_run_directory_from_the_command_line(self, tmp_path, data_dir,
                                                           monkeypatch, capsys, tiny_config):
        from vaelab.cli import main

        def read_only(*args, **kwargs):
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(checkpoint, "save_file", read_only)
        code = main(["train", "--model", "mlp", "--hidden", "32", "--latent-dim", "2",
                     "--limit", "500", "--val-size", "100", "--epochs", "1", "--no-progress",
                     "--out", str(tmp_path / "ro"), "--data-dir", str(data_dir)])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Read-only file system" in err
        assert "Traceback" not in err
        report("read-only run directory (CLI)", 1, 1)


def poison_gradients(monkeypatch, from_step: int, every: int = 1):
    """Make the gradient of the first weight NaN at some training steps."""
    real, calls = train_module.train_step, {"n": 0}

    def poisoned(loss_fn, optimizer, *args, **kwargs):
        calls["n"] += 1
        first = optimizer.param_groups[0]["params"][0]
        hook = None
        if calls["n"] >= from_step and (calls["n"] - from_step) % every == 0:
            hook = first.register_hook(lambda grad: grad * float("nan"))
        try:
            return real(loss_fn, optimizer, *args, **kwargs)
        finally:
            if hook is not None:
                hook.remove()

    monkeypatch.setattr(train_module, "train_step", poisoned)


class TestNonFinite:
    def test_nan_gradients_stop_the_run_and_keep_the_last_good_checkpoint(
            self, tiny_config, tmp_path, data_dir, monkeypatch):
        poison_gradients(monkeypatch, from_step=25)  # epoch 2 of 20-step epochs
        run = tmp_path / "nan"
        with pytest.raises(TrainingDiverged, match="non-finite .* in epoch 2"):
            train(tiny_config.replace({"train.epochs": 3}), out=run, data_dir=data_dir,
                  log=quiet)
        assert load_trainer_state(run / "checkpoints" / "last")["epoch"] == 1
        assert all(torch.isfinite(t).all() for t in weights(run).values())
        report("NaN gradients: stop, keep the last good checkpoint", 1, 1)

    def test_skip_nonfinite_skips_those_updates_and_finishes(self, tiny_config, tmp_path,
                                                             data_dir, monkeypatch):
        poison_gradients(monkeypatch, from_step=5, every=7)
        run = train(tiny_config.replace({"train.epochs": 2, "train.skip_nonfinite": True}),
                    out=tmp_path / "skip", data_dir=data_dir, log=quiet)
        records = metrics(run)
        skipped = sum(r["skipped_images"] for r in records)
        assert skipped == 100 * len(range(5, 41, 7))  # 6 poisoned steps of 100 images
        assert all(torch.isfinite(t).all() for t in weights(run).values())
        assert records[-1]["train_loss"] < records[0]["train_loss"]
        report("NaN gradients with --skip-nonfinite: skip and finish", 1, 1)


class _Mirror(http.server.BaseHTTPRequestHandler):
    """Serves /good/NAME, /bad/NAME (wrong bytes), /short/NAME (cut mid-body), 404 else."""

    payloads: dict[str, bytes] = {}

    def do_GET(self):
        kind, name = self.path.strip("/").split("/", 1)
        body = self.payloads.get(name)
        if body is None or kind not in ("good", "bad", "short"):
            self.send_error(404)
            return
        if kind == "bad":
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if kind != "short" else body[:len(body) // 2])

    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(fake_dataset):  # noqa: F811 (the fixture imported above)
    root, payloads = fake_dataset
    _Mirror.payloads = payloads
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, payloads, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class TestDownload:
    def use_mirrors(self, monkeypatch, base, *kinds):
        from vaelab.data import datasets as data

        spec = data.DATASETS["mnist"]
        monkeypatch.setitem(data.DATASETS, "mnist", type(spec)(
            spec.folder, tuple(f"{base}/{kind}/" for kind in kinds), spec.md5, spec.classes))

    def test_bad_truncated_and_missing_files_leave_nothing(self, mirror, monkeypatch):
        root, _, base = mirror
        self.use_mirrors(monkeypatch, base, "short", "bad", "missing")
        with pytest.raises(DataError) as e:
            ensure_files("mnist", root)
        message = str(e.value)
        assert "checksum mismatch" in message and "404" in message
        assert "\n" not in message
        assert not list((root / "mnist").iterdir()), "nothing half-written stays behind"
        report("download: truncated, corrupt and missing files", 3, 3)

    def test_a_good_mirror_after_bad_ones_is_used_and_verified(self, mirror, monkeypatch):
        root, payloads, base = mirror
        self.use_mirrors(monkeypatch, base, "short", "bad", "good")
        folder = ensure_files("mnist", root)
        assert sorted(p.name for p in folder.iterdir()) == sorted(payloads)
        for name, payload in payloads.items():
            assert hashlib.md5((folder / name).read_bytes()).hexdigest() == \
                hashlib.md5(payload).hexdigest()
        report("download: bad mirrors, then a good one", 1, 1)


def test_malicious_trainer_state_is_not_executed_on_resume(trained_run, tmp_path, capsys):
    """A run directory from elsewhere whose trainer.pt carries a pickle that would create a
    file: `vaelab train --resume` refuses it and the file never appears."""
    import pickle

    from vaelab.cli import main

    run = tmp_path / "foreign"
    shutil.copytree(trained_run, run)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (run / "checkpoints" / "last" / "trainer.pt").write_bytes(
        pickle.dumps({"epoch": Exploit()}, protocol=2))
    assert main(["train", "--resume", str(run), "--epochs", "3", "--no-progress"]) == 2
    assert "unreadable or unsafe trainer state" in capsys.readouterr().err
    assert not marker.exists()
    report("malicious pickle in trainer.pt", 1, 1)

