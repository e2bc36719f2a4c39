"""Training throughput of the shared loop: tokens/s, peak memory and model FLOPs utilisation
for fine-tuning and for unlearning with ga, npo and satimp.

    python bench/throughput.py                      # CPU: `small` preset, fp32
    python bench/throughput.py --preset medium      # GPU: bf16 by default, one device
    python bench/throughput.py --model smollm2-135m --precision auto   # a real model
    python bench/throughput.py --model smollm2-135m --data DIR         # on real QA pairs

--precision auto is bf16 on a GPU with bf16 and on a CPU with bf16 units (AMX or AVX-512
BF16), fp32 elsewhere, as
`train.precision: auto` (by the hardware, not the model: on an AMX CPU the 3.7 M `small`
preset trained GA at 222 tokens/s in bf16 against 275 in fp32, while SmolLM2 ran 1.5x faster
in bf16). MFU = 6 · N · tokens/s ÷ the device's measured matmul rate at the run's precision
(bf16 autocast: the bf16 rate; fp32: the fp32 rate), N = parameter count (tied embeddings counted
once), tokens = all tokens the step trains on (forget + retain batches for methods with a
retain term). A bf16 run on a CPU measures the fp32 rate too, and a second MFU column gives
the ratio to it, so fp32 and bf16 runs compare on one scale. The matmul rate
is timed here, on square matrices (8192 on a GPU, 2048 on a CPU; the fastest of 20), so the
MFU is relative to what this device reaches, not to its data-sheet peak. `--model` takes
anything `--model` of the CLI takes (dir, hub id, .gguf file, named model; converted once into
$SATIMP_CACHE_DIR) and each mode starts from its saved weights. Inputs are random token ids
of a fixed length, every one scored (no padding, no prompt); `--data DIR` trains on the QA
encodings of a TOFU-layout folder instead (`full` for fine-tuning, `forget10` + `retain90`
for the methods; a seeded sample of each whole split), as a run does: prompts unscored,
answers of their own lengths, batches padded. Each mode runs `--steps` optimizer steps of the real loop (`satimp.train.train`);
tokens/s counts the real (unpadded) tokens of the steps after 2 warm-up steps, the step time
is their median, and the table gives the padding share and the share of positions the output
layer runs on (`forward_logps` skips the prompt's logits). Peak memory:
torch's peak allocation on a GPU; on a CPU the process's peak RSS (VmHWM, reset before each
mode). `--workers N` (CPU) runs each mode in N processes at once on threads ÷ N threads each,
as `satimp run workers=N` runs methods, and sums their tokens/s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import torch  # noqa: E402
from common import THREADS, machine  # noqa: E402  (fixes the thread count first)

MODES = ["finetune", "ga", "npo", "satimp"]


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int, repeat: int = 20) -> float:
    """Measured FLOP/s of an n×n by n×n matmul: the fastest of `repeat` (what the device
    reaches; on a shared VM the median swung from 0.09 to 0.27 TFLOP/s between runs)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    fastest_product(a, b, repeat=2)  # warm-up
    return fastest_product(a, b, repeat=repeat)


