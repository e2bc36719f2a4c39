"""Several processes (`accelerate launch`, `torchrun`): who does what, and putting results back
in dataset order. With one process every function is a no-op.

Data parallelism here is deterministic and needs no sampler state: every process reads the whole
dataset and computes the same batch order; process `rank` of `world` takes items
`rank, rank + world, …` of each batch (training) or of the dataset (evaluation). Evaluation
results are gathered so every process holds them in dataset order, and only the main process
writes files.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from satimp.errors import InputError


def cli_command(processes: int = 1) -> list[str]:
    """The argv prefix that runs `satimp` in `processes` CPU processes: torchrun (standalone,
    gloo) when more than one (`accelerate launch --cpu` starts a single process)."""
    import sys

    if processes <= 1:
        return [sys.executable, "-m", "satimp.cli"]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc_per_node", str(processes), "-m", "satimp.cli"]  # fmt: skip


def use_cpu(device: str = "auto") -> bool:
    """Whether a `train.device` setting ('auto', 'cpu', 'cuda') means the CPU: 'auto' picks
    CUDA when torch sees a device, so the choice is explicit in the config, never implied."""
    return device == "cpu" or (device == "auto" and not torch.cuda.is_available())


def cpu_bf16_units() -> str:
    """The bf16 matrix units this CPU has, as torch reports them: 'amx' (AMX tiles: Intel
    Sapphire Rapids and later), 'avx512_bf16' (AVX-512 BF16 dot products: AMD Zen 4 and
    later, Intel Cooper Lake) or '' (none: bf16 products are emulated in fp32 and slower).
    Both probes are private in torch (>= 2.3); a torch without them reports ''."""
    for unit, probe in (
        ("amx", "_is_amx_tile_supported"),
        ("avx512_bf16", "_is_avx512_bf16_supported"),
    ):
        supported = getattr(torch.cpu, probe, None)
        if supported is not None and supported():
            return unit
    return ""


def fast_bf16(device: str = "auto") -> bool:
    """Whether bf16 matrix products are fast where `train.device` trains: a CUDA device with
    bf16 support, or a CPU with bf16 units (`cpu_bf16_units`). Measured with SmolLM2's training
    steps (docs/performance.md, "The SmolLM2 run"): with AMX a bf16 product ran 7x the fp32 rate and bf16
    autocast steps 1.44-1.52x fp32's tokens/s; with AVX-512 BF16 alone (an AMD EPYC) 2.2x and
    1.35-1.53x; with neither, bf16 products ran at a quarter of the fp32 rate and bf16 steps
    at 0.43x fp32's tokens/s."""
    if not use_cpu(device):
        return torch.cuda.is_bf16_supported()
    return bool(cpu_bf16_units())


def resolve_precision(precision: str, device: str = "auto") -> str:
    """`train.precision` as the loop runs it: 'auto' is 'bf16' where `fast_bf16(device)`,
    else 'fp32'; 'fp32' and 'bf16' stay."""
    if precision != "auto":
        return precision
    return "bf16" if fast_bf16(device) else "fp32"


def process_setup() -> None:
    """What every process that trains or evaluates sets first, before torch starts its threads
    (the CLI, `satimp run`'s worker processes, the benchmarks): subnormal floats flushed to
    zero (`torch.set_flush_denormal`; the flag is per thread, and torch's worker threads copy
    it when they start; see `satimp.train.train`) and `keep_freed_memory()`."""
    torch.set_flush_denormal(True)
    keep_freed_memory()


def check_launch() -> None:
    """InputError when `accelerate launch` asks for FSDP (its launcher sets
    ACCELERATE_USE_FSDP) where no CUDA device is: accelerate would quietly set up plain data
    parallelism over gloo (`cpu=True`) or independent unsynchronised processes instead, and
    the run would not be sharded. Called by the CLI before any command works."""
    import os

    if (
        os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"
        and not torch.cuda.is_available()
    ):
        raise InputError(
            "the accelerate config asks for FSDP, but this machine has no CUDA device: accelerate "
            "would run plain data parallelism instead (docs/scaling.md); launch without FSDP"
        )


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep the memory of freed large tensors for the next ones.

    By default glibc maps every block above its mmap threshold (at most 32 MB) afresh and
    unmaps it when freed, so each training step faults its largest tensors in page by page
    again: the output layer's [tokens, vocabulary] logits and their gradient, ~190 MB each on
    SmolLM2. That was a third of a step (`fill_` and `log_softmax` in the profile, first
    touches of fresh pages); served from the heap instead (M_MMAP_MAX 0) and never trimmed
    back to the system (M_TRIM_THRESHOLD 2 GiB), SmolLM2's fine-tuning steps ran 1.05–1.29×
    and its forget + retain steps (NPO, SatImp) 1.26–1.62× as fast, for up to ~0.4 GB more
    peak memory (bench/throughput.py; docs/performance.md, "Training throughput and MFU").
    Large requests of other threads' arenas fall back to the main heap. Does nothing (returns False) without
    glibc, or with SATIMP_KEEP_FREED_MEMORY=0 in the environment (to measure the difference)."""
    import ctypes
    import ctypes.util
    import os

    if os.environ.get("SATIMP_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without mallopt)
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def state(device: str = "auto"):
    from accelerate import PartialState

    # cpu=True on a CPU-only machine, as the training loop's Accelerator: the shared state is
    # made once, and without it accelerate would not set up CPU processes (gloo)
    return PartialState(cpu=use_cpu(device))


def set_deterministic() -> None:
    """Deterministic algorithms only, process-wide (`train.deterministic`, and the tests, where
    bit-identical reruns are promised): an op without a deterministic kernel raises instead of
    varying. cuBLAS needs its workspace fixed before its first use for the same guarantee."""
    import os

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


def world() -> tuple[int, int]:
    """(rank, number of processes); (0, 1) when not launched as several processes."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        import os

        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return 0, 1
        s = state()  # initialises the process group from the launcher's environment
        return s.process_index, s.num_processes
    return dist.get_rank(), dist.get_world_size()


def is_main() -> bool:
    return world()[0] == 0


def barrier() -> None:
    if world()[1] > 1:
        state().wait_for_everyone()


def local_indices(n: int) -> list[int]:
    """The dataset indices this process evaluates: rank, rank + world, … < n."""
    rank, size = world()
    return list(range(rank, n, size))


def sum_tensor(t: Tensor) -> Tensor:
    """Elementwise sum over processes (evaluation rows are disjoint, zeros elsewhere)."""
    if world()[1] == 1:
        return t
    import torch.distributed as dist

    out = t.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def gather_indexed(pairs: Sequence[tuple[int, object]], n: int) -> list:
    """[(dataset index, value)] from every process → the n values in dataset order."""
    if world()[1] == 1:
        out = [None] * n
        for i, v in pairs:
            out[i] = v
        return out
    import torch.distributed as dist

    parts: list = [None] * world()[1]
    dist.all_gather_object(parts, [(i, _cpu(v)) for i, v in pairs])
    out = [None] * n
    for part in parts:
        for i, v in part:
            out[i] = v
    return out


def _cpu(v):
    return v.cpu() if isinstance(v, torch.Tensor) else v
