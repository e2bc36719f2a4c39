"""Attacks on unlearning (satimp.evaluation.attacks, `satimp attack`): the relearning halves,
recoveries by hand, relearning raising the forget ES of a GA-unlearned tiny model, the
command's output, and its bad input (exit 2, nothing written)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from satimp import cli
from satimp.evaluation.attacks import recoveries, relearn_split


def test_relearn_split_is_seeded_disjoint_and_complete() -> None:
    train, evaluate = relearn_split(9, seed=3)
    assert sorted(train + evaluate) == list(range(9)) and len(train) == 4
    assert relearn_split(9, seed=3) == (train, evaluate)
    assert relearn_split(9, seed=4) != (train, evaluate)
    with pytest.raises(ValueError, match="at least 2"):
        relearn_split(1, seed=0)


def test_recoveries_by_hand() -> None:
    """ES: unlearned 0.2 → attacked 0.5, original 0.8: (0.5 − 0.2) / (0.8 − 0.2) = 0.5;
    relearning reads the evaluated half's values; the retain control on the unlearned model's
    scale: (0.35 − 0.2) / 0.6 = 0.25; no gap between original and unlearned: None."""
    original = {"none": {"es": 0.8, "prob": 0.4}, "none_half": {"es": 0.9, "prob": 0.4}}
    unlearned = {
        "int4": {"before": {"es": 0.2, "prob": 0.4}, "after": {"es": 0.5, "prob": 0.9}},
        "relearn_forget": {"before": {"es": 0.3}, "after": {"es": 0.6}},
    }
    r = recoveries(unlearned, original)
    assert r["int4"]["es"] == pytest.approx(0.5) and r["int4"]["prob"] is None
    assert r["relearn_forget"]["es"] == pytest.approx(0.5)  # (0.6 − 0.3) / (0.9 − 0.3)
    retain = {"int4": {"before": {"es": 0.2}, "after": {"es": 0.35}}}
    assert recoveries(retain, original, unlearned)["int4"]["es"] == pytest.approx(0.25)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A 20-author × 6 QA benchmark (forget10: 12 items, relearning halves of 6), the tiny
    preset fine-tuned on `full` by default (it memorises), on `retain90`, and the first
    unlearned by GA until most forget answers are gone (8 epochs: forget ES 0.22 on the
    evaluated half; docs/robustness.md has the grid of GA lengths and relearning recipes this
    was chosen from, where the effect on so small a model is not always there)."""
    root = tmp_path_factory.mktemp("attack")
    paths = {k: root / k for k in ("data", "original", "retain", "ga")}
    assert cli.main(["data", "synth", "--out", str(paths["data"]), "--authors", "20",
                     "--qa-per-author", "6"]) == 0  # fmt: skip
    for name, split in (("original", "full"), ("retain", "retain90")):
        argv = ["finetune", "--model", "tiny", "--data", str(paths["data"]), "--split", split,
                "--out", str(paths[name])]  # fmt: skip
        assert cli.main(argv) == 0
    argv = ["unlearn", "--model", str(paths["original"]), "--data", str(paths["data"]),
            "--forget", "forget10", "--method", "ga", "--epochs", "8", "--lr", "1e-3",
            "--out", str(paths["ga"])]  # fmt: skip
    assert cli.main(argv) == 0
    return paths


