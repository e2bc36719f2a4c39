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
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

import satimp
from satimp.benchmarks import Benchmark, get_benchmark, save_retain_stats
from satimp.checkpoint import check_resume
from satimp.config import MethodConfig, TrainConfig, from_dict, opt, to_dict
from satimp.data.examples import training_examples
from satimp.data.muse import MuseConfig
from satimp.data.wmdp import WmdpConfig
from satimp.distributed import process_setup, resolve_precision
from satimp.errors import InputError
from satimp.evaluate import eval_precision, with_precision
from satimp.experiment import (
    ModelsConfig,
    build_models,
    data_fingerprint,
    train_record,
    unlearn,
    write_atomic,
    write_json,
)
from satimp.frontier import FrontierConfig
from satimp.models import gguf_source, key_digest
from satimp.objectives import Objective
from satimp.preflight import check_inputs
from satimp.protocol import Protocol, ProtocolConfig
from satimp.protocol import as_dict as protocol_dict
from satimp.train import Diverged

DEFAULT_METHODS = [
    "ga",
    "gd",
    "npo",
    "simnpo",
    "wga",
    "simsat",
    "simimp",
    "satimp",
    "topk",
    "bottomk",
    "random",
]


@dataclass
class SynthConfig:
    """The embedded synthetic benchmark (`satimp data synth`)."""

    authors: int = opt(50, "TOFU: fictitious authors")
    qa_per_author: int = opt(10, "TOFU: QA pairs per author")
    people: int = opt(40, "MUSE: fictitious people (a multiple of 5)")
    agents: int = opt(24, "WMDP: fictitious hazardous agents")
    seed: int = opt(0, "generator seed")
    real_world: bool | None = opt(
        None,
        "TOFU: real authors and world facts are real facts (satimp.data.real_world) rather than "
        "invented ones; None: real when the base model is pretrained (not a preset)",
    )
    real_world_sizes: list[int] | None = opt(
        None,
        "TOFU with real real-world sets: how many real authors and world facts to keep, a "
        "sample drawn with `seed` of the project's 166 and 160 (e.g. [100, 117], TOFU's sizes); "
        "None: all",
    )
    held_out_values: bool = opt(
        False,
        "TOFU: forget10's authors draw their facts from the other half of each word pool than "
        "the retain authors (satimp.data.synth.SPLIT_POOLS), so a retain model cannot have "
        "learnt a forget fact's words from the retain authors",
    )


@dataclass
class EvalConfig:
    """Evaluation settings (SPEC §5)."""

    batch_size: int = opt(32, "evaluation batch size")
    generation_batch_size: int | None = opt(
        None,
        "batch size of TOFU's ROUGE generation (None: batch_size). Greedy decoding drops a row "
        "at its EOS, so a larger batch wastes nothing past EOS; on a CPU a decoding step reads "
        "the weights once for all rows (SmolLM2 on 2 cores: 128 rows ~2x faster than 32)",
    )
    max_new_tokens: int | None = opt(
        None, "ROUGE generation budget (None: the protocol's gen_tokens, 200)"
    )
    es_mode: str = opt("forward", "'forward' (one pass) or 'generate' (slow reference)")
    precision: str = opt(
        "fp32",
        "'fp32', or 'bf16' (bf16 autocast: ~2× faster on CPUs with bf16 units and on GPUs, as "
        "TOFU evaluates; numbers move by bf16 rounding)",
    )


