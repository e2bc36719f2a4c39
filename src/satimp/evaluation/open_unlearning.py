"""TOFU results in open-unlearning's log layout (`satimp eval --format open-unlearning`).

open-unlearning's evaluator writes `TOFU_EVAL.json`: one entry per metric it computed, named as
in its `configs/eval/tofu_metrics/` (`forget_Q_A_Prob`, `forget_truth_ratio`, `ra_Q_A_ROUGE`,
`mia_min_k`, ...), each `{"agg_value": number, "value_by_index": {"<item>": {...}}}` (item = the
0-based position in the split), and `TOFU_SUMMARY.json`, the `agg_value` of its top-level metrics.
Its forget quality and privleak read a retain model's `TOFU_EVAL.json` (`retain_logs_path`):
`forget_truth_ratio`'s per-item scores and `mia_min_k`'s `agg_value`. `tofu_eval_logs` builds
those files from satimp's `(summary, per_sample)`, so that its tools, and that retain-logs
mechanism, read satimp's numbers.

The per-item values are open-unlearning's: `prob` = exp(−avg_loss) with `avg_loss` the mean
token NLL, lists over the perturbed answers (`PERT`), the truth ratio R as `score`, ROUGE-L
recall as `rougeL_recall` beside the `generation`, and the membership scores negated
(open-unlearning scores higher for a likely non-member; see `satimp.metrics`). The numbers are
those of the protocol evaluated under; only `--protocol open-unlearning` makes them its
evaluator's. Not written: ROUGE-1 and ROUGE-L F1 (satimp computes ROUGE-L recall only), the
decoded prompt (`input`), and metrics satimp did not run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from satimp.evaluation.mia import holdout_split_for

# per_sample split → open-unlearning's metric prefix, for the splits after the forget set
SET_PREFIXES = {
    "retain_perturbed": "retain",
    "real_authors_perturbed": "ra",
    "world_facts_perturbed": "wf",
}
# satimp's attack name → open-unlearning's metric name
MIA_NAMES = {
    "loss": "mia_loss",
    "zlib": "mia_zlib",
    "min_k": "mia_min_k",
    "min_k_pp": "mia_min_k_plus_plus",
    "reference": "mia_reference",
    "gradnorm": "mia_gradnorm",
}
# open-unlearning's configs/eval/tofu.yaml: the metrics its summary reports
SUMMARY_METRICS = (
    "extraction_strength",
    "forget_Q_A_Prob",
    "forget_Q_A_ROUGE",
    "forget_quality",
    "forget_truth_ratio",
    "model_utility",
    "privleak",
)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _entry(per_item: list[dict], agg_value: float | None) -> dict:
    return {"agg_value": agg_value, "value_by_index": {str(i): v for i, v in enumerate(per_item)}}


def _prob(losses: Sequence) -> dict:
    """open-unlearning's `probability` entry from mean NLLs: one per item, or a list per item
    (the perturbed answers; the aggregate is then the mean over items of each item's mean)."""
    items = []
    for loss in losses:
        if isinstance(loss, list):
            items.append({"prob": [math.exp(-v) for v in loss], "avg_loss": list(loss)})
        else:
            items.append({"prob": math.exp(-loss), "avg_loss": loss})
    probs = [_mean(i["prob"]) if isinstance(i["prob"], list) else i["prob"] for i in items]
    return _entry(items, _mean(probs))


def _scores(values: Sequence[float], agg_value: float | None = None) -> dict:
    items = [{"score": v} for v in values]
    return _entry(items, _mean(values) if agg_value is None else agg_value)


def _rouge(items: Mapping[str, list], answers: Sequence[str] | None) -> dict:
    rows = []
    for i, r in enumerate(items["rouge"]):
        row = {"rougeL_recall": r}
        if answers is not None:
            row["ground_truth"] = answers[i]
        if "generation" in items:
            row["generation"] = items["generation"][i]
        rows.append(row)
    return _entry(rows, _mean(items["rouge"]))


def _qa_metrics(prefix: str, items: Mapping[str, list], summary: Mapping, answers) -> dict:
    """The probability, truth-ratio and ROUGE entries of one perturbed split."""
    logs = {f"{prefix}_Q_A_Prob": _prob(items["avg_loss"])}
    logs[f"{prefix}_Q_A_PERT_Prob"] = _prob(items["perturbed_avg_loss"])
    if "paraphrased_avg_loss" in items:  # forget and retain: R compares with the paraphrase
        logs[f"{prefix}_Q_A_PARA_Prob"] = _prob(items["paraphrased_avg_loss"])
    else:  # real authors, world facts: p_true / (p_true + Σ p_perturbed)
        normalised = [{"prob": p} for p in items["prob_normalised"]]
        logs[f"{prefix}_Q_A_Prob_normalised"] = _entry(normalised, _mean(items["prob_normalised"]))
    name = "forget_truth_ratio" if prefix == "forget" else f"{prefix}_Truth_Ratio"
    key = {"ra": "real_authors", "wf": "world_facts"}.get(prefix, prefix)
    logs[name] = _scores(items["truth_ratio"], summary.get(f"{key}_truth_ratio"))
    if "rouge" in items:
        logs[f"{prefix}_Q_A_ROUGE"] = _rouge(items, answers)
    return logs


def _mia(members: Sequence[float], non_members: Sequence[float], auc: float) -> dict:
    """open-unlearning's `mia_*` entry: its per-item scores (satimp's, negated) and AUC (the
    same number in both orientations)."""
    forget, holdout = ([-s for s in scores] for scores in (members, non_members))
    return {
        "forget": _scores(forget),
        "holdout": _scores(holdout),
        "auc": auc,
        "agg_value": auc,
    }


def tofu_eval_logs(
    summary: Mapping,
    per_sample: Mapping[str, Mapping[str, list]],
    forget_split: str,
    answers: Mapping[str, Sequence[str]] | None = None,
) -> dict:
    """open-unlearning's `TOFU_EVAL.json` from `evaluate_tofu`'s (summary, per_sample), after
    `Tofu.apply_stats` (forget quality, privleak). `answers`: {split: the items' answers}, for
    the ROUGE entries' `ground_truth` (None: left out). Keys sorted, as its evaluator writes
    them."""
    answers = answers or {}
    forget = f"{forget_split}_perturbed"
    items = per_sample[forget]
    logs = _qa_metrics("forget", items, summary, answers.get(forget))
    logs["extraction_strength"] = _scores(items["es"])
    logs["exact_memorization"] = _scores(items["em"])
    logs["forget_quality"] = {"agg_value": summary.get("forget_quality")}
    for split, prefix in SET_PREFIXES.items():
        if split in per_sample:
            logs |= _qa_metrics(prefix, per_sample[split], summary, answers.get(split))
    if "model_utility" in summary:
        logs["model_utility"] = {"agg_value": summary["model_utility"]}
    holdout = per_sample.get(holdout_split_for(forget_split), {})
    for attack, name in MIA_NAMES.items():
        key = f"mia_{attack}"
        if key in items and key in holdout:
            logs[name] = _mia(items[key], holdout[key], summary[f"{key}_auc"])
    if "privleak" in summary:
        logs["privleak"] = {"agg_value": summary["privleak"]}
    return dict(sorted(logs.items()))


def tofu_summary(logs: Mapping[str, Mapping]) -> dict:
    """open-unlearning's `TOFU_SUMMARY.json`: the `agg_value` of its top-level TOFU metrics."""
    return {name: logs[name]["agg_value"] for name in SUMMARY_METRICS if name in logs}


def retain_stats_from_logs(logs: Mapping) -> dict | None:
    """satimp's TOFU retain statistics from a retain model's open-unlearning `TOFU_EVAL.json`
    (what its `retain_logs_path` names): the forget truth ratios in item order and, when it ran
    Min-K%, that attack's AUC. None when `logs` is not such a file."""
    entry = logs.get("forget_truth_ratio")
    if not isinstance(entry, Mapping) or not isinstance(entry.get("value_by_index"), Mapping):
        return None
    by_index = entry["value_by_index"]
    try:
        order = sorted(by_index, key=int)
        ratios = [by_index[i]["score"] for i in order]
    except (TypeError, ValueError, KeyError):
        return None
    stats = {"benchmark": "tofu", "truth_ratio": ratios, "format": "open-unlearning"}
    auc = (logs.get("mia_min_k") or {}).get("agg_value")
    if auc is not None:
        stats["mia_min_k_auc"] = auc
    return stats
