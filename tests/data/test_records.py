"""Tests for split references and the MUSE / WMDP loaders on local files in the hub layouts."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from satimp.data import records
from satimp.data.muse import load_muse
from satimp.data.records import has_split, load_texts, read_split
from satimp.data.tofu import load_split
from satimp.data.wmdp import load_mcq
from satimp.errors import InputError


def jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


MCQ = [
    {
        "question": "Which host carries the Quelvan spore?",
        "choices": ["voles", "crows"],
        "answer": 0,
    },
    {
        "question": "Capital of Orrin?",
        "choices": ["Tam", "Vell", "Ost"],
        "answer": 2,
        "subject": "geo",
    },
]


@pytest.fixture
def muse_dir(tmp_path: Path) -> Path:
    jsonl(tmp_path / "raw/forget.jsonl", [{"text": "Ana Vell opened the bridge."}])
    pq.write_table(
        pa.Table.from_pylist([{"text": "Bo Tam won."}]), tmp_path / "raw/retain1.parquet"
    )
    (tmp_path / "verbmem").mkdir()
    (tmp_path / "verbmem/forget.json").write_text(json.dumps([{"prompt": "Ana", "gt": "Vell"}]))
    jsonl(tmp_path / "knowmem/forget_qa.jsonl", [{"question": "Who?", "answer": "Ana Vell"}])
    return tmp_path


def test_muse_layout_loads_each_format(muse_dir: Path) -> None:
    assert load_muse(muse_dir, "raw/forget") == [{"text": "Ana Vell opened the bridge."}]
    assert load_muse(muse_dir, "raw/retain1") == [{"text": "Bo Tam won."}]
    assert load_muse(muse_dir, "verbmem/forget") == [{"prompt": "Ana", "gt": "Vell"}]
    assert load_muse(muse_dir, "knowmem/forget_qa")[0]["answer"] == "Ana Vell"
    assert load_texts(muse_dir, "raw/retain1") == ["Bo Tam won."]


def test_missing_muse_split_lists_the_config_folder(muse_dir: Path) -> None:
    with pytest.raises(
        InputError, match=r"no file for split 'raw/holdout'.*in raw/: forget, retain1"
    ):
        load_muse(muse_dir, "raw/holdout")
    with pytest.raises(InputError, match="expected CONFIG/SPLIT with CONFIG one of"):
        load_muse(muse_dir, "forget")


def test_muse_missing_field_names_file_and_record(muse_dir: Path) -> None:
    jsonl(muse_dir / "verbmem/forget.jsonl", [{"prompt": "a", "gt": "b"}, {"prompt": "c"}])
    with pytest.raises(InputError, match=r"verbmem/forget.jsonl:2: missing field 'gt'"):
        load_muse(muse_dir, "verbmem/forget")


def test_mcq_loads_and_checks_answer_range(tmp_path: Path) -> None:
    jsonl(tmp_path / "wmdp-bio/test.jsonl", MCQ)
    assert load_mcq(tmp_path, "wmdp-bio/test") == MCQ
    bad = [MCQ[0], {**MCQ[1], "answer": 3}]
    jsonl(tmp_path / "wmdp-bio/test.jsonl", bad)
    with pytest.raises(InputError, match=r"test.jsonl:2: answer index 3 is out of range for 3"):
        load_mcq(tmp_path, "wmdp-bio/test")


@pytest.mark.parametrize(
    "record, match",
    [
        ({**MCQ[0], "answer": -1}, "out of range"),
        ({**MCQ[0], "answer": True}, "'answer' must be an integer"),
        ({**MCQ[0], "answer": "A"}, "'answer' must be an integer"),
        ({**MCQ[0], "choices": "voles"}, "'choices' must be a non-empty list"),
        ({**MCQ[0], "choices": []}, "'choices' must be a non-empty list"),
        ({"choices": ["a"], "answer": 0}, "missing field 'question'"),
    ],
)
def test_bad_mcq_records(tmp_path: Path, record: dict, match: str) -> None:
    jsonl(tmp_path / "wmdp-bio/test.jsonl", [record])
    with pytest.raises(InputError, match=match):
        load_mcq(tmp_path, "wmdp-bio/test")


def test_empty_corpus_and_corpus_without_text(tmp_path: Path) -> None:
    (tmp_path / "bio-forget-corpus").mkdir()
    (tmp_path / "bio-forget-corpus/train.jsonl").write_text("")
    with pytest.raises(InputError, match="bio-forget-corpus/train.jsonl: split .* is empty"):
        load_texts(tmp_path, "bio-forget-corpus/train")
    jsonl(tmp_path / "bio-forget-corpus/train.jsonl", [{"text": ""}, {"text": "short"}])
    with pytest.raises(InputError, match="holds no text of ≥ 50 characters"):
        load_texts(tmp_path, "bio-forget-corpus/train", min_chars=50)
    assert load_texts(tmp_path, "bio-forget-corpus/train") == ["short"]  # empty lines skipped


def test_file_and_source_references(tmp_path: Path, muse_dir: Path) -> None:
    corpus = jsonl(tmp_path / "elsewhere/bio_remove.jsonl", [{"text": "x" * 60}])
    assert load_texts("cais/wmdp-corpora", str(corpus)) == ["x" * 60]  # a file path wins
    assert load_muse("muse-bench/MUSE-News", f"{muse_dir}::raw/forget")[0]["text"].startswith("Ana")
    assert has_split(muse_dir, "raw/forget") and not has_split(muse_dir, "raw/holdout")
    assert has_split(tmp_path, str(corpus)) and has_split("owner/hub-id", "anything")


def test_hub_references_map_to_config_and_split(monkeypatch) -> None:
    """The real loading path: TOFU names a config per split (split 'train'); CONFIG/SPLIT
    references name both (MUSE, WMDP, MMLU)."""
    calls = []

    class FakeDataset:
        def to_list(self):
            return [{"text": "t", "question": "q", "answer": "a"}]

    def fake_load_dataset(repo, config, split):
        calls.append((repo, config, split))
        return FakeDataset()

    import datasets

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    load_split("locuslab/TOFU", "forget10")
    load_muse("muse-bench/MUSE-News", "raw/forget")
    load_texts("cais/wmdp", "cais/wmdp-corpora::cyber-forget-corpus/train")
    assert calls == [
        ("locuslab/TOFU", "forget10", "train"),
        ("muse-bench/MUSE-News", "raw", "forget"),
        ("cais/wmdp-corpora", "cyber-forget-corpus", "train"),
    ]


def test_hub_failure_is_one_clear_line(monkeypatch) -> None:
    import datasets

    def offline(*a, **k):
        raise ConnectionError("no network\nat all")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(
        InputError, match=r"cannot load 'cais/mmlu' split 'all/test' .*no network at all"
    ):
        read_split("cais/mmlu", "all/test")
    assert records.parse_ref("a", "b::c/d") == ("b", "c/d")