@dataclass
class RunConfig:
    """One study: which data, which models, which methods, how to train and evaluate."""

    name: str = opt("tofu-embedded", "run name (report title, default output folder)")
    benchmark: str = opt("tofu", "tofu, muse or wmdp")
    data: str = opt("synthetic", "'synthetic' (embedded benchmark), a directory or a hub id")
    synth: SynthConfig = opt(SynthConfig(), "embedded benchmark settings")
    forget: str = opt("forget10", "TOFU forget split (forget01, forget05, forget10)")
    muse: MuseConfig = opt(MuseConfig(), "MUSE splits and evaluation settings")
    wmdp: WmdpConfig = opt(WmdpConfig(), "WMDP questions, corpora and scoring")
    models: ModelsConfig = opt(ModelsConfig(), "base/original/retain models")
    unlearn: TrainConfig = opt(
        TrainConfig(epochs=5, lr=2e-4, batch_size=16, warmup_epochs=1),
        "unlearning recipe (SPEC §3 for 7B models; the embedded default is tuned for `small`)",
    )
    methods: list = opt(
        list(DEFAULT_METHODS), "methods: names, or mappings of MethodConfig fields plus a `label`"
    )
    eval: EvalConfig = opt(EvalConfig(), "evaluation settings")
    protocol: ProtocolConfig = opt(
        ProtocolConfig(),
        "whose conventions (SPEC §6): tofu, open-unlearning, satimp-official, or a mapping "
        "{name, switch: value}",
    )
    seeds: list = opt(
        [],
        "run every method once per seed (unlearning seed = s) and report mean ± 95 % CI; "
        "[]: one run with unlearn.seed",
    )
    frontier: FrontierConfig = opt(
        FrontierConfig(), "`satimp study frontier`: learning rates, seeds, workers"
    )
    seed_models: bool = opt(
        True,
        "with seeds: each seed also builds its own base/original/retain models (recipe seed = "
        "s), so the intervals include model-building variance",
    )
    workers: int = opt(
        1,
        "processes running the methods side by side, each with torch's thread count ÷ workers "
        "threads (1: one after another in this process)",
    )
    cache_dir: str = opt(".cache/satimp", "where built data and models are cached")
    save_models: bool = opt(False, "keep each unlearned model's weights in the run folder")
    trust_remote_code: bool = opt(False, "allow hub models' own code (off by default)")

    def for_seed(self, seed: int | None) -> RunConfig:
        """The single-seed config of one seed of a multi-seed run (itself for None)."""
        if seed is None:
            return self
        models = self.models
        if self.seed_models:
            models = dataclasses.replace(
                models,
                **{
                    k: dataclasses.replace(getattr(models, k), seed=seed)
                    for k in ("base_train", "original_train", "retain_train")
                },
            )
        unlearn = dataclasses.replace(self.unlearn, seed=seed)
        return dataclasses.replace(self, unlearn=unlearn, models=models, seeds=[])

    def resolved_protocol(self) -> Protocol:
        """The protocol's switches, with `eval.max_new_tokens` as its generation budget when
        set."""
        proto = self.protocol.resolve()
        if self.eval.max_new_tokens is not None:
            proto = dataclasses.replace(proto, gen_tokens=self.eval.max_new_tokens)
        return proto

    def validate(self) -> None:
        get_benchmark(self)
        self.unlearn.validate("unlearn")
        for name in ("base_train", "original_train", "retain_train"):
            getattr(self.models, name).validate(f"models.{name}")
        for name in ("batch_size", "max_new_tokens", "generation_batch_size"):
            value = getattr(self.eval, name)
            if value is not None and value < 1:
                raise InputError(f"eval.{name}={value} must be ≥ 1")
        for _, method in self.variants():
            Objective(method, protocol=self.resolved_protocol())  # before any work
        for name in ("base", "original", "retain"):  # a named model's package, a .gguf file
            source = getattr(self.models, name)
            if source and source.lower() != "none":
                gguf_source(source)
        if self.eval.precision not in ("fp32", "bf16"):
            raise InputError(f"eval.precision={self.eval.precision!r}; valid: fp32, bf16")
        if self.eval.es_mode not in ("forward", "generate"):
            raise InputError(f"eval.es_mode={self.eval.es_mode!r}; valid: forward, generate")
        for name, seeds in (("seeds", self.seeds), ("frontier.seeds", self.frontier.seeds)):
            bad = [x for x in seeds if isinstance(x, bool) or not isinstance(x, int) or x < 0]
            if bad or len(set(seeds)) != len(seeds):
                raise InputError(f"{name}={seeds!r}: distinct integers ≥ 0")
        if self.workers < 1:
            raise InputError(f"workers={self.workers} must be ≥ 1")
        f = self.frontier
        if f.workers < 1 or f.threads < 1 or not 0 < f.alpha < 1 or not f.seeds:
            raise InputError("frontier: workers, threads ≥ 1, 0 < alpha < 1, seeds non-empty")
        try:  # YAML 1.1 reads `2e-4` (no dot) as a string
            lrs = [float(x) for x in f.lrs if not isinstance(x, bool)]
        except (TypeError, ValueError):
            lrs = []
        if len(lrs) != len(f.lrs) or any(not x > 0 for x in lrs):
            raise InputError(f"frontier.lrs={f.lrs!r}: positive numbers")
        f.lrs = lrs

    def variants(self) -> list[tuple[str, MethodConfig]]:
        """(label, MethodConfig) per entry of `methods`; labels are unique."""
        out = []
        for i, item in enumerate(self.methods):
            if isinstance(item, str):
                label, method = item, MethodConfig(name=item)
            elif isinstance(item, dict):
                item = dict(item)
                label = str(item.pop("label", item.get("name", "satimp")))
                method = from_dict(MethodConfig, item, prefix=f"methods[{i}].")
            else:
                raise InputError(f"methods[{i}]: expected a name or a mapping, got {item!r}")
            out.append((label, method))
        labels = [label for label, _ in out]
        dup = next((x for x in labels if labels.count(x) > 1), None)
        if dup:
            raise InputError(f"methods: label {dup!r} appears twice; give each a unique `label`")
        if not out:
            raise InputError("methods: the list is empty")
        return out


