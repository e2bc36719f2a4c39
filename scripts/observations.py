"""The paper's observations (i)–(iii), tested on runs with seeds, each marked holds / does not
hold / not distinguishable, with the evidence.

    python scripts/observations.py FRONTIER_DIR [GRANULARITY_DIR] [SMOOTHNESS_DIR]

FRONTIER_DIR: `satimp study frontier … --out DIR` (frontier.json; per-step weight statistics
in DIR/seed-S/lr-X/methods/M/metrics.jsonl). GRANULARITY_DIR / SMOOTHNESS_DIR: `satimp study
granularity|smoothness --seeds 3 --out DIR` (results.json with per-seed rows), or one front
holding both studies' variants at one lr (`satimp study frontier
configs/ablations_embedded.yaml --seeds 3 --out DIR`, given as both).

(i)  saturation helps efficacy more than importance, and the combination more still:
     hypervolume of the (forget ES ↓, retain ES ↑) front, saturation (simsat: w = p⁵,
     γ = 0.1; and WGA: w = p, γ = 1) vs simimp, and satimp vs each; paired t-tests
     over seeds.
(ii) saturation gives low-likelihood tokens low weight, importance the opposite: the Pearson
     correlation between token weight and token likelihood (`weight_corr`, logged every step),
     per method, mean ± 95 % interval over seeds (each seed's mean over its steps and lrs).
(iii) smoothness and granularity change efficacy: forget ES between variants of one method
     at the config's learning rate, paired over seeds (token vs instance granularity; β1 = 1
     vs 8, τ = 0.3 vs 3).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ALPHA = 0.05


def verdict(a: list[float], b: list[float], *, higher: bool = True) -> tuple[str, str]:
    """'holds' if mean(a) is significantly above mean(b) (below when higher=False), 'does not
    hold' if significantly the other way, else 'not distinguishable'; and the evidence."""
    from satimp.stats import paired_difference

    mean, ci, p = paired_difference(a, b)
    evidence = f"difference {mean:+.3f}" + (f" ± {ci:.3f}" if ci is not None else "")
    evidence += f", paired p = {p:.3g}" if p is not None else ""
    if p is None or p >= ALPHA:
        return "not distinguishable", evidence
    better = mean > 0 if higher else mean < 0
    return ("holds" if better else "does not hold"), evidence


def weight_correlations(frontier_dir: Path, method: str, seeds: list) -> list[float]:
    """Per seed: the mean `weight_corr` over every logged step of every lr's run."""
    out = []
    for seed in seeds:
        values = []
        for log in (frontier_dir / f"seed-{seed}").glob(f"lr-*/methods/{method}/metrics.jsonl"):
            for line in log.read_text().splitlines():
                row = json.loads(line)
                if "weight_corr" in row:
                    values.append(row["weight_corr"])
        if values:
            out.append(sum(values) / len(values))
    return out


def per_seed(results: Path, method: str, key: str = "forget_es") -> list[float]:
    """A method's per-seed values: from a study's results.json, or from a front's rows at the
    config's learning rate (frontier.json, `at_lr`)."""
    if (results / "frontier.json").is_file():
        rows = json.loads((results / "frontier.json").read_text())["at_lr"]["rows"]
    else:
        rows = json.loads((results / "results.json").read_text())
    found = [r for r in rows if r["method"] == method and "n_seeds" not in r]
    return [r[key] for r in sorted(found, key=lambda r: r["seed"])]


def main() -> None:
    from satimp.stats import ci95

    frontier = Path(sys.argv[1])
    summary = json.loads((frontier / "frontier.json").read_text())
    hv = {m: d["hv_es"]["per_seed"] for m, d in summary["methods"].items()}
    print("| observation | comparison | verdict | evidence |\n|---|---|---|---|")
    # saturation in two forms: simsat (w = p^5, γ = 0.1) and WGA (w = p, γ = 1)
    for sat in ("simsat", "wga"):
        if {sat, "simimp", "satimp"} <= set(hv):
            v, e = verdict(hv[sat], hv["simimp"])
            print(f"| (i) saturation > importance | HV {sat} vs simimp | {v} | {e} |")
            v, e = verdict(hv["satimp"], hv[sat])
            print(f"| (i) combination > saturation | HV satimp vs {sat} | {v} | {e} |")
    for method, sign in (("simsat", +1), ("wga", +1), ("simimp", -1), ("satimp", 0)):
        corr = weight_correlations(frontier, method, summary["seeds"])
        if not corr:
            continue
        mean, ci = sum(corr) / len(corr), ci95(corr)
        if sign and ci is not None:
            low, high = sign * mean - ci, sign * mean + ci  # the interval, signed as expected
            v = "holds" if low > 0 else "does not hold" if high < 0 else "not distinguishable"
        else:
            v = "—"
        expected = {1: "> 0", -1: "< 0", 0: "(either)"}[sign]
        e = f"corr {mean:+.3f}" + (f" ± {ci:.3f}" if ci is not None else "")
        print(f"| (ii) weight vs likelihood, {method} {expected} | weight_corr | {v} | {e} |")
    for path, pairs in (
        (sys.argv[2] if len(sys.argv) > 2 else None,
         [("satimp-token", "satimp-instance"), ("simsat-token", "simsat-instance")]),
        (sys.argv[3] if len(sys.argv) > 3 else None,
         [("satimp-b1=1", "satimp-b1=8"), ("satimp-tau=0.3", "satimp-tau=3.0")]),
    ):  # fmt: skip
        if path is None:
            continue
        for a, b in pairs:
            fa, fb = per_seed(Path(path), a), per_seed(Path(path), b)
            v, e = verdict(fa, fb, higher=False)
            v = "holds (they differ)" if v != "not distinguishable" else v
            print(f"| (iii) {a} vs {b} | forget ES | {v} | {e} |")


if __name__ == "__main__":
    main()
