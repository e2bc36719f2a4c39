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
from satimp.study.frontier import lr_slice, ranking, run_frontier, summarize
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


def test_summarize_points_failed_runs_and_alpha_by_hand() -> None:
    """Two methods, two seeds, two lrs, reference forget ES 1.0 on both seeds. Failed runs and
    epochs without both ES values add no point; a final model without a utility adds no
    final point (the rows below are what `method_row` returns).
    a, seed 0: lr 1e-4 failed; lr 2e-4 epoch 1 (0.5, 0.6), epoch 2 has no retain ES, final
      (0.5, utility 0.4): HV_es = (1 − 0.5)·0.6 = 0.3, HV_mu = 0.5·0.4 = 0.2.
    a, seed 1: lr 1e-4 epoch (0.5, 0.8), final without utility; lr 2e-4 epoch without forget
      ES, final (0.5, 0.5): HV_es = 0.5·0.8 = 0.4, HV_mu = 0.5·0.5 = 0.25.
    b, seed 0: lr 1e-4 epoch (0.5, 0.4), final (0.5, 0.2); lr 2e-4 diverged:
      HV_es = 0.2, HV_mu = 0.1.  b, seed 1: epoch (0.5, 0.2), final (0.5, 0.1): 0.1, 0.05.
    a − b: HV_es d = [0.1, 0.3], t = 0.2/(0.1414/√2) = 2 with 1 df, p = 1 − (2/π)·atan 2 =
    0.2952; HV_mu d = [0.1, 0.2], t = 3, p = 1 − (2/π)·atan 3 = 0.2048. At the default α =
    0.05 a and b are tied on both; at α = 0.5 a beats b on both.
    HV_es of a: mean 0.35, ci95 = t(0.975, 1)·0.0707/√2 = 12.7062·0.05 = 0.6353."""
    failed = (
        {
            "status": "failed: RuntimeError: boom",
            "forget_es": None,
            "retain_es": None,
            "model_utility": None,
        },
        [],
    )
    diverged = (
        {
            "status": "diverged at epoch 2: loss is nan",
            "forget_es": None,
            "retain_es": None,
            "model_utility": None,
        },
        [],
    )

    def ok(f, r, mu, curve):
        return {"status": "ok", "forget_es": f, "retain_es": r, "model_utility": mu}, curve

    results = {
        (0, 1e-4, "a"): failed,
        (0, 2e-4, "a"): ok(0.5, 0.6, 0.4, [{"epoch": 1, "forget_es": 0.5, "retain_es": 0.6},
                                           {"epoch": 2, "forget_es": 0.2, "retain_es": None}]),
        (1, 1e-4, "a"): ok(0.5, 0.8, None, [{"epoch": 1, "forget_es": 0.5, "retain_es": 0.8}]),
        (1, 2e-4, "a"): ok(0.5, 0.8, 0.5, [{"epoch": 1, "forget_es": None, "retain_es": 0.9}]),
        (0, 1e-4, "b"): ok(0.5, 0.4, 0.2, [{"epoch": 1, "forget_es": 0.5, "retain_es": 0.4}]),
        (0, 2e-4, "b"): diverged,
        (1, 1e-4, "b"): ok(0.5, 0.2, 0.1, [{"epoch": 1, "forget_es": 0.5, "retain_es": 0.2}]),
        (1, 2e-4, "b"): diverged,
    }  # fmt: skip
    refs = {s: {"original": {"forget_es": 1.0}} for s in (0, 1)}
    grid = dict(seeds=[0, 1], lrs=[1e-4, 2e-4], labels=["a", "b"])
    summary = summarize(results, refs, **grid)
    assert summary["seeds"] == [0, 1] and summary["lrs"] == [1e-4, 2e-4]
    assert summary["alpha"] == 0.05
    a, b = summary["methods"]["a"], summary["methods"]["b"]
    assert a["points"] == [
        {"seed": 0, "lr": 2e-4, "epoch": 1, "forget_es": 0.5, "retain_es": 0.6},
        {"seed": 0, "lr": 2e-4, "epoch": "final", "forget_es": 0.5, "retain_es": 0.6,
         "model_utility": 0.4},
        {"seed": 1, "lr": 1e-4, "epoch": 1, "forget_es": 0.5, "retain_es": 0.8},
        {"seed": 1, "lr": 2e-4, "epoch": "final", "forget_es": 0.5, "retain_es": 0.8,
         "model_utility": 0.5},
    ]  # fmt: skip
    assert a["hv_es"]["per_seed"] == pytest.approx([0.3, 0.4], abs=1e-12)
    assert a["hv_mu"]["per_seed"] == pytest.approx([0.2, 0.25], abs=1e-12)
    assert b["hv_es"]["per_seed"] == pytest.approx([0.2, 0.1], abs=1e-12)
    assert b["hv_mu"]["per_seed"] == pytest.approx([0.1, 0.05], abs=1e-12)
    assert a["hv_es"]["mean"] == pytest.approx(0.35, abs=1e-12)
    assert a["hv_es"]["ci95"] == pytest.approx(0.6353, abs=1e-4)
    for key in ("es", "mu"):
        ranked = summary["ranking"][key]
        assert [(r["method"], r["beats"], r["tied_with"]) for r in ranked] == [
            ("a", [], ["b"]),
            ("b", [], ["a"]),
        ]
        assert ranked[0]["ci95"] == pytest.approx(a[f"hv_{key}"]["ci95"], rel=1e-12)
    loose = summarize(results, refs, **grid, alpha=0.5)
    assert loose["alpha"] == 0.5
    for key in ("es", "mu"):
        assert [(r["method"], r["beats"], r["tied_with"]) for r in loose["ranking"][key]] == [
            ("a", ["b"], []),
            ("b", [], []),
        ]


