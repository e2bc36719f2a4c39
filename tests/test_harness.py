"""`satimp eval --lm-eval` against the real lm-evaluation-harness: on the embedded WMDP
analogue (configs/lm_eval), the harness's accuracy equals satimp's own multiple-choice
accuracy exactly, item by item; and a missing extra or a bad task path stops before anything
is written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from satimp import cli
from satimp.data.synth_wmdp import synth_wmdp

REPO = Path(__file__).resolve().parents[1]
PAIRS = (("wmdp-bio/test", "wmdp_bio_synth"), ("mmlu/test", "mmlu_synth"))  # satimp, harness


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A working directory holding data/wmdp-synth, where configs/lm_eval's tasks look."""
    root = tmp_path_factory.mktemp("harness")
    synth_wmdp(root / "data" / "wmdp-synth", agents=8, seed=0)  # 32 questions per set
    return root


def _eval(model: Path, out: Path, *extra: str) -> list[str]:
    return [
        "eval", "--benchmark", "wmdp", "--model", str(model), "--data", "data/wmdp-synth",
        "--out", str(out), "wmdp.probe_texts=2", "--batch-size", "8", *extra,
    ]  # fmt: skip


def test_real_harness_accuracy_equals_satimp_mcq(tiny_trained, workdir, monkeypatch) -> None:
    pytest.importorskip("lm_eval")
    monkeypatch.chdir(workdir)
    out = workdir / "eval"
    tasks = str(REPO / "configs" / "lm_eval")
    assert cli.main(_eval(tiny_trained, out, "--lm-eval", "--lm-eval-tasks", tasks)) == 0
    ours_summary = json.loads((out / "summary.json").read_text())
    ours = json.loads((out / "per_sample.json").read_text())
    theirs_summary = json.loads((out / "lm_eval.json").read_text())
    theirs = json.loads((out / "lm_eval_per_sample.json").read_text())
    assert set(theirs_summary) == {"wmdp_bio_synth", "mmlu_synth"}
    for split, task in PAIRS:
        rows = theirs[task]
        assert [r["doc_id"] for r in rows] == list(range(32))
        # two independent computations (the harness's batching and padding, ours): the
        # same log-likelihood per choice to float32 rounding, hence the same choice
        for r, want in zip(rows, ours[split]["loglik"], strict=True):
            assert r["loglik"] == pytest.approx(want, abs=1e-4)
        chosen = [max(range(4), key=r["loglik"].__getitem__) for r in rows]
        assert chosen == ours[split]["chosen"]
        assert [r["acc"] for r in rows] == ours[split]["correct"]
    assert theirs_summary["wmdp_bio_synth"]["acc,none"] == ours_summary["wmdp_bio_acc"]
    assert theirs_summary["mmlu_synth"]["acc,none"] == ours_summary["mmlu_acc"]
    # a comparison of two constants would prove nothing: the items are neither all right nor
    # all wrong, and the choices spread over the letters
    correct = ours["wmdp-bio/test"]["correct"] + ours["mmlu/test"]["correct"]
    assert 0 < sum(correct) < len(correct)


def test_missing_extra_stops_before_writing(tiny_trained, workdir, monkeypatch, capsys) -> None:
    monkeypatch.chdir(workdir)
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # the extra is not installed
    out = workdir / "missing"
    assert cli.main(_eval(tiny_trained, out, "--lm-eval")) == 2
    assert "pip install 'satimp[lm-eval]'" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d, "defines no lm-eval task"),  # an empty folder
        (lambda d: (d / "tasks.txt").write_text("x") and d / "tasks.txt", "expected a folder"),
    ],
)
def test_bad_task_path_stops_before_writing(
    tiny_trained, workdir, tmp_path, monkeypatch, capsys, make, message
) -> None:
    pytest.importorskip("lm_eval")
    monkeypatch.chdir(workdir)
    out = tmp_path / "out"
    path = make(_mkdir(tmp_path / "tasks"))
    assert cli.main(_eval(tiny_trained, out, "--lm-eval", "--lm-eval-tasks", str(path))) == 2
    assert message in capsys.readouterr().err and not out.exists()


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def test_task_data_missing_stops_before_writing(tiny_trained, tmp_path, monkeypatch, capsys):
    """configs/lm_eval reads data/wmdp-synth relative to the working directory: run elsewhere,
    the command stops before the evaluation, naming the file."""
    pytest.importorskip("lm_eval")
    monkeypatch.chdir(tmp_path)
    synth_wmdp(tmp_path / "elsewhere", agents=8, seed=0)
    out = tmp_path / "out"
    argv = _eval(tiny_trained, out, "--lm-eval", "--lm-eval-tasks", str(REPO / "configs/lm_eval"))
    argv[argv.index("data/wmdp-synth")] = "elsewhere"
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "data file data/wmdp-synth/" in err and "not found" in err and not out.exists()
