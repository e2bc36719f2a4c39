"""Fault injection: kill -9 during unlearning then --resume, interrupted checkpoint writes,
and a failed write of a result file. Each recovers to exactly the uninterrupted result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from satimp.checkpoint import latest_checkpoint, list_checkpoints
from satimp.cli import main


def _unlearn_args(model: Path, data: Path, out: Path) -> list[str]:
    return [
        "unlearn",
        "--model",
        str(model),
        "--data",
        str(data),
        "--method",
        "npo",
        "--epochs",
        "3",
        "--batch-size",
        "2",
        "--lr",
        "1e-3",
        "--save-every",
        "1",
        "--warmup-epochs",
        "0",
        "--out",
        str(out),
    ]


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model.safetensors"))


def _steps(out: Path) -> list[dict]:
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return rows


def test_kill_9_then_resume_gives_the_uninterrupted_model(tiny_trained, bench_dir, tmp_path):
    """NPO, 3 epochs of 2 steps, a checkpoint every step. The child process is killed with
    SIGKILL right after the checkpoint of step 3 (mid-epoch); `--resume` finishes the run. Final
    weights and the whole metrics log equal those of an uninterrupted run, bit for bit."""
    ref_out, out = tmp_path / "uninterrupted", tmp_path / "interrupted"
    assert main(_unlearn_args(tiny_trained, bench_dir, ref_out)) == 0

    env = {**os.environ, "SATIMP_FAULT_KILL_AT_STEP": "3", "OMP_NUM_THREADS": "1"}
    child = subprocess.run(
        [sys.executable, "-m", "satimp.cli", *_unlearn_args(tiny_trained, bench_dir, out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == -9, child.stderr[-2000:]
    assert not (out / "model.safetensors").exists()
    assert latest_checkpoint(out / "checkpoints").name == "step-000003"

    assert main([*_unlearn_args(tiny_trained, bench_dir, out), "--resume"]) == 0
    want, got = _weights(ref_out), _weights(out)
    assert want.keys() == got.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0)
    assert _steps(out) == _steps(ref_out)
    assert len(list_checkpoints(out / "checkpoints")) == 2  # keep_checkpoints


def test_existing_out_needs_overwrite_or_resume(tiny_trained, bench_dir, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(_unlearn_args(tiny_trained, bench_dir, out)) == 2
    assert "--overwrite or --resume" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert main([*_unlearn_args(tiny_trained, bench_dir, tmp_path / "missing"), "--resume"]) == 2


def test_a_checkpoint_write_that_fails_leaves_the_previous_one(tmp_path, monkeypatch):
    """The rename that publishes a checkpoint fails (disk full, say): no step-N folder
    appears, the earlier checkpoint is untouched and still the one resume would load."""
    from satimp import checkpoint
    from satimp.models import build_model, train_tokenizer

    tok = train_tokenizer(["a b c d e f g"] * 20, 300)
    model = build_model("tiny", tok)
    opt = torch.optim.AdamW(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    root = tmp_path / "checkpoints"
    first = checkpoint.save_checkpoint(root, model, opt, sched, {"step": 1}, keep=2)
    before = (first / "model.safetensors").read_bytes()

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "replace", full_disk)
    with pytest.raises(OSError):
        checkpoint.save_checkpoint(root, model, opt, sched, {"step": 2}, keep=2)
    assert [p.name for p in list_checkpoints(root)] == ["step-000001"]
    assert latest_checkpoint(root) == first
    assert (first / "model.safetensors").read_bytes() == before


def test_a_failed_result_write_leaves_the_old_file_whole(tmp_path, monkeypatch):
    """write_json goes through a temporary file and a rename: a crash in the middle of the
    write leaves the previous summary.json as it was, never a half-written one."""
    from satimp import experiment

    path = tmp_path / "summary.json"
    experiment.write_json(path, {"forget_es": 0.5})
    real_write = Path.write_text

    def crash_midway(self, text, *a, **kw):
        real_write(self, text[: len(text) // 2], *a, **kw)
        raise OSError(5, "I/O error")

    monkeypatch.setattr(Path, "write_text", crash_midway)
    with pytest.raises(OSError):
        experiment.write_json(path, {"forget_es": 0.25, "retain_es": 0.9})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"forget_es": 0.5}
