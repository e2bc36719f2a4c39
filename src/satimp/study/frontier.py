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
from pathlib import Path

from satimp.report import format_table, frontier_markdown, plot_frontier
from satimp.runs import write_atomic, write_json
from satimp.stats import aggregate, ci95, hypervolume, paired_p
from satimp.study.run import open_run, reference_rows, run_methods, run_models


def run_frontier(cfg, out_dir: str | Path, *, log=print, resume: bool = False) -> dict:
    """Run the grid, write frontier.json, frontier.png and frontier.md; returns the summary."""
    t0 = time.time()
    bench = cfg.validate()
    fc = cfg.frontier
    out = Path(out_dir)
    seeds = list(cfg.seeds or fc.seeds)
    lrs = fc.learning_rates(cfg.unlearn.lr)
    variants = cfg.variants()
    data = open_run(cfg, bench, out, resume, log)
    refs, jobs = {}, []
    for seed in seeds:
        cfg_s = cfg.for_seed(seed)
        paths = run_models(cfg_s, bench, data, log)
        rows, stats = reference_rows(cfg_s, bench, data, paths, out / f"seed-{seed}", log)
        write_json(out / f"seed-{seed}" / "references.json", rows)
        refs[seed] = {r["method"]: r for r in rows}
        for lr in lrs:
            cfg_l = dataclasses.replace(cfg_s, unlearn=dataclasses.replace(cfg_s.unlearn, lr=lr))
            run_dir = out / f"seed-{seed}" / f"lr-{lr:g}"
            for label, method in variants:
                jobs.append(
                    ((seed, lr, label), (cfg_l, bench, label, method, data, paths["original"], run_dir,
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
        log(f"at the config's lr {cfg.unlearn.lr:g} (mean ± 95 % CI over seeds {seeds}):")
        log(format_table(summary["at_lr"]["aggregate"], columns=bench.columns))
    log(f"frontier: {out / 'frontier.md'}  ({time.time() - t0:.0f}s)")
    return summary


def lr_slice(results: dict, refs: dict, *, seeds: list, lr: float, labels: list) -> dict | None:
    """The grid's rows at one learning rate (the config's): what `satimp run --seeds` gives,
    references included — per-seed rows (with `seed`) and `aggregate` (mean, std, ci95).
    None when lr is not on the grid."""
    if not any(k[1] == lr for k in results):
        return None
    rows = [r | {"seed": s} for s in seeds for r in refs[s].values()]
    rows += [results[(s, lr, label)][0] | {"seed": s} for s in seeds for label in labels]
    return {"lr": lr, "rows": rows, "aggregate": aggregate(rows)}


def summarize(
    results: dict, refs: dict, *, seeds: list, lrs: list, labels: list, alpha: float = 0.05
) -> dict:
    """Points, per-seed fronts and hypervolumes, their means and intervals, and the ranking."""
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
