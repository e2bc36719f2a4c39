"""Pure statistics over results: means, 95 % t-intervals, aggregation over seeds, Pareto
fronts and hypervolumes, paired tests. No torch, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import scipy.stats


def mean(values: Sequence[float]) -> float:
    """The mean of a list of per-item values (NaN for none)."""
    return sum(values) / len(values) if values else float("nan")


def ci95(values: Sequence[float]) -> float | None:
    """Half-width of the two-sided 95 % t-interval of the mean: t_{0.975, n−1} · s / √n, with
    s the sample standard deviation (ddof 1). None for fewer than 2 values."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return float(scipy.stats.t.ppf(0.975, n - 1) * s / math.sqrt(n))


def aggregate(rows: Sequence[dict]) -> list[dict]:
    """One row per method (first-appearance order) over its per-seed rows: `n_seeds` (runs that
    finished), `seeds`, `status`, and for every numeric metric X: X_mean, X_std (ddof 1) and
    X_ci95 (`ci95`). Failed or diverged runs count in `status`, not in the statistics."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        if "n_seeds" not in r:
            groups.setdefault(r["method"], []).append(r)
    out = []
    for method, group in groups.items():
        done = [r for r in group if r.get("status") in ("ok", "reference")]
        row = {
            "method": method,
            "status": group[0]["status"]
            if len(done) == len(group)
            else f"{len(done)}/{len(group)} ok",
            "n_seeds": len(done),
            "seeds": [r.get("seed") for r in done],
        }
        keys = [k for k in (done[0] if done else {}) if k not in ("method", "status", "seed")]
        for k in keys:
            values = [r.get(k) for r in done]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                continue
            mean = sum(values) / len(values)
            std = (
                math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
                if len(values) > 1
                else None
            )
            row |= {f"{k}_mean": mean, f"{k}_std": std, f"{k}_ci95": ci95(values)}
        out.append(row)
    return out


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-dominated points when x is minimised and y maximised, sorted by x ascending
    (y then strictly increases). A point dominates another if it is ≤ in x and ≥ in y with
    one strict; duplicates are kept once."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(set(points), key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def hypervolume(points: Sequence[tuple[float, float]], ref_x: float, ref_y: float = 0.0) -> float:
    """Area dominated by `points` (x minimised, y maximised) inside the box x ≤ ref_x, y ≥ ref_y:
    the union of the rectangles [x_i, ref_x] × [ref_y, y_i].

    On the front sorted by x (y increasing), the covered height on [x_i, x_{i+1}) is y_i, so
    HV = Σ_i (min(x_{i+1}, ref_x) − x_i) · (y_i − ref_y) with x_{k+1} = ref_x. Points outside
    the box add nothing; an empty front has HV 0.
    """
    front = [(x, y) for x, y in pareto_front(points) if x < ref_x and y > ref_y]
    area = 0.0
    for i, (x, y) in enumerate(front):
        right = front[i + 1][0] if i + 1 < len(front) else ref_x
        area += (min(right, ref_x) - x) * (y - ref_y)
    return area


def paired_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided paired t-test p-value of mean(a − b) = 0 (None for fewer than 2 pairs).
    Differences d that are one value c up to rounding (spread ≤ 1e−15 · max(1, |d|)) have zero
    variance: p = 1 when c, their mean, is 0 up to rounding (|c| ≤ 1e−15), else p = 0 — in any
    order of the pairs."""
    if len(a) != len(b) or len(a) < 2:
        return None
    d = [x - y for x, y in zip(a, b, strict=True)]
    if max(d) - min(d) <= 1e-15 * max(1.0, max(abs(v) for v in d)):
        return 1.0 if abs(sum(d) / len(d)) <= 1e-15 else 0.0
    return float(scipy.stats.ttest_rel(a, b).pvalue)


def paired_difference(
    a: Sequence[float], b: Sequence[float]
) -> tuple[float, float | None, float | None]:
    """Paired comparison of a and b: the mean of d = a − b, the half-width of its 95 %
    t-interval (`ci95`; None for one pair) and the two-sided paired t-test p
    (`paired_p`)."""
    d = [x - y for x, y in zip(a, b, strict=True)]
    return sum(d) / len(d), ci95(d), paired_p(a, b)
