"""What costs time or disk is the user's choice: `--checkpoints none|epoch|N` and
`--eval-every-epoch/--no-eval-every-epoch`, with each command's defaults (satimp.checkpoint,
satimp.train, satimp.cli). Each case runs the real command on the tiny memorised model:
4 forget examples, batch 2 → 2 optimizer steps per epoch, 2 epochs → steps 1..4."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_model as load_weights

from satimp.checkpoint import list_checkpoints
from satimp.cli import main
from satimp.config import TrainConfig
from satimp.data.encoding import encode_records
from satimp.data.tofu import load_split
from satimp.evaluation.scoring import extraction_scores
from satimp.evaluation.tofu import evaluate_tofu
from satimp.models import load_model
from satimp.study.config import RunConfig


def _unlearn(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "unlearn", "--model", str(model), "--data", str(data), "--method", "ga",
        "--epochs", "2", "--batch-size", "2", "--lr", "1e-3", "--warmup-epochs", "0",
        "--device", "cpu", "--out", str(out), *extra,
    ]  # fmt: skip


def _finetune(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "finetune", "--data", str(data), "--model", "tiny", "--split", "forget10",
        "--epochs", "2", "--batch-size", "2", "--lr", "1e-3", "--device", "cpu",
        "--out", str(out), *extra,
    ]  # fmt: skip


def _saved_steps(out: Path) -> list[str]:
    return [p.name for p in list_checkpoints(out / "checkpoints")]


def _log(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_lone_unlearn_defaults_write_no_checkpoint_and_no_epoch_rows(
    tiny_trained, bench_dir, tmp_path
) -> None:
    out = tmp_path / "u"
    assert main(_unlearn(tiny_trained, bench_dir, out)) == 0
    assert not (out / "checkpoints").exists()
    rows = _log(out)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # step rows only
    assert not [r for r in rows if "forget_es" in r]
    assert (out / "model.safetensors").is_file()


@pytest.mark.parametrize(
    "flags, steps",
    [
        (["--checkpoints", "epoch"], ["step-000002", "step-000004"]),
        (["--checkpoints", "1"], ["step-000001", "step-000002", "step-000003", "step-000004"]),
        (["--checkpoints", "3"], ["step-000002", "step-000003", "step-000004"]),
        (["--save-every", "1"], ["step-000001", "step-000002", "step-000003", "step-000004"]),
    ],
)
def test_checkpoint_schedule_and_per_epoch_evaluation(
    tiny_trained, bench_dir, tmp_path, capsys, flags, steps
) -> None:
    """epoch: at steps 2 and 4 (the epoch ends); N: every N steps and at the epoch ends (3:
    steps 2, 3, 4); the deprecated --save-every N is --checkpoints N, with a warning. Every
    checkpoint is kept (keep_checkpoints=10) so the schedule is visible. --eval-every-epoch
    adds one forget/retain ES row per epoch: the final evaluation's ES and EM of the model as
    that epoch left it, i.e. of the epoch-end checkpoint (steps 2 and 4), evaluated here from
    its saved weights. (GA moves the forget ES from 1 to ~0.61 after epoch 1 and ~0.06 after
    epoch 2: a row from the wrong step or model would differ.)"""
    out = tmp_path / "u"
    argv = _unlearn(tiny_trained, bench_dir, out, *flags, "--eval-every-epoch")
    assert main([*argv, "train.keep_checkpoints=10"]) == 0
    assert _saved_steps(out) == steps
    epochs = [r for r in _log(out) if "forget_es" in r]
    assert [(r["epoch"], r["step"]) for r in epochs] == [(1, 2), (2, 4)]
    keys = ("forget_es", "forget_em", "retain_es", "retain_em")
    for row in epochs:
        model, tok = load_model(out)
        load_weights(
            model, str(out / "checkpoints" / f"step-{row['step']:06d}" / "model.safetensors")
        )
        summary, _ = evaluate_tofu(
            model.eval(), tok, bench_dir, "forget10", rouge=False, progress=False
        )
        assert {k: row[k] for k in keys} == pytest.approx({k: summary[k] for k in keys}, abs=1e-6)
    assert epochs[0]["forget_es"] - epochs[1]["forget_es"] > 0.1  # the two epochs differ
    deprecated = "--save-every is deprecated" in capsys.readouterr().err
    assert deprecated == ("--save-every" in flags)


def test_finetune_defaults_checkpoint_each_epoch_and_can_be_turned_off(bench_dir, tmp_path) -> None:
    """finetune: a checkpoint per epoch and no probe by default; --checkpoints none writes
    none, --eval-every-epoch logs the training examples' ES and EM after each epoch: those of
    the model as that epoch left it. The two runs train alike (the probe changes no weight and
    draws no random number), so epoch 1's row equals the ES/EM of the default run's step-2
    checkpoint, and epoch 2's those of the saved model (and of the step-4 checkpoint), here
    recomputed from the saved weights. At lr 1e-2 the fresh model's EM moves from 0.047 to
    0.080 between the epochs, so a row of the wrong step differs (at 1e-3 all are 0)."""
    default, off = tmp_path / "default", tmp_path / "off"
    assert main(_finetune(bench_dir, default, "--lr", "1e-2")) == 0
    assert _saved_steps(default) == ["step-000002", "step-000004"]
    assert not [r for r in _log(default) if "train_es" in r]
    argv = _finetune(bench_dir, off, "--lr", "1e-2", "--checkpoints", "none", "--eval-every-epoch")
    assert main(argv) == 0
    assert not (off / "checkpoints").exists()
    probes = [r for r in _log(off) if "train_es" in r]
    assert [r["epoch"] for r in probes] == [1, 2]

    _, tok = load_model(off)
    examples = encode_records(tok, load_split(bench_dir, "forget10"), max_length=512)

    def es_em(weights: Path | None) -> dict[str, float]:
        m, _ = load_model(off)
        if weights is not None:
            load_weights(m, str(weights))
        s = extraction_scores(m.eval(), examples, pad_id=tok.pad_token_id)
        return {"train_es": s["es"].mean().item(), "train_em": s["em"].mean().item()}

    ckpt = default / "checkpoints"
    want = [es_em(ckpt / "step-000002" / "model.safetensors"), es_em(None)]
    assert es_em(ckpt / "step-000004" / "model.safetensors") == pytest.approx(want[1], abs=1e-6)
    for row, expected in zip(probes, want, strict=True):
        assert {k: row[k] for k in expected} == pytest.approx(expected, abs=1e-6), row["epoch"]
    assert want[0]["train_em"] != pytest.approx(want[1]["train_em"], abs=1e-3)


@pytest.mark.parametrize("command", ["unlearn", "finetune"])
def test_resume_without_checkpoints_fails_before_any_work(
    tiny_trained, bench_dir, tmp_path, capsys, command
) -> None:
    """--resume with checkpoints none (unlearn's default, or given) stops with exit 2 and
    leaves the folder as it was."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    if command == "unlearn":
        argv = _unlearn(tiny_trained, bench_dir, out, "--resume")
    else:
        argv = _finetune(bench_dir, out, "--resume", "--checkpoints", "none")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("satimp: error: --resume needs checkpoints") and "none" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_save_every_conflicting_with_checkpoints_is_refused(
    tiny_trained, bench_dir, tmp_path, capsys
) -> None:
    out = tmp_path / "u"
    argv = _unlearn(tiny_trained, bench_dir, out, "--save-every", "2", "--checkpoints", "none")
    assert main(argv) == 2
    assert "train.save_every=2" in capsys.readouterr().err
    assert not out.exists()


def test_run_and_study_keep_curves_and_checkpoints_by_default() -> None:
    """`run`/`study` need the per-epoch curves and `run --resume`: their `unlearn:` recipe
    evaluates every epoch and checkpoints every epoch end, as TrainConfig's defaults do."""
    cfg = RunConfig().unlearn
    assert cfg.eval_every_epoch and cfg.checkpoints == "epoch" and cfg.checkpoint_epochs()
    assert cfg.checkpoint_every() == 0
    assert TrainConfig(checkpoints="5").checkpoint_every() == 5
    TrainConfig(checkpoints=5).validate()  # an int from Python, as YAML's `checkpoints: 5`
    assert TrainConfig(checkpoints=5).checkpoint_every() == 5
    assert TrainConfig(save_every=3).checkpoint_every() == 3  # deprecated spelling, in YAML
    assert not TrainConfig(checkpoints="none").checkpoint_epochs()
