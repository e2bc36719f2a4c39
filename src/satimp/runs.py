"""Run folders: every output file written atomically (never half-written), the versions and git
revision of the code that made it (`run_info`), and the checks of an output folder before a
command writes into it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch
import yaml

import satimp
from satimp import distributed as D
from satimp.errors import InputError


def write_atomic(path: str | Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename: never half-written.
    With several processes only the main one writes."""
    if not D.is_main():
        return
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


def check_out(out: Path, overwrite: bool, resume: bool = False) -> Path:
    """An existing, non-empty output folder is only reused with --overwrite or --resume."""
    if out.exists() and not out.is_dir():
        raise InputError(f"output folder {out} exists and is not a folder")
    if resume:
        if not out.is_dir():
            raise InputError(f"--resume: output folder {out} does not exist")
        D.barrier()
        return out
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InputError(
            f"output folder {out} exists and is not empty (use --overwrite or --resume)"
        )
    D.barrier()  # several processes: all have checked before the main one writes anything
    return out
