"""The main job: data → base/original/retain models (cached) → unlearn with each method →
evaluate → report. `satimp run` runs the configured methods; `satimp study NAME` runs one of
the paper's ablations (criteria, granularity, smoothness, hardsampling) the same way.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import traceback
from pathlib import Path

import torch
import yaml

import satimp
from satimp.attack import attack_records
from satimp.benchmarks import Benchmark, epoch_probe, save_retain_stats
from satimp.checkpoint import check_resume
from satimp.config import MethodConfig, to_dict
from satimp.data.records import has_split
from satimp.data.synth import synth_tofu
from satimp.data.synth_muse import synth_muse
from satimp.data.synth_wmdp import synth_wmdp
from satimp.distributed import process_setup, resolve_precision
from satimp.errors import InputError
from satimp.evaluation.attacks import attack_columns, attack_model, recoveries
from satimp.evaluation.mia import holdout_split_for
from satimp.evaluation.probes import LastEpochEvaluation, with_precision
from satimp.evaluation.scoring import eval_precision
from satimp.evaluation.worst import worst_items_markdown
from satimp.experiment import build_models, data_fingerprint, train_record, unlearn
from satimp.models import PRESETS, key_digest, load_model
from satimp.objectives import Objective
from satimp.protocol import as_dict as protocol_dict
from satimp.report import (
    format_table,
    robustness_figure,
    robustness_markdown,
    save_figure,
    write_report,
)
from satimp.runs import write_atomic, write_json
from satimp.stats import aggregate
from satimp.study.analysis import weight_curves
from satimp.study.config import RunConfig
from satimp.study.preflight import check_inputs
from satimp.train import Diverged


def prepare_data(cfg: RunConfig, log=print) -> Path | str:
    """The benchmark location. The embedded synthetic data is regenerated every run (< 1 s,
    byte-identical for the same settings and generator), so a changed generator can never be
    hidden behind stale files; the model cache keys on the content."""
    if cfg.data != "synthetic":
        return cfg.data
    s = cfg.synth
    if cfg.benchmark == "muse":
        path = Path(cfg.cache_dir) / f"data-synth-muse-{s.people}-seed{s.seed}"
        synth_muse(path, people=s.people, seed=s.seed)
    elif cfg.benchmark == "wmdp":
        path = Path(cfg.cache_dir) / f"data-synth-wmdp-{s.agents}-seed{s.seed}"
        synth_wmdp(path, agents=s.agents, seed=s.seed)
    else:
        real = s.real_world if s.real_world is not None else cfg.models.base not in PRESETS
        sizes = tuple(s.real_world_sizes) if s.real_world_sizes is not None else None
        if sizes and not real:
            raise InputError(
                "synth.real_world_sizes needs the real real-world sets (synth.real_world: true, "
                "or a pretrained base model)"
            )
        tag = ("-real" if real else "") + ("-{}x{}".format(*sizes) if sizes else "")
        tag += "-heldout" if s.held_out_values else ""
        path = Path(cfg.cache_dir) / f"data-synth-{s.authors}x{s.qa_per_author}-seed{s.seed}{tag}"
        synth_tofu(
            path,
            authors=s.authors,
            qa_per_author=s.qa_per_author,
            seed=s.seed,
            real_world=real,
            real_world_sizes=sizes,
            held_out_values=s.held_out_values,
        )
    log(f"  synthetic {cfg.benchmark} benchmark: {path}")
    return path


def run_models(cfg: RunConfig, bench: Benchmark, data, log=print) -> dict[str, Path]:
    """The benchmark's base, original and retain models (built and cached for a preset)."""
    original, retain = bench.train_splits()
    return build_models(
        data,
        original,
        retain,
        cfg.models,
        Path(cfg.cache_dir) / "models",
        base_splits=bench.base_splits,
        log=log,
        protocol=bench.protocol,
    )


def _row(method: str, status: str, summary: dict | None, seconds: float, columns=()) -> dict:
    summary = summary or {}
    row = {
        "method": method,
        "status": status,
        **{k: summary.get(k) for k in columns},
        "seconds": round(seconds, 2),
    }
    row.update({k: v for k, v in summary.items() if k not in row})
    return row


def evaluate_model(cfg: RunConfig, bench: Benchmark, model_dir, data, stats) -> tuple[dict, dict]:
    """Load a saved model and evaluate it on the run's benchmark, relative to `stats` (None:
    nothing relative to the retain model)."""
    model, tok = load_model(model_dir, trust_remote_code=cfg.trust_remote_code)
    with eval_precision(model, cfg.eval.precision):
        summary, per_sample = bench.evaluate(model, tok, data, **_eval_kw(cfg))
    return bench.apply_stats(summary, per_sample, stats), per_sample