def test_ranking_default_alpha_and_p_equal_to_alpha() -> None:
    """The significance rule is p < α, two-sided, α = 0.05 by default. x = [1, 2, 3],
    y = [0, 0, 2]: d = [1, 2, 1], t = 4 with 2 df, p = 2·sf(4, 2) = 0.0572 — tied at the
    default α (0.0572 ≥ 0.05), a win at α = 0.1, and a tie again when α is exactly p
    (p < α is false, p ≥ α true). Each entry carries its method's ci95."""
    hv = {"x": [1.0, 2.0, 3.0], "y": [0.0, 0.0, 2.0]}
    methods = {m: {"hv_es": {"per_seed": v, "mean": sum(v) / 3, "ci95": ci95(v)}}
               for m, v in hv.items()}  # fmt: skip
    p = paired_p(hv["x"], hv["y"])
    assert p == pytest.approx(2 * scipy.stats.t.sf(4.0, 2), rel=1e-9)
    assert p == pytest.approx(0.0572, abs=1e-4)

    def outcome(ranked):
        return {r["method"]: (r["beats"], r["tied_with"]) for r in ranked}

    tie = {"x": ([], ["y"]), "y": ([], ["x"])}
    ranked = ranking(methods, "es")
    assert outcome(ranked) == tie
    assert ranked[0]["ci95"] == pytest.approx(4.302652729911275 / math.sqrt(3), rel=1e-9)
    assert outcome(ranking(methods, "es", 0.1)) == {"x": (["y"], []), "y": ([], [])}
    assert outcome(ranking(methods, "es", p)) == tie


