"""Does the forgetting hold? Attacks on an unlearned TOFU model (SPEC §7), each run on the
retain model too as the control: an attack that teaches the facts anew must not pass for one
that recovers them.

- `relearn_forget`: `relearn_steps` optimizer steps of satimp's training loop (`train.train`,
  the fine-tuning loss) on a seeded half of the forget items (`relearn_split`), the metrics
  taken on the other half (Deeb & Roger 2024);
- `relearn_retain`: the same steps on retain rows, which hold no forget fact (Łucki et al.
  2024), the metrics on the same evaluated half;
- `int8`, `int4`, `nf4`: the weights quantized (`satimp.quantization`; Zhang et al. 2025);
- `probes`: the prompt probes (`prompt_probes`); their `after` is the per-item best probe.

Metrics (`forget_metrics`), before and after each attack: forget ES and answer probability
(the protocol's prompt; ES without the EOS, as the forget ES) and, with a holdout split, the
membership AUCs of the forget items against the holdout's (LOSS, ZLib, Min-K%, Min-K%++).
With the original (pre-unlearning) model's metrics, each attack's recovery of a metric m is
(m_attacked − m_unlearned) / (m_original − m_unlearned): 0 nothing came back, 1 all of it
(None where original and unlearned agree to 1e-9).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass

from satimp.config import TrainConfig, opt
from satimp.data.encoding import encode_records
from satimp.evaluation.mia import mia, qa_examples
from satimp.evaluation.prompt_probes import prompt_probes
from satimp.evaluation.scoring import extraction_scores
from satimp.objectives import finetune_objective
from satimp.protocol import Protocol
from satimp.quantization import SCHEMES, quantize_model
from satimp.train import train

RELEARN = ("relearn_forget", "relearn_retain")
ATTACKS = (*RELEARN, *SCHEMES, "probes")
METRICS = ("es", "prob", "mia_loss_auc", "mia_zlib_auc", "mia_min_k_auc", "mia_min_k_pp_auc")


@dataclass
class AttackConfig:
    """Which attacks, and the relearning recipe (`satimp attack`; `attacks:` of a run)."""

    enabled: bool = opt(False, "`satimp run`: attack every unlearned model after its evaluation")
    attacks: list = opt(list(ATTACKS), f"attacks to run, from: {', '.join(ATTACKS)}")
    relearn_steps: int = opt(10, "relearning: optimizer steps")
    relearn_lr: float = opt(
        1e-5, "relearning learning rate (a pretrained model's; a preset from scratch wants ~3e-4)"
    )
    relearn_batch_size: int = opt(4, "relearning: examples per step")
    seed: int = opt(0, "the forget halves of relearning, and its data order")
    group_size: int | None = opt(None, "quantization block: int8/int4 None = per channel, nf4 64")
    batch_size: int = opt(32, "evaluation batch size")
    device: str = opt("auto", "relearning's device")

    def validate(self) -> None:
        """ValueError naming the first bad field."""
        unknown = [a for a in self.attacks if a not in ATTACKS]
        if unknown or not self.attacks:
            raise ValueError(f"unknown attack {unknown or '(none)'}; valid: {', '.join(ATTACKS)}")
        if len(set(self.attacks)) != len(self.attacks):
            raise ValueError(f"attacks: {self.attacks} names one twice")
        if self.relearn_steps <= 0:
            raise ValueError(f"relearn_steps must be > 0, got {self.relearn_steps}")
        if self.relearn_lr <= 0 or self.relearn_batch_size <= 0:
            raise ValueError("relearn_lr and relearn_batch_size must be > 0")
        if self.group_size is not None and self.group_size <= 0:
            raise ValueError(f"group_size must be > 0, got {self.group_size}")


def relearn_split(n: int, seed: int) -> tuple[list[int], list[int]]:
    """(train, evaluate) item indices: a `random.Random(seed)` shuffle of range(n), its first
    half (rounded down, at least 1) to relearn on, the rest to evaluate; each sorted."""
    if n < 2:
        raise ValueError("relearning needs at least 2 forget items")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    k = max(1, n // 2)
    return sorted(order[:k]), sorted(order[k:])


def forget_metrics(
    model,
    tokenizer,
    forget: Sequence[dict],
    holdout: Sequence[dict] | None,
    protocol: Protocol,
    *,
    batch_size: int = 32,
) -> dict[str, float]:
    """Mean forget ES and answer probability of `forget` (its `answer` under the protocol's
    prompt; ES without the final EOS) and, given `holdout`, the four one-pass membership AUCs
    of `forget` (members) against it."""
    s = extraction_scores(
        model,
        qa_examples(tokenizer, forget, protocol),
        pad_id=tokenizer.pad_token_id,
        batch_size=batch_size,
        eos_in_prob=protocol.eos_in_prob,
        no_match=protocol.es_no_match,
    )
    out = {"es": s["es"].mean().item(), "prob": s["prob"].mean().item()}
    if holdout:
        aucs, _ = mia(model, tokenizer, forget, holdout, protocol=protocol, batch_size=batch_size)
        out |= aucs
    return out


def relearn(model, tokenizer, records: Sequence[dict], protocol: Protocol, cfg: AttackConfig):
    """A copy of `model` after cfg.relearn_steps fine-tuning steps on `records` (the protocol's
    prompt format, constant lr, no warm-up, data order seeded)."""
    attacked = copy.deepcopy(model)
    examples = encode_records(
        tokenizer, records, max_length=protocol.eval_max_length, system=protocol.system_prompt
    )
    steps_per_epoch = max(1, -(-len(examples) // cfg.relearn_batch_size))
    tc = TrainConfig(
        epochs=-(-cfg.relearn_steps // steps_per_epoch),
        max_steps=cfg.relearn_steps,
        lr=cfg.relearn_lr,
        batch_size=min(cfg.relearn_batch_size, len(examples)),
        warmup_epochs=0.0,
        schedule="constant",
        seed=cfg.seed,
        eval_every_epoch=False,
        device=cfg.device,
        report_to="none",
    )
    train(attacked, finetune_objective, examples, tc, pad_id=tokenizer.pad_token_id, desc="relearn")
    return attacked.eval()


def attack_model(
    model,
    tokenizer,
    forget: Sequence[dict],
    retain: Sequence[dict],
    holdout: Sequence[dict] | None,
    protocol: Protocol,
    cfg: AttackConfig,
    progress=None,
) -> dict[str, dict]:
    """Every attack of `cfg` on one model: {"none": metrics on all forget items, "none_half":
    on the evaluated half, attack: {"before": ..., "after": ...}}. Relearning is evaluated on
    the half it did not train on (with the matching half of the holdout as non-members)."""
    kw = dict(batch_size=cfg.batch_size)
    train_idx, eval_idx = relearn_split(len(forget), cfg.seed)
    half = [forget[i] for i in eval_idx]
    half_holdout = [holdout[i] for i in eval_idx if i < len(holdout)] if holdout else None
    base = forget_metrics(model, tokenizer, forget, holdout, protocol, **kw)
    base_half = forget_metrics(model, tokenizer, half, half_holdout, protocol, **kw)
    out: dict[str, dict] = {"none": base, "none_half": base_half}
    for attack in cfg.attacks:
        if progress:
            progress(attack)
        if attack in RELEARN:
            data = [forget[i] for i in train_idx] if attack == "relearn_forget" else retain
            attacked = relearn(model, tokenizer, data, protocol, cfg)
            after = forget_metrics(attacked, tokenizer, half, half_holdout, protocol, **kw)
            out[attack] = {"before": base_half, "after": after}
        elif attack in SCHEMES:
            attacked = copy.deepcopy(model)
            quantize_model(attacked, attack, cfg.group_size)
            after = forget_metrics(attacked, tokenizer, forget, holdout, protocol, **kw)
            out[attack] = {"before": base, "after": after}
        else:  # probes: ES and probability of the best probe per item; no MIA
            summary, _ = prompt_probes(
                model, tokenizer, forget, retain, protocol=protocol, batch_size=cfg.batch_size
            )
            before = {"es": summary["probe_plain_es"], "prob": summary["probe_plain_prob"]}
            after = {"es": summary["probe_best_es"], "prob": summary["probe_best_prob"]}
            out[attack] = {"before": before, "after": after, "probes": summary}
    return out


def recoveries(
    attacked: dict, original: dict, unlearned: dict | None = None
) -> dict[str, dict[str, float | None]]:
    """Per attack and metric, (after − before) / (m_original − m_unlearned) on the same items
    (the evaluated half for relearning; the plain question for the probes). `attacked`: the
    unlearned model's results (its recovery) or, with `unlearned` given, the retain model's
    (the control: how far the same attack moves a model that never saw the facts, on the
    unlearned model's scale)."""
    out = {}
    for attack, res in attacked.items():
        if not isinstance(res, dict) or "after" not in res:
            continue
        if attack == "probes":
            ref = original["probes"]["before"]
        else:
            ref = original["none_half"] if attack in RELEARN else original["none"]
        base = (unlearned or attacked)[attack]["before"]
        out[attack] = {}
        for m, after in res["after"].items():
            if m in ref and m in base:
                gap = ref[m] - base[m]
                delta = after - res["before"][m]
                out[attack][m] = None if abs(gap) < 1e-9 else delta / gap
    return out


def attack_columns(results: dict, recovery: dict | None) -> dict[str, float | None]:
    """The numbers a study row carries for one attacked model, all prefixed `atk_`: the
    unattacked forget ES and Min-K% AUC (`atk_none_…`, on `forget_metrics`' prompt), and per
    attack the forget ES after it, the Min-K% AUC after it where measured, and the ES
    recovery."""
    out = {"atk_none_es": results["none"]["es"]}
    if "mia_min_k_auc" in results["none"]:
        out["atk_none_mia_min_k_auc"] = results["none"]["mia_min_k_auc"]
    for attack, res in results.items():
        if not isinstance(res, dict) or "after" not in res:
            continue
        out[f"atk_{attack}_es"] = res["after"]["es"]
        if "mia_min_k_auc" in res["after"]:
            out[f"atk_{attack}_mia_min_k_auc"] = res["after"]["mia_min_k_auc"]
        if recovery is not None:
            out[f"atk_{attack}_recovery_es"] = recovery.get(attack, {}).get("es")
    return out


def format_attacks(results: dict[str, dict], metrics: Sequence[str] = ("es", "prob")) -> str:
    """A text table: per attack and model role, each metric before → after."""
    roles = [r for r in ("unlearned", "retain", "original") if r in results]
    attacks = [a for a in results[roles[0]] if a not in ("none", "none_half")]
    head = f"{'attack':<16} {'model':<10} " + " ".join(
        f"{m + ' before → after':>24}" for m in metrics
    )
    lines = [head]
    for attack in attacks:
        for role in roles:
            res = results[role].get(attack)
            if not res:
                continue
            cells = [
                f"{res['before'][m]:>10.4f} → {res['after'][m]:<10.4f}"
                if m in res["after"] and m in res["before"]
                else f"{'–':>24}"
                for m in metrics
            ]
            lines.append(f"{attack:<16} {role:<10} " + " ".join(cells))
    return "\n".join(lines)
