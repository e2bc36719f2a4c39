"""Trade-off fronts: every method over a grid of learning rates × seeds (`satimp study frontier`).

One point per method cannot show a trade-off; the paper's claim is that SatImp forgets more at
the same retain cost. Each (method, lr, seed) unlearning run contributes a point per epoch
(forget ES, retain ES — the per-epoch probe computes them exactly as the final evaluation
does) and its final model a (forget ES, model utility) point. Per method and seed, the
non-dominated points form a front; its hypervolume against the reference point (the original
model's forget ES, 0) is one scalar per seed, reported as mean ± 95 % interval, and methods are
ranked with paired t-tests over seeds (the seeds share models and data order).

Pure functions first (front, hypervolume, paired test), then the pipeline.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from satimp.config import opt

# ---------------------------------------------------------------- pure functions


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
    """Two-sided paired t-test p-value of mean(a − b) = 0 (None for fewer than 2 pairs). A
    difference that is the same nonzero value for every pair has zero variance: p = 0; all
    differences 0: p = 1."""
    import scipy.stats

    if len(a) != len(b) or len(a) < 2:
        return None
    d = [x - y for x, y in zip(a, b, strict=True)]
    if max(d) - min(d) <= 1e-15 * max(1.0, max(abs(v) for v in d)):
        return 1.0 if abs(d[0]) <= 1e-15 else 0.0
    return float(scipy.stats.ttest_rel(a, b).pvalue)


def paired_difference(
    a: Sequence[float], b: Sequence[float]
) -> tuple[float, float | None, float | None]:
    """Paired comparison of a and b: the mean of d = a − b, the half-width of its 95 %
    t-interval (`report.ci95`; None for one pair) and the two-sided paired t-test p
    (`paired_p`)."""
    from satimp.report import ci95

    d = [x - y for x, y in zip(a, b, strict=True)]
    return sum(d) / len(d), ci95(d), paired_p(a, b)


def lr_grid(lr: float, n: int = 4) -> list[float]:
    """n learning rates lr·2^k, k = −⌈(n−1)/2⌉ … ⌊(n−1)/2⌋: a log grid in octaves that holds the
    config's lr, so the front's lr-slice is the run's table (4: lr × {1/4, 1/2, 1, 2})."""
    lo = -(n // 2)
    return [float(f"{lr * 2.0 ** (lo + i):.4g}") for i in range(n)]


# ---------------------------------------------------------------- configuration


@dataclass
class FrontierConfig:
    """`satimp study frontier`: which learning rates and seeds, on how many workers."""

    lrs: list = opt([], "unlearning learning rates; []: lr × {1/4, 1/2, 1, 2}")
    seeds: list = opt([0, 1, 2], "seeds (the run's `seeds`, when given, win)")
    workers: int = opt(2, "worker processes running (method, lr, seed) jobs in parallel")
    threads: int = opt(1, "torch threads per worker")
    alpha: float = opt(0.05, "significance level of the paired tests in the ranking")


# ---------------------------------------------------------------- the pipeline


def run_frontier(cfg, out_dir: str | Path, *, log=print, resume: bool = False) -> dict:
    """Run the grid, write frontier.json, frontier.png and frontier.md; returns the summary."""
    from satimp.benchmarks import get_benchmark
    from satimp.experiment import write_atomic, write_json
    from satimp.report import frontier_markdown, plot_frontier
    from satimp.study import open_run, reference_rows, run_methods, run_models

    t0 = time.time()
    cfg.validate()
    fc = cfg.frontier
    bench = get_benchmark(cfg)
    out = Path(out_dir)
    seeds = list(cfg.seeds or fc.seeds)
    lrs = list(fc.lrs) or lr_grid(cfg.unlearn.lr)  # validate() made them floats
    variants = cfg.variants()
    data = open_run(cfg, out, resume, log)
    refs, jobs = {}, []
    for seed in seeds:
        cfg_s = cfg.for_seed(seed)
        paths = run_models(cfg_s, data, log)
        rows, stats = reference_rows(cfg_s, data, paths, out / f"seed-{seed}", log)
        write_json(out / f"seed-{seed}" / "references.json", rows)
        refs[seed] = {r["method"]: r for r in rows}
        for lr in lrs:
            cfg_l = dataclasses.replace(cfg_s, unlearn=dataclasses.replace(cfg_s.unlearn, lr=lr))
            run_dir = out / f"seed-{seed}" / f"lr-{lr:g}"
            for label, method in variants:
                jobs.append(
                    ((seed, lr, label), (cfg_l, label, method, data, paths["original"], run_dir,
                                          stats))
                )  # fmt: skip
    log(
        f"frontier: {len(variants)} methods × {len(lrs)} lrs × {len(seeds)} seeds = {len(jobs)} runs"
    )

    def done(i: int, key: tuple, row: dict) -> None:
        log(f"  [{i}/{len(jobs)}] seed {key[0]} lr {key[1]:g} {key[2]}: {row['status']}")

    results = run_methods(jobs, fc.workers, threads=fc.threads, resume=resume, on_done=done)
    labels = [v[0] for v in variants]
    summary = summarize(results, refs, seeds=seeds, lrs=lrs, labels=labels, alpha=fc.alpha)
    summary |= {"seconds": round(time.time() - t0, 1), "protocol": bench.protocol.name}
    summary["at_lr"] = lr_slice(results, refs, seeds=seeds, lr=cfg.unlearn.lr, labels=labels)
    write_json(out / "frontier.json", summary)
    plot_frontier(summary, out / "frontier.png")
    write_atomic(
        out / "frontier.md",
        frontier_markdown(summary, title=f"{cfg.name}: fronts", columns=bench.columns),
    )
    if summary["at_lr"]:
        from satimp.report import format_table

        log(f"at the config's lr {cfg.unlearn.lr:g} (mean ± 95 % CI over seeds {seeds}):")
        log(format_table(summary["at_lr"]["aggregate"], columns=bench.columns))
    log(f"frontier: {out / 'frontier.md'}  ({time.time() - t0:.0f}s)")
    return summary


def lr_slice(results: dict, refs: dict, *, seeds: list, lr: float, labels: list) -> dict | None:
    """The grid's rows at one learning rate (the config's): what `satimp run --seeds` gives,
    references included — per-seed rows (with `seed`) and `aggregate` (mean, std, ci95).
    None when lr is not on the grid."""
    from satimp.report import aggregate

    if not any(k[1] == lr for k in results):
        return None
    rows = [r | {"seed": s} for s in seeds for r in refs[s].values()]
    rows += [results[(s, lr, label)][0] | {"seed": s} for s in seeds for label in labels]
    return {"lr": lr, "rows": rows, "aggregate": aggregate(rows)}


def summarize(
    results: dict, refs: dict, *, seeds: list, lrs: list, labels: list, alpha: float = 0.05
) -> dict:
    """Points, per-seed fronts and hypervolumes, their means and intervals, and the ranking."""
    from satimp.report import ci95

    methods = {}
    for label in labels:
        points, hv = [], {"es": [], "mu": []}
        for seed in seeds:
            ref_x = refs[seed]["original"]["forget_es"]
            es_pts, mu_pts = [], []
            for lr in lrs:
                row, curve = results[(seed, lr, label)]
                if row.get("status") != "ok":
                    continue
                for e in curve:
                    if e.get("forget_es") is not None and e.get("retain_es") is not None:
                        es_pts.append((e["forget_es"], e["retain_es"]))
                        points.append({"seed": seed, "lr": lr, "epoch": e["epoch"],
                                       "forget_es": e["forget_es"], "retain_es": e["retain_es"]})  # fmt: skip
                if row.get("model_utility") is not None:
                    mu_pts.append((row["forget_es"], row["model_utility"]))
                    points.append({"seed": seed, "lr": lr, "epoch": "final", "forget_es": row["forget_es"],
                                   "retain_es": row["retain_es"], "model_utility": row["model_utility"]})  # fmt: skip
            hv["es"].append(hypervolume(es_pts, ref_x))
            hv["mu"].append(hypervolume(mu_pts, ref_x))
        methods[label] = {
            "points": points,
            **{
                f"hv_{k}": {"per_seed": v, "mean": sum(v) / len(v), "ci95": ci95(v)}
                for k, v in hv.items()
            },
        }
    return {"seeds": seeds, "lrs": lrs, "reference_forget_es": {
        str(s): refs[s]["original"]["forget_es"] for s in seeds}, "methods": methods,
        "ranking": {k: ranking(methods, k, alpha) for k in ("es", "mu")}, "alpha": alpha}  # fmt: skip


def ranking(methods: dict, key: str, alpha: float = 0.05) -> list[dict]:
    """Methods by mean hypervolume, each with the methods it beats significantly (paired
    t-test over seeds, two-sided, p < alpha) and those it is indistinguishable from."""
    hv = {m: d[f"hv_{key}"]["per_seed"] for m, d in methods.items()}
    order = sorted(hv, key=lambda m: -sum(hv[m]) / len(hv[m]))
    out = []
    for m in order:
        better, tied = [], []
        for other in order:
            if other == m:
                continue
            p = paired_p(hv[m], hv[other])
            mean_diff = (sum(hv[m]) - sum(hv[other])) / len(hv[m])
            if p is not None and p < alpha and mean_diff > 0:
                better.append(other)
            elif p is None or p >= alpha:
                tied.append(other)
        out.append({"method": m, "mean": methods[m][f"hv_{key}"]["mean"],
                    "ci95": methods[m][f"hv_{key}"]["ci95"], "beats": better, "tied_with": tied})  # fmt: skip
    return out


def load(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())
