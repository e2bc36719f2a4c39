"""One prompt format from training to evaluation (satimp.protocol's FORMAT_SWITCHES):
`finetune` and `unlearn` train in their protocol's format and record it in the model folder
(satimp.json); `satimp eval` warns in one line naming both protocols when it evaluates under
another format, and `--strict-format` stops with exit 2 before anything is written; `satimp
run` builds its models in its protocol's format, so its own evaluation never mismatches."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

import satimp.experiment
from satimp import cli
from satimp.config import ModelsConfig, TrainConfig
from satimp.errors import InputError
from satimp.experiment import check_prompt_format, format_key
from satimp.models import load_model
from satimp.protocol import (
    FORMAT_FILE,
    ProtocolConfig,
    format_mismatch,
    prompt_format,
    read_format,
    resolve,
    save_format,
)
from satimp.study.config import RunConfig
from satimp.study.run import prepare_data, run_models
from satimp.train import TrainResult

OU = resolve("open-unlearning")  # system prompt "You are a helpful assistant.", chat answers
TOFU = resolve("tofu")


def _record(protocol) -> dict:
    return {"protocol": protocol.name, **prompt_format(protocol)}


@pytest.fixture
def seen(monkeypatch) -> dict:
    """Replaces the training loop with a spy that keeps the examples it receives."""
    got: dict = {}

    def spy(model, loss_fn, examples, cfg, **kw) -> TrainResult:
        got["examples"] = list(examples)
        return TrainResult(steps=0, seconds=0.0)

    monkeypatch.setattr(satimp.experiment, "train", spy)
    return got


@pytest.fixture
def ou_model(tiny_trained: Path, tmp_path: Path) -> Path:
    """The memorising tiny model, recorded as trained under open-unlearning's format."""
    folder = tmp_path / "ou_model"
    shutil.copytree(tiny_trained, folder)
    save_format(folder, OU)
    return folder


# ---------------------------------------------------------------- the record


def test_mismatch_is_one_line_naming_both_protocols_and_the_switches() -> None:
    """Equal formats give None, whatever the other switches (satimp-official scores ES
    otherwise, but asks in tofu's format); a difference names both protocols and values."""
    assert format_mismatch(_record(OU), OU) is None
    assert format_mismatch(_record(TOFU), resolve("satimp-official")) is None
    line = format_mismatch(_record(OU), TOFU)
    assert "\n" not in line and "protocol open-unlearning's" in line and "protocol tofu's" in line
    assert "system_prompt='You are a helpful assistant.'" in line and "system_prompt=''" in line
    chat_only = dataclasses.replace(TOFU, answer_tokens="chat")
    line = format_mismatch(_record(TOFU), chat_only)
    assert "answer_tokens='separate'" in line and "system_prompt" not in line


def test_read_format_none_without_a_record_and_one_line_for_a_bad_one(tmp_path: Path) -> None:
    assert read_format(tmp_path) is None and read_format("org/hub-model") is None
    save_format(tmp_path, OU)
    assert read_format(tmp_path) == _record(OU)
    (tmp_path / FORMAT_FILE).write_text("{not json")
    with pytest.raises(InputError, match=f"{FORMAT_FILE}: not valid JSON"):
        read_format(tmp_path)
    (tmp_path / FORMAT_FILE).write_text('{"protocol": "tofu"}')
    with pytest.raises(InputError, match="expected an object with system_prompt, answer_tokens"):
        read_format(tmp_path)


def test_cache_keys_keep_tofus_and_separate_the_open_unlearning_format() -> None:
    """Models built before the record keep their keys under tofu's format (and under
    satimp-official, the same format); open-unlearning's builds key on both switches."""
    assert format_key(TOFU) == {} and format_key(resolve("satimp-official")) == {}
    assert format_key(OU) == {"system": OU.system_prompt, "answer_tokens": "chat"}


# ---------------------------------------------------------------- training records it