# ---------------------------------------------------------------- the paper's ablations


def _v(label: str, name: str, **kw) -> dict:
    return {"label": label, "name": name, **kw}


STUDIES: dict[str, tuple[str, list]] = {
    "criteria": (
        "Observation (i): saturation vs importance vs both",
        ["ga", "simsat", "simimp", "satimp"],
    ),
    "granularity": (
        "Observation (iii): weight granularity",
        [
            _v(f"{m}-{g}", m, granularity=g)
            for m in ("simsat", "satimp")
            for g in ("token", "group", "instance", "batch")
        ],
    ),
    "smoothness": (
        "Observation (iii): smoothness (β and τ)",
        [
            *[_v(f"satimp-b1={b}", "satimp", params={"beta1": b}) for b in (1, 3, 5, 8)],
            *[_v(f"satimp-tau={t}", "satimp", tau=t) for t in (0.3, 1.0, 3.0)],
        ],
    ),
    "hardsampling": (
        "Hard sampling (Algorithm 1) at several fractions",
        [
            _v(f"{m}-{f}", m, params={"frac": f})
            for m in ("topk", "bottomk", "random")
            for f in (0.1, 0.3, 0.5)
        ],
    ),
}


def study_config(name: str, base: RunConfig) -> RunConfig:
    if name == "frontier":  # the configured methods, over learning rates × seeds
        return dataclasses.replace(base, name=f"{base.name}-frontier")
    if name not in STUDIES:
        valid = ", ".join([*STUDIES, "frontier"])
        raise InputError(f"unknown study {name!r}; valid studies: {valid}")
    title, methods = STUDIES[name]
    return dataclasses.replace(base, name=f"{base.name}-{name}", methods=list(methods))


# ---------------------------------------------------------------- running


def prepare_data(cfg: RunConfig, log=print) -> Path | str:
    """The benchmark location. The embedded synthetic data is regenerated every run (< 1 s,
    byte-identical for the same settings and generator), so a changed generator can never be
    hidden behind stale files; the model cache keys on the content."""
    if cfg.data != "synthetic":
        return cfg.data
    s = cfg.synth
    if cfg.benchmark == "muse":
        from satimp.data.synth_muse import synth_muse

        path = Path(cfg.cache_dir) / f"data-synth-muse-{s.people}-seed{s.seed}"
        synth_muse(path, people=s.people, seed=s.seed)
    elif cfg.benchmark == "wmdp":
        from satimp.data.synth_wmdp import synth_wmdp

        path = Path(cfg.cache_dir) / f"data-synth-wmdp-{s.agents}-seed{s.seed}"
        synth_wmdp(path, agents=s.agents, seed=s.seed)
    else:
        from satimp.data.synth import synth_tofu
        from satimp.models import PRESETS

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


def run_models(cfg: RunConfig, data, log=print) -> dict[str, Path]:
    """The benchmark's base, original and retain models (built and cached for a preset)."""
    bench = get_benchmark(cfg)
    original, retain = bench.train_splits()
    return build_models(
        data,
        original,
        retain,
        cfg.models,
        Path(cfg.cache_dir) / "models",
        base_splits=bench.base_splits,
        log=log,
        system=bench.protocol.system_prompt,
    )


