"""The `satimp` command's flag tables and help texts (the parser in `satimp.cli` reads them):
which flag sets which config field, with which type and help."""

from __future__ import annotations

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
