"""`satimp attack` (docs/robustness.md): every attack of `satimp.evaluation.attacks` on a saved
unlearned TOFU model, the retain model as the control and the original model for the
recoveries; the records the attacks read, shared with a run's `attacks.enabled` stage."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from satimp.benchmarks import Benchmark
from satimp.config import to_dict
from satimp.data.records import has_split
from satimp.data.tofu import load_split
from satimp.errors import InputError
from satimp.evaluation.attacks import (
    AttackConfig,
    attack_model,
    format_attacks,
    recoveries,
    relearn_split,
)
from satimp.evaluation.mia import holdout_split_for
from satimp.evaluation.scoring import first_n
from satimp.models import load_model
from satimp.protocol import as_dict as protocol_dict
from satimp.runs import check_out, write_json


def attack_records(bench: Benchmark, data, *, mia: bool = True) -> tuple[list, list, list | None]:
    """(forget, retain, holdout) records of the attacks: `forgetXX_perturbed`, `retainXX` and,
    with `mia`, `holdoutXX` (InputError when missing), each cut to the protocol's ds_size."""
    holdout_split = holdout_split_for(bench.forget)
    if mia and not has_split(data, holdout_split):
        raise InputError(
            f"{data}: no {holdout_split} split for membership inference (add one, or --no-mia)"
        )
    n = bench.protocol.ds_size or None
    forget = first_n(load_split(data, f"{bench.forget}_perturbed"), n)
    retain = first_n(load_split(data, bench.retain_split), n)
    holdout = first_n(load_split(data, holdout_split), n) if mia else None
    return forget, retain, holdout


def attack_saved(
    model_src: str,
    data: str | Path,
    bench: Benchmark,
    out_dir: str | Path,
    cfg: AttackConfig,
    *,
    retain_model: str | None = None,
    original_model: str | None = None,
    mia: bool = True,
    overwrite: bool = False,
    trust_remote_code: bool = False,
) -> dict:
    """`satimp attack`: every attack of `cfg` on the unlearned model `model_src` and, as the
    control, on `retain_model`; `original_model` (before unlearning) gives each attack's
    recovery. Writes attacks.json under `out_dir` (config, the relearning halves, per model the
    metrics before and after each attack, recoveries) and returns its content. Every input is
    checked, and every model loaded, before the first attack; the file is written at the end.
    TOFU only; `mia` off leaves the membership AUCs out (needed without a holdout split)."""
    if bench.name != "tofu":
        raise InputError(
            f"satimp attack runs on TOFU-format data; benchmark {bench.name!r} not yet"
        )
    try:
        cfg.validate()
    except ValueError as e:
        raise InputError(f"satimp attack: {e}") from None
    out = check_out(Path(out_dir), overwrite)
    forget, retain, holdout = attack_records(bench, data, mia=mia)
    P = bench.protocol
    train_idx, eval_idx = relearn_split(len(forget), cfg.seed)
    sources = {"unlearned": model_src, "retain": retain_model, "original": original_model}
    models = {
        role: load_model(src, trust_remote_code=trust_remote_code)
        for role, src in sources.items()
        if src
    }
    results = {}
    for role, (model, tokenizer) in models.items():
        role_cfg = cfg if role != "original" else replace(cfg, attacks=["probes"])
        results[role] = attack_model(
            model.eval(),
            tokenizer,
            forget,
            retain,
            holdout,
            P,
            role_cfg,
            progress=lambda a, r=role: print(f"attack {a} on the {r} model", file=sys.stderr),
        )
    report = {
        "config": to_dict(cfg),
        "protocol": protocol_dict(P),
        "models": {role: str(src) for role, src in sources.items() if src},
        "forget_split": f"{bench.forget}_perturbed",
        "relearn_split": {"train": train_idx, "evaluate": eval_idx},
        "results": results,
    }
    if "original" in results:
        report["recovery"] = recoveries(results["unlearned"], results["original"])
        if "retain" in results:
            report["control"] = recoveries(
                results["retain"], results["original"], results["unlearned"]
            )
    print(format_attacks(results))
    write_json(out / "attacks.json", report)
    return report