def test_lr_slice_rows_and_aggregate_by_hand() -> None:
    """The slice at one lr: per seed its reference rows, then its method rows, each with its
    seed; the aggregate is mean ± interval over seeds. Forget ES of ga at lr 1e-3: 0.6 (seed 3)
    and 0.4 (seed 7): mean 0.5, std √0.02; the original: 1.0 and 0.8, mean 0.9. An lr off the
    grid has no slice."""
    refs = {s: {"original": {"method": "original", "status": "reference", "forget_es": f}}
            for s, f in ((3, 1.0), (7, 0.8))}  # fmt: skip
    results = {
        (s, lr, "ga"): ({"method": "ga", "status": "ok", "forget_es": f}, [{"epoch": 1}])
        for s, lr, f in ((3, 1e-3, 0.6), (7, 1e-3, 0.4), (3, 2e-3, 0.1), (7, 2e-3, 0.2))
    }
    at = lr_slice(results, refs, seeds=[3, 7], lr=1e-3, labels=["ga"])
    assert at["lr"] == 1e-3
    assert at["rows"] == [
        {"method": "original", "status": "reference", "forget_es": 1.0, "seed": 3},
        {"method": "original", "status": "reference", "forget_es": 0.8, "seed": 7},
        {"method": "ga", "status": "ok", "forget_es": 0.6, "seed": 3},
        {"method": "ga", "status": "ok", "forget_es": 0.4, "seed": 7},
    ]
    original, ga = at["aggregate"]
    assert (original["method"], original["seeds"]) == ("original", [3, 7])
    assert original["forget_es_mean"] == pytest.approx(0.9, abs=1e-12)
    assert (ga["method"], ga["seeds"], ga["n_seeds"]) == ("ga", [3, 7], 2)
    assert ga["forget_es_mean"] == pytest.approx(0.5, abs=1e-12)
    assert ga["forget_es_std"] == pytest.approx(math.sqrt(0.02), abs=1e-12)
    assert lr_slice(results, refs, seeds=[3, 7], lr=5e-4, labels=["ga"]) is None


def _fake_pipeline(monkeypatch, tmp_path, points: dict, ref_es: dict, columns: tuple) -> dict:
    """Replace the model building, evaluation and unlearning of `run_frontier` with recorders
    (`test_frontier_end_to_end` runs them for real); the recorded calls are returned.

    run_models gives seed s the models tmp_path/original-s and retain-s; reference_rows the
    original's forget ES `ref_es[s]` (retain 0.3, retain ES 0.9 for both) and statistics
    'stats-s'; each run the final (forget ES, retain ES = utility) `points[(lr, label)]`, read
    from the lr of the config it was given, and one epoch at that point. The clock reads
    1000 s at the start and 1012.34 s after. The benchmark's columns are `columns`."""
    import satimp.study.frontier as F
    from satimp.study.config import RunConfig

    real_validate = RunConfig.validate
    calls: dict = {"bench": [], "models": [], "refs": []}

    def validate(self):
        bench = real_validate(self)
        bench.columns = columns
        calls["bench"].append(bench)
        return bench

    def open_run(cfg, bench, out, resume, log=print):
        calls["open"] = (cfg, bench, out, resume, log)
        calls["data"] = object()
        return calls["data"]

    def run_models(cfg_s, bench, data, log=print):
        calls["models"].append((cfg_s, bench, data, log))
        s = cfg_s.unlearn.seed
        return {"original": tmp_path / f"original-{s}", "retain": tmp_path / f"retain-{s}"}

    def reference_rows(cfg_s, bench, data, paths, out, log=print):
        calls["refs"].append((cfg_s, bench, data, paths, out, log))
        s = cfg_s.unlearn.seed
        rows = [{"method": m, "status": "reference", "forget_es": f, "retain_es": 0.9}
                for m, f in (("original", ref_es[s]), ("retain", 0.3))]  # fmt: skip
        return rows, f"stats-{s}"

    def run_methods(jobs, workers, *, threads=None, resume=False, on_done=None):
        calls["methods"] = (jobs, workers, threads, resume)
        results = {}
        for i, (key, (cfg_l, _bench, label, *_)) in enumerate(jobs, 1):
            f, r = points[(cfg_l.unlearn.lr, label)]
            row = {"method": label, "status": "ok", "forget_es": f, "retain_es": r,
                   "model_utility": r}  # fmt: skip
            results[key] = (row, [{"epoch": 1, "forget_es": f, "retain_es": r}])
            on_done(i, key, row)
        return results

    clock = iter([1000.0])
    monkeypatch.setattr(RunConfig, "validate", validate)
    monkeypatch.setattr(F, "time", type("Clock", (), {"time": lambda: next(clock, 1012.34)}))
    for name, fake in (("open_run", open_run), ("run_models", run_models),
                       ("reference_rows", reference_rows), ("run_methods", run_methods)):  # fmt: skip
        monkeypatch.setattr(F, name, fake)
    return calls


