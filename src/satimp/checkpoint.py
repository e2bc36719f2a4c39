"""Training checkpoints: save, find the latest complete one, restore.

A checkpoint `OUT/checkpoints/step-000042/` holds the model weights (safetensors), the
optimizer state (torch.save of tensors only, loaded back with `weights_only=True`), the
scheduler state and the loop position (JSON), and the RNG state. It is written into a
temporary folder and renamed into place, so a crash never leaves a half-written checkpoint
that resume would pick up. The newest `keep` checkpoints are kept. `check_resume` refuses to
continue a run whose config changed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_model, save_model

from satimp.errors import InputError

PREFIX = "step-"


def checkpoint_name(step: int) -> str:
    return f"{PREFIX}{step:06d}"


def save_checkpoint(root: Path, model, optimizer, scheduler, state: dict, *, keep: int) -> Path:
    """Write checkpoint `root/step-N` for `state['step']` atomically; prune to `keep`."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(state["step"])
    tmp = root / f".{final.name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save({"torch": torch.get_rng_state()}, tmp / "rng.pt")
    (tmp / "scheduler.json").write_text(json.dumps(scheduler.state_dict()))
    (tmp / "state.json").write_text(json.dumps(state))
    if final.exists():  # an epoch-end checkpoint at the same step supersedes a periodic one
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in list_checkpoints(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under `root`, oldest first (temporary folders are ignored)."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX)]
    return sorted(f for f in found if (f / "state.json").is_file())


def latest_checkpoint(root: Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def load_checkpoint(path: Path, model, optimizer, scheduler) -> dict:
    """Restore model, optimizer, scheduler and RNG from `path`; returns the loop state."""
    load_model(model, str(path / "model.safetensors"))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(json.loads((path / "scheduler.json").read_text()))
    torch.set_rng_state(torch.load(path / "rng.pt", weights_only=True)["torch"])
    return json.loads((path / "state.json").read_text())


# How and where a run executes, not what it computes: these may change when it is resumed.
RESUME_MAY_DIFFER = (
    "checkpoints",
    "save_every",
    "keep_checkpoints",
    "log_every",
    "device",
    "deterministic",
    "compile",
    "workers",
    "threads",
)


def config_differences(saved, new, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config mappings (lists compared whole; a
    key present on one side only differs), ignoring the keys named in RESUME_MAY_DIFFER."""
    if not (isinstance(saved, dict) and isinstance(new, dict)):
        return [] if saved == new else [prefix.rstrip(".") or "(config)"]
    out = []
    for k in [*new, *(k for k in saved if k not in new)]:
        if k not in RESUME_MAY_DIFFER:
            missing = object()
            out += config_differences(saved.get(k, missing), new.get(k, missing), f"{prefix}{k}.")
    return out


def check_resume(out_dir: str | Path, config: dict) -> None:
    """--resume continues the run in `out_dir` only with the config it was started with:
    any key that differs (except `RESUME_MAY_DIFFER`) is refused, naming it. A folder without
    config.yaml never started training (it failed while reading its input): nothing to check."""
    path = Path(out_dir) / "config.yaml"
    if not path.is_file():
        return
    new = yaml.safe_load(yaml.safe_dump(config, sort_keys=False))  # the form config.yaml holds
    # top-level entries written besides the inputs (unlearn's resolved_params) are derived
    saved = {k: v for k, v in (yaml.safe_load(path.read_text()) or {}).items() if k in new}
    diff = config_differences(saved, new)
    if diff:
        key = diff[0]
        was, now = _lookup(saved, key), _lookup(new, key)
        raise InputError(
            f"--resume: {key} is {now} here but {was} in {path}; resume with the "
            f"interrupted run's config ({len(diff)} key(s) differ: {', '.join(diff[:5])})"
        )


def _lookup(d: dict, dotted: str) -> str:
    for part in dotted.split("."):
        if not (isinstance(d, dict) and part in d):
            return "absent"
        d = d[part]
    return repr(d)
