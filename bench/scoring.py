"""What TOFU's evaluation spends on a real model: teacher-forced scoring and ROUGE generation.

    python bench/scoring.py MODEL DATA [--batch-sizes 32,64,128]

MODEL: anything `--model` takes; DATA: a TOFU-layout folder (forget10, retain, real authors,
world facts). Part 1 scores the four sets' answers, paraphrases and perturbed answers (ES,
probability, truth ratio; no generation) three ways, each twice in turn:
- `full logits`: every position's logits, one pass per encoded answer (the code before the
  answer span and shared prompts; the model's `logits_to_keep` and `position_ids` hidden);
- `answer span`: the output layer on the batch's answer span only (`forward_logps`);
- `shared prompts`: as a run scores them — each question's prompt run once for its 5-7
  answers (`extraction_scores`).
It prints the time of each and the largest difference of every per-item metric from `full
logits` (absolute, and relative for the truth ratio, a ratio of probabilities that reaches
1e4). Part 2 generates the greedy ROUGE answers of all four sets at each batch size and checks
that the texts are the same.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402  (fixes the thread count first)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--batch-size", type=int, default=32, help="teacher-forced batch size")
    ap.add_argument("--batch-sizes", default="32,64,128", help="generation batch sizes")
    args = ap.parse_args()

    from satimp import logprobs
    from satimp.data.tofu import base_answer_key, load_split
    from satimp.evaluation import scoring, tofu
    from satimp.evaluation.generation import generate_answers
    from satimp.evaluation.tofu import SET_SPLITS, score_split
    from satimp.models import load_model

    print(f"machine: {machine()}")
    model, tok = load_model(args.model)
    model.eval()
    sets = {"forget": "forget10_perturbed", **SET_SPLITS}
    records = {name: load_split(args.data, split) for name, split in sets.items()}
    real_kwargs, real_scores = logprobs.forward_kwargs, tofu.extraction_scores

    def score(mode: str) -> tuple[float, dict]:
        hidden = {"logits_to_keep", "position_ids"} if mode == "full logits" else set()
        scoring.forward_kwargs = logprobs.forward_kwargs = lambda m: real_kwargs(m) - hidden
        share = mode == "shared prompts"
        tofu.extraction_scores = lambda *a, **k: real_scores(*a, **k, share_prompts=share)
        try:
            t0 = time.perf_counter()
            out = {
                name: score_split(
                    model,
                    tok,
                    records[name],
                    base_key=base_answer_key(split),
                    answer_prob=name in ("forget", "retain"),
                    rouge=False,
                    batch_size=args.batch_size,
                )
                for name, split in sets.items()
            }
            return time.perf_counter() - t0, out
        finally:
            scoring.forward_kwargs = logprobs.forward_kwargs = real_kwargs
            tofu.extraction_scores = real_scores

    modes = ["full logits", "answer span", "shared prompts"]
    times: dict[str, list[float]] = {m: [] for m in modes}
    results = {}
    for _ in range(2):
        for mode in modes:
            dt, results[mode] = score(mode)
            times[mode].append(dt)
    n_items = sum(len(r) for r in records.values())
    print(f"\nteacher-forced scoring of {n_items} questions' answers (batch {args.batch_size})\n")
    print("| way | time (s), two runs | × full logits | max |Δ| ES, EM | max |Δ| prob | "
          "max relative Δ truth ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    base = min(times["full logits"])
    for mode in modes:
        ref, got = results["full logits"], results[mode]
        d_es = max(
            abs(x - y)
            for n in sets
            for k in ("es", "em")
            for x, y in zip(ref[n][k], got[n][k], strict=True)
        )
        d_prob = max(
            abs(x - y) for n in sets for x, y in zip(ref[n]["prob"], got[n]["prob"], strict=True)
        )
        d_tr = max(
            abs(x - y) / abs(x)
            for n in sets
            for x, y in zip(ref[n]["truth_ratio"], got[n]["truth_ratio"], strict=True)
            if x
        )
        t = times[mode]
        print(
            f"| {mode} | {t[0]:.1f}, {t[1]:.1f} | {base / min(t):.2f}× | {d_es:.1g} | "
            f"{d_prob:.1g} | {d_tr:.1g} |"
        )

    questions = [r["question"] for rs in records.values() for r in rs]
    print(f"\nROUGE answers: {len(questions)} questions, ≤ 200 new tokens, greedy\n")
    print("| batch | time (s) | same texts as the first |\n|---|---|---|")
    first = None
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        t0 = time.perf_counter()
        texts = generate_answers(model, tok, questions, batch_size=bs, max_new_tokens=200)
        dt = time.perf_counter() - t0
        first = first or texts
        print(f"| {bs} | {dt:.1f} | {'yes' if texts == first else 'no'} |", flush=True)


if __name__ == "__main__":
    main()
