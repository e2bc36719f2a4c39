"""Pipelines: fine-tune a model, build TOFU's base/original/retain models (cached), unlearn.

Every run folder holds the resolved `config.yaml`, `run_info.json` (versions, git revision),
the per-step `metrics.jsonl` and the saved model (safetensors + tokenizer).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

import satimp
from satimp.config import MethodConfig, TrainConfig, opt, to_dict
from satimp.data.encoding import Encoded, encode_qa
from satimp.data.tofu import EXTENSIONS, load_split
from satimp.errors import InputError
from satimp.models import PRESETS, build_model, get_preset, load_model, save_model, train_tokenizer
from satimp.objectives import Objective, finetune_objective
from satimp.train import TrainResult, train

# ---------------------------------------------------------------- run folders


def write_atomic(path: str | Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename: never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: str | Path, data) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def git_revision() -> str | None:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_info() -> dict:
    """Versions and revision recorded in every run folder."""
    import accelerate
    import transformers

    return {
        "satimp": satimp.__version__,
        "git": git_revision(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "threads": torch.get_num_threads(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def start_run(out_dir: str | Path, config: dict) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    write_json(out / "run_info.json", run_info())
    return out


# ---------------------------------------------------------------- data


def encode_records(tokenizer, records: list[dict], *, max_length: int) -> list[Encoded]:
    """Encode QA records (key-fact masks included when the records carry `keywords`)."""
    return [
        encode_qa(
            tokenizer, r["question"], r["answer"], max_length=max_length, keywords=r.get("keywords")
        )
        for r in records
    ]


def benchmark_texts(data: str | Path) -> list[str]:
    """Every question and answer string of a local benchmark (tokenizer training corpus)."""
    root = Path(data)
    if not root.is_dir():
        raise InputError(f"{data}: training a tokenizer needs a local benchmark directory")
    texts = []
    splits = sorted({p.stem for p in root.iterdir() if p.suffix in EXTENSIONS})
    for split in splits:
        for r in load_split(root, split):
            texts += [r["question"], r["answer"], r.get("paraphrased_answer", "")]
            texts += list(r.get("perturbed_answer", []))
    return [t for t in texts if t]


def data_fingerprint(data: str | Path) -> str:
    """Hash of a local benchmark's files (or of the hub id), for cache keys."""
    root = Path(data)
    h = hashlib.sha256()
    if root.is_dir():
        for path in sorted(root.iterdir()):
            if path.is_file():
                h.update(path.name.encode() + b"\0" + path.read_bytes())
    else:
        h.update(str(data).encode())
    return h.hexdigest()


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
) -> TrainResult:
    """Fine-tune `model_src` (a preset name, local dir or hub id) on `splits` of `data`.

    A preset builds a fresh tiny Llama with a tokenizer trained on the benchmark's text.
    Saves model + tokenizer, config.yaml, run_info.json and metrics.jsonl under `out_dir`.
    """
    cfg.validate()
    records = [r for s in splits for r in load_split(data, s)]
    if model_src in PRESETS:
        preset = get_preset(model_src)
        tokenizer = train_tokenizer(benchmark_texts(data), preset.vocab_size)
        model = build_model(preset, tokenizer, seed=cfg.seed)
    else:
        model, tokenizer = load_model(model_src, trust_remote_code=trust_remote_code)
    # every input is read and checked above: only now is anything written
    out = start_run(
        out_dir, {"model": model_src, "data": str(data), "splits": splits, "train": to_dict(cfg)}
    )
    examples = encode_records(tokenizer, records, max_length=cfg.max_length)
    result = train(
        model,
        finetune_objective,
        examples,
        cfg,
        pad_id=tokenizer.pad_token_id,
        out_dir=out,
        desc=f"finetune {'+'.join(splits)}",
        checkpoints=checkpoints,
        resume=resume,
    )
    save_model(model, tokenizer, out)
    return result