def test_run_frontier_runs_each_seed_lr_and_method_once_and_writes_the_summary(
    tmp_path, monkeypatch
) -> None:
    """The pipeline's wiring (`_fake_pipeline`): seeds [3, 7] × lrs [1e-3, 2e-3] × methods
    [ga, satimp] = 8 jobs, each with its own seed's config, data, original model and retain
    statistics, at its own lr, in seed-S/lr-L.
    Runs: (forget ES, retain ES) = (0.6, 0.5) for ga at 1e-3, (0.2, 0.25) at 2e-3; (0.4, 0.5)
    and (0.2, 0.5) for satimp. References: the original's forget ES 1.0 (seed 3), 0.8 (7).
    ga: front (0.2, 0.25), (0.6, 0.5): HV = 0.4·0.25 + (ref − 0.6)·0.5 = 0.3 (seed 3), 0.2
    (seed 7). satimp: (0.4, 0.5) is dominated by (0.2, 0.5): HV = (ref − 0.2)·0.5 = 0.4, 0.3.
    satimp − ga = 0.1 on both seeds: the same gain, p = 0, so satimp beats ga at α = 0.2.
    At the config's lr (1e-3): forget ES means ga 0.6, satimp 0.4, original 0.9, retain 0.3.
    1012.34 s − 1000 s: 12.3 s recorded, 12 s logged."""
    import satimp.study.frontier as F

    cfg = _tiny_config(tmp_path, ["ga", "satimp"])
    cfg = dataclasses.replace(cfg, frontier=dataclasses.replace(
        cfg.frontier, lrs=[1e-3, 2e-3], seeds=[3, 7], workers=2, threads=3, alpha=0.2))  # fmt: skip
    assert cfg.unlearn.lr == 1e-3
    columns = ("forget_es", "retain_es", "model_utility")  # not the TOFU default columns
    points = {(1e-3, "ga"): (0.6, 0.5), (2e-3, "ga"): (0.2, 0.25),
              (1e-3, "satimp"): (0.4, 0.5), (2e-3, "satimp"): (0.2, 0.5)}  # fmt: skip
    ref_es = {3: 1.0, 7: 0.8}
    calls = _fake_pipeline(monkeypatch, tmp_path, points, ref_es, columns)
    lines: list = []
    out = tmp_path / "front"
    summary = run_frontier(cfg, out, log=lines.append)

    (bench,), data = calls["bench"], calls["data"]
    assert calls["open"] == (cfg, bench, out, False, lines.append)
    variants = dict(cfg.variants())
    jobs, workers, threads, resume = calls["methods"]
    assert (workers, threads, resume) == (2, 3, False)
    assert [key for key, _ in jobs] == [
        (s, lr, m) for s in (3, 7) for lr in (1e-3, 2e-3) for m in ("ga", "satimp")
    ]
    for i, s in enumerate((3, 7)):
        cfg_s, *rest = calls["models"][i]
        assert (cfg_s.unlearn.seed, cfg_s.models.base_train.seed) == (s, s)
        assert rest == [bench, data, lines.append]
        paths = {"original": tmp_path / f"original-{s}", "retain": tmp_path / f"retain-{s}"}
        cfg_r, *rest = calls["refs"][i]
        assert cfg_r.unlearn.seed == s
        assert rest == [bench, data, paths, out / f"seed-{s}", lines.append]
        saved_refs = json.loads((out / f"seed-{s}" / "references.json").read_text())
        assert [(r["method"], r["forget_es"]) for r in saved_refs] == [
            ("original", ref_es[s]),
            ("retain", 0.3),
        ]
    for (s, lr, label), (cfg_l, b, label_, method, data_, original, run_dir, stats) in jobs:
        assert (cfg_l.unlearn.seed, cfg_l.unlearn.lr, cfg_l.models.base_train.seed) == (s, lr, s)
        assert (b, label_, method, data_) == (bench, label, variants[label], data)
        assert original == tmp_path / f"original-{s}"
        assert run_dir == out / f"seed-{s}" / f"lr-{lr:g}" and stats == f"stats-{s}"

    assert summary["seeds"] == [3, 7] and summary["lrs"] == [1e-3, 2e-3]
    assert summary["protocol"] == "tofu" and summary["alpha"] == 0.2
    assert summary["seconds"] == pytest.approx(12.3, abs=1e-9)
    assert summary["reference_forget_es"] == {"3": 1.0, "7": 0.8}
    hv = {m: summary["methods"][m]["hv_es"]["per_seed"] for m in ("ga", "satimp")}
    assert hv["ga"] == pytest.approx([0.3, 0.2], abs=1e-12)
    assert hv["satimp"] == pytest.approx([0.4, 0.3], abs=1e-12)
    assert [(r["method"], r["beats"]) for r in summary["ranking"]["es"]] == [
        ("satimp", ["ga"]),
        ("ga", []),
    ]
    at = summary["at_lr"]
    assert at["lr"] == 1e-3
    means = {r["method"]: r["forget_es_mean"] for r in at["aggregate"]}
    assert means == pytest.approx({"original": 0.9, "retain": 0.3, "ga": 0.6, "satimp": 0.4})
    assert json.loads((out / "frontier.json").read_text()) == summary
    assert F.load(out / "frontier.json") == summary
    assert (out / "frontier.png").stat().st_size > 0
    md = (out / "frontier.md").read_text()
    assert md.startswith(f"# {cfg.name}: fronts\n")
    assert format_table(at["aggregate"], markdown=True, columns=columns) in md

    assert any("8 runs" in line for line in lines)
    assert sum("seed 3 lr 0.002 satimp: ok" in line for line in lines) == 1
    table = lines.index(format_table(at["aggregate"], columns=columns))
    assert "lr 0.001" in lines[table - 1]
    assert str(out / "frontier.md") in lines[-1] and "(12s)" in lines[-1]


