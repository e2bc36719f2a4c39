"""Two processes against one (CPU, gloo, torchrun): the figures docs/scaling.md prints under "Many
processes" — the largest relative difference of any weight tensor after `unlearn`/`finetune`
at the same global batch, the largest difference of a logged loss, whether every logged
learning rate is equal, and the largest difference of any `eval` value.

    python bench/distributed.py            # prints a Markdown table (~5 min on 2 cores)

Set-up as the test suite's (tests/conftest.py): a synthetic TOFU of 10 authors × 4 QA and the
`tiny` preset memorised on `full` (60 full-batch steps at lr 1e-2); unlearning runs 1 epoch
on `full` (40 forget examples) with retain90 partners, lr 1e-3. One thread per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from satimp.distributed import cli_command

CASES = [  # (label, command-line tail of the 1-process run, extra flags of the 2-process run)
    (
        "SatImp, batch 4 (2 + 2 examples)",
        ["unlearn", "--method", "satimp", "--batch-size", "4"],
        [],
    ),
    ("NPO, batch 5 (3 + 2)", ["unlearn", "--method", "npo", "--batch-size", "5"], []),
    (
        "GD, batch 6 as 2 processes × 3 micro-batches",
        ["unlearn", "--method", "gd", "--batch-size", "6"],
        ["--grad-accum", "3"],
    ),
    ("RMU, batch 4", ["unlearn", "--method", "rmu", "--batch-size", "4"], []),
    (
        "fine-tuning the `tiny` preset from scratch, batch 6",
        ["finetune", "--model", "tiny", "--split", "full", "--batch-size", "6", "--epochs", "2"],
        [],
    ),
]


def satimp(args: list[str], processes: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env["TOKENIZERS_PARALLELISM"] = "false"
    done = subprocess.run(cli_command(processes) + args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])


def setup(root: Path) -> tuple[Path, Path]:
    """The benchmark and the memorised tiny model (as tests/conftest.py builds them)."""
    import torch

    from satimp.config import TrainConfig
    from satimp.data.encoding import encode_records
    from satimp.data.records import benchmark_texts
    from satimp.data.synth import synth_tofu
    from satimp.data.tofu import load_split
    from satimp.models import build_model, save_model, train_tokenizer
    from satimp.objectives import finetune_objective
    from satimp.train import train

    torch.set_num_threads(1)
    data, model_dir = root / "bench", root / "tiny_trained"
    synth_tofu(data, authors=10, qa_per_author=4, seed=0)
    tok = train_tokenizer(benchmark_texts(data), 512)
    model = build_model("tiny", tok, seed=0)
    examples = encode_records(tok, load_split(data, "full"), max_length=512)
    recipe = TrainConfig(epochs=60, lr=1e-2, batch_size=40, warmup_epochs=3, device="cpu")
    train(model, finetune_objective, examples, recipe, pad_id=tok.pad_token_id)
    save_model(model, tok, model_dir)
    return data, model_dir


def weight_difference(a: Path, b: Path) -> float:
    """max over tensors of ‖w_a − w_b‖ / ‖w_a‖."""
    from safetensors.torch import load_file

    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return max(((wa[k] - wb[k]).norm() / wa[k].norm().clamp_min(1e-12)).item() for k in wa)


def log_differences(a: Path, b: Path) -> tuple[float, float, bool]:
    """(max |Δloss|, max |Δloss| / |loss|, every lr equal) over the metrics.jsonl rows."""
    rows = [[json.loads(x) for x in (p / "metrics.jsonl").read_text().splitlines()] for p in (a, b)]
    pairs = [(x, y) for x, y in zip(*rows, strict=True) if "loss" in x]
    d = [abs(x["loss"] - y["loss"]) for x, y in pairs]
    rel = [abs(x["loss"] - y["loss"]) / max(abs(x["loss"]), 1e-30) for x, y in pairs]
    return max(d), max(rel), all(x["lr"] == y["lr"] for x, y in pairs)


def eval_difference(a: Path, b: Path) -> tuple[float, int]:
    """(max |Δ| over every float of summary.json and per_sample.json, values compared)."""

    def flat(d, out):
        for v in d.values() if isinstance(d, dict) else d:
            if isinstance(v, (dict, list)):
                flat(v, out)
            elif isinstance(v, float):
                out.append(v)
        return out

    diffs = []
    for name in ("summary.json", "per_sample.json"):
        x = flat(json.loads((a / name).read_text()), [])
        y = flat(json.loads((b / name).read_text()), [])
        assert len(x) == len(y)
        diffs += [abs(u - v) for u, v in zip(x, y, strict=True)]
    return max(diffs), len(diffs)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from common import machine

    print(f"machine: {machine()}; 1 thread per process")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data, model_dir = setup(root)
        print(
            "\n| run | max relative weight difference | max abs. loss difference "
            "| max rel. loss difference | learning rates equal |\n|---|---|---|---|---|"
        )
        for i, (label, args, two_only) in enumerate(CASES):
            common = [*args, "--data", str(data), "--lr", "1e-3", "--device", "cpu"]
            if args[0] == "unlearn":
                common += ["--model", str(model_dir), "--forget", "full", "--retain", "retain90"]
                common += ["--epochs", "1"]
            one, two = root / f"{i}-one", root / f"{i}-two"
            satimp([*common, "--out", str(one)], processes=1)
            satimp([*common, *two_only, "--out", str(two)], processes=2)
            w = weight_difference(one, two)
            d, rel, lr = log_differences(one, two)
            print(f"| {label} | {w:.1e} | {d:.1e} | {rel:.1e} | {'yes' if lr else 'NO'} |")
        ev = [
            "eval", "--model", str(model_dir), "--data", str(data), "--forget-split",
            "forget10", "--max-new-tokens", "8", "--batch-size", "3",
        ]  # fmt: skip
        satimp([*ev, "--out", str(root / "eval-one")], processes=1)
        satimp([*ev, "--out", str(root / "eval-two")], processes=2)
        d, n = eval_difference(root / "eval-one", root / "eval-two")
        print(f"\n`eval`, batch 3: max |difference| over {n} summary and per-sample values {d:.1e}")


if __name__ == "__main__":
    main()
