"""Data parallelism on 2 CPU processes (gloo, launched by torchrun): `unlearn` and `finetune`
end with the same weights as 1 process at the same global batch, and `eval` gives the same
results."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from safetensors.torch import load_file

from satimp.distributed import cli_command

# A loss is a mean of per-token log-probs; float32 gives each log-prob an absolute error of
# about eps · |logit| ≈ 1e-7 · 10 whatever its size, so two batch layouts (1 process vs 2
# shares, other padding) agree to ~1e-6 absolute, not relatively: a loss that sums a forget
# and a retain term can be near 0 (−0.00068 on one machine, differing by 5e-8). Relative
# 1e-5 for large losses, 1e-5 absolute below 1: 10× the float error, while a wrong share
# (a micro-batch scaled as the whole batch) moves even that −0.00068 by ~10× more.
LOSS_REL, LOSS_ABS = 1e-5, 1e-5


def satimp(args: list[str], processes: int, env: dict) -> None:
    done = subprocess.run(
        cli_command(processes) + args, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]


def relative_differences(a: Path, b: Path) -> dict[str, float]:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    return {k: ((wa[k] - wb[k]).norm() / wa[k].norm().clamp_min(1e-12)).item() for k in wa}


@pytest.mark.slow
@pytest.mark.parametrize(
    "method, flags",
    [
        ("satimp", ["--batch-size", "5"]),  # shares of 3 and 2 examples
        ("npo", ["--batch-size", "6", "--grad-accum", "3"]),  # 2 processes × 3 micro-batches
    ],
)
def test_two_processes_match_one(
    bench_dir, tiny_trained, tmp_path, child_env, method, flags
) -> None:
    common = [
        "unlearn", "--model", str(tiny_trained), "--data", str(bench_dir), "--method", method,
        "--forget", "full", "--retain", "retain90", "--epochs", "1", "--lr", "1e-3",
        "--device", "cpu", "--eval-every-epoch",
    ]  # fmt: skip
    one, two = tmp_path / "one", tmp_path / "two"
    single = [f for f in flags if f not in ("--grad-accum", "3")]  # same global batch, 1 pass
    satimp([*common, *single, "--out", str(one)], processes=1, env=child_env)
    satimp([*common, *flags, "--out", str(two)], processes=2, env=child_env)
    diffs = relative_differences(one, two)
    assert max(diffs.values()) < 1e-5, sorted(diffs.items(), key=lambda kv: -kv[1])[:3]
    start = relative_differences(Path(tiny_trained), one)
    assert max(start.values()) > 1e-3  # the runs did move the weights
    log_one = [json.loads(x) for x in (one / "metrics.jsonl").read_text().splitlines()]
    log_two = [json.loads(x) for x in (two / "metrics.jsonl").read_text().splitlines()]
    assert len(log_one) == len(log_two)  # one writer, same steps
    assert [r for r in log_one if "forget_es" in r]  # the epoch row is compared too
    for a, b in zip(log_one, log_two, strict=True):
        assert a.get("lr") == b.get("lr")
        for key in ("loss", "forget_es", "retain_es"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=LOSS_REL, abs=LOSS_ABS), (key, a)


@pytest.mark.slow
def test_finetune_from_a_preset_on_two_processes_matches_one(
    bench_dir, tmp_path, child_env
) -> None:
    common = [
        "finetune", "--data", str(bench_dir), "--model", "tiny", "--split", "full",
        "--epochs", "2", "--lr", "3e-3", "--batch-size", "6", "--device", "cpu",
    ]  # fmt: skip
    satimp([*common, "--out", str(tmp_path / "one")], processes=1, env=child_env)
    satimp([*common, "--out", str(tmp_path / "two")], processes=2, env=child_env)
    diffs = relative_differences(tmp_path / "one", tmp_path / "two")
    assert max(diffs.values()) < 1e-5, sorted(diffs.items(), key=lambda kv: -kv[1])[:3]


@pytest.mark.slow
def test_eval_on_two_processes_matches_one(bench_dir, tiny_trained, tmp_path, child_env) -> None:
    common = [
        "eval", "--model", str(tiny_trained), "--data", str(bench_dir),
        "--forget-split", "forget10", "--max-new-tokens", "8", "--batch-size", "3",
    ]  # fmt: skip
    satimp([*common, "--out", str(tmp_path / "one")], processes=1, env=child_env)
    satimp([*common, "--out", str(tmp_path / "two")], processes=2, env=child_env)
    for name in ("summary.json", "per_sample.json"):
        a = json.loads((tmp_path / "one" / name).read_text())
        b = json.loads((tmp_path / "two" / name).read_text())
        flat_a, flat_b = _flatten(a), _flatten(b)
        assert flat_a.keys() == flat_b.keys()
        for k, v in flat_a.items():  # dataset order; batch padding may move the last bits
            if isinstance(v, float):  # log-prob based: absolute floor as for the losses above
                assert flat_b[k] == pytest.approx(v, rel=LOSS_REL, abs=LOSS_ABS), k
            else:
                assert flat_b[k] == v, k


def _flatten(d, prefix="") -> dict:
    out = {}
    items = d.items() if isinstance(d, dict) else enumerate(d)
    for k, v in items:
        if isinstance(v, (dict, list)):
            out |= _flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


@pytest.mark.parametrize(
    "name, kind", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("deepspeed_zero3", "DEEPSPEED")]
)
def test_shipped_accelerate_configs_parse(name: str, kind: str) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    root = Path(__file__).parents[1] / "configs" / "accelerate"
    cfg = load_config_from_file(str(root / f"{name}.yaml"))
    assert cfg.distributed_type.name == kind and cfg.num_processes == 8
    assert str(cfg.mixed_precision) == "no"  # satimp's own `train.precision` decides


@pytest.mark.parametrize(
    "amx, avx512_bf16, units",
    [(True, True, "amx"), (True, False, "amx"), (False, True, "avx512_bf16"), (False, False, "")],
)
def test_precision_auto_is_bf16_on_a_cpu_with_bf16_units_only(
    monkeypatch, amx: bool, avx512_bf16: bool, units: str
) -> None:
    import torch

    from satimp.config import TrainConfig
    from satimp.distributed import cpu_bf16_units, resolve_precision
    from satimp.experiment import recipe_key

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    assert cpu_bf16_units() == units
    want = "bf16" if units else "fp32"
    assert resolve_precision("auto", "cpu") == want
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    # a model cache key holds what auto ran as: auto shares its models with that setting
    auto = recipe_key(TrainConfig(precision="auto", device="cpu"))
    assert auto["precision"] == want
    assert auto == recipe_key(TrainConfig(precision=want, device="cpu"))


def test_cpu_bf16_units_without_torch_probes(monkeypatch) -> None:
    """A torch without the private probes reports no bf16 units: auto trains fp32."""
    import torch

    from satimp.distributed import cpu_bf16_units, resolve_precision

    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    assert cpu_bf16_units() == "" and resolve_precision("auto", "cpu") == "fp32"


_FAULTS = """
import resource
import torch
from satimp.distributed import keep_freed_memory
kept = keep_freed_memory()
n = 16 * 2**20  # 64 MB of float32: above glibc's largest mmap threshold (32 MB)
faults = []
for step in range(12):  # the same tensors, allocated and freed again, as training steps do
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = torch.ones(n); b = torch.ones(2 * n); c = a + 1; del a
    d = b * c.repeat(2); del b, c, d
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(kept, sum(faults[-3:]), 512 * 2**20 // 4096)
"""


def test_keep_freed_memory_stops_page_faults_of_repeated_large_tensors(child_env) -> None:
    """A step-like loop of 64–128 MB tensors (512 MB touched per step): with glibc's default
    the blocks are unmapped on free and every step faults all 131072 pages in anew (measured);
    with `keep_freed_memory` the heap keeps them and the last three steps fault in few (measured
    0 on one thread after 131202, 49152, 16384, … in the first steps; 32768 on two; 65536, one
    128 MB block once, on an AMD EPYC VM)."""
    import sys

    def faults(keep: bool) -> tuple[bool, int, int]:
        env = child_env | {"SATIMP_KEEP_FREED_MEMORY": "1" if keep else "0", "OMP_NUM_THREADS": "1"}
        out = subprocess.run(
            [sys.executable, "-c", _FAULTS], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        return out[0] == "True", int(out[1]), int(out[2])

    kept, with_setting, pages = faults(True)
    if not kept:
        pytest.skip("no glibc mallopt here")
    applied, default, _ = faults(False)
    assert not applied  # the environment switch turned it off
    if default < pages:  # e.g. transparent huge pages: few faults either way
        pytest.skip(f"glibc's default faulted {default} pages in 3 steps of {pages} here")
    # measured: 0, 32768 and 65536 against the default's 393231 (3 steps × all 131072 pages);
    # a setting without effect faults as many as the default
    assert with_setting <= default // 4, (with_setting, default, pages)


def test_an_fsdp_launch_without_cuda_stops_before_anything_is_written(
    bench_dir, tmp_path, monkeypatch, capsys
) -> None:
    """`accelerate launch` with an FSDP config sets ACCELERATE_USE_FSDP; on a machine without
    CUDA accelerate would quietly run plain data parallelism (or unsynchronised processes), so
    every command refuses: exit 2, one line, nothing written. With CUDA it goes ahead."""
    import torch

    from satimp import cli
    from satimp.distributed import check_launch

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "u"
    argv = ["unlearn", "--model", "tiny", "--data", str(bench_dir), "--forget", "forget10",
            "--method", "ga", "--out", str(out)]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("satimp: error: the accelerate config asks for FSDP") == 1
    assert not out.exists()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    check_launch()  # no error where FSDP can run
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "false")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    check_launch()
