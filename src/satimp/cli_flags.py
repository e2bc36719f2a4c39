"""The `satimp` command's flag tables and help texts, and the functions that add the larger
flag groups to the parser in `satimp.cli`: which flag sets which config field, with which type
and help."""

from __future__ import annotations

import argparse
import dataclasses

from satimp.config import TrainConfig
from satimp.evaluation.attacks import AttackConfig
from satimp.models import SCRATCH_RECIPES

TRAIN_FLAGS = {  # flag → (TrainConfig field, type)
    "--epochs": ("epochs", int),
    "--lr": ("lr", float),
    "--batch-size": ("batch_size", int),
    "--grad-accum": ("grad_accum", int),
    "--seed": ("seed", int),
    "--weight-decay": ("weight_decay", float),
    "--warmup-epochs": ("warmup_epochs", float),
    "--schedule": ("schedule", str),
    "--max-grad-norm": ("max_grad_norm", float),
    "--precision": ("precision", str),
    "--save-every": ("save_every", int),
    "--max-length": ("max_length", int),
    "--report-to": ("report_to", str),  # none, tensorboard or wandb
    "--checkpoints": ("checkpoints", str),
    "--device": ("device", str),
    "--retain-pairing": ("retain_pairing", str),
    "--compile": ("compile", str),
}
# What costs time or disk is the user's choice; the defaults suit each command. A lone
# `unlearn` is short (5 epochs) and on a 7B model each checkpoint is ~40 GB with the optimizer
# state, so it writes none and skips the per-epoch probe (+75 % wall on a small run) unless
# asked; `finetune` runs long, so it keeps a checkpoint per epoch. `run`/`study` take theirs
# from the config's `unlearn:` (TrainConfig: per-epoch evaluation for the curves, a
# checkpoint per epoch for `run --resume`).
COMMAND_DEFAULTS = {
    "finetune": {"checkpoints": "epoch", "eval_every_epoch": False},
    "unlearn": {"checkpoints": "none", "eval_every_epoch": False},
}
RESUME_HELP = (
    "continue from OUT/checkpoints (needs --checkpoints epoch or N; the config must equal the "
    "interrupted run's)"
)
FLAG_HELP = {
    "--checkpoints": "resumable checkpoints: none, epoch (every epoch end) or N (every N "
    "optimizer steps and every epoch end); default here: {checkpoints}",
    "--device": "auto (CUDA when available; the default), cpu or cuda",
    "--save-every": "deprecated: same as --checkpoints N",
    "--report-to": "experiment tracker: none (default), tensorboard or wandb",
    "--retain-pairing": "random (default: each forget row's random retain partner) or length "
    "(the same random partners, dealt to the steps by length: less padding)",
    "--compile": "torch.compile the training steps: none (default) or a backend, e.g. inductor "
    "(faster fixed-shape steps on a GPU; compiles again when batch shapes change)",
    "--precision": "fp32 (default), bf16 (bf16 autocast, fp32 weights) or auto (bf16 on a CUDA "
    "device with bf16 or a CPU with bf16 units: AMX or AVX-512 BF16; else fp32)",
}
PROTOCOL_HELP = (
    "whose conventions: tofu (default), open-unlearning or satimp-official (SPEC §6); set one "
    "switch with protocol.NAME=VALUE"
)
FORMAT_PROTOCOL_HELP = (
    "the prompt format to train in (its system prompt; the model folder's satimp.json records "
    "it, and `satimp eval` under another format warns): tofu (default), open-unlearning or "
    "satimp-official; set one switch with protocol.NAME=VALUE"
)
MODEL_HELP = (
    "model dir, hub id, .gguf file or named model (smollm2-135m); a .gguf or named model is "
    "converted once into $SATIMP_CACHE_DIR/models (default .cache/satimp/models)"
)
METHOD_PARAM_FLAGS = {
    "--beta": float,
    "--beta1": float,
    "--beta2": float,
    "--frac": float,
    "--rho": float,
    "--delta": float,
    "--layer": int,
    "--steering": float,
    "--soft-p": float,
}


RECIPE_FIELDS = ("lr", "epochs", "warmup_epochs")  # what a preset's from-scratch recipe sets


def recipe_help(name: str) -> str:
    """finetune's help for a recipe flag: the presets' defaults and a pretrained model's."""
    presets = ", ".join(f"{k} {r[name]:g}" for k, r in SCRATCH_RECIPES.items())
    pretrained = getattr(TrainConfig(), name)
    return f"default: a preset's from-scratch recipe ({presets}); else {pretrained:g}"


def add_train_flags(p: argparse.ArgumentParser, command: str) -> None:
    defaults = COMMAND_DEFAULTS[command]
    g = p.add_argument_group("training (SPEC §3 defaults; see satimp.config.TrainConfig)")
    for flag, (name, tp) in TRAIN_FLAGS.items():
        text = FLAG_HELP.get(flag)
        if command == "finetune" and name in RECIPE_FIELDS:
            text = recipe_help(name)
        g.add_argument(
            flag,
            dest=f"train_{name}",
            type=tp,
            default=None,
            help=text.format(**defaults) if text else None,
        )
    g.add_argument(
        "--gradient-checkpointing",
        dest="train_gradient_checkpointing",
        action="store_const",
        const=True,
        help="recompute activations in backward (less memory, ~30%% more time)",
    )
    g.add_argument(
        "--eval-every-epoch",
        dest="train_eval_every_epoch",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="log an evaluation after every epoch to metrics.jsonl ("
        + ("forget/retain ES" if command == "unlearn" else "ES of the training examples")
        + f"); default here: {'on' if defaults['eval_every_epoch'] else 'off'}",
    )
    g.add_argument(
        "--deterministic",
        dest="train_deterministic",
        action="store_const",
        const=True,
        help="deterministic algorithms only: bit-identical reruns (slower on a GPU)",
    )
    g.add_argument("--lora-r", dest="lora_r", type=int, help="LoRA rank (0: off)")
    g.add_argument("--lora-alpha", dest="lora_alpha", type=float)
    g.add_argument("--lora-targets", dest="lora_targets", nargs="+", metavar="MODULE")
    g.add_argument("--lora-save", dest="lora_save", choices=["merged", "adapter"])
    g.add_argument("--config", help="YAML file with a `train:` mapping (flags win)")
    g.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. train.lr=3e-4")


# `satimp attack`'s flags, one per AttackConfig field (its type, default and help)
ATTACK_FIELDS = tuple(
    f.name for f in dataclasses.fields(AttackConfig) if f.name not in ("enabled", "attacks")
)
_FIELD_TYPES = {"int": int, "float": float, "str": str, "int | None": int}


def add_attack_flags(p: argparse.ArgumentParser) -> None:
    """--relearn-steps, --relearn-lr, … from AttackConfig's fields."""
    fields = {f.name: f for f in dataclasses.fields(AttackConfig)}
    for name in ATTACK_FIELDS:
        f = fields[name]
        p.add_argument(
            "--" + name.replace("_", "-"),
            type=_FIELD_TYPES[f.type],
            default=f.default,
            help=f.metadata["help"] + (f" (default {f.default})" if f.default is not None else ""),
        )
