"""Does `satimp eval --protocol open-unlearning` equal open-unlearning's evaluator?

open-unlearning (github.com/locuslab/open-unlearning, commit d3d7cf9) is run beside satimp on
the same model folder and the same TOFU-format JSON lines; this script writes the Hydra
config folder that points its TOFU evaluator at those files, and compares the two outputs
item by item. docs/integrations.md, "open-unlearning", has the full procedure.

    # a config folder for open-unlearning's src/eval.py (--config-dir): local data, the model
    python bench/compare_open_unlearning.py config --ou OU --data DATA --model MODEL --out OU_CFG
    # ... run open-unlearning's evaluator and `satimp eval --protocol open-unlearning` ...
    python bench/compare_open_unlearning.py compare OU_RUN/TOFU_EVAL.json SATIMP_OUT

`compare` matches items by index (open-unlearning's `value_by_index` keys are dataset row
numbers, satimp's per_sample lists are in dataset order), prints the largest absolute
difference of each per-item metric, the relative difference of forget quality and model
utility, and PASS/FAIL against issue 13's targets (per item 1e-4, FQ and MU 1e-5 relative);
the exit status is 1 on FAIL. `compare` needs only the standard library, `config` PyYAML.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

ITEM_TOL = 1e-4  # per-item ES, EM, probability, ROUGE-L recall, truth ratio (absolute)
AGG_TOL = 1e-5  # forget quality and model utility (relative)

# Its configs/eval/tofu.yaml without privleak (it needs a holdout split and a retain model's
# MIA log) and with exact_memorization (commented out there), so EM is compared too.
OU_METRICS = [
    "forget_Truth_Ratio",
    "forget_quality",
    "forget_Q_A_Prob",
    "forget_Q_A_ROUGE",
    "model_utility",
    "extraction_strength",
    "exact_memorization",
    # membership inference of forget10 against holdout10 (when DATA has holdout10.jsonl)
    "mia_loss",
    "mia_zlib",
    "mia_min_k",
    "mia_min_k_plus_plus",
]
MIA_METRICS = OU_METRICS[-4:]

# (label, open-unlearning metric key, its per-item field, satimp split, satimp field);
# `{forget}` is the forget split's perturbed file, e.g. forget10_perturbed.
ROWS = [
    ("forget ES", "extraction_strength", "score", "{forget}", "es"),
    ("forget EM", "exact_memorization", "score", "{forget}", "em"),
    ("forget probability", "forget_Q_A_Prob", "prob", "{forget}", "prob"),
    ("forget ROUGE-L recall", "forget_Q_A_ROUGE", "rougeL_recall", "{forget}", "rouge"),
    ("forget truth ratio", "forget_truth_ratio", "score", "{forget}", "truth_ratio"),
    ("retain probability", "retain_Q_A_Prob", "prob", "retain_perturbed", "prob"),
    ("retain ROUGE-L recall", "retain_Q_A_ROUGE", "rougeL_recall", "retain_perturbed", "rouge"),
    ("retain truth ratio", "retain_Truth_Ratio", "score", "retain_perturbed", "truth_ratio"),
    ("real authors norm. prob", "ra_Q_A_Prob_normalised", "prob", "real_authors_perturbed", "prob"),
    ("real authors ROUGE-L", "ra_Q_A_ROUGE", "rougeL_recall", "real_authors_perturbed", "rouge"),
    ("real authors truth ratio", "ra_Truth_Ratio", "score", "real_authors_perturbed", "truth_ratio"),
    ("world facts norm. prob", "wf_Q_A_Prob_normalised", "prob", "world_facts_perturbed", "prob"),
    ("world facts ROUGE-L", "wf_Q_A_ROUGE", "rougeL_recall", "world_facts_perturbed", "rouge"),
    ("world facts truth ratio", "wf_Truth_Ratio", "score", "world_facts_perturbed", "truth_ratio"),
]  # fmt: skip
# Membership scores: (label, its metric, its side, satimp split, satimp field); open-unlearning
# scores the other way round (higher = less likely a member), so its score is minus satimp's.
MIA_ROWS = [
    (f"MIA {name} {side}", key, side, split, field)
    for name, key, field in (("LOSS", "mia_loss", "mia_loss"), ("ZLib", "mia_zlib", "mia_zlib"),
                             ("Min-K%", "mia_min_k", "mia_min_k"),
                             ("Min-K%++", "mia_min_k_plus_plus", "mia_min_k_pp"))
    for side, split in (("forget", "{forget}"), ("holdout", "{holdout}"))
]  # fmt: skip
MIA_AUCS = {
    "mia_loss": "mia_loss_auc",
    "mia_zlib": "mia_zlib_auc",
    "mia_min_k": "mia_min_k_auc",
    "mia_min_k_plus_plus": "mia_min_k_pp_auc",
}
AGGREGATES = [("forget quality", "forget_quality"), ("model utility", "model_utility")]
# The other aggregates both report (means of the per-item values above; shown, not judged):
# open-unlearning's agg_value key → satimp's summary key.
MEANS = {
    "extraction_strength": "forget_es",
    "exact_memorization": "forget_em",
    "forget_Q_A_Prob": "forget_prob",
    "forget_Q_A_ROUGE": "forget_rouge",
    "forget_truth_ratio": "forget_truth_ratio",
    "retain_Q_A_Prob": "retain_prob",
    "retain_Q_A_ROUGE": "retain_rouge",
    "retain_Truth_Ratio": "retain_truth_ratio",
    "ra_Q_A_Prob_normalised": "real_authors_prob",
    "ra_Q_A_ROUGE": "real_authors_rouge",
    "ra_Truth_Ratio": "real_authors_truth_ratio",
    "wf_Q_A_Prob_normalised": "world_facts_prob",
    "wf_Q_A_ROUGE": "world_facts_rouge",
    "wf_Truth_Ratio": "world_facts_truth_ratio",
}


# ---------------------------------------------------------------- config folder


def metric_datasets(metrics_dir: Path, name: str) -> list[tuple[str, ...]]:
    """Where the TOFU datasets of one open-unlearning metric config sit in the composed
    config: key paths below the metric (`datasets.<D>` and, recursively, those of its
    `pre_compute` metrics), read from the metric's Hydra defaults list."""
    import yaml

    cfg = yaml.safe_load((metrics_dir / f"{name}.yaml").read_text()) or {}
    out = []
    for entry in cfg.get("defaults", []):
        if not isinstance(entry, dict):
            continue
        ((target, option),) = entry.items()
        group, _, package = target.partition("@")
        if group.endswith("data/datasets") and package == "datasets":
            # a datasets file may define several (TOFU_MIA: forget and holdout)
            path = metrics_dir.parents[1] / "data" / "datasets" / f"{option}.yaml"
            names = list(yaml.safe_load(path.read_text())) if path.is_file() else [option]
            out += [("datasets", name, "args", "hf_args") for name in names]
        elif group == "." and package.startswith("pre_compute."):
            key = package.split(".", 1)[1]
            out += [("pre_compute", key, *p) for p in metric_datasets(metrics_dir, option)]
    return out