def weight_curves(model_dir: Path, data, forget, *, max_tokens: int = 3000) -> dict:
    """Token likelihoods of the forget set under `model_dir` and the weights each criterion
    gives them (observation ii): {criterion: {"p": [...], "w": [...]}}."""
    from satimp.data.encoding import iter_batches
    from satimp.logprobs import forward_logps
    from satimp.models import load_model
    from satimp.weighting import token_weights

    model, tok = load_model(model_dir)
    model.eval()
    examples = training_examples(tok, data, forget, max_length=512)
    out = {c: {"p": [], "w": []} for c in ("simsat", "simimp", "satimp")}
    with torch.no_grad():
        for _, batch in iter_batches(examples, 32, tok.pad_token_id):
            r = forward_logps(model, batch)
            for c in out:
                w = token_weights(c, r.logps, r.mask)
                out[c]["p"] += r.logps[r.mask].exp().tolist()
                out[c]["w"] += w[r.mask].tolist()
    return {c: {k: v[:max_tokens] for k, v in d.items()} for c, d in out.items()}


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
    from satimp.models import load_model

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
        "eval": to_dict(cfg.eval),
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


def reference_rows(cfg: RunConfig, data, paths: dict, out: Path, log=print) -> tuple[list, dict]:
    """Evaluate the original and retain models (and a pretrained base model): (rows, the
    retain model's statistics). Each evaluation is cached (`reference_eval`), so seeds that
    share their models, and later runs, reuse it.

    The statistics (TOFU: forget truth ratios; MUSE: the Min-K% AUC) are saved as
    `retain_stats.json` (for `eval --retain-stats`).
    """
    from satimp.models import PRESETS

    bench = get_benchmark(cfg)
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
    label: str,
    method: MethodConfig,
    data,
    model_dir: Path,
    out: Path,
    stats: dict | None,
    *,
    resume: bool = False,
) -> tuple[dict, list[dict]]:
    """Unlearn with one method and evaluate it: (result row, per-epoch curve). A failure
    becomes a `failed: …` row with the traceback in `methods/LABEL/error.txt`.

    A finished method leaves `methods/LABEL/row.json` (and no checkpoints); with `resume`
    that row is reused, and an unfinished method continues from its latest checkpoint.
    Where the benchmark selects the reported epoch (MUSE, `muse.select`), the row holds that
    epoch's evaluation, with `epoch` naming it.
    """
    bench = get_benchmark(cfg)
    t0 = time.time()
    run_dir = out / "methods" / label
    done = run_dir / "row.json"
    if resume and done.is_file():
        saved = json.loads(done.read_text())
        return saved["row"], saved["curve"]
    try:
        forget, retain = bench.unlearn_splits()
        epoch_eval, final = _epoch_eval(cfg, bench, data, stats, run_dir)
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
            epoch_eval=epoch_eval,
            min_chars=bench.min_chars,
            protocol=bench.protocol,
        )
        chosen = bench.select(result.epochs)
        if chosen is None and final:  # the final model, evaluated at its last epoch
            per_sample = final["per_sample"]
            summary = bench.apply_stats(final["summary"], per_sample, stats)
        elif chosen is None:  # the final model (a resumed run that had finished training)
            summary, per_sample = evaluate_model(cfg, bench, run_dir, data, stats)
        else:  # the selected epoch's evaluation, summary and per-sample results alike
            summary = {**chosen, "selected_from_epochs": len(result.epochs)}
            per_sample = json.loads(bench.epoch_per_sample(run_dir, chosen["epoch"]).read_text())
        write_json(run_dir / "summary.json", summary | {"protocol": protocol_dict(bench.protocol)})
        write_json(run_dir / "per_sample.json", per_sample)
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


