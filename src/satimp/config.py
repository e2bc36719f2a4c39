"""Typed configuration: dataclasses with defaults and help texts, read from YAML and `a.b=value`.

Every field has a default and a `help` in its metadata. Unknown keys are rejected with the list
of valid ones, and values are converted to the field's type, so a typo never passes silently.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from satimp.errors import InputError

T = TypeVar("T")


def opt(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field with a default and a help text (mutable defaults are copied)."""
    if isinstance(default, (dict, list)) or dataclasses.is_dataclass(default):
        return field(
            default_factory=lambda d=default: copy.deepcopy(d), metadata={"help": help, **kw}
        )
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class LoraConfig:
    """LoRA adapters through `peft` (Hu et al., 2021): only the adapters train."""

    r: int = opt(0, "adapter rank (0: off, the whole model trains)")
    alpha: float = opt(16.0, "adapter scaling numerator (update = alpha/r · B A)")
    dropout: float = opt(0.0, "dropout on the adapter input")
    targets: list = opt(["q_proj", "k_proj", "v_proj", "o_proj"], "module names that get adapters")
    save: str = opt(
        "merged", "'merged' (adapters folded into the weights) or 'adapter' (only them)"
    )

    def validate(self) -> None:
        if self.r < 0 or self.alpha <= 0 or not 0 <= self.dropout < 1 or not self.targets:
            raise InputError(
                f"lora: r={self.r} must be ≥ 0, alpha={self.alpha} > 0, dropout={self.dropout} "
                f"in [0, 1), targets={self.targets} non-empty"
            )
        if self.save not in ("merged", "adapter"):
            raise InputError(f"lora.save={self.save!r}; valid: merged, adapter")


# --report-to: tracker → (the package it needs, its install command)
TRACKERS: dict[str, tuple[str, str] | None] = {
    "none": None,
    "tensorboard": ("tensorboard", "pip install tensorboard (or 'satimp[tensorboard]')"),
    "wandb": ("wandb", "pip install wandb (or 'satimp[wandb]')"),
}


def check_tracker(name: str) -> None:
    """InputError for an unknown tracker, or one whose package is not installed."""
    import importlib.util

    if name not in TRACKERS:
        raise InputError(f"train.report_to={name!r}; valid: {', '.join(TRACKERS)}")
    need = TRACKERS[name]
    if need is not None and importlib.util.find_spec(need[0]) is None:
        raise InputError(f"--report-to {name} needs the {need[0]} package: {need[1]}")


