"""TOFU loader: a local directory of split files, or a hub id such as `locuslab/TOFU`.

A local directory holds one file per split, `<split>.json`, `<split>.jsonl` or `<split>.parquet`
(SPEC §4). Records are validated on load: a missing file or field, an empty split, a malformed
line or a non-list `perturbed_answer` raises `InputError` naming the file, line and field.
"""

from __future__ import annotations

import json
from pathlib import Path

from satimp.errors import InputError

EXTENSIONS = (".jsonl", ".json", ".parquet")


def required_fields(split: str) -> dict[str, type]:
    """Fields (and their types) a record of `split` must carry (SPEC §4)."""
    fields: dict[str, type] = {"question": str, "answer": str}
    if split.endswith("_perturbed"):
        fields |= {"paraphrased_answer": str, "perturbed_answer": list}
    return fields


def split_file(root: Path, split: str) -> Path:
    """The one file holding `split` under `root`, or InputError listing what is there."""
    found = [root / f"{split}{ext}" for ext in EXTENSIONS if (root / f"{split}{ext}").is_file()]
    if not found:
        have = sorted(p.stem for p in root.iterdir() if p.suffix in EXTENSIONS)
        raise InputError(
            f"{root}: no file for split {split!r} (looked for {split}.jsonl/.json/.parquet); "
            f"splits present: {', '.join(have) or 'none'}"
        )
    return found[0]


def _read_rows(path: Path) -> list[tuple[int, object]]:
    """(line number, raw record) pairs; line numbers are 1-based (record index for .json/.parquet)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as e:  # pyarrow raises several types for a corrupt file
            raise InputError(f"{path}: not a readable parquet file ({e})") from None
        return list(enumerate(rows, 1))
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise InputError(f"{path}:{line}: not valid UTF-8 ({e.reason})") from None
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            return list(enumerate(json.loads(text), 1))
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((lineno, json.loads(line)))
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{lineno}: malformed JSON line ({e.msg})") from None
    return rows


def validate_record(record: object, split: str, where: str) -> dict:
    """Check one record's fields and types; `where` is 'file:line' for the message."""
    if not isinstance(record, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for name, tp in required_fields(split).items():
        if name not in record:
            raise InputError(f"{where}: missing field {name!r} (split {split!r})")
        value = record[name]
        if tp is list:
            if not isinstance(value, (list, tuple)) or not value:
                raise InputError(f"{where}: field {name!r} must be a non-empty list of strings")
            if not all(isinstance(v, str) for v in value):
                raise InputError(f"{where}: field {name!r} must hold strings only")
        elif not isinstance(value, tp):
            raise InputError(f"{where}: field {name!r} must be a string, got {value!r:.60}")
    keywords = record.get("keywords")
    if keywords is not None and not (
        isinstance(keywords, (list, tuple)) and all(isinstance(k, str) for k in keywords)
    ):
        raise InputError(f"{where}: field 'keywords' must be a list of strings")
    return dict(record)


def load_split(source: str | Path, split: str) -> list[dict]:
    """All records of `split` from a local directory or a hub dataset id, validated.

    A local path wins over a hub id of the same name. Hub loading goes through `datasets`
    (`load_dataset(source, split)["train"]`, TOFU's layout: one config per split).
    """
    root = Path(source)
    if root.is_dir():
        path = split_file(root, split)
        rows = _read_rows(path)
        where = str(path)
    elif root.exists():
        raise InputError(f"{root}: expected a directory of split files")
    else:
        rows, where = _load_hub(str(source), split), f"{source}[{split}]"
    if not rows:
        raise InputError(f"{where}: split {split!r} is empty")
    return [validate_record(r, split, f"{where}:{i}") for i, r in rows]


def _load_hub(repo_id: str, split: str) -> list[tuple[int, object]]:
    """Records of one TOFU split from the hub (needs network access)."""
    if "/" not in repo_id:
        raise InputError(
            f"{repo_id}: neither a local directory nor a hub id of the form owner/name"
        )
    import datasets

    try:
        ds = datasets.load_dataset(repo_id, split, split="train")
    except Exception as e:  # offline, unknown id or config: one clear line
        reason = " ".join(str(e).split()) or type(e).__name__  # one line for the CLI
        raise InputError(
            f"cannot load {repo_id!r} split {split!r} from the hub: {reason}"
        ) from None
    return list(enumerate(ds.to_list(), 1))


def load_splits(source: str | Path, splits: list[str]) -> dict[str, list[dict]]:
    """Several splits at once; every split is validated before any is returned."""
    return {s: load_split(source, s) for s in splits}
