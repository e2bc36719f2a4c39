"""Does open-unlearning's own code read satimp's `TOFU_EVAL.json`?

    python bench/open_unlearning_reader.py --ou OU_REPO --ou-python OU_VENV/bin/python [--out DIR]

OU_REPO is a checkout of github.com/locuslab/open-unlearning (measured at d3d7cf9), OU_VENV a
virtual environment with its requirements (docs/integrations.md, "open-unlearning", says how).
The script, in satimp's environment, writes a small synthetic TOFU benchmark, fine-tunes a tiny
original model on `full` and a tiny retain model on `retain90`, and evaluates both with
`satimp eval --protocol open-unlearning --format open-unlearning` (the original against the
retain model's TOFU_EVAL.json, given as --retain-stats). Then, in open-unlearning's
environment, its own code reads those files:

- `Evaluator.load_logs_from_file` and `Evaluator.summarize` on the original's logs;
- its `ks_test` (forget quality) and `privleak` metrics, with the original's logs as the cache
  of precomputed metrics and the retain model's TOFU_EVAL.json as `retain_model_logs` (its
  `retain_logs_path` mechanism);
- its `truth_ratio`, `probability_w_options` and `hm_aggregate` recomputing the forget truth
  ratio, the normalised probabilities and model utility from satimp's per-item entries.

Each of its numbers is printed beside satimp's, with PASS/FAIL: what it reads and combines
(summary, forget quality, privleak, model utility, normalised probabilities) within 1e-9; the
truth ratios it recomputes from the logged mean NLLs within 1e-12 relative (both sides in
float64 from the same NLLs). Exit 1 on FAIL. `--out` keeps the folders (default: a
temporary one). About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TOL = 1e-9  # read and combined: the same float64 values through other code
RECOMPUTED_TOL = 1e-12  # relative: truth ratios rebuilt from the logged mean NLLs
RECOMPUTED = ("truth_ratio forget (agg)", "truth_ratio forget (max item diff)")

# Run by open-unlearning's interpreter: reads the two TOFU_EVAL.json files with its own code
# and prints {quantity: value} as one JSON line after a marker.
OU_SIDE = r"""
import json, sys, types
sys.path.insert(0, sys.argv[1] + "/src")
from evals.base import Evaluator
from evals.metrics import METRICS_REGISTRY as R

original, retain = sys.argv[2], sys.argv[3]
logs = Evaluator.load_logs_from_file(None, original)
summary_keys = ["forget_quality", "forget_truth_ratio", "forget_Q_A_Prob", "forget_Q_A_ROUGE",
                "model_utility", "privleak", "extraction_strength"]
summary = Evaluator.summarize(types.SimpleNamespace(metrics=summary_keys), logs)
fq = R["ks_test"].evaluate(
    None, "forget_quality", cache=dict(logs),
    pre_compute={"forget_truth_ratio": {"access_key": "forget"}},
    reference_logs={"retain_model_logs": {
        "path": retain, "include": {"forget_truth_ratio": {"access_key": "retain"}}}},
)
pl = R["privleak"].evaluate(
    None, "privleak", cache=dict(logs), ref_value=0.5,
    pre_compute={"mia_min_k": {"access_key": "forget"}},
    reference_logs={"retain_model_logs": {
        "path": retain, "include": {"mia_min_k": {"access_key": "retain"}}}},
)
tr = R["truth_ratio"].evaluate(
    None, "forget_truth_ratio", cache=dict(logs), aggregator="closer_to_1_better",
    pre_compute={"forget_Q_A_PARA_Prob": {"access_key": "correct"},
                 "forget_Q_A_PERT_Prob": {"access_key": "wrong"}},
)
out = {f"summary.{k}": v for k, v in summary.items()}
out["ks_test forget_quality"] = fq["agg_value"]
out["privleak"] = pl["agg_value"]
out["truth_ratio forget (agg)"] = tr["agg_value"]
out["truth_ratio forget (max item diff)"] = max(  # relative to satimp's R
    abs(v["score"] / logs["forget_truth_ratio"]["value_by_index"][k]["score"] - 1)
    for k, v in tr["value_by_index"].items()
)
for p in ("ra", "wf"):
    norm = R["probability_w_options"].evaluate(
        None, f"{p}_Q_A_Prob_normalised", cache=dict(logs),
        pre_compute={f"{p}_Q_A_Prob": {"access_key": "correct"},
                     f"{p}_Q_A_PERT_Prob": {"access_key": "wrong"}},
    )
    out[f"probability_w_options {p} (agg)"] = norm["agg_value"]
