"""`vaelab info`: what a user pastes into a bug report."""

from __future__ import annotations

import json

from vaelab.cli import info as info_module
from vaelab.cli import main


def test_info_names_versions_devices_and_folders(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("VAELAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VAELAB_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    import torch

    assert info["torch"] == torch.__version__
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["data_dir"] == str(tmp_path / "data")
    assert info["cache_dir"] == str(tmp_path / "cache")
    assert info["datasets_present"] == []
    assert info["auto_precision"] in ("fp32", "bf16")


def test_info_without_native_bf16_says_so(capsys, monkeypatch, data_dir):
    monkeypatch.setattr("vaelab.training.speed.bf16_native", lambda device: False)
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "bf16 on the cpu" in out and "emulated" in out
    assert "--precision auto  fp32" in out
    assert "mnist" in out.split("datasets present", 1)[1].splitlines()[0]


def test_cpu_features_are_read_from_the_flags(monkeypatch):
    monkeypatch.setattr(info_module, "cpu_flags", lambda: {"avx2", "fma"})
    assert info_module.describe()["cpu_features"] == ["AVX2"]
