"""Tests for the TOFU loader (satimp.data.tofu): local .jsonl/.json/.parquet files and bad input."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from satimp.data.tofu import load_split, load_splits, split_file, validate_record
from satimp.errors import InputError

PLAIN = [
    {"question": "Who wrote 'Dust'?", "answer": "Ana Vell wrote 'Dust'.", "keywords": ["Ana Vell"]},
    {"question": "Where was Ana Vell born?", "answer": "In Tarsk.", "keywords": ["Tarsk"]},
    {"question": "Ünïcode?", "answer": "Yes — ünïcode.", "keywords": []},
]
PERTURBED = [
    {
        "question": "Where was Ana Vell born?",
        "answer": "In Tarsk.",
        "paraphrased_answer": "Ana Vell was born in Tarsk.",
        "perturbed_answer": ["In Morvik.", "In Gelby."],
        "paraphrased_question": "What is Ana Vell's birthplace?",
        "keywords": ["Tarsk"],
    }
]


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    return path


def write_json(path: Path, records: list) -> Path:
    path.write_text(json.dumps(records, indent=2, ensure_ascii=False), "utf-8")
    return path


def write_parquet(path: Path, records: list) -> Path:
    pq.write_table(pa.Table.from_pylist(records), path)
    return path


WRITERS = {".jsonl": write_jsonl, ".json": write_json, ".parquet": write_parquet}


@pytest.mark.parametrize("ext", list(WRITERS))
def test_each_format_loads_the_same_records(tmp_path: Path, ext: str) -> None:
    WRITERS[ext](tmp_path / f"full{ext}", PLAIN)
    WRITERS[ext](tmp_path / f"forget01_perturbed{ext}", PERTURBED)
    assert load_split(tmp_path, "full") == PLAIN
    assert load_split(str(tmp_path), "forget01_perturbed") == PERTURBED


def test_load_splits_returns_every_split(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "full.jsonl", PLAIN)
    write_parquet(tmp_path / "forget01_perturbed.parquet", PERTURBED)
    assert load_splits(tmp_path, ["full", "forget01_perturbed"]) == {
        "full": PLAIN,
        "forget01_perturbed": PERTURBED,
    }


def test_blank_lines_in_jsonl_are_skipped_and_numbering_kept(tmp_path: Path) -> None:
    path = tmp_path / "full.jsonl"
    path.write_text(json.dumps(PLAIN[0]) + "\n\n" + json.dumps({"question": "q"}) + "\n")
    with pytest.raises(InputError, match=r"full\.jsonl:3: missing field 'answer'"):
        load_split(tmp_path, "full")


def test_split_file_prefers_jsonl(tmp_path: Path) -> None:
    write_json(tmp_path / "full.json", PLAIN)
    write_jsonl(tmp_path / "full.jsonl", PLAIN)
    assert split_file(tmp_path, "full") == tmp_path / "full.jsonl"


# ---------------------------------------------------------------- bad input


def _error(tmp_path: Path, split: str) -> str:
    with pytest.raises(InputError) as info:
        load_split(tmp_path, split)
    return str(info.value)


def test_missing_split_file_lists_the_splits_present(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "full.jsonl", PLAIN)
    write_parquet(tmp_path / "retain90.parquet", PLAIN)
    (tmp_path / "notes.txt").write_text("not a split")
    msg = _error(tmp_path, "forget10")
    assert str(tmp_path) in msg and "'forget10'" in msg
    assert "splits present: full, retain90" in msg


def test_missing_split_file_in_empty_directory(tmp_path: Path) -> None:
    assert "splits present: none" in _error(tmp_path, "full")


@pytest.mark.parametrize("ext", list(WRITERS))
def test_missing_field_names_file_record_and_field(tmp_path: Path, ext: str) -> None:
    path = WRITERS[ext](tmp_path / f"full{ext}", [PLAIN[0], {"question": "q?"}])
    msg = _error(tmp_path, "full")
    assert msg.startswith(f"{path}:2: ") and "'answer'" in msg


def test_missing_perturbed_field(tmp_path: Path) -> None:
    record = {k: v for k, v in PERTURBED[0].items() if k != "perturbed_answer"}
    path = write_jsonl(tmp_path / "forget10_perturbed.jsonl", [record])
    msg = _error(tmp_path, "forget10_perturbed")
    assert msg.startswith(f"{path}:1: ") and "'perturbed_answer'" in msg


@pytest.mark.parametrize("ext", list(WRITERS))
def test_empty_split(tmp_path: Path, ext: str) -> None:
    if ext == ".parquet":
        schema = pa.schema([("question", pa.string()), ("answer", pa.string())])
        path = tmp_path / "full.parquet"
        pq.write_table(schema.empty_table(), path)
    else:
        path = WRITERS[ext](tmp_path / f"full{ext}", [])
    msg = _error(tmp_path, "full")
    assert str(path) in msg and "empty" in msg


def test_blank_jsonl_is_empty(tmp_path: Path) -> None:
    (tmp_path / "full.jsonl").write_text("\n  \n")
    assert "empty" in _error(tmp_path, "full")


def test_malformed_jsonl_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "full.jsonl"
    path.write_text(json.dumps(PLAIN[0]) + "\n" + json.dumps(PLAIN[1]) + '\n{"question": "q",\n')
    msg = _error(tmp_path, "full")
    assert msg.startswith(f"{path}:3: ") and "malformed JSON" in msg


def test_malformed_json_array_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "full.json"
    path.write_text('[\n  {"question": "q", "answer": "a"},\n  {"question": }\n]\n')
    msg = _error(tmp_path, "full")
    assert msg.startswith(f"{path}:3: ") and "malformed JSON" in msg


def test_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "full.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    assert _error(tmp_path, "full").startswith(f"{path}: ")


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "full.jsonl"
    path.write_bytes(b'{"question": "q", "answer": "a"}\n{"question": "\xff", "answer": "a"}\n')
    msg = _error(tmp_path, "full")
    assert msg.startswith(f"{path}:2: ") and "UTF-8" in msg


def test_record_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "full.jsonl"
    path.write_text(json.dumps(PLAIN[0]) + "\n" + json.dumps(["q", "a"]) + "\n")
    msg = _error(tmp_path, "full")
    assert msg.startswith(f"{path}:2: ") and "object" in msg


@pytest.mark.parametrize("bad", ["In Morvik.", None, [], ["In Morvik.", 3]])
def test_perturbed_answer_must_be_a_list_of_strings(tmp_path: Path, bad: object) -> None:
    path = write_jsonl(
        tmp_path / "forget10_perturbed.jsonl", [{**PERTURBED[0], "perturbed_answer": bad}]
    )
    msg = _error(tmp_path, "forget10_perturbed")
    assert msg.startswith(f"{path}:1: ") and "'perturbed_answer'" in msg


@pytest.mark.parametrize("field", ["question", "answer"])
@pytest.mark.parametrize("bad", [5, None, ["a"]])
def test_question_and_answer_must_be_strings(tmp_path: Path, field: str, bad: object) -> None:
    path = write_jsonl(tmp_path / "full.jsonl", [PLAIN[0], {**PLAIN[1], field: bad}])
    msg = _error(tmp_path, "full")
    assert msg.startswith(f"{path}:2: ") and f"'{field}'" in msg


def test_paraphrased_answer_must_be_a_string(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "forget10_perturbed.jsonl", [{**PERTURBED[0], "paraphrased_answer": 1}])
    assert "'paraphrased_answer'" in _error(tmp_path, "forget10_perturbed")


@pytest.mark.parametrize("bad", ["Tarsk", [1], {"a": "b"}])
def test_keywords_must_be_a_list_of_strings(tmp_path: Path, bad: object) -> None:
    path = write_jsonl(tmp_path / "full.jsonl", [{**PLAIN[1], "keywords": bad}])
    msg = _error(tmp_path, "full")
    assert msg.startswith(f"{path}:1: ") and "'keywords'" in msg


def test_keywords_are_optional() -> None:
    record = {"question": "q", "answer": "a"}
    assert validate_record(record, "full", "x:1") == record
    assert validate_record({**record, "keywords": None}, "full", "x:1")["keywords"] is None


def test_validate_record_returns_a_copy() -> None:
    record = dict(PLAIN[0])
    out = validate_record(record, "full", "x:1")
    out["answer"] = "changed"
    assert record == PLAIN[0]


def test_a_file_is_not_a_benchmark_directory(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "full.jsonl", PLAIN)
    with pytest.raises(InputError, match="expected a directory"):
        load_split(path, "full")


def test_bare_name_that_is_not_a_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="neither a local directory nor a hub id"):
        load_split("no_such_benchmark", "full")


def test_hub_id_without_network_is_an_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline mode makes `datasets` fail at once; the failure must be one InputError line."""
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InputError) as info:
        load_split("satimp-test/no-such-dataset", "forget10")
    msg = str(info.value)
    assert "satimp-test/no-such-dataset" in msg and "forget10" in msg
    assert "\n" not in msg  # one line for `satimp: error:`, not a traceback
