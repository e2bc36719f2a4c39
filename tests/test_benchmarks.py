"""MUSE and WMDP end to end on tiny embedded analogues: `run` (references, methods incl. RMU,
report), epoch selection, retain statistics, and the CLI's `eval` and `unlearn` (`--lm-eval`:
test_harness.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from satimp import cli
from satimp.benchmarks import Muse, Tofu, get_benchmark, load_retain_stats
from satimp.config import ModelsConfig, TrainConfig
from satimp.data.muse import MuseConfig
from satimp.data.wmdp import WmdpConfig
from satimp.errors import InputError
from satimp.study.config import RunConfig
from satimp.study.run import prepare_data, run, run_models

TINY = TrainConfig(
    epochs=3, lr=3e-3, batch_size=8, warmup_epochs=0, eval_every_epoch=False, device="cpu"
)


def config(tmp_path: Path, benchmark: str, **kw) -> RunConfig:
    return RunConfig(
        name=f"tiny-{benchmark}",
        benchmark=benchmark,
        synth=dataclasses.replace(RunConfig().synth, people=10, agents=8),
        models=ModelsConfig(base="tiny", base_train=TINY, original_train=TINY, retain_train=TINY),
        unlearn=TrainConfig(epochs=2, lr=1e-3, batch_size=8, warmup_epochs=0, device="cpu"),
        cache_dir=str(tmp_path.parent / "cache"),  # shared by the tests of this module
        **kw,
    )


MUSE = MuseConfig(verbmem_new_tokens=12, knowmem_new_tokens=6, select="privleak")


def test_muse_run_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = config(tmp_path, "muse", muse=MUSE, methods=["ga", "npo", "satimp", "rmu"])
    rows = run(cfg, out, log=lambda *a: None)
    assert [r["method"] for r in rows] == ["original", "retain", "ga", "npo", "satimp", "rmu"]
    assert all(r["status"] in ("reference", "ok") for r in rows), rows
    for r in rows:
        for key in ("forget_es", "retain_es", "verbmem_forget", "knowmem_forget", "knowmem_retain"):
            assert 0.0 <= r[key] <= 1.0, (r["method"], key)
    original, retain = rows[0], rows[1]
    assert retain["privleak"] == 0.0  # relative to itself
    assert original["privleak"] > 0  # the original tells its training texts from holdout ones
    stats = json.loads((out / "retain_stats.json").read_text())
    assert stats["benchmark"] == "muse" and stats["privleak_auc"] == retain["privleak_auc"]
    assert stats["protocol"]["tr_mean"] == "geometric"  # the switches the stats depend on
    curve = json.loads((out / "methods/ga/row.json").read_text())["curve"]
    assert len(curve) == 2 and all("privleak" in e for e in curve)  # every epoch evaluated
    best = min(curve, key=lambda e: (abs(e["privleak"]), -e["epoch"]))  # ties: the latest
    assert rows[2]["epoch"] == best["epoch"] and rows[2]["privleak"] == best["privleak"]
    # per_sample.json describes the same (selected) model as the summary
    per = json.loads((out / "methods/ga/per_sample.json").read_text())
    saved = json.loads((out / f"methods/ga/epochs/{best['epoch']}/per_sample.json").read_text())
    assert per == saved
    verbmem = per[MUSE.verbmem]["rouge"]
    assert rows[2]["verbmem_forget"] == pytest.approx(sum(verbmem) / len(verbmem))
    summary = json.loads((out / "methods/ga/summary.json").read_text())
    assert summary["epoch"] == best["epoch"] and summary["protocol"]["name"] == "tofu"
    report = (out / "report.md").read_text()
    assert "VerbMem ↓" in report and "PrivLeak →0" in report
    for name in ("tradeoff.png", "es_per_epoch.png", "results.csv"):
        assert (out / name).stat().st_size > 0


def test_wmdp_run_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = config(tmp_path, "wmdp", wmdp=WmdpConfig(format="text"), methods=["ga", "rmu", "satimp"])
    rows = run(cfg, out, log=lambda *a: None)
    assert [r["method"] for r in rows] == ["original", "retain", "ga", "rmu", "satimp"]
    assert all(r["status"] in ("reference", "ok") for r in rows), rows
    for r in rows:
        assert 0.0 <= r["wmdp_acc"] <= 1.0 and 0.0 <= r["mmlu_acc"] <= 1.0
        assert r["wmdp_acc"] == r["wmdp_bio_acc"]  # one hazardous set
    per = json.loads((out / "methods/rmu/per_sample.json").read_text())
    assert len(per["wmdp-bio/test"]["correct"]) == len(per["wmdp-bio/test"]["loglik"]) == 32
    assert "WMDP acc ↓" in (out / "report.md").read_text()
    cfg_rmu = json.loads((out / "methods/rmu/run_info.json").read_text())
    assert cfg_rmu  # the run folder of the method exists


@pytest.fixture(scope="module")
def muse_models(tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("muse")
    cfg = config(tmp / "x", "muse")
    data = prepare_data(cfg, log=lambda *a: None)
    return data, run_models(cfg, cfg.validate(), data, log=lambda *a: None)


def _eval(data: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return [
        "eval", "--benchmark", "muse", "--model", str(model), "--data", str(data),
        "--out", str(out), "muse.verbmem_new_tokens=4", "muse.knowmem_new_tokens=4", *extra,
    ]  # fmt: skip


def test_cli_eval_muse_with_retain_model_then_stats(muse_models, tmp_path: Path) -> None:
    data, paths = muse_models
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli.main(_eval(data, paths["original"], a, "--retain-model", str(paths["retain"]))) == 0
    assert (
        cli.main(_eval(data, paths["original"], b, "--retain-stats", str(a / "retain_stats.json")))
        == 0
    )
    first = json.loads((a / "summary.json").read_text())
    second = json.loads((b / "summary.json").read_text())
    assert first == second and first["privleak"] is not None
    per = json.loads((a / "per_sample.json").read_text())
    assert set(per) >= {
        "verbmem/forget",
        "knowmem/forget_qa",
        "privleak/forget",
        "privleak/holdout",
    }


def test_cli_eval_rejects_stats_of_another_benchmark(muse_models, tmp_path: Path, capsys) -> None:
    data, paths = muse_models
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({"split": "forget10_perturbed", "truth_ratio": [0.5]}))
    out = tmp_path / "e"
    assert cli.main(_eval(data, paths["original"], out, "--retain-stats", str(stats))) == 2
    assert "stats are for benchmark 'tofu', not 'muse'" in capsys.readouterr().err
    assert not out.exists()


def test_cli_unlearn_on_text_corpora_with_rmu(muse_models, tmp_path: Path) -> None:
    data, paths = muse_models
    out = tmp_path / "u"
    argv = [
        "unlearn", "--model", str(paths["original"]), "--data", str(data), "--method", "rmu",
        "--forget", "raw/forget", "--retain", "raw/retain1", "--epochs", "1", "--lr", "1e-3",
        "--batch-size", "8", "--device", "cpu", "--eval-every-epoch", "--out", str(out),
    ]  # fmt: skip
    assert cli.main(argv) == 0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert "forget_es" in lines[-1] and "retain_es" in lines[-1]  # the text probes per epoch
    assert (out / "model.safetensors").is_file()


def test_benchmark_config_errors(tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match="unknown benchmark 'mmlu'; valid benchmarks: tofu, muse, wmdp"
    ):
        get_benchmark(dataclasses.replace(RunConfig(), benchmark="mmlu"))
    with pytest.raises(InputError, match="muse.select='best'; valid: last, privleak"):
        RunConfig(benchmark="muse", muse=MuseConfig(select="best")).validate()
    with pytest.raises(InputError, match="wmdp.format='cloze'"):
        RunConfig(benchmark="wmdp", wmdp=WmdpConfig(format="cloze")).validate()
    bad = tmp_path / "s.json"
    bad.write_text(json.dumps({"benchmark": "muse", "privleak_auc": 0}))
    with pytest.raises(InputError, match="'privleak_auc' must be a positive number"):
        load_retain_stats(bad, Muse())
    bad.write_text(json.dumps({"truth_ratio": []}))
    with pytest.raises(InputError, match="'truth_ratio' must be a non-empty list"):
        load_retain_stats(bad, Tofu())
    bad.write_text(json.dumps({"truth_ratio": [1.0], "mia_min_k_auc": 1.5}))
    with pytest.raises(InputError, match="'mia_min_k_auc' must be a number in \\[0, 1\\]"):
        load_retain_stats(bad, Tofu())


def test_tofu_privleak_against_the_retain_models_auc_or_half() -> None:
    """TOFU privleak = ((1 − A) − (1 − A_r)) / ((1 − A_r) + 1e−10) · 100 with A the Min-K% AUC
    (open-unlearning's privleak): A = 0.9 against the retain model's A_r = 0.6 gives
    (0.1 − 0.4) / 0.4 · 100 = −75; without the retain model's stats, A_r = 0.5: −80. The
    retain model's AUC travels in its stats, and no MIA (no holdout split) means no privleak."""
    bench = Tofu()
    per_sample = {"forget10_perturbed": {"truth_ratio": [0.5, 1.0]}}
    retain = bench.retain_stats({"mia_min_k_auc": 0.6}, per_sample)
    assert retain["mia_min_k_auc"] == 0.6
    summary = bench.apply_stats({"mia_min_k_auc": 0.9}, per_sample, retain)
    assert summary["privleak"] == pytest.approx(-75.0, abs=1e-6)
    assert summary["privleak_ref_auc"] == 0.6 and summary["forget_quality"] == 1.0
    alone = bench.apply_stats({"mia_min_k_auc": 0.9}, per_sample, None)
    assert alone["privleak"] == pytest.approx(-80.0, abs=1e-6) and alone["privleak_ref_auc"] == 0.5
    assert "privleak" not in bench.apply_stats({}, per_sample, retain)
    assert "mia_min_k_auc" not in bench.retain_stats({}, per_sample)