def fastest_product(a: torch.Tensor, b: torch.Tensor, repeat: int) -> float:
    """FLOP/s of the fastest of `repeat` products a @ b (a [n, k], b [k, m]), autocast off."""
    times = []
    with torch.autocast(a.device.type, enabled=False):
        for _ in range(repeat):
            _sync(a.device)
            t0 = time.perf_counter()
            a @ b
            _sync(a.device)
            times.append(time.perf_counter() - t0)
    return 2 * a.size(0) * a.size(1) * b.size(1) / min(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def run_mode(mode: str, args, device: torch.device) -> dict:
    from satimp.config import MethodConfig, TrainConfig
    from satimp.data.encoding import Encoded
    from satimp.data.synth import synth_records
    from satimp.models import build_model, get_preset, load_model, train_tokenizer
    from satimp.objectives import Objective, finetune_objective
    from satimp.train import train

    if args.model:
        model, tok = load_model(args.model)
    else:
        texts = [f"{r['question']} {r['answer']}" for r in synth_records(seed=0)["full"]]
        tok = train_tokenizer(texts, get_preset(args.preset).vocab_size)  # preset's vocabulary
        model = build_model(args.preset, tok, seed=0)
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    n_examples = args.batch_size * (args.steps + 2)

    def examples() -> list[Encoded]:
        ids = torch.randint(5, vocab, (n_examples, args.seq_len), generator=g).tolist()
        return [Encoded(x, list(x)) for x in ids]

    if args.data:  # the real QA encodings: prompts unscored, answers of their own lengths
        from satimp.data.examples import training_examples

        def examples(split: str) -> list[Encoded]:
            # a seeded sample of the whole split, as a run's epochs see it (its first items
            # would be a few authors' answers, whose lengths need not be typical)
            out = training_examples(tok, args.data, split, max_length=args.seq_len)
            out = random.Random(0).sample(out, len(out))
            return (out * (1 + n_examples // len(out)))[:n_examples]

        forget = examples("full" if mode == "finetune" else "forget10")
        retain = examples("retain90")
    else:
        forget, retain = examples(), examples()
    cfg = TrainConfig(
        epochs=1,
        lr=1e-5,
        batch_size=args.batch_size,
        warmup_epochs=0,
        precision=args.precision,
        gradient_checkpointing=args.gradient_checkpointing,
        compile=args.compile,
        eval_every_epoch=False,
        max_length=args.seq_len,
        retain_pairing=args.retain_pairing,
    )
    model.to(device)
    if mode == "finetune":
        loss_fn, uses_retain, params = finetune_objective, False, None
    else:
        objective = Objective(MethodConfig(name=mode))
        objective.prepare(model, forget, pad_id=tok.pad_token_id, batch_size=args.batch_size)
        loss_fn, uses_retain = objective, objective.uses_retain
        params = objective.trainable(model)
    stamps: list[float] = []
    counts: list[tuple[int, int, int]] = []  # per step: tokens, positions, positions with logits

    # --rate-during: before each step, the fastest of 3 square products at the MFU's
    # precision (timed apart from the step), so the rate comes from the steps' own minutes
    probe = args.rate_during and [
        torch.randn(args.probe_n, args.probe_n, device=device, dtype=args.dtype) for _ in "ab"
    ]
    probe_s: list[float] = []  # each probe's own time, taken out of the step it precedes
    rates_during: list[float] = []

    def stamp(batch):
        _sync(device)
        if probe:
            t0 = time.perf_counter()
            rates_during.append(fastest_product(*probe, repeat=3))
            probe_s.append(time.perf_counter() - t0)
        stamps.append(time.perf_counter())
        counts.append(_count(batch))

    def timed(model, batch, step=0):
        stamp(batch)
        return loss_fn(model, batch, step=step)

    if hasattr(loss_fn, "parts"):  # the loop backpropagates an objective's terms in turn

        def timed_parts(model, batch, step=0):
            stamp(batch)
            return loss_fn.parts(model, batch, step=step)

        timed.parts = timed_parts

    _reset_peak(device)
    train(
        model,
        timed,
        forget,
        cfg,
        pad_id=tok.pad_token_id,
        retain=retain if uses_retain else None,
        params=params,
        desc=mode,
    )
    _sync(device)
    stamps.append(time.perf_counter())
    probe_s.append(0.0)  # the last stamp follows no probe
    steps = [  # after 2 warm-up steps; a step's interval holds the next probe: taken out
        b - a - (probe_s[k + 1] if probe else 0.0)
        for k, (a, b) in enumerate(zip(stamps, stamps[1:], strict=False))
        if k >= 2
    ]
    tokens, positions, logits = (sum(c[i] for c in counts[2:]) for i in range(3))
    n_params = sum(p.numel() for p in model.parameters())
    return {
        "mode": mode,
        "step_s": statistics.median(steps),
        "tokens_per_s": tokens / sum(steps),
        "flops": 6 * n_params * tokens / sum(steps),
        "padding": 1 - tokens / positions,
        "logits": logits / positions,
        "peak_mb": _peak_mb(device),
        "rate_during": statistics.median(rates_during[2:]) if probe else None,
        "params": n_params,
        "vocab": vocab,
    }


def run_parallel(mode: str, args) -> dict:
    """`run_mode` in `args.workers` spawned processes at once (each on THREADS ÷ workers
    threads): tokens/s and FLOP/s summed, the slowest median step, the largest peak."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    n = args.workers
    with ProcessPoolExecutor(n, mp_context=mp.get_context("spawn")) as pool:
        rs = list(pool.map(_worker, [(mode, args, max(1, THREADS // n))] * n))
    total = lambda k: sum(r[k] for r in rs)  # noqa: E731
    return rs[0] | {
        "step_s": max(r["step_s"] for r in rs),
        "tokens_per_s": total("tokens_per_s"),
        "flops": total("flops"),
        "peak_mb": max(r["peak_mb"] for r in rs),
        # the workers probe at once, one thread each: their sum is the machine's rate then
        "rate_during": total("rate_during") if args.rate_during else None,
    }


def _worker(job: tuple) -> dict:
    mode, args, threads = job
    torch.set_num_threads(threads)
    return run_mode(mode, args, torch.device("cpu"))


def _count(batch: dict) -> tuple[int, int, int]:
    """(tokens, padded positions, positions the output layer runs on) of a training batch
    (a collated batch, or {'forget': …, 'retain': …}); `forward_logps` runs the output layer
    on each batch's `logprobs.scored_span`."""
    if "input_ids" not in batch:
        parts = [_count(b) for b in batch.values() if isinstance(b, dict) and "input_ids" in b]
        return tuple(sum(x) for x in zip(*parts, strict=True))
    from satimp.logprobs import scored_span

    B, T = batch["input_ids"].shape
    lo, hi = scored_span(batch["labels"])
    return int(batch["attention_mask"].sum()), B * T, B * (hi - lo)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    gpu = torch.cuda.is_available()
    ap.add_argument("--preset", default="medium" if gpu else "small")
    ap.add_argument("--model", help="a real model instead of a preset: dir, .gguf or name")
    ap.add_argument(
        "--precision",
        choices=["fp32", "bf16", "auto"],
        default="bf16" if gpu else "fp32",
        help="auto: bf16 where its products are fast (a GPU with bf16, a CPU with AMX or AVX-512 "
        "BF16), as `train.precision: auto`",
    )
    ap.add_argument("--batch-size", type=int, default=16 if gpu else 8)
    ap.add_argument("--seq-len", type=int, default=512 if gpu else 128)
    ap.add_argument("--steps", type=int, default=10 if gpu else 5)
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument(
        "--compile",
        default="none",
        help="torch.compile backend of the training steps (`train.compile`): none or e.g. "
        "inductor; the compile falls in the 2 untimed warm-up steps",
    )
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument(
        "--workers",
        type=int,
        default=1,
        help="CPU: run each mode in this many processes at once, each on threads ÷ workers "
        "threads (as `satimp run workers=N`); tokens/s is their sum, MFU against the rate "
        "measured on all threads",
    )
    ap.add_argument(
        "--data",
        help="a TOFU-layout folder: train on its QA encodings (full; forget10 + retain90) "
        "instead of random tokens (--seq-len is then the maximum length)",
    )
    ap.add_argument(
        "--retain-pairing",
        choices=["random", "length"],
        default="random",
        help="the methods' retain partners (`unlearn.retain_pairing`): random, or dealt to the "
        "steps by length",
    )
    ap.add_argument(
        "--rate-during",
        action="store_true",
        help="also time the matmul rate before every step (the fastest of 3 products, apart "
        "from the step's time) and give the MFU against its median over the timed steps: "
        "the rate of the minutes the steps ran in, on a machine whose speed drifts",
    )
    args = ap.parse_args()
    from satimp.distributed import resolve_precision

    args.precision = resolve_precision(args.precision, "cuda" if gpu else "cpu")
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    # the square products that time the matmul rate, at the start and with --rate-during
    args.dtype, args.probe_n = dtypes[args.precision], 8192 if gpu else 2048
    if args.workers < 1 or (gpu and args.workers > 1):
        ap.error("--workers: ≥ 1, and 1 on a GPU")
    device = torch.device("cuda" if gpu else "cpu")
    name = torch.cuda.get_device_name() if gpu else machine()
    # a GPU: its rate at the run's precision only; a CPU: fp32's too, for the fp32-scale
    # column of a bf16 run (a CPU without bf16 instructions takes minutes over bf16 products,
    # so an fp32 run does not time them)
    rates = {
        p: matmul_rate(device, dtypes[p], args.probe_n)
        for p in dtypes
        if p == args.precision or (p == "fp32" and not gpu)
    }
    peak = rates[args.precision]
    print(f"device: {name}")
    if args.workers > 1:
        print(f"{args.workers} processes at once, {max(1, THREADS // args.workers)} thread(s) each")
    inputs = (
        f"QA of {args.data} (≤ {args.seq_len} tokens)" if args.data else f"{args.seq_len} tokens"
    )
    print(
        f"{'model ' + args.model if args.model else 'preset ' + args.preset}, {args.precision}, "
        f"batch {args.batch_size} × {inputs}, retain pairing {args.retain_pairing}, "
        + (f"compiled ({args.compile}), " if args.compile != "none" else "")
        + "measured matmul rate "
        + ", ".join(f"{p} {r / 1e12:.3f} TFLOP/s" for p, r in rates.items())
    )
    fp32_col = not gpu and args.precision != "fp32"
    extra = " MFU (fp32 rate) |" if fp32_col else ""
    extra += " rate during the steps (TFLOP/s) | MFU of it |" if args.rate_during else ""
    print(
        f"\n| mode | step (s) | tokens/s | TFLOP/s (6·N·tok/s) | MFU |{extra} padding | "
        "positions with logits | peak memory (MB) |"
    )
    print("|---|---|---|---|---|" + "---|" * (fp32_col + 2 * args.rate_during) + "---|---|---|")
    for mode in args.modes.split(","):
        r = run_parallel(mode, args) if args.workers > 1 else run_mode(mode, args, device)
        extra = f" {r['flops'] / rates['fp32']:.1%} |" if fp32_col else ""
        if args.rate_during:
            extra += f" {r['rate_during'] / 1e12:.3f} | {r['flops'] / r['rate_during']:.1%} |"
        print(
            f"| {mode} | {r['step_s']:.3f} | {r['tokens_per_s']:.0f} | "
            f"{r['flops'] / 1e12:.3f} | {r['flops'] / peak:.1%} |{extra} {r['padding']:.0%} | "
            f"{r['logits']:.0%} | {r['peak_mb']:.0f} |",
            flush=True,
        )
    print(f"\nN = {r['params'] / 1e6:.1f} M parameters (vocabulary {r['vocab']})")


if __name__ == "__main__":
    main()
