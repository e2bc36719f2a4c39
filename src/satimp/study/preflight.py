"""Checks before a command writes anything: every input it will read — model sources, and
every record of every split — is read and validated first, so that bad input stops the
command with one message (exit 2) and leaves no half-made output folder behind.
"""

from __future__ import annotations

from pathlib import Path

from satimp.benchmarks import Benchmark
from satimp.config import ModelsConfig
from satimp.data.examples import load_splits
from satimp.data.records import benchmark_texts
from satimp.errors import InputError
from satimp.experiment import splits_to_build
from satimp.models import PRESETS, gguf_source
from satimp.objectives import Objective

MODEL_FILES = ("config.json", "adapter_config.json")  # a full model, or LoRA adapters


def check_inputs(cfg, bench: Benchmark, data) -> None:
    """Read and check everything `run` / `study` will read (`cfg`: a RunConfig, `bench`: its benchmark),
    before it builds or writes anything: the model sources; every record of the splits the
    models are built from (and the tokenizer corpus of a preset), of the forget and retain
    splits, and of every split the evaluation and the per-epoch evaluation read. Raises
    InputError naming the file, record and field."""
    _check_model_sources(cfg.models)
    original, retain = bench.train_splits()
    built = splits_to_build(original, retain, cfg.models, base_splits=bench.base_splits)
    if built and cfg.models.base in PRESETS:
        benchmark_texts(data)  # a preset trains its tokenizer on every split file
    load_splits(data, built)
    forget, retain = bench.unlearn_splits()
    load_splits(data, forget, min_chars=bench.min_chars)
    protocol = cfg.resolved_protocol()
    uses_retain = any(Objective(m, protocol=protocol).uses_retain for _, m in cfg.variants())
    if uses_retain or cfg.unlearn.eval_every_epoch:  # the default epoch probe reads it too
        load_splits(data, retain, min_chars=bench.min_chars)
    bench.check_data(data)


def _check_model_sources(models: ModelsConfig) -> None:
    """A model source is a preset, a local model folder or a hub id (not checked offline)."""
    given = models.original and models.retain  # then the base is not used
    for key in ("original", "retain") if given else ("base", "original", "retain"):
        src = getattr(models, key)
        if src is None or src in PRESETS or src.lower() == "none" or gguf_source(src):
            continue  # a .gguf file or named model: gguf_source checked it
        path = Path(src)
        if path.is_dir() and not any((path / f).is_file() for f in MODEL_FILES):
            raise InputError(f"models.{key}: {src} is not a model directory (no config.json)")
        if not path.exists() and "/" not in src:
            raise InputError(
                f"models.{key}={src!r}: no such model directory, not a preset "
                f"({', '.join(PRESETS)}) and not a hub id"
            )