def test_finetune_trains_in_the_protocols_format_and_records_it(
    seen: dict, bench_dir: Path, tmp_path: Path, capsys
) -> None:
    """`finetune --protocol open-unlearning`: every training example the loop receives holds
    the protocol's system prompt, and the saved folder's satimp.json names its format."""
    out = tmp_path / "ft"
    argv = ["finetune", "--model", "tiny", "--data", str(bench_dir), "--split", "forget10"]
    assert cli.main([*argv, "--out", str(out), "--protocol", "open-unlearning"]) == 0
    _, tok = load_model(out)
    decoded = [tok.decode(e.input_ids) for e in seen["examples"]]
    assert len(decoded) == 4 and all(OU.system_prompt in text for text in decoded)
    assert read_format(out) == _record(OU)
    assert "protocol open-unlearning" in capsys.readouterr().out


def test_unlearn_records_its_protocols_format(
    seen: dict, tiny_trained: Path, bench_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "u"
    argv = ["unlearn", "--model", str(tiny_trained), "--data", str(bench_dir), "--method", "ga"]
    assert cli.main([*argv, "--out", str(out), "--protocol", "open-unlearning"]) == 0
    assert read_format(out) == _record(OU)


# ---------------------------------------------------------------- eval checks it


def _eval(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    # a short generation budget: the check happens before any scoring
    argv = ["eval", "--model", str(model), "--data", str(data), "--out", str(out)]
    return [*argv, "--max-new-tokens", "24", *extra]


def test_eval_warns_in_one_line_under_another_format(
    ou_model: Path, bench_dir: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "eval"
    assert cli.main(_eval(ou_model, bench_dir, out)) == 0  # tofu, the default protocol
    warnings = [x for x in capsys.readouterr().err.splitlines() if "warning" in x]
    assert len(warnings) == 1, warnings
    assert "open-unlearning" in warnings[0] and "protocol tofu's" in warnings[0]
    assert (out / "summary.json").is_file()  # a warning, not a stop


def test_eval_under_the_training_format_or_without_a_record_does_not_warn(
    ou_model: Path, tiny_trained: Path, bench_dir: Path, tmp_path: Path, capsys
) -> None:
    """The same protocol (with --strict-format too) and a folder without satimp.json (a hub
    model, or one satimp did not train) evaluate without a word about the format."""
    argv = _eval(ou_model, bench_dir, tmp_path / "a", "--protocol", "open-unlearning")
    assert cli.main([*argv, "--strict-format"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert not (tiny_trained / FORMAT_FILE).exists()
    assert cli.main(_eval(tiny_trained, bench_dir, tmp_path / "b", "--strict-format")) == 0
    assert "warning" not in capsys.readouterr().err


def test_strict_format_exits_2_naming_both_and_writes_nothing(
    ou_model: Path, bench_dir: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "eval"
    assert cli.main(_eval(ou_model, bench_dir, out, "--strict-format")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("satimp: error: ")
    assert "open-unlearning" in err[0] and "protocol tofu's" in err[0]
    assert not out.exists()


# ---------------------------------------------------------------- `satimp run` keeps them together


def test_run_builds_its_models_in_its_protocols_format(tmp_path: Path, capsys) -> None:
    """Under open-unlearning, the base, original and retain models a run builds record
    open-unlearning's format, and evaluating them under the run's protocol finds no mismatch
    (evaluating them under tofu would)."""
    one = TrainConfig(epochs=1, lr=3e-3, batch_size=16, warmup_epochs=0, device="cpu")
    cfg = RunConfig(
        synth=dataclasses.replace(RunConfig().synth, authors=10, qa_per_author=4),
        models=ModelsConfig(base="tiny", base_train=one, original_train=one, retain_train=one),
        cache_dir=str(tmp_path / "cache"),
        protocol=ProtocolConfig(name="open-unlearning"),
    )
    bench = cfg.validate()
    quiet = lambda *a: None  # noqa: E731
    paths = run_models(cfg, bench, prepare_data(cfg, log=quiet), log=quiet)
    assert sorted(paths) == ["base", "original", "retain"]
    tofu = dataclasses.replace(cfg, protocol=ProtocolConfig(name="tofu")).validate()
    for name, path in paths.items():
        assert read_format(path) == _record(bench.protocol), name
        check_prompt_format(path, bench, strict=True)
        with pytest.raises(InputError, match="protocol open-unlearning's"):
            check_prompt_format(path, tofu, strict=True)
    check_prompt_format(paths["original"], bench, strict=False)
    assert "warning" not in capsys.readouterr().err
