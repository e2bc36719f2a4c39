"""Tests for the `satimp` command (satimp.cli): bad input exits 2 with one line, writing nothing.

Every command runs in-process through `cli.main(argv)`. Nothing here trains: each run stops at
the validation under test, so the file stays fast.
"""

import json
import re
import shutil
from pathlib import Path

import pytest

from satimp import cli
from satimp.data.synth import SPLITS, synth_tofu
from satimp.models import build_model, save_model, train_tokenizer
from satimp.objectives import METHODS


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach the network: a hub lookup must fail at once."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic benchmark (10 authors × 4 QA), written once; tests copy it to modify."""
    out = tmp_path_factory.mktemp("bench")
    synth_tofu(out, authors=10, qa_per_author=4, seed=0)
    return out


@pytest.fixture(scope="module")
def tiny_model(bench: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved 2-layer random Llama with a tokenizer trained on the benchmark."""
    texts = [
        json.loads(line)[k]
        for line in (bench / "full.jsonl").read_text().splitlines()
        for k in ("question", "answer")
    ]
    tokenizer = train_tokenizer(texts, vocab_size=400)
    out = tmp_path_factory.mktemp("tiny_model")
    save_model(build_model("tiny", tokenizer, seed=0), tokenizer, out)
    return out


def corrupt(bench: Path, tmp_path: Path, split: str, line: int = 3) -> tuple[Path, Path]:
    """A copy of the benchmark whose `split` file has a malformed JSON line `line`."""
    data = tmp_path / "data"
    shutil.copytree(bench, data)
    path = data / f"{split}.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines[line - 1] = lines[line - 1][:-10] + "\n"
    path.write_text("".join(lines))
    return data, path


def error_line(capsys: pytest.CaptureFixture, *, only: bool = True) -> str:
    """The one `satimp: error:` line on stderr (with `only`, stderr holds nothing else)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("satimp: error: ")]
    assert len(lines) == 1, err
    if only:
        assert err == lines[0] + "\n"
    return lines[0]


def nothing_written(out: Path) -> bool:
    return not out.exists() or not any(out.iterdir())


# ---------------------------------------------------------------- data synth


def test_data_synth_writes_every_split(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "bench"
    argv = ["data", "synth", "--out", str(out), "--authors", "10", "--qa-per-author", "4"]
    assert cli.main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["README.md", *(f"{s}.jsonl" for s in SPLITS)]  # README.md: the dataset card
    )
    full = (out / "full.jsonl").read_text().splitlines()
    assert len(full) == 40
    assert f"wrote {len(SPLITS)} tofu splits" in capsys.readouterr().out