@dataclass
class TrainConfig:
    """The optimisation recipe shared by fine-tuning and unlearning (SPEC §3)."""

    epochs: int = opt(5, "passes over the (forget) data")
    lr: float = opt(1e-5, "peak learning rate (AdamW)")
    batch_size: int = opt(16, "examples per optimizer step (global batch)")
    grad_accum: int = opt(1, "micro-batches per optimizer step; batch_size must divide by it")
    weight_decay: float = opt(0.0, "AdamW weight decay")
    warmup_epochs: float = opt(1.0, "linear warm-up length in epochs (SPEC §3: the first epoch)")
    warmup_steps: int | None = opt(None, "warm-up length in optimizer steps (overrides epochs)")
    max_steps: int = opt(0, "stop after this many optimizer steps (0: `epochs` decides; WMDP: 125)")
    schedule: str = opt("linear", "after warm-up: 'linear' decay to 0 or 'constant'")
    max_grad_norm: float = opt(1.0, "gradient-norm clip (0 = off)")
    seed: int = opt(0, "seed for initialisation, data order and random criteria")
    precision: str = opt(
        "fp32",
        "'fp32', 'bf16' (mixed precision: bf16 autocast, fp32 weights) or 'auto' (bf16 where "
        "its products are fast: a CUDA device with bf16, a CPU with AMX or AVX-512 BF16; fp32 "
        "elsewhere)",
    )
    gradient_checkpointing: bool = opt(False, "recompute activations in backward (less memory)")
    compile: str = opt(
        "none",
        "torch.compile the model for the training steps: 'none' or a backend ('inductor' fuses "
        "the elementwise work: 1.6x the medium preset's bf16 steps on an H200; compiles again when "
        "batch shapes change, minutes on a CPU); evaluation between epochs and after runs eager",
    )
    lora: LoraConfig = opt(LoraConfig(), "LoRA adapters (lora.r > 0 turns them on)")
    retain_pairing: str = opt(
        "random",
        "unlearning with a retain term: 'random' (each step's retain rows are the random "
        "partners of its forget rows, as TOFU pairs them) or 'length' (the epoch's same random "
        "partners, dealt to the steps by length: less padding, faster)",
    )
    max_length: int = opt(512, "truncate encoded examples to this many tokens")
    log_every: int = opt(1, "write a metrics.jsonl line every N optimizer steps")
    eval_every_epoch: bool = opt(True, "unlearning: log forget/retain ES after every epoch")
    save_every: int = opt(0, "deprecated spelling of checkpoints=N (0: unset)")
    keep_checkpoints: int = opt(2, "how many of the newest checkpoints to keep")
    report_to: str = opt(
        "none",
        "experiment tracker for the per-step and per-epoch metrics: none, tensorboard or wandb "
        "(logs in the run's output folder; wandb offline with WANDB_MODE=offline)",
    )
    checkpoints: str = opt(
        "epoch",
        "resumable checkpoints (weights, optimizer, loop state): 'none', 'epoch' (at every "
        "epoch end) or N (every N optimizer steps and at every epoch end)",
    )
    device: str = opt("auto", "where training runs: 'auto' (CUDA when available), 'cpu', 'cuda'")
    deterministic: bool = opt(
        False,
        "deterministic algorithms only (torch.use_deterministic_algorithms, process-wide; "
        "CUBLAS_WORKSPACE_CONFIG on CUDA): bit-identical reruns, slower on a GPU",
    )

    def validate(self, section: str = "train") -> None:
        """Raise InputError naming the first bad field as `section.field` (`unlearn.lr` in a
        RunConfig, `train.lr` in a command's config)."""
        check_tracker(self.report_to)
        checks = {
            "epochs": self.epochs > 0,
            "lr": self.lr > 0,
            "batch_size": self.batch_size >= 1,
            "grad_accum": self.grad_accum >= 1 and self.batch_size % self.grad_accum == 0,
            "weight_decay": self.weight_decay >= 0,
            "warmup_epochs": self.warmup_epochs >= 0,
            "warmup_steps": self.warmup_steps is None or self.warmup_steps >= 0,
            "max_steps": self.max_steps >= 0,
            "schedule": self.schedule in ("linear", "constant"),
            "max_grad_norm": self.max_grad_norm >= 0,
            "precision": self.precision in ("fp32", "bf16", "auto"),
            "retain_pairing": self.retain_pairing in ("random", "length"),
            "max_length": self.max_length >= 8,
            "log_every": self.log_every >= 1,
            "save_every": self.save_every >= 0,
            "keep_checkpoints": self.keep_checkpoints >= 1,
            "checkpoints": str(self.checkpoints) in ("none", "epoch")
            or (str(self.checkpoints).isdigit() and int(self.checkpoints) > 0),
            "device": self.device in ("auto", "cpu", "cuda"),
            "compile": self.compile == "none" or self.compile in _compile_backends(),
        }
        self.lora.validate()
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            k = bad[0]
            raise InputError(
                f"{section}.{k}={getattr(self, k)!r} is out of range ({_help(self, k)})"
            )
        if self.save_every and str(self.checkpoints) not in ("epoch", str(self.save_every)):
            raise InputError(
                f"{section}.save_every={self.save_every} (deprecated: checkpoints=N) conflicts "
                f"with {section}.checkpoints={self.checkpoints!r}; give only checkpoints"
            )
        if self.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise InputError(f"{section}.device='cuda' but torch sees no CUDA device here")

    def checkpoint_every(self) -> int:
        """Optimizer steps between periodic checkpoints (0: none between epoch ends)."""
        if str(self.checkpoints).isdigit():  # N, or an int given from Python
            return int(self.checkpoints)
        return self.save_every if self.checkpoints == "epoch" else 0

    def checkpoint_epochs(self) -> bool:
        """Whether a checkpoint is written at every epoch end ('epoch' and N; not 'none')."""
        return self.checkpoints != "none"


@dataclass
class MethodConfig:
    """Which unlearning objective, and its hyperparameters (SPEC §1–§2)."""

    name: str = opt("satimp", "unlearning method: a key of satimp.objectives.METHODS")
    gamma: float | None = opt(None, "forget-loss coefficient (None = the method's default)")
    alpha: float | None = opt(None, "retain-loss coefficient (None = the method's default)")
    retain: str | None = opt(None, "retain loss: 'none', 'nll' or 'kl' (None = method default)")
    params: dict = opt({}, "criterion/objective hyperparameters, e.g. {beta1: 5, beta2: 0.1}")
    granularity: str = opt("token", "weight granularity: token, group, instance or batch")
    group_size: int = opt(4, "tokens per group when granularity=group")
    tau: float | None = opt(None, "softmax smoothing temperature of the weights (None = off)")
    normalize: str = opt("tokens", "token-weighted loss divides by 'tokens' (N) or 'weights' (Σw)")