def reference_eval(cfg: RunConfig, bench: Benchmark, model_dir, data) -> tuple[dict, dict, bool]:
    """`bench.evaluate` of a reference model, cached: (summary, per_sample, from the cache).

    Reference models recur: every seed of `seed_models=false`, every `study frontier`, every
    rerun of a config. The result is kept in `cache_dir/evals/<hash>.json`, keyed on the
    content of the model folder and of the data, the benchmark and its settings, the resolved
    protocol, the evaluation settings, the device kind and the satimp version; any change
    evaluates afresh. Nothing relative to the retain model is in it (`apply_stats` follows).
    """
    key = {
        "model": data_fingerprint(model_dir),
        "data": data_fingerprint(data),
        "benchmark": cfg.benchmark,
        "forget": cfg.forget,
        "muse": to_dict(cfg.muse),
        "wmdp": to_dict(cfg.wmdp),
        "protocol": protocol_dict(bench.protocol),
        # whether per_sample keeps the generated answers changes no number, and a reference
        # model's per_sample is read only for its truth ratios
        "eval": {k: v for k, v in to_dict(cfg.eval).items() if k != "generations"},
        "cuda": torch.cuda.is_available(),
        "v": satimp.__version__,
    }
    path = Path(cfg.cache_dir) / "evals" / f"{key_digest(key)}.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("key") == key:
            return saved["summary"], saved["per_sample"], True
    summary, per_sample = evaluate_model(cfg, bench, model_dir, data, None)
    write_json(path, {"key": key, "summary": summary, "per_sample": per_sample})
    return summary, per_sample, False


def reference_rows(
    cfg: RunConfig, bench: Benchmark, data, paths: dict, out: Path, log=print
) -> tuple[list, dict]:
    """Evaluate the original and retain models (and a pretrained base model): (rows, the
    retain model's statistics). Each evaluation is cached (`reference_eval`), so seeds that
    share their models, and later runs, reuse it.

    The statistics (TOFU: forget truth ratios; MUSE: the Min-K% AUC) are saved as
    `retain_stats.json` (for `eval --retain-stats`).
    """
    rows, stats = [], None
    names = [n for n in ("retain", "original") if n in paths]  # WMDP: no retain model
    if "base" in paths and cfg.models.base not in PRESETS:  # a pretrained base: its scores too
        names.append("base")
    for name in names:
        t0 = time.time()
        summary, per_sample, hit = reference_eval(cfg, bench, paths[name], data)
        if name == "retain":
            stats = bench.retain_stats(summary, per_sample)
            save_retain_stats(out / "retain_stats.json", bench, stats)
        summary = bench.apply_stats(summary, per_sample, stats)  # retain: FQ = 1, PrivLeak = 0
        rows.append(_row(name, "reference", summary, time.time() - t0, bench.columns))
        log(
            f"  {name:<9} forget ES {summary['forget_es']:.3f}  retain ES {summary['retain_es']:.3f}"
            + ("  (cached evaluation)" if hit else "")
        )
    order = ("original", "retain", "base")
    return sorted(rows, key=lambda r: order.index(r["method"])), stats