def test_data_synth_real_world_sizes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--real-world-sizes keeps that many real authors and world facts, the same items in the
    plain and perturbed files."""
    out = tmp_path / "bench"
    argv = ["data", "synth", "--out", str(out), "--authors", "10", "--qa-per-author", "4"]
    assert cli.main([*argv, "--real-world", "--real-world-sizes", "100", "117"]) == 0
    lines = {s: (out / f"{s}.jsonl").read_text().splitlines() for s in SPLITS}
    assert len(lines["real_authors"]) == len(lines["real_authors_perturbed"]) == 100
    assert len(lines["world_facts"]) == len(lines["world_facts_perturbed"]) == 117
    plain = [json.loads(x)["question"] for x in lines["world_facts"]]
    assert plain == [json.loads(x)["question"] for x in lines["world_facts_perturbed"]]
    assert re.search(r"real_authors\s+100\n", capsys.readouterr().out)


def test_data_synth_held_out_values(tmp_path: Path) -> None:
    """--held-out-values writes what synth_tofu(held_out_values=True) writes."""
    out, ref = tmp_path / "bench", tmp_path / "ref"
    argv = ["data", "synth", "--out", str(out), "--authors", "10", "--qa-per-author", "4"]
    assert cli.main([*argv, "--held-out-values"]) == 0
    synth_tofu(ref, authors=10, qa_per_author=4, seed=0, held_out_values=True)
    assert all(
        (out / f"{s}.jsonl").read_bytes() == (ref / f"{s}.jsonl").read_bytes() for s in SPLITS
    )


def test_data_synth_refuses_a_non_empty_out(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "bench"
    argv = ["data", "synth", "--out", str(out), "--authors", "10", "--qa-per-author", "4"]
    assert cli.main(argv) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert cli.main([*argv[:-4], "--authors", "12", "--qa-per-author", "5"]) == 2
    line = error_line(capsys)
    assert str(out) in line and "--overwrite" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched
    assert cli.main([*argv[:-4], "--authors", "12", "--qa-per-author", "5", "--overwrite"]) == 0
    assert len((out / "full.jsonl").read_text().splitlines()) == 60


@pytest.mark.parametrize(
    "args, match",
    [
        (["--authors", "3"], "authors"),
        (["--qa-per-author", "1"], "qa_per_author"),
        (["--benchmark", "nope"], "--benchmark 'nope'; valid: tofu, muse, wmdp"),
        (["--benchmark", "muse", "--people", "12"], "people"),
    ],
)
def test_data_synth_bad_arguments(tmp_path: Path, capsys, args: list[str], match: str) -> None:
    out = tmp_path / "bench"
    assert cli.main(["data", "synth", "--out", str(out), *args]) == 2
    assert match in error_line(capsys)
    assert not out.exists()


# ---------------------------------------------------------------- finetune


def _finetune(data: Path, out: Path, *extra: str, model: str = "tiny") -> list[str]:
    return ["finetune", "--data", str(data), "--model", model, "--out", str(out), *extra]


def test_finetune_malformed_line_writes_nothing(bench: Path, tmp_path: Path, capsys) -> None:
    data, path = corrupt(bench, tmp_path, "full", line=3)
    out = tmp_path / "run"
    argv = _finetune(data, out, "--split", "full")
    assert cli.main(argv) == 2
    line = error_line(capsys)
    assert f"{path}:3:" in line and "malformed JSON" in line
    assert not out.exists()


def test_finetune_malformed_tokenizer_corpus_writes_nothing(
    bench: Path, tmp_path: Path, capsys
) -> None:
    """A preset trains its tokenizer on every split: a bad line in another split is caught
    before the run folder is created."""
    data, path = corrupt(bench, tmp_path, "world_facts", line=2)
    out = tmp_path / "run"
    argv = _finetune(data, out, "--split", "full")
    assert cli.main(argv) == 2
    assert f"{path}:2:" in error_line(capsys)
    assert not out.exists()


def test_finetune_bad_model_writes_nothing(bench: Path, tmp_path: Path, capsys) -> None:
    not_a_model = tmp_path / "empty_dir"
    not_a_model.mkdir()
    out = tmp_path / "run"
    argv = _finetune(bench, out, model=str(not_a_model))
    assert cli.main(argv) == 2
    assert "not a model directory" in error_line(capsys)
    assert not out.exists()


def test_finetune_missing_split(bench: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    argv = _finetune(bench, out, "--split", "full", "forget11")
    assert cli.main(argv) == 2
    line = error_line(capsys)
    assert "'forget11'" in line and "splits present" in line and "forget10" in line
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, match",
    [
        (["train.foo=1"], "unknown config key train.foo"),
        (["trian.lr=1e-4"], "unknown config key trian"),
        (["lr=1e-4"], "unknown config key lr"),
        (["method.name=ga"], "unknown config key method"),
        (["train.lr=fast"], "train.lr: cannot read 'fast' as float"),
        (["--lr", "-1"], "train.lr=-1.0"),
        (["--batch-size", "10", "--grad-accum", "3"], "train.grad_accum=3"),
        (["--schedule", "cosine"], "train.schedule='cosine'"),
        (["--precision", "fp8"], "train.precision='fp8'"),
        (["train.lr"], "key=value"),
    ],
)
def test_finetune_bad_config(
    bench: Path, tmp_path: Path, capsys, extra: list[str], match: str
) -> None:
    out = tmp_path / "run"
    argv = _finetune(bench, out, *extra)
    assert cli.main(argv) == 2
    assert match in error_line(capsys)
    assert not out.exists()


def test_unknown_config_key_lists_the_valid_ones(bench: Path, tmp_path: Path, capsys) -> None:
    argv = _finetune(bench, tmp_path / "r", "train.foo=1")
    assert cli.main(argv) == 2
    line = error_line(capsys)
    assert all(k in line for k in ("epochs", "lr", "batch_size", "grad_accum", "schedule"))


@pytest.mark.parametrize(
    "text, match",
    [
        ("train:\n  foo: 1\n", "train.foo"),
        ("train: 5\n", "must be a mapping"),
        ("train: [unclosed\n", "not valid YAML"),
    ],
)
def test_finetune_bad_config_file(
    bench: Path, tmp_path: Path, capsys, text: str, match: str
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text)
    out = tmp_path / "run"
    argv = _finetune(bench, out, "--config", str(config))
    assert cli.main(argv) == 2
    assert match in error_line(capsys)
    assert not out.exists()


def test_finetune_refuses_a_non_empty_out(bench: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    argv = _finetune(bench, out)
    assert cli.main(argv) == 2
    assert "--overwrite" in error_line(capsys)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


# ---------------------------------------------------------------- unlearn


def _unlearn(bench: Path, tmp_path: Path, *extra: str, model: Path | None = None) -> list[str]:
    model = model or tmp_path / "no_such_model"
    return [
        "unlearn",
        "--model",
        str(model),
        "--data",
        str(bench),
        "--out",
        str(tmp_path / "run"),
        *extra,
    ]


def test_unlearn_unknown_method_lists_the_methods(bench: Path, tmp_path: Path, capsys) -> None:
    """The method is checked before the (nonexistent) model is looked at."""
    assert cli.main(_unlearn(bench, tmp_path, "--method", "gradient_ascent")) == 2
    line = error_line(capsys)
    assert "'gradient_ascent'" in line and ", ".join(METHODS) in line
    assert "model" not in line.replace("valid methods", "")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--method", "npo", "--beta", "-1"], "beta=-1.0"),
        (["--method", "simnpo", "--beta", "0"], "beta=0.0"),
        (["--method", "satimp", "--beta1", "-0.5"], "beta1=-0.5"),
        (["--method", "topk", "--frac", "1.5"], "0 < frac <= 1"),
        (["--method", "random", "--frac", "0"], "0 < frac <= 1"),
        (["--method", "annotated", "--rho", "2"], "0 <= rho <= 1"),
        (["--method", "satimp", "--beta", "1"], "valid: beta1, beta2"),
        (["--method", "satimp", "method.params.gamma=1"], "valid: beta1, beta2"),
        (["--method", "satimp", "method.foo=1"], "unknown config key method.foo"),
        (["--method", "satimp", "method.normalize=sum"], "normalize='sum'; valid: tokens, weights"),
        (["--method", "ga", "--lr", "0"], "train.lr=0.0"),
    ],
)
def test_unlearn_bad_hyperparameters(
    bench: Path, tmp_path: Path, capsys, extra: list[str], match: str
) -> None:
    assert cli.main(_unlearn(bench, tmp_path, *extra)) == 2
    line = error_line(capsys)
    assert match in line and "no_such_model" not in line
    assert not (tmp_path / "run").exists()


def test_unlearn_missing_model(bench: Path, tmp_path: Path, capsys) -> None:
    assert cli.main(_unlearn(bench, tmp_path, "--method", "ga")) == 2
    assert "no_such_model" in error_line(capsys, only=False)
    assert not (tmp_path / "run").exists()


def test_unlearn_malformed_forget_line_writes_nothing(
    bench: Path, tiny_model: Path, tmp_path: Path, capsys
) -> None:
    data, path = corrupt(bench, tmp_path, "forget10", line=2)
    assert cli.main(_unlearn(data, tmp_path, "--method", "ga", model=tiny_model)) == 2
    assert f"{path}:2:" in error_line(capsys, only=False)
    assert nothing_written(tmp_path / "run")


def test_unlearn_rmu_layer_out_of_range_writes_nothing(
    bench: Path, tiny_model: Path, tmp_path: Path, capsys
) -> None:
    """RMU's layer is checked against the loaded model, still before the run folder exists."""
    argv = _unlearn(
        bench, tmp_path, "--method", "rmu", "--layer", "9", "--epochs", "1", model=tiny_model
    )
    assert cli.main(argv) == 2
    assert "layer=9" in error_line(capsys, only=False)
    assert nothing_written(tmp_path / "run")