def test_run_frontier_default_grid_around_the_config_lr_and_resume(tmp_path, monkeypatch) -> None:
    """No `frontier.lrs`: the grid is `lr_grid` of the config's lr (1e-3 → 2.5e-4, 5e-4,
    1e-3, 2e-3); the run's own `seeds` win over `frontier.seeds`; `resume` reaches both the
    folder check and the method runs."""
    cfg = _tiny_config(tmp_path, ["ga"])
    cfg = dataclasses.replace(
        cfg, seeds=[5], frontier=dataclasses.replace(cfg.frontier, lrs=[], seeds=[0, 1])
    )
    grid = [2.5e-4, 5e-4, 1e-3, 2e-3]
    points = {(lr, "ga"): (0.5, 0.5) for lr in grid}
    calls = _fake_pipeline(monkeypatch, tmp_path, points, {5: 1.0}, ("forget_es",))
    summary = run_frontier(cfg, tmp_path / "front", log=lambda *a: None, resume=True)
    assert summary["lrs"] == pytest.approx(grid, rel=1e-12) and summary["seeds"] == [5]
    jobs, _, _, resume = calls["methods"]
    assert [key for key, _ in jobs] == [(5, lr, "ga") for lr in summary["lrs"]]
    assert calls["open"][3] is True and resume is True
