"""A benchmark folder as a Hugging Face dataset (satimp.data.card, issue 38): `satimp data
synth` and `satimp data export` write the README.md `configs:` block that lets
`datasets.load_dataset(FOLDER, CONFIG)` open the folder, offline; bad input exits 2 with one
line and writes nothing; the card changes no cache key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from satimp import cli
from satimp.data.records import read_split
from satimp.data.synth import SPLITS, synth_tofu
from satimp.data.tofu import load_split
from satimp.experiment import data_fingerprint

SMALL = ["--authors", "10", "--qa-per-author", "4"]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def load(folder: Path, name: str, cache: Path, split: str = "train") -> list[dict]:
    """The rows `datasets.load_dataset` reads for one config and split of a local folder."""
    return datasets.load_dataset(
        str(folder), name=name, split=split, cache_dir=str(cache)
    ).to_list()


def error_line(capsys: pytest.CaptureFixture) -> str:
    """The one line on stderr, a `satimp: error:` line."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("satimp: error: "), err
    return err


def test_synth_folder_opens_with_load_dataset(tmp_path: Path) -> None:
    """`data synth` writes the split files and README.md; load_dataset(folder, 'forget10')
    returns forget10's records, in order, and likewise another split."""
    out = tmp_path / "bench"
    assert cli.main(["data", "synth", "--out", str(out), *SMALL]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["README.md", *(f"{s}.jsonl" for s in SPLITS)]
    )
    for split in ("forget10", "forget10_perturbed"):
        assert load(out, split, tmp_path / "hf") == load_split(out, split)
    assert len(load(out, "forget10", tmp_path / "hf")) == 4


def test_synth_format_json_writes_tofus_layout(tmp_path: Path) -> None:
    """--format json: JSON lines in .json files (TOFU's own files), the same records satimp
    reads from the .jsonl folder, the card pointing at them; over a .jsonl folder with
    --overwrite, no .jsonl file is left to shadow a .json one."""
    jsonl, out = tmp_path / "jsonl", tmp_path / "json"
    assert cli.main(["data", "synth", "--out", str(jsonl), *SMALL]) == 0
    shutil.copytree(jsonl, out)
    argv = ["data", "synth", "--out", str(out), *SMALL, "--format", "json", "--overwrite"]
    assert cli.main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["README.md", *(f"{s}.json" for s in SPLITS)]
    )
    first = (out / "forget10.json").read_text().splitlines()[0]
    assert isinstance(json.loads(first), dict)  # JSON lines, not one list
    for split in SPLITS:
        assert load_split(out, split) == load_split(jsonl, split)
    assert "path: forget10.json\n" in (out / "README.md").read_text()
    assert load(out, "forget10_perturbed", tmp_path / "hf") == load_split(out, "forget10_perturbed")


def test_muse_layout_is_config_and_split(tmp_path: Path) -> None:
    """A folder of config folders (MUSE's `raw/forget.jsonl`) is config `raw`, split `forget`,
    as satimp reads a hub dataset."""
    out = tmp_path / "muse"
    assert cli.main(["data", "synth", "--benchmark", "muse", "--out", str(out)]) == 0
    rows, _ = read_split(out, "raw/forget")
    assert load(out, "raw", tmp_path / "hf", split="forget") == [r for _, r in rows]


def test_export_adds_the_card_and_keeps_the_cache_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`data export` adds README.md to a folder written without one; the folder's fingerprint
    (the key of every cached model and evaluation built on it) stays the same, while a split's
    content still moves it. A second export refuses to overwrite the card (exit 2, one line
    naming it, the card untouched) unless --overwrite."""
    data = tmp_path / "bench"
    synth_tofu(data, authors=10, qa_per_author=4, seed=0)
    before = data_fingerprint(data)
    assert cli.main(["data", "export", "--data", str(data)]) == 0
    assert load(data, "forget10", tmp_path / "hf") == load_split(data, "forget10")
    assert data_fingerprint(data) == before
    card = (data / "README.md").read_text()
    capsys.readouterr()
    (data / "README.md").write_text(card + "edited\n")
    assert cli.main(["data", "export", "--data", str(data)]) == 2
    line = error_line(capsys)
    assert str(data / "README.md") in line and "--overwrite" in line
    assert (data / "README.md").read_text() == card + "edited\n"
    assert cli.main(["data", "export", "--data", str(data), "--overwrite"]) == 0
    assert (data / "README.md").read_text() == card
    (data / "forget10.jsonl").write_text((data / "retain90.jsonl").read_text())
    assert data_fingerprint(data) != before


def test_export_points_at_the_file_satimp_reads(tmp_path: Path) -> None:
    """A split present as .jsonl and .json: the card names the .jsonl, the one satimp reads."""
    data = tmp_path / "bench"
    synth_tofu(data, authors=10, qa_per_author=4, seed=0)
    shutil.copy(data / "retain90.jsonl", data / "forget10.json")  # other records
    assert cli.main(["data", "export", "--data", str(data)]) == 0
    assert load(data, "forget10", tmp_path / "hf") == load_split(data, "forget10")


BAD = {  # name → (files to write under the folder, text the error line holds)
    "no split files": ({"notes.txt": "x"}, "no split files"),
    "too deep": ({"a/b/c.jsonl": '{"text": "x"}\n'}, "a/b/c.jsonl"),
    "bad split name": ({"raw/for-get.jsonl": '{"text": "x"}\n'}, "raw/for-get.jsonl"),
    "two files, one split": (
        {"raw.jsonl": '{"text": "x"}\n', "raw/train.jsonl": '{"text": "y"}\n'},
        "raw/train.jsonl",
    ),
    "malformed line": (
        {"forget10.jsonl": '{"question": "q"}\n{"question": \n'},
        "forget10.jsonl:2",
    ),
    "no records": ({"forget10.jsonl": "\n"}, "forget10.jsonl"),
    "JSON and parquet": ({"forget10.jsonl": '{"text": "x"}\n', "b.parquet": None}, "b.parquet"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_export_bad_input_exits_2_and_writes_nothing(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    files, where = BAD[case]
    data = tmp_path / "bench"
    for rel, text in files.items():
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        if text is None:  # a one-row parquet file
            pq.write_table(pa.table({"text": ["x"]}), data / rel)
        else:
            (data / rel).write_text(text)
    assert cli.main(["data", "export", "--data", str(data)]) == 2
    assert where in error_line(capsys)
    assert not (data / "README.md").exists()


@pytest.mark.parametrize("make", ["missing", "a file"])
def test_export_needs_a_folder(make: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "bench"
    if make == "a file":
        data.write_text("x")
    assert cli.main(["data", "export", "--data", str(data)]) == 2
    assert f"--data {data}: not a folder" in error_line(capsys)