def method_row(
    cfg: RunConfig,
    bench: Benchmark,
    label: str,
    method: MethodConfig,
    data,
    model_dir: Path,
    out: Path,
    stats: dict | None,
    attack_refs: dict | None = None,
    *,
    resume: bool = False,
) -> tuple[dict, list[dict]]:
    """Unlearn with one method and evaluate it: (result row, per-epoch curve). A failure
    becomes a `failed: …` row with the traceback in `methods/LABEL/error.txt`. With
    `attack_refs` (`attack_references`), the unlearned model is then attacked
    (`methods/LABEL/attacks.json`) and the row gains `attack_columns`.

    A finished method leaves `methods/LABEL/row.json` (and no checkpoints); with `resume`
    that row is reused, and an unfinished method continues from its latest checkpoint.
    Where the benchmark selects the reported epoch (MUSE, `muse.select`), the row holds that
    epoch's evaluation, with `epoch` naming it.
    """
    t0 = time.time()
    run_dir = out / "methods" / label
    done = run_dir / "row.json"
    if resume and done.is_file():
        saved = json.loads(done.read_text())
        return saved["row"], saved["curve"]
    try:
        forget, retain = bench.unlearn_splits()
        probe = epoch_probe(
            bench,
            data,
            train=cfg.unlearn,
            stats=stats,
            out_dir=run_dir,
            batch_size=cfg.eval.batch_size,
            es_mode=cfg.eval.es_mode,
            evaluate_kw=_eval_kw(cfg),
        )
        result = unlearn(
            model_dir,
            data,
            forget,
            retain,
            method,
            cfg.unlearn,
            run_dir,
            trust_remote_code=cfg.trust_remote_code,
            eval_batch_size=cfg.eval.batch_size,
            resume=resume,
            epoch_eval=with_precision(probe, cfg.eval.precision),
            min_chars=bench.min_chars,
            protocol=bench.protocol,
        )
        chosen = bench.select(result.epochs)
        final = probe.result if isinstance(probe, LastEpochEvaluation) else None
        if chosen is None and final:  # the final model, evaluated at its last epoch
            summary, per_sample = final
            summary = bench.apply_stats(summary, per_sample, stats)
        elif chosen is None:  # the final model (a resumed run that had finished training)
            summary, per_sample = evaluate_model(cfg, bench, run_dir, data, stats)
        else:  # the selected epoch's evaluation, summary and per-sample results alike
            summary = {**chosen, "selected_from_epochs": len(result.epochs)}
            per_sample = json.loads(bench.epoch_per_sample(run_dir, chosen["epoch"]).read_text())
        write_json(run_dir / "summary.json", summary | {"protocol": protocol_dict(bench.protocol)})
        write_json(run_dir / "per_sample.json", per_sample)
        tables = bench.worst_items(per_sample, data)
        if tables:
            page = worst_items_markdown(tables, title=f"Worst items: {label}")
            write_atomic(run_dir / "worst_items.md", page)
        if attack_refs is not None:
            summary = summary | attack_method(cfg, bench, data, run_dir, attack_refs)
        if not cfg.save_models:
            for f in run_dir.glob("*.safetensors"):
                f.unlink()
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # row.json now stands for it
        row = _row(label, "ok", summary, time.time() - t0, bench.columns)
        write_json(done, {"row": row, "curve": result.epochs})
        return row, result.epochs
    except Exception as e:  # one method's failure must not sink the study
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "error.txt").write_text(traceback.format_exc())
        status = str(e) if isinstance(e, Diverged) else f"failed: {type(e).__name__}: {e}"
        return _row(label, status[:200], None, time.time() - t0, bench.columns), []


def attack_references(
    cfg: RunConfig, bench: Benchmark, data, paths: dict, out: Path, log=print
) -> dict | None:
    """With `attacks.enabled`: the attacks' references of one seed, {"records": (forget,
    retain, holdout), "original": its unattacked metrics (and plain/best probes), "retain":
    every attack on the retain model, the control}, also written to `attacks_references.json`.
    Membership AUCs only where the data has a holdout split."""
    if not cfg.attacks.enabled:
        return None
    mia = has_split(data, holdout_split_for(bench.forget))
    records = attack_records(bench, data, mia=mia)
    refs: dict = {"records": records}
    for role, attacks in (("original", ["probes"]), ("retain", cfg.attacks.attacks)):
        model, tok = load_model(paths[role], trust_remote_code=cfg.trust_remote_code)
        a_cfg = dataclasses.replace(cfg.attacks, attacks=attacks)
        refs[role] = attack_model(model.eval(), tok, *records, bench.protocol, a_cfg)
        log(f"  attacks on the {role} model: done")
    write_json(out / "attacks_references.json", {k: v for k, v in refs.items() if k != "records"})
    return refs


def attack_method(cfg: RunConfig, bench: Benchmark, data, run_dir: Path, refs: dict) -> dict:
    """Every attack on the unlearned model in `run_dir`: writes attacks.json (results,
    recovery towards the original, the retain control) and returns its `attack_columns`."""
    model, tok = load_model(run_dir, trust_remote_code=cfg.trust_remote_code)
    results = attack_model(model.eval(), tok, *refs["records"], bench.protocol, cfg.attacks)
    recovery = recoveries(results, refs["original"])
    control = recoveries(refs["retain"], refs["original"], results)
    write_json(
        run_dir / "attacks.json", {"results": results, "recovery": recovery, "control": control}
    )
    return attack_columns(results, recovery)


