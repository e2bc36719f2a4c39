"""satimp.stats by hand: means, seed aggregation, fronts and hypervolumes, paired tests.

(`tests/test_frontier.py` holds the first hand checks of these functions, written with the
frontier study; the cases here are the edges they leave open.)"""

from __future__ import annotations

import math

import pytest

from satimp.stats import aggregate, hypervolume, mean, paired_difference, paired_p, pareto_front

T975_2 = 4.302652729911275  # t_{0.975, 2}


def test_mean_by_hand() -> None:
    assert mean([1.0, 2.0, 4.0]) == pytest.approx(7 / 3, rel=1e-12)
    assert math.isnan(mean([]))


def test_aggregate_three_seeds_references_and_non_numeric_fields() -> None:
    """Three reference rows of `original` (status 'reference' counts as finished) with forget
    ES 1.0, 0.8, 0.6: mean 0.8, squared deviations 0.04 + 0 + 0.04 = 0.08, std (ddof 1)
    √(0.08/2) = 0.2, ci95 = t_{0.975,2}·0.2/√3 = 0.4968. A row that is already an aggregate
    (it has `n_seeds`) is not a seed. Text, None and bool fields get no statistics, whatever
    their place among the keys; `seed` is a label, not a metric."""
    rows = [
        {"method": "original", "status": "reference", "seed": s, "note": "cached",
         "model_utility": None, "cached": True, "forget_es": f}
        for s, f in ((0, 1.0), (1, 0.8), (2, 0.6))
    ]  # fmt: skip
    rows.append({"method": "original", "status": "reference", "n_seeds": 3, "forget_es": 9.0})
    (row,) = aggregate(rows)
    assert set(row) == {
        "method", "status", "n_seeds", "seeds", "forget_es_mean", "forget_es_std", "forget_es_ci95"
    }  # fmt: skip
    assert (row["method"], row["status"], row["n_seeds"], row["seeds"]) == (
        "original",
        "reference",
        3,
        [0, 1, 2],
    )
    assert row["forget_es_mean"] == pytest.approx(0.8, abs=1e-12)
    assert row["forget_es_std"] == pytest.approx(0.2, abs=1e-12)
    assert row["forget_es_ci95"] == pytest.approx(T975_2 * 0.2 / math.sqrt(3), rel=1e-9)
    assert row["forget_es_ci95"] == pytest.approx(0.4968, abs=1e-4)


def test_aggregate_one_seed_and_all_failed() -> None:
    """One finished seed: its value, no spread. Every seed failed: the count in `status`, no
    statistics at all."""
    rows = [
        {"method": "ga", "status": "ok", "seed": 4, "forget_es": 0.3},
        {"method": "npo", "status": "failed: RuntimeError: boom", "seed": 0, "forget_es": None},
        {"method": "npo", "status": "diverged at epoch 2: loss is nan", "seed": 1},
    ]
    ga, npo = aggregate(rows)
    assert ga == {
        "method": "ga", "status": "ok", "n_seeds": 1, "seeds": [4],
        "forget_es_mean": 0.3, "forget_es_std": None, "forget_es_ci95": None,
    }  # fmt: skip
    assert npo == {"method": "npo", "status": "0/2 ok", "n_seeds": 0, "seeds": []}


def test_pareto_front_equal_y_and_hypervolume_reference_y() -> None:
    """(0.3, 0.5) is dominated by (0.1, 0.5): the same y at a larger x. With ref_y = 0.1 the
    box starts at y = 0.1: (0.2, 0.5) covers (1 − 0.2)·(0.5 − 0.1) = 0.32, and (0.1, 0.05)
    lies below the box and adds nothing. Points on the box's edges (x = ref_x or y = ref_y)
    cover no area."""
    assert pareto_front([(0.3, 0.5), (0.1, 0.5), (0.1, 0.5)]) == [(0.1, 0.5)]
    assert hypervolume([(0.2, 0.5)], 1.0, ref_y=0.1) == pytest.approx(0.32, abs=1e-12)
    assert hypervolume([(0.2, 0.5), (0.1, 0.05)], 1.0, ref_y=0.1) == pytest.approx(0.32, abs=1e-12)
    edges = [(1.0, 0.9), (0.0, 0.1), (0.2, 0.5)]
    assert hypervolume(edges, 1.0, ref_y=0.1) == pytest.approx(0.32, abs=1e-12)


def test_paired_p_same_gain_up_to_rounding_at_any_scale() -> None:
    """a − b = [1000 + 1e-13, 1000]: the same gain of 1000 on both seeds up to float rounding
    (1000's spacing is 1.1e-13), so p = 0 — the tolerance scales with |d| (1e-15·1000 =
    1e-12), where a fixed 1e-15 would run a t-test on the rounding and give p ≈ 4e-17."""
    a = [1000.0 + 1e-13, 1000.0]
    assert a[0] != a[1]
    assert paired_p(a, [0.0, 0.0]) == 0.0


def test_paired_difference_needs_pairs() -> None:
    """a and b are paired by seed: lists of different lengths are an error, not a shorter
    comparison."""
    with pytest.raises(ValueError):
        paired_difference([1.0, 2.0, 3.0], [0.0, 1.0])
    assert paired_p([1.0, 2.0, 3.0], [0.0, 1.0]) is None


def test_paired_p_does_not_depend_on_the_order_of_the_pairs() -> None:
    """Differences that are one value up to rounding: p is decided by their mean, in any order.
    (0.6e−15, 1.2e−15): mean 0.9e−15 ≤ 1e−15, zero up to rounding, p = 1; (0.9e−15, 1.8e−15):
    mean 1.35e−15, the same small gain on both pairs, p = 0. The zero test used to read only
    the first difference: (1.2e−15, 0.6e−15) gave 0 and (0.9e−15, 1.8e−15) gave 1."""
    for d in ([0.6e-15, 1.2e-15], [1.2e-15, 0.6e-15]):
        assert paired_p(d, [0.0, 0.0]) == 1.0
    for d in ([0.9e-15, 1.8e-15], [1.8e-15, 0.9e-15]):
        assert paired_p(d, [0.0, 0.0]) == 0.0
