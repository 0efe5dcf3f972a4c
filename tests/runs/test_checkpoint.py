import os
import pickle

import pytest
import torch

from vaelab.config import Config
from vaelab.errors import RunError
from vaelab.models.vae import build_model
from vaelab.runs import checkpoint
from vaelab.runs.checkpoint import load_checkpoint, load_trainer_state, resolve, save_checkpoint

CFG = Config().replace({"model.arch": "mlp", "model.hidden": [32], "model.latent_dim": 3})


def saved(tmp_path, seed=0, name="last"):
    torch.manual_seed(seed)
    model = build_model(CFG.model)
    folder = tmp_path / "checkpoints" / name
    save_checkpoint(folder, model, CFG, {"epoch": seed, "rng": torch.get_rng_state()})
    return model, folder


class TestRoundTrip:
    def test_save_then_load_gives_identical_outputs(self, tmp_path):
        model, folder = saved(tmp_path)
        loaded, config = load_checkpoint(folder)
        assert config == CFG
        x = torch.rand(4, 1, 28, 28)
        assert all(torch.equal(a, b) for a, b in zip(model.encode(x), loaded.encode(x)))
        z = torch.randn(4, 3)
        assert torch.equal(model.decode(z), loaded.decode(z))
        assert sorted(p.name for p in folder.iterdir()) == [
            "config.json", "model.safetensors", "trainer.pt"]

    def test_learned_likelihood_parameters_are_saved(self, tmp_path):
        cfg = CFG.replace({"model.likelihood": "gaussian-learned"})
        model = build_model(cfg.model)
        with torch.no_grad():
            model.likelihood.log_std.fill_(-1.234)
        save_checkpoint(tmp_path / "c", model, cfg)
        loaded, _ = load_checkpoint(tmp_path / "c")
        assert loaded.likelihood.log_std.item() == pytest.approx(-1.234)


class TestAtomicity:
    def test_crash_between_renames_keeps_the_previous_checkpoint(self, tmp_path, monkeypatch):
        first, folder = saved(tmp_path, seed=1)
        calls = []
        real_rename = os.rename

        def crash_on_second_rename(src, dst):
            calls.append((src, dst))
            if len(calls) == 2:  # `last` moved aside, the new one not yet in place
                raise OSError("simulated crash")
            real_rename(src, dst)

        monkeypatch.setattr(checkpoint.os, "rename", crash_on_second_rename)
        with pytest.raises(RunError, match="simulated crash.*previous checkpoint .*intact"):
            saved(tmp_path, seed=2)
        monkeypatch.undo()
        assert not folder.exists()
        found = resolve(folder)
        assert found is not None and found.name == ".last.old"
        loaded, _ = load_checkpoint(folder)
        z = torch.randn(2, 3)
        assert torch.equal(loaded.decode(z), first.decode(z))
        # The next save recovers: a complete `last`, nothing stale left behind.
        newest, _ = saved(tmp_path, seed=3)
        assert resolve(folder) == folder
        assert sorted(p.name for p in folder.parent.iterdir()) == ["last"]

    def test_crash_while_writing_leaves_the_old_one_untouched(self, tmp_path, monkeypatch):
        first, folder = saved(tmp_path, seed=1)
        before = (folder / "model.safetensors").read_bytes()

        def disk_full(*args, **kwargs):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(checkpoint, "save_file", disk_full)
        with pytest.raises(RunError, match="No space left on device.*previous checkpoint"):
            saved(tmp_path, seed=2)
        assert not list(folder.parent.glob(".*.tmp"))
        assert (folder / "model.safetensors").read_bytes() == before
        assert load_trainer_state(folder)["epoch"] == 1


class TestRefusals:
    def test_malicious_pickle_is_not_executed(self, tmp_path):
        _, folder = saved(tmp_path)
        marker = tmp_path / "pwned"

        class Exploit:
            def __reduce__(self):
                return (open, (str(marker), "w"))

        (folder / "trainer.pt").write_bytes(pickle.dumps({"epoch": Exploit()}, protocol=2))
        with pytest.raises(RunError, match="unreadable or unsafe trainer state"):
            load_trainer_state(folder)
        assert not marker.exists()

    def test_weights_of_another_architecture(self, tmp_path):
        _, folder = saved(tmp_path)
        other = CFG.replace({"model.hidden": [64]})
        (folder / "config.json").write_text(__import__("json").dumps(other.to_dict()))
        with pytest.raises(RunError, match="do not match the model"):
            load_checkpoint(folder)

    def test_truncated_weights(self, tmp_path):
        _, folder = saved(tmp_path)
        path = folder / "model.safetensors"
        path.write_bytes(path.read_bytes()[:100])
        with pytest.raises(RunError, match="unreadable weights file"):
            load_checkpoint(folder)

    def test_missing_checkpoint(self, tmp_path):
        with pytest.raises(RunError, match="no checkpoint"):
            load_checkpoint(tmp_path / "nothing")

    def test_a_vanished_run_directory_is_not_made_again(self, tmp_path):
        run = tmp_path / "gone"
        with pytest.raises(RunError, match="No such file or directory"):
            save_checkpoint(run / "checkpoints" / "last", build_model(CFG.model), CFG)
        assert not run.exists()


def test_a_run_killed_before_its_first_checkpoint_is_a_run_without_one(tmp_path):
    """Its config.json makes it a run (`--resume` starts it again); loading says why not."""
    from vaelab.runs.checkpoint import write_json
    from vaelab.runs.rundir import load_run, require_run

    run = tmp_path / "early"
    run.mkdir()
    with pytest.raises(RunError, match="is not a vaelab run directory"):
        require_run(run)
    write_json(run / "config.json", CFG.to_dict())
    assert require_run(run) == run
    with pytest.raises(RunError, match="has no 'best' checkpoint yet"):
        load_run(run)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_loading_onto_a_missing_device_is_vaelabs_own_error(trained_run, tmp_path):
    import vaelab
    from vaelab.errors import ConfigError

    for device in ("cuda", torch.device("cuda:0"), "cuda:7"):
        with pytest.raises(ConfigError, match="was requested but is not available here"):
            vaelab.load(trained_run, device=device)
    vaelab.export(trained_run, tmp_path / "exported")
    with pytest.raises(ConfigError, match="device cuda was requested"):
        vaelab.load_decoder(tmp_path / "exported" / "decoder", device="cuda")
    assert vaelab.load(trained_run, device="auto").decoder is not None
