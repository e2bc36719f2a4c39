"""Every input is checked before the first byte is written: for each bad-record class and each
command, the command exits 2 with one message naming the file, record and field, the output
folder does not exist afterwards, and the same command succeeds once the data is fixed.

Each command corrupts a split it reads late (unlearn's retain split, the evaluation's last
set, run's forget split and one of its evaluation splits), where a check that ran lazily,
during the work, would already have written part of the output.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from satimp import cli


def _finetune(data: Path, out: Path, model: Path, _tmp: Path) -> list[str]:
    return [
        "finetune", "--model", str(model), "--data", str(data), "--split", "forget10",
        "retain_perturbed", "--epochs", "1", "--batch-size", "8", "--out", str(out),
    ]  # fmt: skip


def _unlearn(data: Path, out: Path, model: Path, _tmp: Path) -> list[str]:
    return [
        "unlearn", "--model", str(model), "--data", str(data), "--method", "gd",
        "--forget", "forget10", "--retain", "retain90", "--epochs", "1", "--batch-size", "4",
        "--eval-every-epoch", "--out", str(out),  # the per-epoch probe reads the perturbed splits
    ]  # fmt: skip


def _eval(data: Path, out: Path, model: Path, _tmp: Path) -> list[str]:
    return [
        "eval", "--model", str(model), "--data", str(data), "--max-new-tokens", "2",
        "--out", str(out),
    ]  # fmt: skip


def _run(data: Path, out: Path, model: Path, tmp: Path, command: str = "run") -> list[str]:
    return [
        command, *(["criteria"] if command == "study" else []), f"data={data}",
        f"models.original={model}", "models.retain=none", "methods=[gd]",
        "unlearn.epochs=1", "unlearn.batch_size=4", "eval.max_new_tokens=2",
        f"cache_dir={tmp / 'cache'}", "--out", str(out),
    ]  # fmt: skip


# command → (argv, split the record classes corrupt, split the perturbed class corrupts,
#            a file only a successful run writes)
COMMANDS = {
    "finetune": (_finetune, "forget10", "retain_perturbed", "model.safetensors"),
    "unlearn": (_unlearn, "retain90", "retain_perturbed", "model.safetensors"),
    "eval": (_eval, "world_facts_perturbed", "world_facts_perturbed", "summary.json"),
    "run": (_run, "forget10", "real_authors_perturbed", "report.md"),
}


def corrupt(path: Path, kind: str) -> str:
    """Corrupt split file `path` (its 2nd record, or the whole file); returns the message."""
    split = path.stem
    lines = path.read_text().splitlines(keepends=True)
    record = json.loads(lines[1])
    if kind == "empty split":
        path.write_text("")
        return f"{path}: split '{split}' is empty"
    if kind == "missing split file":
        path.unlink()
        return f"no file for split '{split}'"
    if kind == "malformed JSON line":
        lines[1] = lines[1][:-8] + "\n"
        message = "malformed JSON line"
    elif kind == "not an object":
        lines[1] = json.dumps([record["question"]]) + "\n"
        message = "expected a JSON object, got list"
    else:
        field, value, message = {
            "missing field": ("answer", None, "missing field 'answer'"),
            "wrong type": ("answer", 42, "field 'answer' must be a string"),
            "bad perturbed_answer": (
                "perturbed_answer",
                "one string",
                "field 'perturbed_answer' must be a non-empty list of strings",
            ),
            "bad keywords": (
                "keywords",
                ["Dorsk", 7],
                "field 'keywords' must be a list of strings",
            ),
        }[kind]
        if value is None:
            del record[field]
        else:
            record[field] = value
        lines[1] = json.dumps(record) + "\n"
    path.write_text("".join(lines))
    return f"{path}:2: {message}"


KINDS = [
    "missing field",
    "wrong type",
    "malformed JSON line",
    "not an object",
    "empty split",
    "missing split file",
    "bad perturbed_answer",
    "bad keywords",
]


def _error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("satimp: error: ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_bad_record_writes_nothing_and_the_fixed_rerun_succeeds(
    command, kind, tiny_trained, bench_dir, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    argv_of, split, perturbed_split, done = COMMANDS[command]
    data = tmp_path / "data"
    shutil.copytree(bench_dir, data)
    path = data / f"{perturbed_split if kind == 'bad perturbed_answer' else split}.jsonl"
    good = path.read_text()
    message = corrupt(path, kind)
    out = tmp_path / "out"
    argv = argv_of(data, out, tiny_trained, tmp_path)
    assert cli.main(argv) == 2
    assert message in _error(capsys)
    assert not out.exists() and not (tmp_path / "cache").exists()
    path.write_text(good)
    assert cli.main(argv) == 0
    assert (out / done).is_file()


def test_study_checks_before_writing(tiny_trained, bench_dir, tmp_path, capsys) -> None:
    data = tmp_path / "data"
    shutil.copytree(bench_dir, data)
    message = corrupt(data / "retain_perturbed.jsonl", "missing field")
    out = tmp_path / "out"
    assert cli.main(_run(data, out, tiny_trained, tmp_path, command="study")) == 2
    assert message in _error(capsys) and not out.exists()


@pytest.mark.parametrize(
    "models, message",
    [
        ({"original": "no_such_model"}, "models.original='no_such_model': no such model"),
        ({"base": "EMPTY"}, "models.base: "),  # an existing folder that holds no model
    ],
)
def test_run_checks_model_sources_before_writing(
    bench_dir, tmp_path, capsys, models, message
) -> None:
    (tmp_path / "EMPTY").mkdir()
    overrides = [f"models.{k}={tmp_path / v if v == 'EMPTY' else v}" for k, v in models.items()]
    out = tmp_path / "out"
    argv = ["run", f"data={bench_dir}", *overrides, f"cache_dir={tmp_path / 'cache'}"]
    assert cli.main([*argv, "--out", str(out)]) == 2
    assert message in _error(capsys)
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_an_output_path_that_is_a_file_is_refused(tiny_trained, bench_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.write_text("not a folder")
    assert cli.main(_unlearn(bench_dir, out, tiny_trained, tmp_path)) == 2
    assert f"output folder {out} exists and is not a folder" in _error(capsys)
    assert out.read_text() == "not a folder"