def write_robustness(out: Path, rows: list[dict], controls: list[dict], log=print) -> None:
    """robustness.md (`report.robustness_markdown`) and robustness.png
    (`report.robustness_figure`) in the run folder, the retain control averaged over seeds."""

    def avg(attack: str, side: str | None, metric: str) -> float | None:
        values = [(c[attack][side] if side else c[attack]).get(metric) for c in controls]
        return None if None in values else sum(values) / len(values)

    table, figure = {}, {"none": {m: avg("none", None, m) for m in ("es", "mia_min_k_auc")}}
    for attack in controls[0]:
        if attack in ("none", "none_half"):
            continue
        table[attack] = {side: {"es": avg(attack, side, "es")} for side in ("before", "after")}
        figure[attack] = {m: avg(attack, "after", m) for m in ("es", "mia_min_k_auc")}
    page = robustness_markdown(rows, table)
    write_atomic(out / "robustness.md", f"# Does the forgetting hold?\n\n{page}")
    save_figure(robustness_figure(rows, figure), out / "robustness.png")
    print(page)
    log(f"robustness: {out / 'robustness.md'}")


def run_methods(
    jobs: list, workers: int, *, threads: int | None = None, resume: bool = False, on_done=None
) -> dict:
    """{key: (row, curve)} of `method_row(*args, resume=resume)` for each (key, args) job.

    With `workers` ≤ 1 they run one after another in this process (on `threads` threads when
    given). Otherwise `workers` spawned processes share them, each with `threads` torch
    threads (default: this process's count ÷ workers, at least 1); on two cores two
    one-thread workers train and evaluate faster together than one two-thread process
    (docs/performance.md). Each method writes only its own folder, so the processes share nothing but the
    read-only inputs; a method's own failure is its row (`method_row`), a worker killed from
    outside (out of memory) stops the run. `on_done(i, key, row)` runs as the i-th job
    finishes.
    """
    results = {}
    report = on_done or (lambda *a: None)
    if workers <= 1 or len(jobs) <= 1:
        if threads:
            torch.set_num_threads(threads)
        for i, (key, args) in enumerate(jobs, 1):
            results[key] = method_row(*args, resume=resume)
            report(i, key, results[key][0])
        return results
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    n = threads or max(1, torch.get_num_threads() // workers)
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(_method_job, n, args, resume): key for key, args in jobs}
        for i, fut in enumerate(as_completed(futures), 1):
            key = futures[fut]
            results[key] = fut.result()
            report(i, key, results[key][0])
    return results


def _method_job(threads: int, args: tuple, resume: bool) -> tuple[dict, list[dict]]:
    """One `method_row` in a worker process of `run_methods`, on `threads` torch threads."""
    process_setup()  # as the CLI does, before torch starts its threads
    torch.set_num_threads(threads)
    return method_row(*args, resume=resume)


def open_run(cfg: RunConfig, bench: Benchmark, out: Path, resume: bool, log=print):
    """The start of `run` and `study frontier`: with `resume`, refuse a config other than the
    folder's (a changed one would mix two studies' rows); build the data; check every split
    and model source; only then create `out` and write its config.yaml. Returns the data."""
    record = run_record(cfg)
    if resume:
        check_resume(out, record)
    data = prepare_data(cfg, log)
    check_inputs(cfg, bench, data)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "config.yaml", yaml.safe_dump(record, sort_keys=False))
    return data


RECIPES = ("base_train", "original_train", "retain_train")  # the training recipes of `models`


def run_record(cfg: RunConfig) -> dict:
    """`to_dict(cfg)` with every training recipe's `precision: auto` resolved on this machine
    (`experiment.train_record`): a run's config.yaml, and what --resume compares, so a study
    started in bf16 does not go on in fp32 on another machine."""
    record = to_dict(cfg)
    record["unlearn"] = train_record(cfg.unlearn)
    record["models"] |= {k: train_record(getattr(cfg.models, k)) for k in RECIPES}
    return record