def test_relearning_brings_the_forget_es_back(models: dict[str, Path], tmp_path: Path) -> None:
    """10 steps on half of forget10 raise the other half's ES on the GA-unlearned model, and
    not on the retain model (the control: relearning six facts does not teach the other six);
    the report holds the halves, the models' before/after and the recoveries."""
    out = tmp_path / "attack"
    argv = ["attack", "--model", str(models["ga"]), "--original-model", str(models["original"]),
            "--retain-model", str(models["retain"]), "--data", str(models["data"]),
            "--relearn-lr", "3e-4", "--attacks", "relearn_forget,int4,probes",
            "--out", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    report = json.loads((out / "attacks.json").read_text())
    un, control = report["results"]["unlearned"], report["results"]["retain"]
    assert un["relearn_forget"]["after"]["es"] > un["relearn_forget"]["before"]["es"] + 0.03
    assert un["relearn_forget"]["after"]["prob"] > un["relearn_forget"]["before"]["prob"]
    assert (
        control["relearn_forget"]["after"]["es"] < control["relearn_forget"]["before"]["es"] + 0.02
    )
    assert un["none"]["es"] < 0.5  # unlearned: most of the answers are gone
    halves = report["relearn_split"]
    assert sorted(halves["train"] + halves["evaluate"]) == list(range(12))
    assert set(un) == {"none", "none_half", "relearn_forget", "int4", "probes"}
    assert {"mia_loss_auc", "mia_min_k_auc"} <= set(un["int4"]["after"])
    rec = report["recovery"]["relearn_forget"]["es"]
    before, after = un["relearn_forget"]["before"]["es"], un["relearn_forget"]["after"]["es"]
    orig = report["results"]["original"]["none_half"]["es"]
    assert rec == pytest.approx((after - before) / (orig - before))
    assert set(report["control"]) == {"relearn_forget", "int4", "probes"}


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--attacks", "int3"], "unknown attack ['int3']"),
        (["--relearn-steps", "0"], "relearn_steps must be > 0"),
        (["--retain-model", "/no/such/model"], "/no/such/model"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    models: dict[str, Path], tmp_path: Path, capsys, extra, message
) -> None:
    out = tmp_path / "attack"
    argv = ["attack", "--model", str(models["ga"]), "--data", str(models["data"]), "--out",
            str(out), *extra]  # fmt: skip
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_no_holdout_split_needs_no_mia(models: dict[str, Path], tmp_path: Path, capsys) -> None:
    """Membership inference without a holdout split: exit 2 naming it; --no-mia runs the
    attacks on ES and probability alone."""
    data = tmp_path / "data"
    shutil.copytree(models["data"], data)
    (data / "holdout10.jsonl").unlink()
    out = tmp_path / "attack"
    argv = ["attack", "--model", str(models["ga"]), "--data", str(data), "--out", str(out),
            "--attacks", "int8"]  # fmt: skip
    assert cli.main(argv) == 2
    assert "no holdout10 split for membership inference" in capsys.readouterr().err
    assert not out.exists()
    assert cli.main([*argv, "--no-mia"]) == 0
    after = json.loads((out / "attacks.json").read_text())["results"]["unlearned"]["int8"]["after"]
    assert set(after) == {"es", "prob"}


def test_run_attacks_every_method_with_seeds(tmp_path: Path) -> None:
    """`attacks.enabled` in a run: per seed, the references (original, retain control), per
    method attacks.json, and the attack columns in the rows and their seed aggregates."""
    import dataclasses

    from satimp.config import ModelsConfig, TrainConfig
    from satimp.evaluation.attacks import AttackConfig
    from satimp.study.config import RunConfig
    from satimp.study.run import run

    tiny = TrainConfig(epochs=2, lr=3e-3, batch_size=16, warmup_epochs=0, device="cpu")
    cfg = RunConfig(
        name="tiny-attacks",
        synth=dataclasses.replace(RunConfig().synth, authors=10, qa_per_author=4),
        models=ModelsConfig(base="tiny", base_train=tiny, original_train=tiny, retain_train=tiny),
        unlearn=TrainConfig(epochs=1, lr=1e-3, batch_size=4, warmup_epochs=0, device="cpu"),
        methods=["ga", "satimp"],
        seeds=[0, 1],
        cache_dir=str(tmp_path / "cache"),
        eval=dataclasses.replace(RunConfig().eval, max_new_tokens=30),
        attacks=AttackConfig(enabled=True, attacks=["relearn_forget", "int4"], relearn_lr=3e-4),
    )
    out = tmp_path / "run"
    rows = run(cfg, out, log=lambda *a: None)
    for seed in (0, 1):
        refs = json.loads((out / f"seed-{seed}" / "attacks_references.json").read_text())
        assert set(refs) == {"original", "retain"} and "int4" in refs["retain"]
        for method in ("ga", "satimp"):
            saved = json.loads(
                (out / f"seed-{seed}" / "methods" / method / "attacks.json").read_text()
            )
            assert set(saved) == {"results", "recovery", "control"}
    per_seed = [r for r in rows if r["method"] == "ga" and "seed" in r]
    assert len(per_seed) == 2
    for r in per_seed:
        want = {"atk_none_es", "atk_relearn_forget_es", "atk_int4_es", "atk_int4_mia_min_k_auc"}
        assert want | {"atk_int4_recovery_es"} <= set(r)
    agg = next(r for r in rows if r["method"] == "ga" and "n_seeds" in r)
    assert agg["atk_int4_es_mean"] == pytest.approx(sum(r["atk_int4_es"] for r in per_seed) / 2)
    page = (out / "robustness.md").read_text()
    assert "| ga |" in page and "| retain (control) |" in page and "Min-K% AUC" in page
    assert (out / "robustness.png").stat().st_size > 10_000
    with pytest.raises(Exception, match="unknown attack"):
        dataclasses.replace(cfg, attacks=AttackConfig(enabled=True, attacks=["int2"])).validate()
