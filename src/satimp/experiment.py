"""Pipelines: fine-tune a model, build TOFU's base/original/retain models (cached), unlearn,
evaluate a saved model.

Every run folder holds the resolved `config.yaml`, `run_info.json` (versions, git revision),
the per-step `metrics.jsonl` and the saved model (safetensors + tokenizer).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

import satimp
from satimp import distributed as D
from satimp.benchmarks import Benchmark, load_retain_stats, save_retain_stats
from satimp.checkpoint import RESUME_MAY_DIFFER, check_resume
from satimp.config import MethodConfig, ModelsConfig, TrainConfig, to_dict
from satimp.data.card import CARD
from satimp.data.examples import encode_loaded, load_splits
from satimp.data.records import (
    EXTENSIONS,
    benchmark_texts,
    parse_ref,
    parse_slice,
    read_split,
)
from satimp.data.tofu import load_split
from satimp.errors import InputError
from satimp.evaluation.harness import resolve_tasks, run_lm_eval
from satimp.evaluation.open_unlearning import tofu_eval_logs, tofu_summary
from satimp.evaluation.probes import data_probe, training_probe
from satimp.evaluation.scoring import eval_precision
from satimp.evaluation.tofu import format_summary
from satimp.evaluation.worst import worst_items_markdown
from satimp.models import (
    PRESETS,
    add_lora,
    build_model,
    cached,
    chat_template_text,
    get_preset,
    hash_file,
    load_model,
    resolve_model,
    retemplate,
    save_model,
    train_tokenizer,
)
from satimp.objectives import Objective, finetune_objective
from satimp.protocol import (
    Protocol,
    format_mismatch,
    prompt_format,
    read_format,
    retain_training_ref,
    save_format,
)
from satimp.protocol import as_dict as protocol_dict
from satimp.protocol import resolve as resolve_protocol
from satimp.runs import check_out, start_run, write_atomic, write_json
from satimp.train import TrainResult, train

# ---------------------------------------------------------------- data


def data_fingerprint(data: str | Path) -> str:
    """Hash of a local folder's files, sub-folders included (or of the hub id), for cache
    keys: a benchmark's data or a model's weights. The folder's top-level README.md (the
    dataset card of `satimp data synth` / `export`, a model card) is left out: nothing
    satimp reads, so adding one keeps every cached model."""
    root = Path(data)
    h = hashlib.sha256()
    if root.is_dir():
        files = (p for p in root.rglob("*") if p.is_file() and p != root / CARD)
        for path in sorted(files):
            h.update(path.relative_to(root).as_posix().encode() + b"\0")
            hash_file(h, path)
    else:
        h.update(str(data).encode())
    return h.hexdigest()


def splits_fingerprint(data: str | Path, splits: list[str]) -> str:
    """Hash of the records of `splits` (slices and `SOURCE::REF` resolved as training reads
    them) for a model's cache key: a build on a pretrained base depends on what it trains on,
    not on the folder's other splits. A hub dataset is named by its id (nothing downloaded)."""
    h = hashlib.sha256()
    for ref in splits:
        source, part = parse_ref(data, ref)
        h.update(f"{ref}\0".encode())
        if Path(source).is_dir() or Path(parse_slice(part)[0]).suffix in EXTENSIONS:
            rows, _ = read_split(data, ref)
            h.update(json.dumps([r for _, r in rows], sort_keys=True, default=str).encode())
        else:
            h.update(f"{source}\0".encode())
    return h.hexdigest()


def train_record(cfg: TrainConfig) -> dict:
    """`to_dict(cfg)` with `precision: auto` replaced by what it resolves to on this machine
    (`distributed.resolve_precision`): what a run's config.yaml records and --resume compares,
    so a run started in bf16 is not resumed in fp32 on a machine without fast bf16 (it is
    refused, naming `train.precision`; passing that precision explicitly resumes it).
    `retain_pairing` is left out at its default, 'random', the pairing of every version before
    the option: their runs still resume and their cached models are still found."""
    record = to_dict(cfg) | {"precision": D.resolve_precision(cfg.precision, cfg.device)}
    if record["retain_pairing"] == "random":
        del record["retain_pairing"]
    return record