def cached(cache_root: str | Path, key: dict, build) -> Path:
    """Return cache_root/<hash of key>, building it with `build(tmp_dir)` on a miss.

    The build writes into a temporary folder renamed into place when complete, so an
    interrupted build is never mistaken for a cached model.
    """
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    final = Path(cache_root) / digest
    if (final / "config.json").is_file():
        return final
    tmp = final.with_name(f"{digest}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    build(tmp)
    write_json(tmp / "cache_key.json", key)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


@dataclass
class ModelsConfig:
    """How the benchmark's base, original and retain models are built (TOFU's recipe)."""

    base: str = opt("small", "a preset (trained from scratch) or a model dir / hub id")
    base_splits: list = opt(
        ["world_facts", "real_authors"], "pre-training splits for a preset base (general knowledge)"
    )
    replay_base: bool = opt(
        True,
        "preset base: mix base_splits into the original and retain "
        "fine-tuning, so general knowledge stays as in a large model",
    )
    base_train: TrainConfig = opt(
        TrainConfig(epochs=40, lr=1e-3, batch_size=8, warmup_epochs=2, eval_every_epoch=False),
        "recipe for pre-training a preset base",
    )
    original_train: TrainConfig = opt(
        TrainConfig(epochs=20, lr=1e-3, batch_size=16, warmup_epochs=1, eval_every_epoch=False),
        "recipe for base → original (fine-tune on `full`)",
    )
    retain_train: TrainConfig = opt(
        TrainConfig(epochs=20, lr=1e-3, batch_size=16, warmup_epochs=1, eval_every_epoch=False),
        "recipe for base → retain (fine-tune on retainXX)",
    )


def build_models(
    data: str | Path, forget: str, models: ModelsConfig, cache_dir: str | Path, *, log=print
) -> dict[str, Path]:
    """base → original (on `full`) and base → retain (on the retain split of `forget`), cached.

    The cache key covers the data's content hash, the model source and every training
    recipe, so any change rebuilds and a repeated run reuses.
    """
    fp = data_fingerprint(data)
    retain_split = retain_split_for(forget)
    key_base = {
        "data": fp,
        "model": models.base,
        "splits": models.base_splits,
        "train": to_dict(models.base_train),
        "v": satimp.__version__,
    }
    if models.base in PRESETS:
        t0 = time.time()
        base = cached(
            cache_dir,
            key_base,
            lambda d: finetune(
                models.base, data, models.base_splits, models.base_train, d, checkpoints=False
            ),
        )
        log(f"  base model      {base}  ({time.time() - t0:.1f}s)")
    else:
        base = models.base
    paths = {"base": Path(base)}
    extra = list(models.base_splits) if models.base in PRESETS and models.replay_base else []
    for name, split, cfg in (
        ("original", "full", models.original_train),
        ("retain", retain_split, models.retain_train),
    ):
        t0 = time.time()
        splits = [split, *extra]
        key = {
            "data": fp,
            "from": key_base if models.base in PRESETS else models.base,
            "splits": splits,
            "train": to_dict(cfg),
            "v": satimp.__version__,
        }
        paths[name] = cached(
            cache_dir,
            key,
            lambda d, s=splits, c=cfg: finetune(str(base), data, s, c, d, checkpoints=False),
        )
        log(f"  {name:<15} {paths[name]}  ({time.time() - t0:.1f}s)")
    return paths


def retain_split_for(forget: str) -> str:
    """forget01 → retain99, forget05 → retain95, forget10 → retain90 (TOFU's pairs)."""
    if not (forget.startswith("forget") and forget[6:].isdigit()):
        raise InputError(f"forget split {forget!r} is not of the form forgetXX")
    return f"retain{100 - int(forget[6:])}"


# ---------------------------------------------------------------- unlearning


def unlearn(
    model_dir: str | Path,
    data: str | Path,
    forget_split: str,
    retain_split: str,
    method: MethodConfig,
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    trust_remote_code: bool = False,
    eval_batch_size: int = 32,
    resume: bool = False,
) -> TrainResult:
    """Unlearn `forget_split` from the model at `model_dir` with `method`; save under `out_dir`.

    Checkpoints go to `out_dir/checkpoints/`; `resume` continues from the latest (NPO's
    reference log-probs and a KL/RMU reference are always taken from `model_dir`).

    After every epoch the forget and retain extraction strength (one forward pass each) go
    into metrics.jsonl beside the per-step losses and weight statistics.
    """
    from satimp.evaluate import extraction_scores

    cfg.validate()
    objective = Objective(method, seed=cfg.seed)
    forget_records = load_split(data, forget_split)
    retain_records = load_split(data, retain_split) if objective.uses_retain else None
    model, tokenizer = load_model(model_dir, trust_remote_code=trust_remote_code)
    pad = tokenizer.pad_token_id
    forget = encode_records(tokenizer, forget_records, max_length=cfg.max_length)
    retain = (
        encode_records(tokenizer, retain_records, max_length=cfg.max_length)
        if retain_records
        else None
    )
    objective.prepare(model, forget, pad_id=pad, batch_size=eval_batch_size)  # checks rmu's layer
    es_retain = _es_retain_examples(tokenizer, data, cfg.max_length) if cfg.eval_every_epoch else []
    # every input is read and checked above: only now is anything written
    out = start_run(
        out_dir,
        {
            "model": str(model_dir),
            "data": str(data),
            "forget": forget_split,
            "retain": retain_split,
            "method": to_dict(method),
            "resolved_params": objective.params,
            "train": to_dict(cfg),
        },
    )
    on_epoch_end = None
    if cfg.eval_every_epoch:

        def on_epoch_end(m, epoch):
            row = {}
            for name, examples in (("forget", forget), ("retain", es_retain)):
                if examples:  # a benchmark without retain_perturbed logs forget ES only
                    s = extraction_scores(m, examples, pad_id=pad, batch_size=eval_batch_size)
                    row |= {
                        f"{name}_es": s["es"].mean().item(),
                        f"{name}_em": s["em"].mean().item(),
                    }
            return row

    result = train(
        model,
        objective,
        forget,
        cfg,
        pad_id=pad,
        retain=retain,
        params=objective.trainable(model),
        out_dir=out,
        on_epoch_end=on_epoch_end,
        desc=f"unlearn {method.name}",
        checkpoints=True,
        resume=resume,
    )
    model.requires_grad_(True)
    save_model(model, tokenizer, out)
    return result


def _es_retain_examples(tokenizer, data, max_length: int) -> list[Encoded]:
    """Retain items for ES: `retain_perturbed` (official practice); none when the split is absent."""
    root = Path(data)
    if root.is_dir() and not any((root / f"retain_perturbed{e}").is_file() for e in EXTENSIONS):
        return []
    return encode_records(tokenizer, load_split(data, "retain_perturbed"), max_length=max_length)
