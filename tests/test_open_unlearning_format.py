"""open-unlearning's TOFU log layout (satimp.evaluation.open_unlearning), on hand-built results:
the entries its evaluator writes, the values in its conventions, and satimp reading a retain
model's TOFU_EVAL.json back as retain statistics."""

from __future__ import annotations

import math

import pytest

from satimp.evaluation.open_unlearning import (
    retain_stats_from_logs,
    tofu_eval_logs,
    tofu_summary,
)

LN2, LN4 = math.log(2), math.log(4)


def results() -> tuple[dict, dict]:
    """Two forget items, two retain items, one real-authors item, two holdout items: losses
    chosen so that every probability is 1/2 or 1/4."""
    forget = {
        "es": [1.0, 0.5],
        "em": [1.0, 0.0],
        "avg_loss": [LN2, LN4],
        "paraphrased_avg_loss": [LN4, LN2],
        "perturbed_avg_loss": [[LN2, LN4], [LN4, LN4]],
        "truth_ratio": [1.5, 0.5],
        "rouge": [1.0, 0.25],
        "generation": ["a b", "c"],
        "mia_min_k": [-0.5, -2.0],
    }
    retain = {
        "avg_loss": [LN2, LN2],
        "paraphrased_avg_loss": [LN2, LN2],
        "perturbed_avg_loss": [[LN4], [LN4]],
        "truth_ratio": [0.5, 0.5],
    }
    real = {
        "avg_loss": [LN2],
        "perturbed_avg_loss": [[LN4, LN4]],
        "prob_normalised": [0.5],
        "truth_ratio": [0.5],
        "rouge": [0.5],
    }
    per_sample = {
        "forget10_perturbed": forget,
        "retain_perturbed": retain,
        "real_authors_perturbed": real,
        "holdout10": {"mia_min_k": [-1.0, -3.0]},
    }
    summary = {
        "forget_truth_ratio": 0.6,
        "retain_truth_ratio": 0.5,
        "real_authors_truth_ratio": 0.5,
        "forget_quality": 0.25,
        "model_utility": 0.4,
        "mia_min_k_auc": 0.75,
        "privleak": -50.0,
    }
    return summary, per_sample


def test_entries_and_values_in_open_unlearnings_conventions() -> None:
    summary, per_sample = results()
    logs = tofu_eval_logs(summary, per_sample, "forget10", {"forget10_perturbed": ["A B", "C D"]})
    assert list(logs) == sorted(logs)  # as its evaluator writes them
    assert set(logs) == {
        "forget_Q_A_Prob", "forget_Q_A_PERT_Prob", "forget_Q_A_PARA_Prob", "forget_truth_ratio",
        "forget_Q_A_ROUGE", "extraction_strength", "exact_memorization", "forget_quality",
        "retain_Q_A_Prob", "retain_Q_A_PERT_Prob", "retain_Q_A_PARA_Prob", "retain_Truth_Ratio",
        "ra_Q_A_Prob", "ra_Q_A_PERT_Prob", "ra_Q_A_Prob_normalised", "ra_Truth_Ratio",
        "ra_Q_A_ROUGE", "model_utility", "mia_min_k", "privleak",
    }  # fmt: skip
    prob = logs["forget_Q_A_Prob"]
    assert prob["value_by_index"]["1"] == {"prob": pytest.approx(0.25), "avg_loss": LN4}
    assert prob["agg_value"] == pytest.approx(0.375)  # (1/2 + 1/4) / 2
    pert = logs["forget_Q_A_PERT_Prob"]
    assert pert["value_by_index"]["0"]["prob"] == pytest.approx([0.5, 0.25])
    assert pert["agg_value"] == pytest.approx((0.375 + 0.25) / 2)  # items' means, then mean
    assert logs["forget_Q_A_PARA_Prob"]["value_by_index"]["0"]["prob"] == pytest.approx(0.25)
    tr = logs["forget_truth_ratio"]
    assert tr["value_by_index"] == {"0": {"score": 1.5}, "1": {"score": 0.5}}
    assert tr["agg_value"] == 0.6  # the summary's aggregate, not a plain mean
    assert logs["retain_Truth_Ratio"]["agg_value"] == 0.5
    assert logs["ra_Q_A_Prob_normalised"]["value_by_index"] == {"0": {"prob": 0.5}}
    rouge = logs["forget_Q_A_ROUGE"]
    assert rouge["value_by_index"]["1"] == {
        "rougeL_recall": 0.25, "ground_truth": "C D", "generation": "c"
    }  # fmt: skip
    assert rouge["agg_value"] == pytest.approx(0.625)
    assert "ground_truth" not in logs["ra_Q_A_ROUGE"]["value_by_index"]["0"]
    assert logs["extraction_strength"]["agg_value"] == 0.75
    assert logs["forget_quality"] == {"agg_value": 0.25}
    # membership scores negated (higher = more likely a non-member), the AUC as is
    mia = logs["mia_min_k"]
    assert mia["forget"]["value_by_index"] == {"0": {"score": 0.5}, "1": {"score": 2.0}}
    assert mia["holdout"]["agg_value"] == pytest.approx(2.0)
    assert mia["agg_value"] == mia["auc"] == 0.75
    assert tofu_summary(logs) == {
        "extraction_strength": 0.75,
        "forget_Q_A_Prob": pytest.approx(0.375),
        "forget_Q_A_ROUGE": pytest.approx(0.625),
        "forget_quality": 0.25,
        "forget_truth_ratio": 0.6,
        "model_utility": 0.4,
        "privleak": -50.0,
    }


def test_only_what_was_computed_is_written() -> None:
    """A retain model's evaluation (no ROUGE, no model utility, no holdout) writes no ROUGE,
    utility, MIA or privleak entry."""
    summary, per_sample = results()
    for items in per_sample.values():
        items.pop("rouge", None)
    del per_sample["holdout10"]
    for key in ("model_utility", "privleak"):
        del summary[key]
    logs = tofu_eval_logs(summary, per_sample, "forget10")
    assert not [k for k in logs if "ROUGE" in k or k.startswith("mia")]
    assert "model_utility" not in logs and "privleak" not in logs


def test_retain_stats_from_a_retain_models_logs() -> None:
    """The truth ratios in item order (index "10" after "9"), and Min-K%'s AUC when present;
    anything else is not such a file."""
    scores = {str(i): {"score": float(i)} for i in (10, 9, 0, 1)}
    logs = {"forget_truth_ratio": {"value_by_index": scores}, "mia_min_k": {"agg_value": 0.6}}
    stats = retain_stats_from_logs(logs)
    assert stats["truth_ratio"] == [0.0, 1.0, 9.0, 10.0]
    assert stats["mia_min_k_auc"] == 0.6 and stats["benchmark"] == "tofu"
    assert "mia_min_k_auc" not in retain_stats_from_logs(
        {"forget_truth_ratio": logs["forget_truth_ratio"]}
    )
    assert retain_stats_from_logs({"truth_ratio": [0.5]}) is None
    assert retain_stats_from_logs({"forget_truth_ratio": {"value_by_index": {"a": {}}}}) is None
