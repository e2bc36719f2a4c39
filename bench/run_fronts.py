"""Trade-off of one `satimp run` (one seed, one lr): which methods sit on the front.

    python bench/run_fronts.py runs/tofu-smollm2/<timestamp>

For each method: the hypervolume of its per-epoch points in the (forget ES ↓, retain ES ↑)
plane against (the original model's forget ES, 0) — what `satimp study frontier` computes over
learning rates and seeds, here over the epochs of one run — and whether its final model is
non-dominated among all methods' final models in the (forget ES ↓, retain ES ↑) and
(forget ES ↓, model utility ↑) planes. One seed: no interval, so read differences as
indications, not conclusions (`satimp study frontier --seeds N` gives those).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from satimp.frontier import hypervolume, pareto_front


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="a `satimp run` output folder")
    rows = fronts(ap.parse_args().out)
    print("| method | HV over epochs (forget ES, retain ES) | final forget ES | final retain ES "
          "| final MU | on the final front: retain ES | on the final front: MU |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for t in rows:
        yes = {True: "yes", False: "–"}
        print(f"| {t['method']} | {t['hv_epochs']:.3f} | {t['forget_es']:.3f} | {t['retain_es']:.3f} "
              f"| {t['model_utility']:.3f} | {yes[t['front_retain_es']]} | {yes[t['front_model_utility']]} |")  # fmt: skip


if __name__ == "__main__":
    main()
