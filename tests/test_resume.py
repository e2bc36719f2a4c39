"""Fault injection: kill -9 during unlearning then --resume, interrupted checkpoint writes,
and a failed write of a result file. Each recovers to exactly the uninterrupted result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from satimp import distributed
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
        "--checkpoints",
        "1",
        "--eval-every-epoch",
        "--warmup-epochs",
        "0",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model.safetensors"))


def _steps(out: Path) -> list[dict]:
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return rows


def _killed(argv: list[str], env: dict, step: int, where: str = "") -> None:
    """Run `satimp argv` in a child process that SIGKILLs itself after checkpoint `step` (of
    the run whose checkpoint folder contains `where`). The child has this process's thread
    count (CHILD_ENV), so both halves of a resumed run sum floats in the same order."""
    env = {**env, "SATIMP_FAULT_KILL_AT_STEP": str(step), "SATIMP_FAULT_KILL_IN": where}
    child = subprocess.run(
        [sys.executable, "-m", "satimp.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == -9, child.stderr[-2000:]


def test_kill_9_then_resume_gives_the_uninterrupted_model(
    tiny_trained, bench_dir, tmp_path, child_env
):
    """NPO, 3 epochs of 2 steps, a checkpoint every step. The child process is killed with
    SIGKILL right after the checkpoint of step 3 (mid-epoch); `--resume` finishes the run. Final
    weights and the whole metrics log equal those of an uninterrupted run, bit for bit."""
    ref_out, out = tmp_path / "uninterrupted", tmp_path / "interrupted"
    assert main(_unlearn_args(tiny_trained, bench_dir, ref_out)) == 0

    _killed(_unlearn_args(tiny_trained, bench_dir, out), child_env, step=3)
    assert not (out / "model.safetensors").exists()
    assert latest_checkpoint(out / "checkpoints").name == "step-000003"

    assert main([*_unlearn_args(tiny_trained, bench_dir, out), "--resume"]) == 0
    want, got = _weights(ref_out), _weights(out)
    assert want.keys() == got.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0)
    assert _steps(out) == _steps(ref_out)
    assert len([r for r in _steps(out) if "forget_es" in r]) == 3  # the epoch rows too
    assert len(list_checkpoints(out / "checkpoints")) == 2  # keep_checkpoints


def test_resume_refuses_a_changed_config(tiny_trained, bench_dir, tmp_path, capsys):
    """--resume with another lr (or method) than the interrupted run: exit 2 naming the key,
    before any work — the checkpoints and the log stay as they were. Settings of how the run
    executes (keep_checkpoints, log_every) may change."""
    out = tmp_path / "o"
    argv = _unlearn_args(tiny_trained, bench_dir, out)
    assert main(argv) == 0
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    capsys.readouterr()
    for changed, key in (
        (["--lr", "2e-3"], "train.lr"),
        (["--method", "ga"], "method.name"),
        (["--beta", "0.2"], "method.params.beta"),
        (["--forget", "forget01"], "forget"),
    ):
        assert main([*argv, *changed, "--resume"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"satimp: error: --resume: {key} is "), err
        assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before
    assert main([*argv, "train.keep_checkpoints=3", "train.log_every=2", "--resume"]) == 0


def test_resume_compares_the_precision_auto_ran_as(
    tiny_trained, bench_dir, tmp_path, capsys, monkeypatch
):
    """`precision: auto` is recorded as what it resolved to: a run that went fp32 (no bf16 units) is
    not resumed under auto where auto means bf16 (exit 2 naming train.precision, nothing
    touched); passing the recorded precision explicitly resumes it."""
    monkeypatch.setattr(distributed, "cpu_bf16_units", lambda: "")
    out = tmp_path / "o"
    argv = [*_unlearn_args(tiny_trained, bench_dir, out), "--precision", "auto"]
    assert main(argv) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["precision"] == "fp32"
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    capsys.readouterr()
    monkeypatch.setattr(distributed, "cpu_bf16_units", lambda: "amx")
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("satimp: error: --resume: train.precision is 'bf16' here but 'fp32'"), err
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before
    assert main([*argv, "--precision", "fp32", "--resume"]) == 0


RECIPE_KEYS = ("base_train", "original_train", "retain_train")


def test_run_record_resolves_every_recipe(monkeypatch):
    """A `satimp run` folder's config.yaml (and its --resume check) holds each training
    recipe's precision as it resolved and leaves out the default retain pairing (as versions
    before the option wrote it); everything else is `to_dict(cfg)`."""
    from satimp.config import ModelsConfig, TrainConfig, to_dict
    from satimp.study.config import RunConfig
    from satimp.study.run import run_record

    auto = TrainConfig(precision="auto", device="cpu")
    cfg = RunConfig(
        models=ModelsConfig(base_train=auto, original_train=TrainConfig(precision="bf16")),
        unlearn=auto,
    )
    for units, want in (("amx", "bf16"), ("", "fp32")):
        monkeypatch.setattr(distributed, "cpu_bf16_units", lambda u=units: u)
        record, plain = run_record(cfg), to_dict(cfg)
        assert record["unlearn"]["precision"] == want
        assert record["models"]["base_train"]["precision"] == want
        assert record["models"]["original_train"]["precision"] == "bf16"
        assert (
            record["models"]["retain_train"]["precision"]
            == plain["models"]["retain_train"]["precision"]
        )
        for part in (record, plain):
            part["unlearn"].pop("precision")
            for k in RECIPE_KEYS:
                part["models"][k].pop("precision")
        for recipe in (plain["unlearn"], *(plain["models"][k] for k in RECIPE_KEYS)):
            assert recipe.pop("retain_pairing") == "random"
        assert record == plain


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
    from satimp import runs

    path = tmp_path / "summary.json"
    runs.write_json(path, {"forget_es": 0.5})
    real_write = Path.write_text

    def crash_midway(self, text, *a, **kw):
        real_write(self, text[: len(text) // 2], *a, **kw)
        raise OSError(5, "I/O error")

    monkeypatch.setattr(Path, "write_text", crash_midway)
    with pytest.raises(OSError):
        runs.write_json(path, {"forget_es": 0.25, "retain_es": 0.9})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"forget_es": 0.5}


def _finetune_args(data: Path, out: Path) -> list[str]:
    return [
        "finetune", "--data", str(data), "--model", "tiny", "--split", "full",
        "--epochs", "2", "--batch-size", "8", "--lr", "3e-3", "--checkpoints", "2",
        "--device", "cpu", "--out", str(out),
    ]  # fmt: skip


def test_finetune_killed_then_resumed_gives_the_uninterrupted_model(bench_dir, tmp_path, child_env):
    """Fine-tuning the tiny preset from scratch: 40 examples, batch 8 → 5 steps per epoch, 2
    epochs, a checkpoint every 2 steps. Killed after the checkpoint of step 4 (mid-epoch 1),
    resumed: weights and metrics log equal the uninterrupted run's bit for bit (the preset's
    tokenizer and initial weights are rebuilt from the seed, then the checkpoint loads)."""
    ref_out, out = tmp_path / "uninterrupted", tmp_path / "interrupted"
    assert main(_finetune_args(bench_dir, ref_out)) == 0
    _killed(_finetune_args(bench_dir, out), child_env, step=4)
    assert latest_checkpoint(out / "checkpoints").name == "step-000004"
    assert not (out / "model.safetensors").exists()
    assert main([*_finetune_args(bench_dir, out), "--resume"]) == 0
    want, got = _weights(ref_out), _weights(out)
    assert want.keys() == got.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0)
    assert [r["step"] for r in _steps(out)] == list(range(1, 11))
    assert _steps(out) == _steps(ref_out)


def _tiny_run_yaml(tmp_path: Path) -> Path:
    """A tiny `satimp run` config: 10 authors × 4 QA, tiny preset models built in 2 epochs,
    ga then satimp unlearning forget10 (4 examples) in 2 epochs of 2 steps, a checkpoint every
    step."""
    from satimp.config import ModelsConfig, TrainConfig, to_dict
    from satimp.study.config import EvalConfig, RunConfig, SynthConfig

    build = TrainConfig(
        epochs=2, lr=3e-3, batch_size=16, warmup_epochs=0, eval_every_epoch=False, device="cpu"
    )
    cfg = RunConfig(
        name="tiny-resume",
        synth=SynthConfig(authors=10, qa_per_author=4),
        models=ModelsConfig(
            base="tiny", base_train=build, original_train=build, retain_train=build
        ),
        unlearn=TrainConfig(
            epochs=2, lr=1e-3, batch_size=2, warmup_epochs=0, checkpoints="1", device="cpu"
        ),
        methods=["ga", "satimp"],
        cache_dir=str(tmp_path / "cache"),
        eval=EvalConfig(max_new_tokens=8),
    )
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return path


@pytest.mark.slow
def test_run_killed_inside_a_method_then_resumed(tmp_path, child_env, capsys):
    """`satimp run` killed after step 3 of its second method (satimp), then `run --resume`:
    the finished method (ga) is not run again, satimp continues from its checkpoint, and
    results.json equals an uninterrupted run's (every field but the wall-clock seconds). A
    resume with another config is refused first (exit 2, naming the key)."""
    config = _tiny_run_yaml(tmp_path)
    ref_out, out = tmp_path / "uninterrupted", tmp_path / "interrupted"
    assert main(["run", str(config), "--out", str(ref_out)]) == 0  # also builds the cache
    _killed(["run", str(config), "--out", str(out)], child_env, step=3, where="methods/satimp")
    ga_row = out / "methods" / "ga" / "row.json"
    ga_before = (ga_row.read_bytes(), ga_row.stat().st_mtime_ns)
    assert latest_checkpoint(out / "methods/satimp/checkpoints").name == "step-000003"
    assert not (out / "methods/satimp/row.json").exists()

    assert main(["run", str(config), "unlearn.lr=2e-3", "--out", str(out), "--resume"]) == 2
    assert "satimp: error: --resume: unlearn.lr is 0.002" in capsys.readouterr().err
    assert main(["run", str(config), "--out", str(out), "--resume"]) == 0
    assert (ga_row.read_bytes(), ga_row.stat().st_mtime_ns) == ga_before  # not run again

    def rows(folder: Path) -> list[dict]:
        results = json.loads((folder / "results.json").read_text())
        return [{k: v for k, v in r.items() if k != "seconds"} for r in results]

    assert [r["method"] for r in rows(out)] == ["original", "retain", "ga", "satimp"]
    assert rows(out) == rows(ref_out)
