"""Building a run's models: time (cold, and a cache hit) and what they memorised.

    python bench/models.py [CONFIG.yaml] [key=value ...] [--cold]

Default: the embedded default (`make run`'s models); `configs/tofu_smollm2.yaml` measures the
SmolLM2 recipe. --cold builds into an empty temporary cache (the full cost); without it the
run's cache is used (a hit when `satimp run` already built them). Reports: build time; the
original model's teacher-forced argmax accuracy on the forget answers (target ≥ 0.95) and
its forget ES (SmolLM2 target ≥ 0.9); both models' accuracy on the forget split's key facts
(`keywords`; the retain model's aim ≤ 0.3) — over key-fact tokens, and per fact (first token
right, every token right) — and on all tokens; with a pretrained base, the base model's
own key-fact accuracy too (the floor: what language alone predicts of facts it never saw),
and the real-authors / world-facts probabilities of the base and of the original (target:
the original keeps ≥ 0.9 × the base's) with a 95 % paired bootstrap interval of that ratio
over the set's items; where the protocol scores the answer's EOS (TOFU's), those ratios are
given without it too (`protocol.eos_in_prob: false`), to tell the end of the answer from the
answer itself.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402


def accuracy(model_dir, data, split: str) -> dict[str, float]:
    """Teacher-forced argmax accuracy of a model on a split's answers (EOS excluded):
    'answer' over all answer tokens; over key facts (`keywords`): 'key_tokens' over their
    tokens, 'key_first' the share of key facts whose first token is right (where a fact's
    information starts: "Rutherford" of "Rutherford Books"), 'key_whole' the share with
    every token right (the fact reproduced)."""
    import torch

    from satimp.data.encoding import encode_records, iter_batches
    from satimp.data.tofu import load_split
    from satimp.logprobs import drop_last_answer_token, forward_logps
    from satimp.models import load_model

    model, tok = load_model(model_dir)
    model.eval()
    examples = encode_records(tok, load_split(data, split), max_length=512)
    n = {k: 0 for k in ("right", "total", "kright", "ktotal", "first", "whole", "facts")}
    with torch.no_grad():
        for _, batch in iter_batches(examples, 32, tok.pad_token_id):
            r = forward_logps(model, batch)
            mask = drop_last_answer_token(r.mask)
            keys = batch["key_mask"][:, 1:] & mask
            n["right"] += (r.correct & mask).sum().item()
            n["total"] += mask.sum().item()
            n["kright"] += (r.correct & keys).sum().item()
            n["ktotal"] += keys.sum().item()
            for row_keys, row_ok in zip(keys.tolist(), r.correct.tolist(), strict=True):
                fact: list[bool] = []  # the argmax hits of the key fact being read
                for is_key, ok in [*zip(row_keys, row_ok, strict=True), (False, False)]:
                    if is_key:
                        fact.append(ok)
                    elif fact:  # a run of key-fact tokens ended: one fact
                        n["facts"] += 1
                        n["first"] += fact[0]
                        n["whole"] += all(fact)
                        fact = []
    return {
        "answer": n["right"] / n["total"],
        "key_tokens": n["kright"] / max(1, n["ktotal"]),
        "key_first": n["first"] / max(1, n["facts"]),
        "key_whole": n["whole"] / max(1, n["facts"]),
    }


def ratio_interval(
    num: list[float], den: list[float], *, n_boot: int = 5000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of sum(num) / sum(den) (num[i], den[i]: one item under two
    models), resampling items with replacement — the ratio's uncertainty from which items the
    set holds. Deterministic for a seed."""
    import random

    if len(num) != len(den) or not num:
        raise ValueError("ratio_interval: num and den must be non-empty and of one length")
    rng, n = random.Random(seed), len(num)
    ratios = []
    for _ in range(n_boot):
        idx = [rng.randrange(n) for _ in range(n)]
        ratios.append(sum(num[i] for i in idx) / sum(den[i] for i in idx))
    ratios.sort()
    tail = (1 - level) / 2
    return ratios[int(tail * n_boot)], ratios[min(n_boot - 1, int((1 - tail) * n_boot))]