def run(
    cfg: RunConfig,
    out_dir: str | Path,
    *,
    log=print,
    title: str | None = None,
    resume: bool = False,
) -> list[dict]:
    """Run the whole study; returns the result rows (references first). A method that fails
    is reported in its row and the others still run. `resume` skips finished methods and
    continues an interrupted one from its checkpoint.

    With `seeds`, everything runs once per seed under `OUT/seed-S/` (the models too, with
    `seed_models`); the rows carry their `seed`, and one aggregate row per method (n_seeds,
    X_mean, X_std, X_ci95) follows them."""
    t_start = time.time()
    bench = cfg.validate()
    out = Path(out_dir)
    log(f"[1/4] data ({cfg.benchmark}: {cfg.data})")
    data = open_run(cfg, bench, out, resume, log)
    variants = cfg.variants()
    forget, _ = bench.unlearn_splits()
    seeds = cfg.seeds or [None]
    rows: list[dict] = []
    curves: dict[str, list[list[dict]]] = {label: [] for label, _ in variants}
    worst: list[tuple[str, str]] = []  # (label, worst_items.md relative to out)
    first_paths = None
    controls: list[dict] = []  # per seed, the retain model's attacks (with attacks.enabled)
    for seed in seeds:
        cfg_s = cfg.for_seed(seed)
        out_s = out if seed is None else out / f"seed-{seed}"
        tag = {} if seed is None else {"seed": seed}
        at = "" if seed is None else f" (seed {seed})"
        log(f"[2/4] base, original and retain models{at} (cached)")
        paths = run_models(cfg_s, bench, data, log)
        first_paths = first_paths or paths
        log(f"[3/4] reference rows{at}: original and retain models")
        refs, stats = reference_rows(cfg_s, bench, data, paths, out_s, log)
        rows += [r | tag for r in refs]
        attack_refs = attack_references(cfg_s, bench, data, paths, out_s, log)
        if attack_refs is not None:
            controls.append(attack_refs["retain"])
        shown = forget if isinstance(forget, str) else " + ".join(forget)
        log(f"[4/4] unlearning {shown} with {len(variants)} methods{at}")

        def done(i: int, label: str, row: dict) -> None:
            log(
                f"  [{i}/{len(variants)}] {label:<16} {row['status']:<8} forget ES "
                f"{_num(row['forget_es'])}  retain ES {_num(row['retain_es'])}  "
                f"({row['seconds']:.0f}s)"
            )

        jobs = [
            (
                label,
                (cfg_s, bench, label, method, data, paths["original"], out_s, stats, attack_refs),
            )
            for label, method in variants
        ]
        results = run_methods(jobs, cfg.workers, resume=resume, on_done=done)
        for label, _ in variants:  # the config's order, whatever order they finished in
            row, curve = results[label]
            rows.append(row | tag)
            curves[label].append(curve)
            page = out_s / "methods" / label / "worst_items.md"
            if row["status"] == "ok" and page.is_file():
                worst.append((label + at, page.relative_to(out).as_posix()))
    weights = None
    try:
        weights = weight_curves(first_paths["original"], data, forget)
    except Exception as e:  # the plot is a nicety; the table is the result
        log(f"  (weight plot skipped: {e})")
    recipes = {"unlearn": cfg.unlearn} | {k: getattr(cfg.models, k) for k in RECIPES}
    config = {
        **to_dict(cfg),
        "protocol": protocol_dict(bench.protocol),  # every switch resolved
        "methods_resolved": {
            label: Objective(m, protocol=bench.protocol).resolved() for label, m in variants
        },
        # what `precision: auto` ran as on this machine
        "precision_resolved": {
            name: resolve_precision(t.precision, t.device) for name, t in recipes.items()
        },
        "data_fingerprint": data_fingerprint(data),
        "models_built": {k: str(v) for k, v in first_paths.items()},
    }
    summary = aggregate(rows) if cfg.seeds else []
    report = write_report(
        out,
        rows + summary,
        config=config,
        title=title or cfg.name,
        curves={label: mean_curve(c) for label, c in curves.items()},
        weights=weights,
        notes=[f"total time {time.time() - t_start:.0f}s"]
        + ([f"seeds {cfg.seeds}: mean ± 95 % t-interval half-width"] if cfg.seeds else []),
        columns=bench.columns,
        worst_items=worst,
    )
    print(format_table(summary or rows, columns=bench.columns))
    if controls:
        write_robustness(out, rows + summary, controls, log)
    log(f"report: {report}  (total {time.time() - t_start:.0f}s)")
    return rows + summary


def mean_curve(curves: list[list[dict]]) -> list[dict]:
    """The per-epoch curve averaged over seeds (epochs every seed reached)."""
    curves = [c for c in curves if c]
    if len(curves) <= 1:
        return curves[0] if curves else []
    n = min(len(c) for c in curves)
    numeric = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    keys = [k for k in curves[0][0] if all(numeric(c[e].get(k)) for c in curves for e in range(n))]
    return [{k: sum(c[e][k] for c in curves) / len(curves) for k in keys} for e in range(n)]


def _eval_kw(cfg: RunConfig) -> dict:
    e = cfg.eval
    return dict(
        batch_size=e.batch_size,
        es_mode=e.es_mode,
        generation_batch_size=e.generation_batch_size,
        generations=e.generations,
    )


def _num(v) -> str:
    return "  –  " if v is None else f"{v:.3f}"


def default_out(cfg: RunConfig) -> Path:
    return Path("runs") / cfg.name / time.strftime("%Y%m%d-%H%M%S")
