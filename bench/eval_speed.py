"""Evaluation speed on the default original model.

    python bench/eval_speed.py

1. ES on forget10: one teacher-forced pass (batched) vs the generation-based reference
   (greedy decoding from answer prefixes, binary search), same items; both timed, and the
   per-item values compared (they must agree exactly).
2. The full TOFU evaluation (all four sets, all metrics, ROUGE generations ≤ 200 tokens).
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import default_setup, machine  # noqa: E402


def main() -> None:
    from satimp.config import MethodConfig
    from satimp.data.encoding import encode_records
    from satimp.data.tofu import load_split
    from satimp.evaluation.generation import extraction_strength_by_generation
    from satimp.evaluation.scoring import extraction_scores
    from satimp.evaluation.tofu import evaluate_tofu
    from satimp.experiment import unlearn
    from satimp.models import load_model

    print(f"machine: {machine()}")
    cfg, data, paths, _ = default_setup(log=lambda *a: None)
    model, tok = load_model(paths["original"])
    examples = encode_records(tok, load_split(data, cfg.forget), max_length=512)
    extraction_scores(model, examples[:4], pad_id=tok.pad_token_id)  # warm-up
    t0 = time.perf_counter()
    fast = extraction_scores(model, examples, pad_id=tok.pad_token_id)["es"]
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = extraction_strength_by_generation(model, examples, eos_id=tok.eos_token_id)
    t_slow = time.perf_counter() - t0
    agree = int((fast == slow).sum())
    t0 = time.perf_counter()
    summary, _ = evaluate_tofu(model, tok, data, cfg.forget, progress=False)
    t_full = time.perf_counter() - t0
    # The original model reproduces everything (ES = 1); compare again on a half-unlearned
    # model, whose items spread over 0 ≤ ES ≤ 1.
    with tempfile.TemporaryDirectory() as tmp:
        unlearn(
            paths["original"],
            data,
            cfg.forget,
            "retain90",
            MethodConfig(name="ga"),
            dataclasses.replace(cfg.unlearn, epochs=2, eval_every_epoch=False),
            tmp,
        )
        half, _ = load_model(tmp)
    fast2 = extraction_scores(half, examples, pad_id=tok.pad_token_id)["es"]
    slow2 = extraction_strength_by_generation(half, examples, eos_id=tok.eos_token_id)
    print("\n| quantity | value |\n|---|---|")
    print(f"| items ({cfg.forget}) | {len(examples)} |")
    print(f"| ES one pass | {t_fast:.3f} s |")
    print(f"| ES by generation | {t_slow:.2f} s |")
    print(f"| speed-up | {t_slow / t_fast:.0f}× |")
    print(f"| items where both agree exactly | {agree}/{len(examples)} |")
    print(f"| mean ES (one pass / generation) | {fast.mean():.4f} / {slow.mean():.4f} |")
    print(f"| full evaluation, all splits and metrics | {t_full:.1f} s |")
    print(
        f"| after 2 epochs of GA: items where both agree exactly | {int((fast2 == slow2).sum())}/{len(examples)} |"
    )
    print(
        f"| after 2 epochs of GA: ES min / mean / max | {fast2.min():.3f} / {fast2.mean():.3f} / {fast2.max():.3f} |"
    )


if __name__ == "__main__":
    main()