# ---------------------------------------------------------------- eval


def _eval(model: str | Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "--model", str(model), "--data", str(data), "--out", str(out), *extra]


def test_eval_missing_model(bench: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval"
    argv = _eval(tmp_path / "no_such_model", bench, out)
    assert cli.main(argv) == 2
    assert "no_such_model" in error_line(capsys, only=False)
    assert not out.exists()


def test_eval_retain_model_and_stats_are_exclusive(bench: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval"
    argv = _eval("m", bench, out, "--retain-model", "r", "--retain-stats", "s.json")
    assert cli.main(argv) == 2
    assert "not both" in error_line(capsys)
    assert not out.exists()


def test_eval_bad_retain_stats(bench: Path, tmp_path: Path, capsys) -> None:
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({"split": "forget05_perturbed", "truth_ratio": [0.5]}))
    out = tmp_path / "eval"
    argv = _eval("m", bench, out, "--retain-stats", str(stats))
    assert cli.main(argv) == 2
    assert "'forget05_perturbed', not 'forget10_perturbed'" in error_line(capsys)
    assert not out.exists()


def test_eval_malformed_data_writes_nothing(
    bench: Path, tiny_model: Path, tmp_path: Path, capsys
) -> None:
    data, path = corrupt(bench, tmp_path, "forget10_perturbed", line=1)
    out = tmp_path / "eval"
    argv = _eval(tiny_model, data, out)
    assert cli.main(argv) == 2
    assert f"{path}:1:" in error_line(capsys, only=False)
    assert nothing_written(out)


def test_eval_open_unlearning_format_and_its_logs_as_retain_stats(
    bench: Path, tiny_model: Path, tmp_path: Path, capsys
) -> None:
    """`--format open-unlearning` writes TOFU_EVAL.json and TOFU_SUMMARY.json beside satimp's
    files, their numbers satimp's; that TOFU_EVAL.json, given back as --retain-stats (what
    open-unlearning's retain_logs_path holds), makes the same model its own retain model:
    forget quality 1 and privleak 0. Another benchmark stops with exit 2."""
    first = tmp_path / "first"
    argv = _eval(tiny_model, bench, first, "--format", "open-unlearning", "--max-new-tokens", "8")
    assert cli.main(argv) == 0, capsys.readouterr().err
    logs = json.loads((first / "TOFU_EVAL.json").read_text())
    summary = json.loads((first / "summary.json").read_text())
    assert logs["forget_Q_A_Prob"]["agg_value"] == pytest.approx(summary["forget_prob"])
    assert logs["mia_min_k"]["agg_value"] == summary["mia_min_k_auc"]
    assert json.loads((first / "TOFU_SUMMARY.json").read_text())["privleak"] == summary["privleak"]
    again = tmp_path / "again"
    argv = _eval(tiny_model, bench, again, "--retain-stats", str(first / "TOFU_EVAL.json"),
                 "--max-new-tokens", "8")  # fmt: skip
    assert cli.main(argv) == 0, capsys.readouterr().err
    summary = json.loads((again / "summary.json").read_text())
    assert summary["forget_quality"] == 1.0
    assert summary["privleak"] == pytest.approx(0.0, abs=1e-6)
    assert not (again / "TOFU_EVAL.json").exists()  # satimp's files only, by default
    out = tmp_path / "muse"
    argv = _eval(tiny_model, bench, out, "--benchmark", "muse", "--format", "open-unlearning")
    assert cli.main(argv) == 2
    assert "--format open-unlearning writes TOFU's logs" in error_line(capsys)
    assert not out.exists()


# ---------------------------------------------------------------- protocols


def test_eval_protocol_is_written_and_real_tofu_layout_scores(
    bench: Path, tiny_model: Path, tmp_path: Path, capsys
) -> None:
    """TOFU's own real-authors / world-facts files (JSON lines in .json files, no paraphrased
    answer, three perturbed answers) load and score, their truth ratio against `answer`;
    summary.json names the protocol's resolved switches."""
    import yaml

    from satimp.data.real_world import real_world_splits

    data = tmp_path / "data"
    shutil.copytree(bench, data)
    for name, records in real_world_splits().items():
        (data / f"{name}.jsonl").unlink()
        (data / f"{name}.json").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert "paraphrased_answer" not in (data / "real_authors_perturbed.json").read_text()
    out = tmp_path / "eval"
    argv = _eval(tiny_model, data, out, "--protocol", "open-unlearning", "protocol.ds_size=20")
    assert cli.main(argv) == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol"]["name"] == "open-unlearning"
    assert summary["protocol"]["ds_size"] == 20 and summary["protocol"]["generation"] == "new"
    per = json.loads((out / "per_sample.json").read_text())
    assert len(per["real_authors_perturbed"]["truth_ratio"]) == 20
    assert 0 <= summary["real_authors_truth_ratio"] <= 1
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"protocol": {"name": "tofo"}}))
    argv = _eval(tiny_model, data, tmp_path / "eval2", "--config", str(config))
    assert cli.main(argv) == 2
    assert "unknown protocol 'tofo'" in error_line(capsys)
    assert not (tmp_path / "eval2").exists()


def test_unlearn_records_the_resolved_method_and_protocol(
    bench: Path, tiny_model: Path, tmp_path: Path, capsys
) -> None:
    """config.yaml holds γ, α, the retain loss and every parameter as they ran (no nulls), the
    protocol's switches and the retain split after its hold-out; a hold-out larger than the
    split stops before anything is written."""
    import yaml

    common = ("--method", "simnpo", "--epochs", "1", "--batch-size", "4", "--max-length", "64")
    argv = _unlearn(bench, tmp_path, *common, "--protocol", "satimp-official", model=tiny_model)
    assert cli.main(argv) == 2  # retain90 has 36 items: retain90[400:] is empty
    line = error_line(capsys, only=False)
    assert "retain90" in line and "[400:] is empty" in line
    assert nothing_written(tmp_path / "run")
    argv += ["protocol.retain_holdout=8"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["method"] == config["method"] | {
        "name": "simnpo",
        "gamma": 0.1375,
        "alpha": 1.0,
        "retain": "nll",
        "params": {"beta": 2.5, "delta": 0.0},
    }
    assert config["method_config"]["gamma"] is None  # what was asked: the default
    assert config["protocol"]["name"] == "satimp-official"
    assert config["retain"] == ["retain90[8:]"]
