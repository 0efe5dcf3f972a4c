"""`vaelab info`: what this machine offers vaelab, the facts to paste into a bug report."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch


def register(sub) -> None:
    p = sub.add_parser("info", help="versions, devices, CPU capability and folders, for a "
                       "bug report")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_info)


def cmd_info(args: argparse.Namespace) -> None:
    info = describe()
    print(json.dumps(info, indent=2) if args.json else report(info))


CPU_FEATURES = (  # /proc/cpuinfo flag -> name, in order of capability
    ("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX-512 BF16"),
    ("amx_bf16", "AMX"))


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux: /proc/cpuinfo); empty where they cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> dict[str, Any]:
    """Versions, devices, CPU capability, precision choice, threads, data and cache folders."""
    from .. import __version__
    from ..data import cifar
    from ..data.cache import cache_dir
    from ..data.datasets import DATASETS, SPLIT_FILES, default_data_dir
    from ..device import pick_device
    from ..training.speed import bf16_native, resolve_precision

    device = pick_device("auto")
    flags = cpu_flags()
    data_dir = default_data_dir()
    present = [name for name, spec in DATASETS.items()
               if all(any((data_dir / spec.folder / f"{stem}{ext}").is_file()
                          for ext in (".gz", ""))
                      for stems in SPLIT_FILES.values() for stem in stems)]
    if (data_dir / cifar.FOLDER / cifar.ARCHIVE).is_file():
        present.append("cifar10")
    info = {
        "vaelab": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
        "platform": platform.platform(), "cpu": cpu_name(), "cpu_cores": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_features": [name for flag, name in CPU_FEATURES if flag in flags] or ["unknown"],
        "bf16_native_cpu": bf16_native(torch.device("cpu")),
        "threads": torch.get_num_threads(),
        "cuda": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available() else [],
        "mps": torch.backends.mps.is_available(),
        "auto_device": str(device), "auto_precision": resolve_precision("auto", device),
        "data_dir": str(data_dir), "datasets_present": present, "cache_dir": str(cache_dir()),
    }
    if device.type == "cuda":
        info["bf16_native_cuda"] = bf16_native(device)
    return info


def report(info: dict[str, Any]) -> str:
    """`describe()` as the lines `vaelab info` prints."""
    bf16 = ("native: --precision auto trains in bf16" if info["bf16_native_cpu"] else
            "emulated, about 100x slower than fp32: --precision auto keeps fp32 "
            "(do not pass --precision bf16 here)")
    cuda = ", ".join(info["cuda"]) or "none"
    rows = [
        ("vaelab", info["vaelab"]), ("python", info["python"]), ("torch", info["torch"]),
        ("platform", info["platform"]), ("cpu", f"{info['cpu']}, {info['cpu_cores']} cores"),
        ("cpu capability", f"{info['cpu_capability']} (torch's kernels; the cpu's flags: "
                           f"{', '.join(info['cpu_features'])})"),
        ("bf16 on the cpu", bf16), ("threads", str(info["threads"])),
        ("cuda", cuda), ("mps", "available" if info["mps"] else "no"),
        ("--device auto", info["auto_device"]), ("--precision auto", info["auto_precision"]),
        ("data folder", info["data_dir"]),
        ("datasets present", ", ".join(info["datasets_present"]) or
         "none (vaelab downloads them on first use)"),
        ("cache folder", info["cache_dir"]),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
