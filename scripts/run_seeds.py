"""Methods over unlearning seeds, from several `satimp run` folders on the same models.

    python scripts/run_seeds.py OUT_SEED0 OUT_SEEDS_1_2 --paired satimp [--methods ga,npo,wga,satimp]

Each folder is a `satimp run` output: its `results.json` rows carry their `seed` when the run
had `seeds=[…]`; rows without one (a run without `seeds`) count as seed `--default-seed` (0,
the config's `seed`). Reference rows (original, retain, base) are left out. Per method: the
final forget ES of each seed, and the mean ± 95 % t-interval half-width over seeds of forget
ES, retain ES and model utility; with `--paired M`, the difference to M paired by seed
(mean ± 95 % t-interval half-width, paired t-test p) over the seeds both have. A seed that
appears in two folders for one method is an error: the folders must partition the seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from satimp.stats import ci95, paired_difference

KEYS = ("forget_es", "retain_es", "model_utility")


def per_seed(outs: list[Path], default_seed: int) -> dict[str, dict[int, dict]]:
    """{method: {seed: final row}} over the folders' finished method rows."""
    table: dict[str, dict[int, dict]] = {}
    for out in outs:
        for r in json.loads((out / "results.json").read_text()):
            if "n_seeds" in r or r.get("status") != "ok":
                continue
            seed = r.get("seed", default_seed)
            seen = table.setdefault(r["method"], {})
            if seed in seen:
                sys.exit(f"{out}: {r['method']} seed {seed} is in another folder too")
            seen[seed] = r
    return table


def interval(mean: float, half: float | None, sign: str = "") -> str:
    """'mean ± half-width of the 95 % t-interval' (the mean alone without one)."""
    return f"{mean:{sign}.3f}" + ("" if half is None else f" ± {half:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outs", type=Path, nargs="+", help="`satimp run` output folders")
    ap.add_argument("--paired", metavar="METHOD", help="differences to METHOD, paired by seed")
    ap.add_argument("--methods", help="comma-separated methods, in this order (default: all)")
    ap.add_argument("--default-seed", type=int, default=0, help="seed of rows without one")
    a = ap.parse_args()
    table = per_seed(a.outs, a.default_seed)
    methods = a.methods.split(",") if a.methods else list(table)
    missing = [m for m in methods + ([a.paired] if a.paired else []) if m not in table]
    if missing:
        sys.exit(f"no finished rows for {missing} in {[str(o) for o in a.outs]}")
    head = ["method", "seeds", "forget ES per seed"] + [f"{k} mean ± 95 % CI" for k in KEYS]
    if a.paired:
        head += [f"{k} − {a.paired}'s (paired p)" for k in ("forget_es", "retain_es")]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for m in methods:
        rows = table[m]
        seeds = sorted(rows)
        cells = [
            m,
            ", ".join(map(str, seeds)),
            ", ".join(f"{rows[s]['forget_es']:.3f}" for s in seeds),
        ]
        for k in KEYS:
            values = [rows[s][k] for s in seeds]
            cells.append(interval(sum(values) / len(values), ci95(values)))
        if a.paired:
            ref = table[a.paired]
            common = [s for s in seeds if s in ref]
            for k in ("forget_es", "retain_es"):
                if m == a.paired:
                    cells.append("")
                    continue
                mean, half, p = paired_difference(
                    [rows[s][k] for s in common], [ref[s][k] for s in common]
                )
                cells.append(interval(mean, half, "+") + ("" if p is None else f" ({p:.2g})"))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