def package_name(metrics_dir: Path, name: str) -> str:
    """The key a metric config populates (`# @package eval.tofu.metrics.<key>`)."""
    first = (metrics_dir / f"{name}.yaml").read_text().splitlines()[0]
    match = re.match(r"#\s*@package\s+eval\.tofu\.metrics\.(\S+)", first)
    return match.group(1) if match else name


def eval_yaml(ou: Path, data: Path, metric_names: list[str] = OU_METRICS) -> str:  # noqa: B006
    """open-unlearning's configs/eval/tofu.yaml with the given metrics (OU_METRICS), and every
    dataset those metrics read (directly or through pre_compute) loaded with the HF `json`
    loader from `<data>/<split>.jsonl` instead of the hub's locuslab/TOFU (`${.name}`: the
    split name each metric config sets)."""
    import yaml

    metrics_dir = ou / "configs" / "eval" / "tofu_metrics"
    local = {"path": "json", "data_files": f"{data}/${{.name}}.jsonl"}
    metrics: dict = {}
    for m in metric_names:
        node = metrics.setdefault(package_name(metrics_dir, m), {})
        for path in metric_datasets(metrics_dir, m):
            leaf = node
            for key in path:
                leaf = leaf.setdefault(key, {})
            leaf.update(local)
    cfg = {
        "defaults": [{"tofu_metrics": list(metric_names)}],
        "handler": "TOFUEvaluator",
        "output_dir": "${paths.output_dir}",
        "overwrite": False,
        "forget_split": "forget10",
        "holdout_split": "holdout10",
        "retain_logs_path": None,
        "question_key": "question",
        "batch_size": 32,
        "metrics": metrics,
    }
    return "# @package eval.tofu\n" + yaml.safe_dump(cfg, sort_keys=False)