def recipe_key(cfg: TrainConfig) -> dict:
    """A training recipe as a cache key holds it: `train_record(cfg)` without the fields that
    say how a run executes (`checkpoint.RESUME_MAY_DIFFER`: checkpointing, logging, device), so
    changing those reuses a built model; `precision: auto` shares its models with the explicit
    setting it resolves to."""
    return {k: v for k, v in train_record(cfg).items() if k not in RESUME_MAY_DIFFER}


def format_key(protocol: Protocol) -> dict:
    """A build's prompt format as its cache key holds it: the format switches that differ
    from TOFU's (no system prompt, answer tokens alone), the system prompt under its old key
    `system`, so models built before the format was recorded keep their keys. Two protocols
    of one format share their built models, whose satimp.json names the first."""
    tofu = prompt_format(resolve_protocol("tofu"))
    names = {"system_prompt": "system"}
    return {names.get(k, k): v for k, v in prompt_format(protocol).items() if v != tofu[k]}


# ---------------------------------------------------------------- fine-tuning


def finetune(
    model_src: str,
    data: str | Path,
    splits: list[str],
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    trust_remote_code: bool = False,
    checkpoints: bool = True,
    resume: bool = False,
    protocol: Protocol | str | None = None,
) -> TrainResult:
    """Fine-tune `model_src` (a preset name, local dir or hub id) on `splits` of `data`.

    A preset builds a fresh tiny Llama with a tokenizer trained on the benchmark's text.
    QA pairs are encoded in the prompt format of `protocol` (default `tofu`: no system
    message), which config.yaml and the model folder's satimp.json record, so that an
    evaluation under another format can say so (`check_prompt_format`).
    Saves model + tokenizer, config.yaml, run_info.json and metrics.jsonl under `out_dir`.
    """
    cfg.validate()
    protocol = resolve_protocol(protocol)
    config = {"model": model_src, "data": str(data), "splits": splits, "train": train_record(cfg)}
    config |= {"protocol": {"name": protocol.name, **prompt_format(protocol)}}
    if resume:
        check_resume(out_dir, config)
    # read and check every record of every split before building or writing anything
    loaded = load_splits(data, splits)
    if model_src in PRESETS:
        preset = get_preset(model_src)
        tokenizer = train_tokenizer(benchmark_texts(data), preset.vocab_size)
        model = build_model(preset, tokenizer, seed=cfg.seed)
    else:
        model, tokenizer = load_model(model_src, trust_remote_code=trust_remote_code)
    if cfg.lora.r:
        model = add_lora(model, cfg.lora)
    system = protocol.system_prompt
    examples = encode_loaded(tokenizer, loaded, max_length=cfg.max_length, system=system)
    # every input is read and checked above: only now is anything written
    out = start_run(out_dir, config)
    result = train(
        model,
        finetune_objective,
        examples,
        cfg,
        pad_id=tokenizer.pad_token_id,
        out_dir=out,
        on_epoch_end=training_probe(examples, tokenizer) if cfg.eval_every_epoch else None,
        desc=f"finetune {'+'.join(splits)}",
        checkpoints=checkpoints,
        resume=resume,
    )
    if D.is_main():
        save_model(model, tokenizer, out, lora_save=cfg.lora.save, state_dict=result.state_dict)
        save_format(out, protocol)
    return result


