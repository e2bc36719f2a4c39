"""Trade-off of one `satimp run` (one seed, one lr): which methods sit on the front.

    python scripts/run_fronts.py runs/tofu-smollm2/<timestamp>

For each method: the hypervolume of its per-epoch points in the (forget ES ↓, retain ES ↑)
plane against (the original model's forget ES, 0) — what `satimp study frontier` computes over
learning rates and seeds, here over the epochs of one run — and whether its final model is
non-dominated among all methods' final models in the (forget ES ↓, retain ES ↑) and
(forget ES ↓, model utility ↑) planes. One seed: no interval, so read differences as
indications, not conclusions (`satimp study frontier --seeds N` gives those).

    python scripts/run_fronts.py OUT --paired satimp

adds, for every other method, the paired difference of per-item ES against the named method
on the same forget and retain items (mean, 95 % t-interval over items, paired t-test p).
That interval covers the sampling of the evaluation items for these trained models, not
the seed-to-seed variation of training.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from satimp.stats import hypervolume, paired_difference, pareto_front


def fronts(out: Path) -> list[dict]:
    rows = json.loads((out / "results.json").read_text())
    ref_x = next(r["forget_es"] for r in rows if r["method"] == "original")
    done = [r for r in rows if r["status"] == "ok"]
    final = {
        k: pareto_front([(r["forget_es"], r[k]) for r in done])
        for k in ("retain_es", "model_utility")
    }
    table = []
    for r in done:
        curve = json.loads((out / "methods" / r["method"] / "row.json").read_text())["curve"]
        pts = [(e["forget_es"], e["retain_es"]) for e in curve if e.get("forget_es") is not None]
        table.append({
            "method": r["method"],
            "hv_epochs": hypervolume(pts, ref_x),
            "forget_es": r["forget_es"],
            "retain_es": r["retain_es"],
            "model_utility": r["model_utility"],
            **{f"front_{k}": (r["forget_es"], r[k]) in final[k] for k in final},
        })  # fmt: skip
    return sorted(table, key=lambda t: -t["hv_epochs"])


def item_es(out: Path, method: str) -> dict[str, list[float]]:
    """Per-item ES of a method's final model: {'forget': [...], 'retain': [...]}, the items
    behind the summary's forget ES and retain ES (a retain head split when the protocol has
    one, else retain_perturbed)."""
    per = json.loads((out / "methods" / method / "per_sample.json").read_text())
    forget = next(k for k in per if k.startswith("forget"))
    heads = [k for k in per if k.startswith("retain") and k != "retain_perturbed"]
    return {"forget": per[forget]["es"], "retain": per[(heads or ["retain_perturbed"])[0]]["es"]}


def paired(out: Path, ref: str, methods: list[str]) -> list[dict]:
    """Per method: mean per-item ES difference (method − ref) on forget and retain items,
    its 95 % t-interval and paired p."""
    base = item_es(out, ref)
    rows = []
    for m in methods:
        if m == ref:
            continue
        mine = item_es(out, m)
        row = {"method": m}
        for k in ("forget", "retain"):
            mean, half, p = paired_difference(mine[k], base[k])
            row[k] = (mean, mean - half, mean + half, p, len(mine[k]))
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="a `satimp run` output folder")
    ap.add_argument("--paired", metavar="METHOD", help="paired per-item ES differences vs METHOD")
    args = ap.parse_args()
    rows = fronts(args.out)
    print("| method | HV over epochs (forget ES, retain ES) | final forget ES | final retain ES "
          "| final MU | on the final front: retain ES | on the final front: MU |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for t in rows:
        yes = {True: "yes", False: "–"}
        print(f"| {t['method']} | {t['hv_epochs']:.3f} | {t['forget_es']:.3f} | {t['retain_es']:.3f} "
              f"| {t['model_utility']:.3f} | {yes[t['front_retain_es']]} | {yes[t['front_model_utility']]} |")  # fmt: skip
    if args.paired:
        diffs = paired(args.out, args.paired, [t["method"] for t in rows])
        n = {k: diffs[0][k][4] for k in ("forget", "retain")} if diffs else {}
        print(f"\nPer-item ES, method − {args.paired} (mean [95 % interval over items], paired "
              f"p; items: {n}):\n")  # fmt: skip
        print("| method | forget ES difference | p | retain ES difference | p |")
        print("|---|---|---|---|---|")
        for r in diffs:
            cells = [f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}] | {p:.2g}" for m, lo, hi, p, _ in
                     (r["forget"], r["retain"])]  # fmt: skip
            print(f"| {r['method']} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