def model_yaml(model: Path, system_prompt: str) -> str:
    """A satimp model folder under the chat template with open-unlearning's Instruct-model
    system prompt, float32 on the CPU."""
    return (
        f'model_args:\n  pretrained_model_name_or_path: "{model}"\n'
        f"  torch_dtype: float32\n  device_map: cpu\n  attn_implementation: sdpa\n"
        f'tokenizer_args:\n  pretrained_model_name_or_path: "{model}"\n'
        f"template_args:\n  apply_chat_template: True\n  system_prompt: {system_prompt}\n"
    )


def write_config(ou: Path, data: Path, model: Path, out: Path) -> None:
    """A Hydra config folder for open-unlearning's `src/eval.py --config-dir OUT`:
    model/satimp_local.yaml and eval/tofu_local.yaml (`model=satimp_local eval=tofu_local`)."""
    ou, data, model = ou.resolve(), data.resolve(), model.resolve()
    if not (ou / "configs" / "eval" / "tofu_metrics").is_dir():
        sys.exit(f"compare_open_unlearning: error: {ou} is not an open-unlearning checkout")
    missing = [
        s
        for s in ("retain_perturbed", "real_authors_perturbed", "world_facts_perturbed")
        if not (data / f"{s}.jsonl").is_file()
    ]
    if missing:
        sys.exit(f"compare_open_unlearning: error: {data} has no {', '.join(missing)}.jsonl")
    if not (model / "config.json").is_file():
        sys.exit(f"compare_open_unlearning: error: {model} is not a model folder")
    metric_names = [
        m for m in OU_METRICS if m not in MIA_METRICS or (data / "holdout10.jsonl").is_file()
    ]
    files = {
        "model/satimp_local.yaml": model_yaml(model, "You are a helpful assistant."),
        "eval/tofu_local.yaml": eval_yaml(ou, data, metric_names),
    }
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"wrote {', '.join(files)} to {out}")


# ---------------------------------------------------------------- comparison


def ou_values(logs: dict, key: str, field: str, side: str | None = None) -> list[float]:
    """open-unlearning's per-item values of one metric, by dataset index (`side`: a membership
    metric's `forget` or `holdout` scores)."""
    entry = logs[key][side] if side else logs[key]
    by_index = entry["value_by_index"]
    out = [math.nan] * len(by_index)
    for idx, item in by_index.items():
        v = item.get(field)
        out[int(idx)] = math.nan if v is None else float(v)
    return out


def rel_diff(a: float | None, b: float | None) -> float:
    """|a − b| / max(|a|, |b|); 0 for two Nones or two zeros, inf for one None or a NaN."""
    if a is None or b is None:
        return math.inf if (a is None) != (b is None) else 0.0
    if a != a or b != b:
        return math.inf
    return abs(a - b) / max(abs(a), abs(b)) if a != b else 0.0