def build_models(
    data: str | Path,
    original_splits: list[str],
    retain_splits: list[str],
    models: ModelsConfig,
    cache_dir: str | Path,
    *,
    base_splits: list[str] = ("world_facts", "real_authors"),
    log=print,
    protocol: Protocol | None = None,
) -> dict[str, Path]:
    """base → original (on `original_splits`) and base → retain (on `retain_splits`), cached.

    TOFU: original on `full`, retain on `retainXX`; MUSE and WMDP: the corpora with and without
    the forget corpus. A preset base is first trained on `models.base_splits` (default
    `base_splits`) and, with `models.replay_base`, those splits join both fine-tunes. QA pairs
    are encoded in the prompt format of `protocol` (default `tofu`), which each built folder
    records. The cache key covers the data's content hash, the model source, every training
    recipe and the prompt format (`format_key`), so any change rebuilds and a repeated run
    reuses. The data part of the key: for a
    preset base (whose tokenizer is trained on every text of the folder) the whole folder's
    content; for a pretrained base, the records of the splits each model trains on, so that
    editing an evaluation-only split (real authors, world facts) keeps the built models. The
    recipe part leaves out execution-only fields (`recipe_key`).
    """
    # a given .gguf file or named model is converted (once) into this run's cache
    given = {
        k: v if v is None or v.lower() == "none" else resolve_model(v, cache_dir)
        for k, v in (("original", models.original), ("retain", models.retain))
    }
    if all(given.values()):  # the benchmark ships its models: nothing to build
        return {k: v for k, v in given.items() if v.lower() != "none"}
    preset = models.base in PRESETS
    protocol = resolve_protocol(protocol)
    base_splits = list(models.base_splits if models.base_splits is not None else base_splits)
    key_base = {
        "data": data_fingerprint(data) if preset else None,
        "model": models.base,
        "splits": base_splits,
        "train": recipe_key(models.base_train),
        "v": satimp.__version__,
    } | format_key(protocol)
    if preset:
        t0 = time.time()
        base = cached(
            cache_dir,
            key_base,
            lambda d: finetune(
                models.base,
                data,
                base_splits,
                models.base_train,
                d,
                checkpoints=False,
                protocol=protocol,
            ),
        )
        log(f"  base model      {base}  ({time.time() - t0:.1f}s)")
    else:
        base = resolve_model(models.base, cache_dir)
        if models.chat_template:  # the base under the run's prompt format, once
            text = chat_template_text(models.chat_template)
            src = base
            key = {"from": str(src), "chat_template": text, "v": satimp.__version__}
            base = str(cached(cache_dir, key, lambda d: retemplate(src, text, d)))
    paths = {"base": Path(base)}
    extra = base_splits if preset and models.replay_base else []
    for name, own, cfg in (
        ("original", original_splits, models.original_train),
        ("retain", retain_splits, models.retain_train),
    ):
        if given[name]:  # this one is given (or 'none'); build only the other
            if given[name].lower() != "none":
                paths[name] = given[name]
            continue
        t0 = time.time()
        splits = [*own, *extra]
        key = {
            "data": key_base["data"] if preset else splits_fingerprint(data, splits),
            # a converted GGUF: its cache folder, named by the file's content hash
            "from": key_base if preset else base,
            "splits": splits,
            "train": recipe_key(cfg),
            "v": satimp.__version__,
        } | format_key(protocol)
        paths[name] = cached(
            cache_dir,
            key,
            lambda d, s=splits, c=cfg: finetune(
                str(base), data, s, c, d, checkpoints=False, protocol=protocol
            ),
        )
        log(f"  {name:<15} {paths[name]}  ({time.time() - t0:.1f}s)")
    return paths


def splits_to_build(
    original_splits: list[str],
    retain_splits: list[str],
    models: ModelsConfig,
    *,
    base_splits: list[str] = ("world_facts", "real_authors"),
) -> list[str]:
    """Every split `build_models` fine-tunes on with the same arguments (none when the
    original and retain models are given), so they can be checked before anything is built."""
    given = {"original": models.original, "retain": models.retain}
    if all(given.values()):
        return []
    preset = models.base in PRESETS
    base = list(models.base_splits if models.base_splits is not None else base_splits)
    out = list(base) if preset else []
    for name, own in (("original", original_splits), ("retain", retain_splits)):
        if not given[name]:
            out += [*own, *(base if preset and models.replay_base else [])]
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------- unlearning


