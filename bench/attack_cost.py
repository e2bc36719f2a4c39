"""What membership inference and the attacks cost, on the embedded default's original model.

    python bench/attack_cost.py          # SATIMP_BENCH_THREADS (default 2) threads

1. The full TOFU evaluation (all splits and metrics, ROUGE generations) without and with the
   membership-inference pass (LOSS, ZLib, Min-K%, Min-K%++ on forget10 against holdout10):
   the MIA suite's share of an evaluation (target ≤ 25 %).
2. GradNorm, which needs one backward pass per item and is not in the default evaluation:
   its time on the same items.
3. Each attack of `satimp attack` (relearning 10 steps on half the forget set, int8/int4/nf4
   quantization, the prompt probes), each with the metrics it re-evaluates (forget ES and
   probability, the four AUCs), against one full evaluation (the quantization target: ≤ 1.2×).

Every time is the median of `--repeat` runs (default 3) after one warm-up.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import default_setup, machine  # noqa: E402


def timed(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    from satimp.data.tofu import load_split
    from satimp.evaluation.attacks import AttackConfig, forget_metrics, relearn, relearn_split
    from satimp.evaluation.mia import grad_norm_scores, qa_examples
    from satimp.evaluation.prompt_probes import prompt_probes
    from satimp.evaluation.tofu import evaluate_tofu
    from satimp.models import load_model
    from satimp.protocol import PROTOCOLS
    from satimp.quantization import quantize_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    cfg, data, paths, _ = default_setup(log=lambda *a: None)
    model, tok = load_model(paths["original"])
    model.eval()
    P = PROTOCOLS["tofu"]
    forget = load_split(data, f"{cfg.forget}_perturbed")
    retain = load_split(data, "retain90")
    holdout = load_split(data, "holdout10")
    acfg = AttackConfig(relearn_lr=2e-4, device="cpu")

    def evaluation(membership: bool):
        return lambda: evaluate_tofu(model, tok, data, cfg.forget, progress=False, membership=membership)

    t_plain = timed(evaluation(False), args.repeat)
    t_mia = timed(evaluation(True), args.repeat)
    examples = qa_examples(tok, forget + holdout, P)
    t_grad = timed(lambda: grad_norm_scores(model, tok, examples), 1)
    train_idx, eval_idx = relearn_split(len(forget), acfg.seed)
    half = [forget[i] for i in eval_idx]

    def quant(scheme):
        def go():
            q = copy.deepcopy(model)
            quantize_model(q, scheme)
            forget_metrics(q, tok, forget, holdout, P)

        return go

    def relearn_forget():
        m = relearn(model, tok, [forget[i] for i in train_idx], P, acfg)
        forget_metrics(m, tok, half, [holdout[i] for i in eval_idx], P)

    attacks = {
        "relearn (10 steps) + metrics": timed(relearn_forget, args.repeat),
        "int8 + metrics": timed(quant("int8"), args.repeat),
        "int4 + metrics": timed(quant("int4"), args.repeat),
        "nf4 + metrics": timed(quant("nf4"), args.repeat),
        "prompt probes (5)": timed(lambda: prompt_probes(model, tok, forget, retain, protocol=P), args.repeat),
    }
    n = len(forget)
    print(f"\nitems: {n} forget, {len(holdout)} holdout; the {cfg.models.base} preset's original model\n")
    print("| quantity | seconds | vs. full evaluation |\n|---|---|---|")
    print(f"| full evaluation without MIA | {t_plain:.2f} | {t_plain / t_mia:.2f}× |")
    print(f"| full evaluation with MIA (default) | {t_mia:.2f} | 1.00× |")
    print(f"| MIA's share of the evaluation | {t_mia - t_plain:.2f} | {(t_mia - t_plain) / t_plain:.1%} added |")
    print(f"| GradNorm, {len(examples)} items (one backward each) | {t_grad:.2f} | {t_grad / t_mia:.2f}× |")
    for name, t in attacks.items():
        print(f"| {name} | {t:.2f} | {t / t_mia:.2f}× |")


if __name__ == "__main__":
    main()