def general_knowledge(model_dir, data, protocol) -> dict[str, list[float]]:
    """Per-item real-authors and world-facts probability (TOFU's normalised form) of a model."""
    from satimp.data.tofu import load_split
    from satimp.evaluation.tofu import score_split
    from satimp.models import load_model

    model, tok = load_model(model_dir)
    model.eval()
    out = {}
    for name in ("real_authors", "world_facts"):
        records = load_split(data, f"{name}_perturbed")
        s = score_split(
            model, tok, records, protocol=protocol, base_key="answer", answer_prob=False,
            rouge=False,
        )  # fmt: skip
        out[name] = s["prob"]
    return out


def forget_es(model_dir, data, forget: str, protocol) -> float:
    from satimp.data.tofu import load_split
    from satimp.evaluation.tofu import es_scores
    from satimp.models import load_model

    model, tok = load_model(model_dir)
    s = es_scores(model.eval(), tok, load_split(data, f"{forget}_perturbed"), protocol=protocol)
    return sum(s["es"]) / len(s["es"])


def main() -> None:
    from satimp.config import load_config
    from satimp.models import PRESETS
    from satimp.study.config import RunConfig
    from satimp.study.run import prepare_data, run_models

    args = [a for a in sys.argv[1:] if a != "--cold"]
    cold = "--cold" in sys.argv
    config = args[0] if args and "=" not in args[0] else None
    cfg = load_config(RunConfig, config, args[1:] if config else args)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        if cold:
            cfg = dataclasses.replace(cfg, cache_dir=tmp)
        data = prepare_data(cfg, log=lambda *a: None)
        t0 = time.time()
        paths = run_models(cfg, cfg.validate(), data)
        build = time.time() - t0
        t0 = time.time()
        run_models(cfg, cfg.validate(), data, log=lambda *a: None)
        hit = time.time() - t0
        pretrained = cfg.models.base not in PRESETS
        names = ("original", "retain") + (("base",) if pretrained else ())
        acc = {name: accuracy(paths[name], data, cfg.forget) for name in names}
        protocol = cfg.resolved_protocol()
        orig_es = forget_es(paths["original"], data, cfg.forget, protocol)
        if pretrained:
            base_gk = general_knowledge(paths["base"], data, protocol)
            orig_gk = general_knowledge(paths["original"], data, protocol)
            if protocol.eos_in_prob:  # the same without the EOS term (what moves the ratio?)
                no_eos = dataclasses.replace(protocol, eos_in_prob=False)
                base_ne = general_knowledge(paths["base"], data, no_eos)
                orig_ne = general_knowledge(paths["original"], data, no_eos)
    print("\n| quantity | value |\n|---|---|")
    print(
        f"| build base + original + retain ({'cold' if cold else 'project cache'}) | {build:.1f} s |"
    )
    print(f"| cache hit | {hit:.2f} s |")
    for name, a in acc.items():
        print(f"| {name}: argmax accuracy on {cfg.forget} answers | {a['answer']:.3f} |")
        print(f"| {name}: accuracy on {cfg.forget} key-fact tokens | {a['key_tokens']:.3f} |")
        print(
            f"| {name}: {cfg.forget} key facts with the first token right | {a['key_first']:.3f} |"
        )
        print(f"| {name}: {cfg.forget} key facts with every token right | {a['key_whole']:.3f} |")
    print(f"| original: forget ES ({cfg.forget}) | {orig_es:.3f} |")
    if pretrained:
        rows = [("", base_gk, orig_gk)]
        if protocol.eos_in_prob:
            rows.append((", answers scored without their EOS", base_ne, orig_ne))
        for how, b_gk, o_gk in rows:
            for name in ("real_authors", "world_facts"):
                base, orig = b_gk[name], o_gk[name]
                lo, hi = ratio_interval(orig, base)
                print(
                    f"| {name} probability{how} ({len(base)} items): base "
                    f"{sum(base) / len(base):.3f}, original {sum(orig) / len(orig):.3f} | "
                    f"{sum(orig) / sum(base):.3f} × base (95 % bootstrap over items: "
                    f"{lo:.3f}–{hi:.3f}) |"
                )


if __name__ == "__main__":
    main()
