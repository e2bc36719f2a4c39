"""Sweep of the unlearning learning rate (and epochs) on the embedded default.

    python bench/sweep_unlearn.py [--lrs 1e-4,2e-4,3e-4] [--epochs 5] [--methods ga,npo,...]

The paper's lr (1e-5) is for 7B models; a 3.7M-parameter model trained from scratch needs
its own. Prints forget ES (lower is better), retain ES and MU (higher is better) per method
and lr, from one process (2 threads). The default in `satimp run` is picked from this table.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import default_setup, machine  # noqa: E402


def main() -> None:
    from satimp.config import MethodConfig
    from satimp.study import method_row, reference_rows

    ap = argparse.ArgumentParser()
    ap.add_argument("--lrs", default="1e-4,2e-4,3e-4")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--methods", default="ga,gd,npo,wga,simimp,satimp")
    ap.add_argument("--out", default="runs/sweep")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    cfg, data, paths, build_s = default_setup(log=lambda *a: None)
    print(f"models built or loaded from cache in {build_s:.0f}s")
    out = Path(args.out)
    refs, stats = reference_rows(cfg, data, paths, out, log=lambda *a: None)
    print("\n| lr | method | forget ES ↓ | retain ES ↑ | MU ↑ | FQ ↑ |\n|---|---|---|---|---|---|")
    for r in refs:
        print(
            f"| – | {r['method']} | {r['forget_es']:.3f} | {r['retain_es']:.3f} | "
            f"{r['model_utility']:.3f} | {r['forget_quality']:.3g} |"
        )
    t0 = time.time()
    for lr in [float(x) for x in args.lrs.split(",")]:
        run_cfg = dataclasses.replace(
            cfg, unlearn=dataclasses.replace(cfg.unlearn, lr=lr, epochs=args.epochs)
        )
        for m in args.methods.split(","):
            row, _ = method_row(
                run_cfg,
                f"{m}-lr{lr:g}",
                MethodConfig(name=m),
                data,
                paths["original"],
                out,
                stats,
            )
            if row["status"] != "ok":
                print(f"| {lr:g} | {m} | {row['status']} | | | |")
                continue
            print(
                f"| {lr:g} | {m} | {row['forget_es']:.3f} | {row['retain_es']:.3f} | "
                f"{row['model_utility']:.3f} | {row['forget_quality']:.3g} |",
                flush=True,
            )
    print(f"\nsweep time {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
