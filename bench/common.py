"""Shared set-up for the benchmarks: fixed threads, the default benchmark and its models."""

from __future__ import annotations

import os
import platform
import time

THREADS = int(os.environ.get("SATIMP_BENCH_THREADS", "2"))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))

import torch  # noqa: E402

from satimp.distributed import process_setup  # noqa: E402

torch.set_num_threads(THREADS)
process_setup()  # before the first parallel region: its threads inherit the denormal flag


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from satimp.distributed import cpu_bf16_units

    units = cpu_bf16_units()  # where auto trains bf16
    cpu += f" ({units.upper().replace('_', '-')}: bf16 products fast)" if units else ""
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {THREADS} threads"


def default_setup(log=print):
    """The embedded default: (RunConfig, data path, {base, original, retain} model paths)."""
    from satimp.study.config import RunConfig
    from satimp.study.run import prepare_data, run_models

    cfg = RunConfig()
    data = prepare_data(cfg, log)
    t0 = time.time()
    paths = run_models(cfg, cfg.validate(), data, log=log)
    return cfg, data, paths, time.time() - t0