def unlearn(
    model_dir: str | Path,
    data: str | Path,
    forget: str | list[str],
    retain: str | list[str] | None,
    method: MethodConfig,
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    trust_remote_code: bool = False,
    eval_batch_size: int = 32,
    resume: bool = False,
    epoch_eval: Callable | None = None,
    min_chars: int = 1,
    protocol: Protocol | str | None = None,
) -> TrainResult:
    """Unlearn the `forget` split(s) from the model at `model_dir` with `method`; save under
    `out_dir`. QA splits (TOFU) and plain-text corpora (MUSE, WMDP: chunks of
    `cfg.max_length` tokens, labels on every token) both work; see `training_examples`.

    The protocol (default `tofu`) sets the method's defaults, the prompt's system message, the
    retain hold-out (`retainXX[400:]` under satimp-official) and the ES conventions of the
    per-epoch probe; config.yaml records the method as it runs (every default resolved).

    Checkpoints go to `out_dir/checkpoints/` as `cfg.checkpoints` says; `resume` checks that
    the config equals the interrupted run's and continues from the latest (NPO's reference
    log-probs and a KL/RMU reference are always taken from `model_dir`).

    After every epoch (`cfg.eval_every_epoch`) `epoch_eval(model, tokenizer, epoch) -> dict`
    goes into metrics.jsonl beside the per-step losses and weight statistics; by default the
    forget and retain extraction strength (`evaluation.probes.data_probe`).
    """
    cfg.validate()
    protocol = resolve_protocol(protocol)
    objective = Objective(method, seed=cfg.seed, protocol=protocol)
    if objective.uses_retain and not retain:
        raise InputError(f"method {method.name!r} needs a retain split")
    if retain:
        refs = [retain] if isinstance(retain, str) else retain
        retain = [retain_training_ref(protocol, r) for r in refs]
    config = {
        "model": str(model_dir),
        "data": str(data),
        "forget": forget,
        "retain": retain,
        "method": objective.resolved(),
        "method_config": to_dict(method),
        "protocol": protocol_dict(protocol),
        "train": train_record(cfg),
    }
    if resume:
        check_resume(out_dir, config)
    model, tokenizer = load_model(model_dir, trust_remote_code=trust_remote_code)
    if cfg.lora.r:
        model = add_lora(model, cfg.lora)
    # NPO's reference pass and the KL/RMU copy run where training runs
    model.to(_device(cfg.device))
    pad = tokenizer.pad_token_id
    forget_splits = load_splits(data, forget, min_chars=min_chars)
    retain_splits = load_splits(data, retain, min_chars=min_chars) if objective.uses_retain else []
    system = protocol.system_prompt
    forget_ex = encode_loaded(tokenizer, forget_splits, max_length=cfg.max_length, system=system)
    retain_ex = (
        encode_loaded(tokenizer, retain_splits, max_length=cfg.max_length, system=system)
        if objective.uses_retain
        else None
    )
    objective.prepare(
        model, forget_ex, pad_id=pad, batch_size=eval_batch_size
    )  # checks rmu's layer
    if cfg.eval_every_epoch and epoch_eval is None:
        epoch_eval = data_probe(
            tokenizer,
            data,
            forget_splits,
            forget_ex,
            retain_splits or load_splits(data, retain, min_chars=min_chars),
            max_length=cfg.max_length,
            batch_size=eval_batch_size,
            protocol=protocol,
        )
    # every input is read and checked above: only now is anything written
    out = start_run(out_dir, config)
    result = train(
        model,
        objective,
        forget_ex,
        cfg,
        pad_id=pad,
        retain=retain_ex,
        params=objective.trainable(model),
        out_dir=out,
        on_epoch_end=(lambda m, e: epoch_eval(m, tokenizer, e)) if cfg.eval_every_epoch else None,
        desc=f"unlearn {method.name}",
        checkpoints=True,
        resume=resume,
    )
    model.requires_grad_(True)
    if D.is_main():
        save_model(model, tokenizer, out, lora_save=cfg.lora.save, state_dict=result.state_dict)
        save_format(out, protocol)
    return result


def _device(device: str = "auto") -> torch.device:
    return D.state(device).device


# ---------------------------------------------------------------- evaluating a saved model


def check_prompt_format(model_src: str | Path, bench: Benchmark, *, strict: bool) -> None:
    """Warn on stderr, in one line naming both protocols, when the model folder's satimp.json
    records another prompt format than the one `bench` evaluates under (a model scored on a
    prompt it never saw); with `strict`, stop with that line instead (InputError, exit 2).
    Nothing to check for a folder without a record (a hub model) or a plain-text benchmark."""
    record = read_format(model_src) if bench.prompted else None
    message = format_mismatch(record, bench.protocol) if record else None
    if message is None:
        return
    if strict:
        raise InputError(f"{model_src}: {message} (--strict-format)")
    print(f"satimp: warning: {model_src}: {message}", file=sys.stderr)


OUTPUT_FORMATS = ("satimp", "open-unlearning")  # eval's files: satimp's, or open-unlearning's too