utility = [f"{s}_{m}" for s in ("retain", "ra", "wf") for m in ("Q_A_ROUGE", "Truth_Ratio")]
utility += ["retain_Q_A_Prob", "ra_Q_A_Prob_normalised", "wf_Q_A_Prob_normalised"]
mu = R["hm_aggregate"].evaluate(None, "model_utility", cache=dict(logs),
                                pre_compute={k: {} for k in utility})
out["hm_aggregate model_utility"] = mu["agg_value"]
print("@@OU@@" + json.dumps({k: float(v) for k, v in out.items()}))
"""


def satimp(*argv: str) -> None:
    cmd = [str(Path(sys.executable).parent / "satimp"), *argv]  # this environment's CLI
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ou", required=True, help="open-unlearning checkout")
    ap.add_argument("--ou-python", required=True, help="its environment's python")
    ap.add_argument("--out", help="keep the folders here (default: a temporary folder)")
    args = ap.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="ou_reader."))
    data, models, evals = root / "data", root / "models", root / "eval"
    if not data.exists():
        satimp("data", "synth", "--out", str(data), "--authors", "20", "--qa-per-author", "6")
    for name, split in (("original", "full"), ("retain", "retain90")):
        if not (models / name / "config.json").exists():
            satimp("finetune", "--model", "tiny", "--data", str(data), "--split", split,
                   "--protocol", "open-unlearning", "--out", str(models / name), "--overwrite")  # fmt: skip
    common = ["--data", str(data), "--protocol", "open-unlearning", "--format", "open-unlearning",
              "--max-new-tokens", "40", "--overwrite"]  # fmt: skip
    satimp("eval", "--model", str(models / "retain"), "--out", str(evals / "retain"), *common)
    retain_logs = evals / "retain" / "TOFU_EVAL.json"
    satimp("eval", "--model", str(models / "original"), "--out", str(evals / "original"),
           "--retain-stats", str(retain_logs), *common)  # fmt: skip
    original_logs = evals / "original" / "TOFU_EVAL.json"

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [args.ou_python, "-c", OU_SIDE, args.ou, str(original_logs), str(retain_logs)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    line = next((x for x in proc.stdout.splitlines() if x.startswith("@@OU@@")), None)
    if proc.returncode or line is None:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
        return 1
    theirs = json.loads(line.removeprefix("@@OU@@"))

    summary = json.loads((evals / "original" / "summary.json").read_text())
    logs = json.loads(original_logs.read_text())
    ours = {f"summary.{k}": v for k, v in json.loads(
        (evals / "original" / "TOFU_SUMMARY.json").read_text()).items()}  # fmt: skip
    ours |= {
        "ks_test forget_quality": summary["forget_quality"],
        "privleak": summary["privleak"],
        "truth_ratio forget (agg)": summary["forget_truth_ratio"],
        "truth_ratio forget (max item diff)": 0.0,
        "probability_w_options ra (agg)": summary["real_authors_prob"],
        "probability_w_options wf (agg)": summary["world_facts_prob"],
        "hm_aggregate model_utility": summary["model_utility"],
    }
    assert logs["forget_quality"]["agg_value"] == summary["forget_quality"]
    print(f"folders: {root}")
    print(f"{'quantity':<40} {'satimp':>14} {'open-unlearning':>16} {'|diff|':>10}")
    print("(truth_ratio rows: relative difference)")
    ok = True
    for key, value in theirs.items():
        diff = abs(value - ours[key])
        if key in RECOMPUTED:
            diff = diff if key.endswith("diff)") else diff / abs(ours[key])
            ok &= diff <= RECOMPUTED_TOL
        else:
            ok &= diff <= TOL
        print(f"{key:<40} {ours[key]:>14.8g} {value:>16.8g} {diff:>10.1e}")
    missing = sorted(set(ours) - set(theirs))
    if missing:
        print(f"not read by open-unlearning: {missing}")
        ok = False
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
