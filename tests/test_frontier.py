"""Seeds, intervals and fronts: the statistics by hand, and tiny end-to-end runs."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import scipy.stats
import yaml

from satimp.report import format_table
from satimp.stats import aggregate, ci95, hypervolume, paired_difference, paired_p, pareto_front
from satimp.study.config import lr_grid
from satimp.study.frontier import ranking, run_frontier, summarize
from satimp.study.run import run
from test_study import tiny_config as _tiny_config


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    """One model cache for the module: the seed-0 models are built once and reused."""
    return str(tmp_path_factory.mktemp("cache"))


def tiny_config(tmp_path, methods, cache: str):
    return dataclasses.replace(_tiny_config(tmp_path, methods), cache_dir=cache)


def test_ci95_by_hand() -> None:
    # [1, 2, 3]: mean 2, s = 1, t_{0.975, 2} = 4.302652729911275 → 4.3027 / √3
    assert ci95([1.0, 2.0, 3.0]) == pytest.approx(4.302652729911275 / math.sqrt(3), rel=1e-9)
    assert ci95([5.0]) is None
    assert ci95([2.0, 2.0]) == 0.0


def test_aggregate_rows_by_hand() -> None:
    rows = [
        {"method": "ga", "status": "ok", "seed": 0, "forget_es": 0.2, "seconds": 3.0},
        {"method": "ga", "status": "ok", "seed": 1, "forget_es": 0.4, "seconds": 5.0},
        {"method": "gd", "status": "ok", "seed": 0, "forget_es": 0.5, "seconds": 1.0},
        {"method": "gd", "status": "failed: boom", "seed": 1, "forget_es": None, "seconds": 1.0},
    ]
    ga, gd = aggregate(rows)
    assert ga["n_seeds"] == 2 and ga["seeds"] == [0, 1] and ga["status"] == "ok"
    assert ga["forget_es_mean"] == pytest.approx(0.3)
    assert ga["forget_es_std"] == pytest.approx(math.sqrt(0.02))  # ddof 1
    assert ga["forget_es_ci95"] == pytest.approx(
        12.706204736174707 * math.sqrt(0.02) / math.sqrt(2)
    )
    assert gd["n_seeds"] == 1 and gd["status"] == "1/2 ok" and gd["forget_es_ci95"] is None
    table = format_table([ga, gd], columns=("forget_es",))
    assert "0.300 ± 1.271" in table  # t_{0.975,1} · 0.1414 / √2 and "0.500" in table


def test_pareto_front_and_hypervolume_by_hand() -> None:
    pts = [(0.5, 0.5), (0.2, 0.3), (0.6, 0.4), (0.8, 0.9), (0.2, 0.1), (1.2, 1.0)]
    # (0.6, 0.4) is dominated by (0.5, 0.5); (0.2, 0.1) by (0.2, 0.3)
    assert pareto_front(pts) == [(0.2, 0.3), (0.5, 0.5), (0.8, 0.9), (1.2, 1.0)]
    # ref x = 1: (0.5−0.2)·0.3 + (0.8−0.5)·0.5 + (1−0.8)·0.9 = 0.09 + 0.15 + 0.18 = 0.42
    assert hypervolume(pts, 1.0) == pytest.approx(0.42)
    assert hypervolume([], 1.0) == 0.0 and hypervolume([(1.0, 1.0)], 1.0) == 0.0


def test_paired_p_by_hand() -> None:
    # d = [1, 2, 1]: mean 4/3, s = 1/√3 → t = (4/3)/(1/3) = 4 with 2 degrees of freedom
    p = paired_p([1.0, 2.0, 3.0], [0.0, 0.0, 2.0])
    assert p == pytest.approx(2 * scipy.stats.t.sf(4.0, 2), rel=1e-9)
    assert paired_p([1.0, 2.0], [0.0, 1.0]) == 0.0  # the same gain on every seed
    assert paired_p([1.0, 2.0], [1.0, 2.0]) == 1.0 and paired_p([1.0], [0.0]) is None


def test_paired_difference_by_hand() -> None:
    # d = [1, 2, 1]: mean 4/3, s = 1/√3 → half-width t(0.975, 2) · s/√3 = 4.3027 / 3 = 1.4342
    mean, half, p = paired_difference([1.0, 2.0, 3.0], [0.0, 0.0, 2.0])
    assert mean == pytest.approx(4 / 3, rel=1e-12)
    assert half == pytest.approx(scipy.stats.t.ppf(0.975, 2) / 3, rel=1e-9)
    assert half == pytest.approx(1.4342, abs=1e-4)
    assert p == pytest.approx(2 * scipy.stats.t.sf(4.0, 2), rel=1e-9)
    assert paired_difference([1.0], [0.5]) == (0.5, None, None)


def test_ranking_beats_and_ties_by_hand() -> None:
    """Hypervolumes over 3 seeds built so the paired t-tests are known (two-sided, α = 0.05):
    a = [3, 4, 5] (mean 4), c = [1.1, 1.9, 3.6] (2.2), b = [1, 2, 3.5] (2.17), d = [0.2, 1,
    2.6] (1.27). a − b = [2, 2, 1.5]: t = 11, p = 0.008; a − c: t = 8.6, p = 0.013; a − d:
    t = 15.5, p = 0.004; c − d = [0.9, 0.9, 1]: t = 28, p = 0.001; b − d: t = 15.6, p =
    0.004; c − b = [0.1, −0.1, 0.1]: t = 0.5, p = 0.67. So, by mean: a beats c, b and d; c and
    b each beat d and are tied with each other; d beats nobody; a significantly worse method
    is neither beaten by nor tied with a better one."""
    hv = {"b": [1.0, 2.0, 3.5], "d": [0.2, 1.0, 2.6], "a": [3.0, 4.0, 5.0], "c": [1.1, 1.9, 3.6]}
    for x, y, p in (("a", "b", 0.008163), ("c", "d", 0.001273), ("c", "b", 0.666667)):
        assert paired_p(hv[x], hv[y]) == pytest.approx(p, abs=1e-6)
    methods = {m: {"hv_es": {"per_seed": v, "mean": sum(v) / 3, "ci95": ci95(v)}}
               for m, v in hv.items()}  # fmt: skip
    ranked = ranking(methods, "es", alpha=0.05)
    assert [r["method"] for r in ranked] == ["a", "c", "b", "d"]
    got = {r["method"]: (r["beats"], r["tied_with"]) for r in ranked}
    assert got == {
        "a": (["c", "b", "d"], []),
        "c": (["d"], ["b"]),
        "b": (["d"], ["c"]),
        "d": ([], []),
    }
    assert ranked[0]["mean"] == pytest.approx(4.0, abs=1e-12)
    # at α = 0.01 only the differences with p < 0.01 stay significant: a−c (0.013) is a tie
    strict = {r["method"]: (r["beats"], r["tied_with"]) for r in ranking(methods, "es", 0.01)}
    assert strict["a"] == (["b", "d"], ["c"]) and strict["c"] == (["d"], ["a", "b"])


def test_each_seed_hypervolume_uses_that_seeds_reference_point() -> None:
    """Two seeds whose original models differ: reference forget ES 1.0 (seed 0) and 0.5
    (seed 1). One method, one lr, the same curve on both seeds: (forget ES, retain ES) =
    (0.2, 0.5) and (0.6, 0.9); final model (0.2, utility 0.5).
    seed 0, ref 1.0: HV_es = (0.6 − 0.2)·0.5 + (1.0 − 0.6)·0.9 = 0.2 + 0.36 = 0.56;
    HV_mu = (1.0 − 0.2)·0.5 = 0.4.
    seed 1, ref 0.5: (0.6, 0.9) lies beyond the reference and adds nothing:
    HV_es = (0.5 − 0.2)·0.5 = 0.15; HV_mu = (0.5 − 0.2)·0.5 = 0.15.
    (Seed 0's reference for both would give 0.56 and 0.4 twice.)"""
    curve = [{"epoch": 1, "forget_es": 0.6, "retain_es": 0.9},
             {"epoch": 2, "forget_es": 0.2, "retain_es": 0.5}]  # fmt: skip
    final = {"status": "ok", "forget_es": 0.2, "retain_es": 0.5, "model_utility": 0.5}
    results = {(seed, 1e-4, "m"): (final, curve) for seed in (0, 1)}
    refs = {0: {"original": {"forget_es": 1.0}}, 1: {"original": {"forget_es": 0.5}}}
    summary = summarize(results, refs, seeds=[0, 1], lrs=[1e-4], labels=["m"])
    assert summary["reference_forget_es"] == {"0": 1.0, "1": 0.5}
    m = summary["methods"]["m"]
    assert m["hv_es"]["per_seed"] == pytest.approx([0.56, 0.15], abs=1e-12)
    assert m["hv_mu"]["per_seed"] == pytest.approx([0.4, 0.15], abs=1e-12)
    assert m["hv_es"]["mean"] == pytest.approx((0.56 + 0.15) / 2, abs=1e-12)
    assert len(m["points"]) == 2 * 3  # per seed: two epochs and the final model


def test_lr_grid() -> None:
    assert lr_grid(2e-4) == pytest.approx([5e-5, 1e-4, 2e-4, 4e-4], rel=1e-12)
    assert lr_grid(1e-3, 3) == pytest.approx([5e-4, 1e-3, 2e-3], rel=1e-12)
    assert lr_grid(3e-5, 1) == [3e-5]


def test_run_with_seeds_reports_intervals(tmp_path, cache) -> None:
    """Two seeds: a models build per seed, per-seed rows (with their seed) and one aggregate
    row per method whose mean and interval match the per-seed values."""
    cfg = dataclasses.replace(tiny_config(tmp_path, ["ga", "satimp"], cache), seeds=[0, 1])
    out = tmp_path / "run"
    rows = run(cfg, out, log=lambda *a: None)
    per_seed = [r for r in rows if "n_seeds" not in r]
    agg = {r["method"]: r for r in rows if "n_seeds" in r}
    assert [(r["method"], r["seed"]) for r in per_seed] == [
        ("original", 0), ("retain", 0), ("ga", 0), ("satimp", 0),
        ("original", 1), ("retain", 1), ("ga", 1), ("satimp", 1),
    ]  # fmt: skip
    for m in ("original", "retain", "ga", "satimp"):
        values = [r["forget_es"] for r in per_seed if r["method"] == m]
        assert agg[m]["n_seeds"] == 2
        assert agg[m]["forget_es_mean"] == pytest.approx(sum(values) / 2)
        assert agg[m]["forget_es_ci95"] == pytest.approx(ci95(values))
    for s in (0, 1):  # each seed its own run folders and retain statistics
        assert (out / f"seed-{s}" / "methods" / "ga" / "row.json").is_file()
        assert (out / f"seed-{s}" / "retain_stats.json").is_file()
    assert json.loads((out / "results.json").read_text()) == rows
    assert (
        "±" in (out / "report.md").read_text() and "## Per seed" in (out / "report.md").read_text()
    )


def test_frontier_end_to_end(tmp_path, cache) -> None:
    cfg = tiny_config(tmp_path, ["ga", "satimp"], cache)
    cfg = dataclasses.replace(
        cfg,
        seed_models=False,
        frontier=dataclasses.replace(
            cfg.frontier, lrs=[5e-4, cfg.unlearn.lr], seeds=[0, 1], workers=1
        ),
    )
    out = tmp_path / "front"
    summary = run_frontier(cfg, out, log=lambda *a: None)
    saved = json.loads((out / "frontier.json").read_text())
    assert saved["lrs"] == [5e-4, cfg.unlearn.lr] and saved["seeds"] == [0, 1]
    for m in ("ga", "satimp"):
        d = summary["methods"][m]
        finals = [p for p in d["points"] if p["epoch"] == "final"]
        assert len(finals) == 4  # 2 lrs × 2 seeds
        epochs = [p for p in d["points"] if p["epoch"] != "final"]
        assert len(epochs) == 4 * cfg.unlearn.epochs
        for s, hv in zip((0, 1), d["hv_es"]["per_seed"], strict=True):
            pts = [(p["forget_es"], p["retain_es"]) for p in epochs if p["seed"] == s]
            assert hv == pytest.approx(hypervolume(pts, summary["reference_forget_es"][str(s)]))
    assert {r["method"] for r in summary["ranking"]["es"]} == {"ga", "satimp"}
    assert (out / "frontier.png").stat().st_size > 0
    assert "Hypervolume" in (out / "frontier.md").read_text()
    # the config's lr is on the grid: its slice is `run --seeds`'s table, references included
    at = saved["at_lr"]
    assert at["lr"] == cfg.unlearn.lr
    agg = {r["method"]: r for r in at["aggregate"]}
    assert set(agg) == {"original", "retain", "ga", "satimp"}
    for m in ("ga", "satimp"):
        finals = [p["forget_es"] for p in summary["methods"][m]["points"]
                  if p["epoch"] == "final" and p["lr"] == cfg.unlearn.lr]  # fmt: skip
        assert agg[m]["n_seeds"] == 2
        assert agg[m]["forget_es_mean"] == pytest.approx(sum(finals) / 2, abs=1e-12)
    refs = json.loads((out / "seed-1" / "references.json").read_text())
    assert agg["retain"]["forget_es_mean"] == pytest.approx(
        next(r["forget_es"] for r in refs if r["method"] == "retain"), abs=1e-12
    )  # seed_models=False: the same retain model for both seeds
    assert "At the config's learning rate" in (out / "frontier.md").read_text()
    assert yaml.safe_load((out / "config.yaml").read_text())["frontier"]["seeds"] == [0, 1]


def test_frontier_workers_give_the_same_points(tmp_path, cache) -> None:
    """Two 1-thread worker processes give exactly the points one process gives (every run is
    a function of its seed, lr and method; the suite runs torch on 1 thread, as the workers)."""
    cfg = tiny_config(tmp_path, ["ga"], cache)
    grid = dict(lrs=[1e-3, 2e-3], seeds=[0], threads=1)
    points = {}
    for workers in (1, 2):
        c = dataclasses.replace(
            cfg, frontier=dataclasses.replace(cfg.frontier, workers=workers, **grid)
        )
        summary = run_frontier(c, tmp_path / f"w{workers}", log=lambda *a: None)
        points[workers] = sorted(
            summary["methods"]["ga"]["points"], key=lambda p: (p["lr"], str(p["epoch"]))
        )
    assert points[1] == points[2]