def evaluate_saved(
    model_src: str,
    data: str | Path,
    bench: Benchmark,
    out_dir: str | Path,
    *,
    retain_model: str | None = None,
    retain_stats: str | Path | None = None,
    lm_eval_tasks: list[str] | None = None,
    batch_size: int = 32,
    generation_batch_size: int | None = None,
    es_mode: str = "forward",
    precision: str = "fp32",
    overwrite: bool = False,
    trust_remote_code: bool = False,
    generations: bool = True,
    strict_format: bool = False,
    output_format: str = "satimp",
) -> dict:
    """`satimp eval`: evaluate the saved model `model_src` on `bench` and write summary.json and
    per_sample.json (and retain_stats.json, lm_eval.json, TOFU's worst_items.md) under
    `out_dir`; returns the summary. `generations` off leaves the generated answers out of
    per_sample.json. `output_format` 'open-unlearning' (TOFU) also writes its evaluator's
    TOFU_EVAL.json and TOFU_SUMMARY.json (`evaluation.open_unlearning`).

    The metrics relative to the retain model come from `retain_model` (evaluated here, its
    statistics saved) or from a `retain_stats` file. `lm_eval_tasks` (None: none) run
    lm-evaluation-harness on the same model. Every input is checked before a model loads, and
    the files are written together at the end: a failure on the way leaves no partial folder.
    """
    if retain_model and retain_stats:
        raise InputError("give --retain-model or --retain-stats, not both")
    if output_format not in OUTPUT_FORMATS:
        raise InputError(f"--format {output_format!r}; valid: {', '.join(OUTPUT_FORMATS)}")
    if output_format == "open-unlearning" and bench.name != "tofu":
        raise InputError(
            f"--format open-unlearning writes TOFU's logs; benchmark {bench.name!r} has none yet"
        )
    for src in filter(None, (model_src, retain_model)):
        check_prompt_format(src, bench, strict=strict_format)
    # the extra and every task are checked now (exit 2), not after the work
    harness_tasks = resolve_tasks(lm_eval_tasks) if lm_eval_tasks is not None else None
    out = check_out(Path(out_dir), overwrite)
    stats = load_retain_stats(retain_stats, bench) if retain_stats else None
    bench.check_data(data)  # every record the evaluation reads, before the models load
    model, tokenizer = load_model(model_src, trust_remote_code=trust_remote_code)
    kw = dict(batch_size=batch_size, generation_batch_size=generation_batch_size)
    files = {}
    if retain_model:
        rmodel, rtok = load_model(retain_model, trust_remote_code=trust_remote_code)
        with eval_precision(rmodel, precision):
            rsummary, rper = bench.evaluate(rmodel, rtok, data, rouge=False, **kw)
        stats = bench.retain_stats(rsummary, rper)
        files["retain_stats.json"] = lambda p: save_retain_stats(
            p, bench, stats, model=retain_model
        )
    t0 = time.time()
    with eval_precision(model, precision):
        summary, per_sample = bench.evaluate(
            model, tokenizer, data, es_mode=es_mode, generations=generations, **kw
        )
    summary = bench.apply_stats(summary, per_sample, stats)
    print(format_summary(summary))
    print(f"protocol {bench.protocol.name}")
    print(f"evaluated in {time.time() - t0:.1f}s → {out}/summary.json")
    files["per_sample.json"] = lambda p: write_json(p, per_sample)
    tables = bench.worst_items(per_sample, data)
    if tables:
        page = worst_items_markdown(tables, title=f"Worst items: {model_src}")
        files["worst_items.md"] = lambda p: write_atomic(p, page)
    files["summary.json"] = lambda p: write_json(
        p, summary | {"protocol": protocol_dict(bench.protocol)}
    )
    if output_format == "open-unlearning":
        answers = {
            split: [r["answer"] for r in load_split(data, split)[: len(items.get("es", []))]]
            for split, items in per_sample.items()
            if "rouge" in items
        }
        logs = tofu_eval_logs(summary, per_sample, bench.forget, answers)
        files["TOFU_EVAL.json"] = lambda p: write_json(p, logs)
        files["TOFU_SUMMARY.json"] = lambda p: write_json(p, tofu_summary(logs))
    if harness_tasks is not None:
        results, samples = run_lm_eval(
            resolve_model(model_src),  # a .gguf or named model: its converted folder
            harness_tasks,
            batch_size=batch_size,
            trust_remote_code=trust_remote_code,
        )
        for task, metrics in results.items():
            print(f"lm-eval {task:<20} acc {metrics.get('acc,none', float('nan')):.4f}")
        files["lm_eval.json"] = lambda p: write_json(p, results)
        files["lm_eval_per_sample.json"] = lambda p: write_json(p, samples)
    for name, write in files.items():
        write(out / name)
    return summary