def compare(ou_logs: dict, per_sample: dict, summary: dict) -> tuple[list[str], bool]:
    """Report lines and whether every target holds."""
    forget = next(s for s in per_sample if s.startswith("forget") and s.endswith("_perturbed"))
    lines, ok = [], True
    lines.append(
        f"{'metric':<26} {'items':>5} {'max |Δ|':>9} {'at':>4} {'max rel':>9} {'mean ours':>10}"
    )
    for label, key, field, split, ours_field in ROWS:
        split = split.format(forget=forget)
        if key not in ou_logs or ours_field not in per_sample.get(split, {}):
            lines.append(f"{label:<26} missing ({key} / {split}.{ours_field})")
            ok = False
            continue
        theirs, ours = ou_values(ou_logs, key, field), per_sample[split][ours_field]
        if len(theirs) != len(ours):
            lines.append(f"{label:<26} item counts differ: {len(theirs)} vs {len(ours)}")
            ok = False
            continue
        diffs = [
            abs(a - b) if a == a and b == b else math.inf for a, b in zip(theirs, ours, strict=True)
        ]
        worst = max(range(len(diffs)), key=diffs.__getitem__)
        rel = max(rel_diff(a, b) for a, b in zip(theirs, ours, strict=True))
        passed = diffs[worst] <= ITEM_TOL
        ok &= passed
        mean = sum(ours) / len(ours)
        lines.append(
            f"{label:<26} {len(ours):>5} {diffs[worst]:>9.2e} {worst:>4} {rel:>9.2e} {mean:>10.4f}  "
            + ("ok" if passed else "FAIL")
        )
    holdout = next((s for s in per_sample if s.startswith("holdout")), None)
    for label, key, side, split, ours_field in MIA_ROWS:
        if key not in ou_logs or holdout is None:
            continue  # no holdout split: no membership inference on either side
        split = split.format(forget=forget, holdout=holdout)
        theirs = ou_values(ou_logs, key, "score", side)
        ours = [-v for v in per_sample[split][ours_field]]  # its sign
        if len(theirs) != len(ours):
            lines.append(f"{label:<26} item counts differ: {len(theirs)} vs {len(ours)}")
            ok = False
            continue
        diffs = [abs(a - b) for a, b in zip(theirs, ours, strict=True)]
        worst = max(range(len(diffs)), key=diffs.__getitem__)
        rel = max(rel_diff(a, b) for a, b in zip(theirs, ours, strict=True))
        passed = diffs[worst] <= ITEM_TOL
        ok &= passed
        lines.append(
            f"{label:<26} {len(ours):>5} {diffs[worst]:>9.2e} {worst:>4} {rel:>9.2e} "
            f"{sum(ours) / len(ours):>10.4f}  " + ("ok" if passed else "FAIL")
        )
    for key, ours_key in MIA_AUCS.items():
        if key in ou_logs and ours_key in summary:
            d = abs(ou_logs[key]["agg_value"] - summary[ours_key])
            ok &= d <= ITEM_TOL
            lines.append(
                f"{'AUC ' + key:<26} theirs {ou_logs[key]['agg_value']:<22.6f} ours "
                f"{summary[ours_key]:<22.6f} |Δ| {d:.2e}  " + ("ok" if d <= ITEM_TOL else "FAIL")
            )
    for label, key in AGGREGATES:
        theirs = ou_logs.get(key, {}).get("agg_value")
        ours = summary.get(key)
        d = rel_diff(theirs, ours)
        passed = d <= AGG_TOL
        ok &= passed
        lines.append(
            f"{label:<26} theirs {theirs!s:<22} ours {ours!s:<22} rel {d:.2e}  "
            + ("ok" if passed else "FAIL")
        )
    pairs = [
        (rel_diff(ou_logs[k].get("agg_value"), summary.get(ours)), ours)
        for k, ours in MEANS.items()
        if k in ou_logs and "agg_value" in ou_logs[k]
    ]
    if pairs:
        worst, key = max(pairs)
        lines.append(f"other aggregates ({len(pairs)}): largest rel difference {worst:.2e} ({key})")
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("config", help="write the Hydra config folder for open-unlearning")
    c.add_argument("--ou", type=Path, required=True, help="open-unlearning checkout (d3d7cf9)")
    c.add_argument("--data", type=Path, required=True, help="TOFU-format JSON lines folder")
    c.add_argument("--model", type=Path, required=True, help="model folder")
    c.add_argument("--out", type=Path, required=True)
    m = sub.add_parser("compare", help="compare open-unlearning's logs with satimp's")
    m.add_argument("ou_eval", type=Path, help="open-unlearning's TOFU_EVAL.json")
    m.add_argument("satimp_out", type=Path, help="satimp eval --out folder")
    args = p.parse_args(argv)
    if args.cmd == "config":
        write_config(args.ou, args.data, args.model, args.out)
        return 0
    for path in (args.ou_eval, args.satimp_out / "per_sample.json", args.satimp_out / "summary.json"):  # fmt: skip
        if not path.is_file():
            sys.exit(f"compare_open_unlearning: error: {path} not found")
    ou_logs = json.loads(args.ou_eval.read_text())
    per_sample = json.loads((args.satimp_out / "per_sample.json").read_text())
    summary = json.loads((args.satimp_out / "summary.json").read_text())
    protocol = summary.get("protocol", {})
    if isinstance(protocol, dict) and protocol.get("name") not in (None, "open-unlearning"):
        print(f"note: satimp's run used protocol {protocol.get('name')!r}, not open-unlearning")
    lines, ok = compare(ou_logs, per_sample, summary)
    print("\n".join(lines))
    print(f"targets: per item ≤ {ITEM_TOL:g} absolute, FQ and MU ≤ {AGG_TOL:g} relative: "
          + ("PASS" if ok else "FAIL"))  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