@dataclass
class ModelsConfig:
    """How the benchmark's base, original and retain models are built (TOFU's recipe)."""

    base: str = opt(
        "small",
        "a preset (trained from scratch), a model dir / hub id, a .gguf file or a named model "
        "(smollm2-135m; converted once into the cache)",
    )
    original: str | None = opt(
        None,
        "a ready original model (dir / hub id / .gguf / name, e.g. MUSE's target model): "
        "nothing is built",
    )
    retain: str | None = opt(
        None, "a ready retain model (MUSE's retrain model); 'none': no retain model (WMDP)"
    )
    base_splits: list | None = opt(
        None,
        "pre-training splits for a preset base (general knowledge; None: the benchmark's, "
        "TOFU world_facts + real_authors)",
    )
    chat_template: str | None = opt(
        None,
        "a pretrained base's chat template for every model built from it: a name of "
        "satimp.models.CHAT_TEMPLATES (chatml: ChatML without a default system prompt) or "
        "Jinja text; None: the model's own",
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


def _compile_backends() -> list[str]:
    """torch.compile's backends, the debugging ones ('eager', 'aot_eager') included."""
    import torch

    return torch.compiler.list_backends(exclude_tags=())


def _help(obj: Any, name: str) -> str:
    return next(f.metadata.get("help", "") for f in dataclasses.fields(obj) if f.name == name)


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML/CLI value to the annotated type `tp`, or raise InputError naming `where`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        # the word 'none' is a value of some string fields (`method.retain: none`: no retain
        # loss; `models.retain: none`: no retain model), so only YAML's null means None there
        words = ("none", "null") if args[0] is not str else ()
        if value is None or (isinstance(value, str) and value.lower() in words):
            return None
        return _convert(value, args[0], where)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, str) and "name" in {f.name for f in dataclasses.fields(tp)}:
            value = {"name": value}  # `protocol: tofu` is short for `protocol: {name: tofu}`
        return from_dict(tp, value, prefix=where + ".")
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise InputError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is list or origin is list:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where}: expected a list, got {value!r}")
        return list(value)
    try:
        if value is None:  # only Optional fields take None (handled above)
            raise ValueError(value)
        if tp is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            if value not in (0, 1):  # True, False, 0, 1 only: `2` is a typo, not True
                raise ValueError(value)
            return bool(value)
        if tp in (int, float) and isinstance(value, bool):  # `epochs: true` is not 1
            raise ValueError(value)
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return tp(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: cannot read {value!r} as {tp.__name__}") from None


def from_dict(cls: type[T], data: dict | None, *, prefix: str = "") -> T:
    """Build dataclass `cls` from a nested dict; unknown keys raise InputError with valid keys."""
    data = data or {}
    if not isinstance(data, dict):
        raise InputError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InputError(
            f"unknown config key {prefix}{unknown[0]!s}; valid keys under "
            f"{prefix.rstrip('.') or 'the top level'}: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for k, v in data.items():
        factory = fields[k].default_factory
        if (
            dataclasses.is_dataclass(hints[k])
            and isinstance(v, dict)
            and factory is not dataclasses.MISSING
        ):
            # A partial mapping overrides the field's own default, not the type's defaults.
            v = merge(dataclasses.asdict(factory()), v)
        kwargs[k] = _convert(v, hints[k], prefix + k)
    return cls(**kwargs)


def parse_overrides(items: list[str]) -> dict:
    """Turn `a.b=value` strings into a nested dict; values are parsed as YAML scalars."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        node = out
        *parents, leaf = key.strip().split(".")
        for p in parents:
            if isinstance(node.get(p), str):  # `protocol=NAME protocol.switch=value`
                node[p] = {"name": node[p]}
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise InputError(f"override {item!r} conflicts with an earlier one")
        node[leaf] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def merge(base: dict, extra: dict) -> dict:
    """Recursive dict merge: `extra` wins; nested mappings are merged, not replaced."""
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), str) and "name" not in v:
            out[k] = {"name": out[k]}  # `protocol: NAME` then `protocol.switch=value`
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, with InputError on a missing file or a YAML error."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:  # one line for the CLI: file:line and the problem
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        reason = getattr(e, "problem", None) or " ".join(str(e).split())
        raise InputError(f"{where}: not valid YAML ({reason})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: the top level must be a mapping")
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] = ()) -> T:
    """YAML file (optional) + `a.b=value` overrides → a validated `cls` instance."""
    data = read_yaml(path) if path else {}
    data = merge(data, parse_overrides(list(overrides)))
    cfg = from_dict(cls, data)
    if hasattr(cfg, "validate"):
        cfg.validate()
    return cfg


def to_dict(cfg: Any) -> dict:
    """A dataclass config as plain, YAML-safe data."""
    return dataclasses.asdict(cfg)