def _epoch_eval(cfg: RunConfig, bench: Benchmark, data, stats, run_dir: Path):
    """(the per-epoch probe of `method_row`, a dict that receives the final evaluation).

    Where the benchmark reports the final model and its full evaluation computes the probe's
    values on the same items (TOFU with forward ES: `Benchmark.probe_keys`), the last epoch
    runs that full evaluation on the model in memory instead of the probe, and `method_row`
    reports it: the same numbers (the saved weights are these), one probe fewer per method.
    Like the probe, it runs while the optimizer's state is still held: greedy answers at
    `eval.generation_batch_size` then share the device with it.
    """
    probe = bench.epoch_eval(
        data,
        max_length=cfg.unlearn.max_length,
        batch_size=cfg.eval.batch_size,
        stats=stats,
        out_dir=run_dir,
    )
    final: dict = {}
    u = cfg.unlearn
    if probe is None or not bench.probe_keys or u.max_steps or cfg.eval.es_mode != "forward":
        return with_precision(probe, cfg.eval.precision), final

    def epoch_eval(model, tokenizer, epoch: int) -> dict:
        if epoch < u.epochs:
            return probe(model, tokenizer, epoch)
        summary, per_sample = bench.evaluate(model, tokenizer, data, **_eval_kw(cfg))
        final.update(summary=summary, per_sample=per_sample)
        return {k: summary[k] for k in bench.probe_keys if k in summary}

    return with_precision(epoch_eval, cfg.eval.precision), final


def run_methods(
    jobs: list, workers: int, *, threads: int | None = None, resume: bool = False, on_done=None
) -> dict:
    """{key: (row, curve)} of `method_row(*args, resume=resume)` for each (key, args) job.

    With `workers` ≤ 1 they run one after another in this process (on `threads` threads when
    given). Otherwise `workers` spawned processes share them, each with `threads` torch
    threads (default: this process's count ÷ workers, at least 1); on two cores two
    one-thread workers train and evaluate faster together than one two-thread process
    (README). Each method writes only its own folder, so the processes share nothing but the
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


def open_run(cfg: RunConfig, out: Path, resume: bool, log=print):
    """The start of `run` and `study frontier`: with `resume`, refuse a config other than the
    folder's (a changed one would mix two studies' rows); build the data; check every split
    and model source; only then create `out` and write its config.yaml. Returns the data."""
    record = run_record(cfg)
    if resume:
        check_resume(out, record)
    data = prepare_data(cfg, log)
    check_inputs(cfg, data)
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
    from satimp.report import aggregate, format_table, write_report

    t_start = time.time()
    cfg.validate()
    bench = get_benchmark(cfg)
    out = Path(out_dir)
    log(f"[1/4] data ({cfg.benchmark}: {cfg.data})")
    data = open_run(cfg, out, resume, log)
    variants = cfg.variants()
    forget, _ = bench.unlearn_splits()
    seeds = cfg.seeds or [None]
    rows: list[dict] = []
    curves: dict[str, list[list[dict]]] = {label: [] for label, _ in variants}
    first_paths = None
    for seed in seeds:
        cfg_s = cfg.for_seed(seed)
        out_s = out if seed is None else out / f"seed-{seed}"
        tag = {} if seed is None else {"seed": seed}
        at = "" if seed is None else f" (seed {seed})"
        log(f"[2/4] base, original and retain models{at} (cached)")
        paths = run_models(cfg_s, data, log)
        first_paths = first_paths or paths
        log(f"[3/4] reference rows{at}: original and retain models")
        refs, stats = reference_rows(cfg_s, data, paths, out_s, log)
        rows += [r | tag for r in refs]
        shown = forget if isinstance(forget, str) else " + ".join(forget)
        log(f"[4/4] unlearning {shown} with {len(variants)} methods{at}")

        def done(i: int, label: str, row: dict) -> None:
            log(
                f"  [{i}/{len(variants)}] {label:<16} {row['status']:<8} forget ES "
                f"{_num(row['forget_es'])}  retain ES {_num(row['retain_es'])}  "
                f"({row['seconds']:.0f}s)"
            )

        jobs = [
            (label, (cfg_s, label, method, data, paths["original"], out_s, stats))
            for label, method in variants
        ]
        results = run_methods(jobs, cfg.workers, resume=resume, on_done=done)
        for label, _ in variants:  # the config's order, whatever order they finished in
            row, curve = results[label]
            rows.append(row | tag)
            curves[label].append(curve)
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
    )
    print(format_table(summary or rows, columns=bench.columns))
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
        batch_size=e.batch_size, es_mode=e.es_mode, generation_batch_size=e.generation_batch_size
    )


def _num(v) -> str:
    return "  –  " if v is None else f"{v:.3f}"


def default_out(cfg: RunConfig) -> Path:
    return Path("runs") / cfg.name / time.strftime("%Y%m%d-%H%M%S")
