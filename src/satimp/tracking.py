"""Experiment trackers (TensorBoard, Weights & Biases) through accelerate's own trackers.

The loop's rows — what it writes to metrics.jsonl — also go to the tracker chosen by
`train.report_to` (`--report-to`): each optimizer step's loss, learning rate, gradient norm
and the objective's terms (forget/retain losses, weight statistics) as `train/NAME`, and each
epoch's evaluation (forget/retain ES, MUSE's or WMDP's numbers) as `epoch/NAME`, at the
optimizer step they belong to. Logs live in the run's output folder: `OUT/tensorboard/`
(`tensorboard --logdir OUT`) or `OUT/wandb/` (with WANDB_MODE=offline no network is needed;
`wandb sync` uploads later). The package check is `satimp.config.check_tracker`, run when the
config is validated, before any work.
"""

from __future__ import annotations

from pathlib import Path

from satimp.config import TrainConfig, to_dict


def accelerator_kwargs(cfg: TrainConfig, out_dir: str | Path | None) -> dict:
    """Keyword arguments of `Accelerator` that turn the tracker on ({} for none, or when the
    run has no output folder to hold the logs)."""
    if cfg.report_to == "none" or out_dir is None:
        return {}
    return {"log_with": cfg.report_to, "project_dir": str(out_dir)}


def start(accelerator, cfg: TrainConfig, out_dir: str | Path | None) -> None:
    """Open the tracker's run, with the training config as its hyperparameters."""
    if not accelerator_kwargs(cfg, out_dir):
        return
    out = Path(out_dir)
    # TensorBoard writes to project_dir/<name>: OUT/tensorboard; wandb to OUT/wandb
    name = "tensorboard" if cfg.report_to == "tensorboard" else "satimp"
    init = {"wandb": {"dir": str(out), "name": out.name}}
    accelerator.init_trackers(name, config=hparams(to_dict(cfg)), init_kwargs=init)


def hparams(config: dict, prefix: str = "") -> dict:
    """A nested config flattened to `a.b` keys with scalar values (what TensorBoard's hparams
    accept): None is left out, lists become strings."""
    out = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out |= hparams(v, f"{prefix}{k}.")
        elif v is not None:
            out[prefix + k] = v if isinstance(v, (bool, int, float, str)) else str(v)
    return out


def scalars(row: dict, prefix: str) -> dict[str, float]:
    """The numbers of a metrics.jsonl row as tracker scalars `prefix/NAME` (the step is the
    tracker's own axis; booleans, strings and missing values are not scalars)."""
    return {
        f"{prefix}/{k}": v
        for k, v in row.items()
        if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)
    }
