"""bench/models.py's ratio interval: the paired item bootstrap behind the real-world targets."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models_bench():
    spec = importlib.util.spec_from_file_location("bench_models", ROOT / "bench" / "models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_constant_item_ratio_gives_a_point_interval(models_bench):
    # num = 0.9 · den item by item: every resample's ratio of sums is 0.9
    den = [0.2, 0.5, 0.31, 0.44]
    lo, hi = models_bench.ratio_interval([0.9 * d for d in den], den, n_boot=200)
    assert lo == pytest.approx(0.9, abs=1e-12) and hi == pytest.approx(0.9, abs=1e-12)


def test_interval_brackets_the_ratio_and_bounds_resamples(models_bench):
    # two items: resamples are {a,a}, {a,b}, {b,b}, so every ratio lies between the items' own
    # ratios (1/2 and 3/1) and the whole-set ratio 4/3 sits inside the interval
    num, den = [1.0, 3.0], [2.0, 1.0]
    lo, hi = models_bench.ratio_interval(num, den, n_boot=400, seed=3)
    assert 0.5 - 1e-12 <= lo <= 4 / 3 <= hi <= 3.0 + 1e-12
    assert lo == pytest.approx(0.5) and hi == pytest.approx(3.0)  # P(all a) = P(all b) = 1/4


def test_interval_is_deterministic_and_checks_lengths(models_bench):
    num, den = [0.3, 0.2, 0.4, 0.1, 0.35], [0.3, 0.3, 0.3, 0.3, 0.3]
    assert models_bench.ratio_interval(num, den, seed=7) == models_bench.ratio_interval(
        num, den, seed=7
    )
    with pytest.raises(ValueError, match="one length"):
        models_bench.ratio_interval([0.1], [0.1, 0.2])
