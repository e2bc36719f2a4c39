"""Reading benchmark splits: a local directory of split files, or a dataset on the hub.

A split is named by a *reference*:

- `forget10`       TOFU's layout, one hub config per split: local `ROOT/forget10.jsonl`,
                   hub `load_dataset(repo, "forget10", split="train")`;
- `raw/forget`     CONFIG/SPLIT (MUSE, WMDP): local `ROOT/raw/forget.jsonl`,
                   hub `load_dataset(repo, "raw", split="forget")`;
- `SOURCE::REF`    the same, read from another source than the benchmark's (e.g. MMLU's
                   `cais/mmlu::all/test` beside `cais/wmdp`);
- a path to a `.jsonl` / `.json` / `.parquet` file, read as is (e.g. a corpus obtained on request).

Local files may be `.jsonl`, `.json` (a list of objects) or `.parquet`. Every record is checked
against a field schema; a problem raises `InputError` naming the file, the record and the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from satimp.errors import InputError

EXTENSIONS = (".jsonl", ".json", ".parquet")
Rows = list[tuple[int, object]]  # (1-based line or record number, raw record)


def parse_ref(source: str | Path, ref: str) -> tuple[str | Path, str]:
    """(source, ref) after resolving a `SOURCE::REF` prefix."""
    if "::" in ref:
        source, ref = ref.split("::", 1)
    return source, ref


def split_file(root: Path, ref: str) -> Path:
    """The one file holding split `ref` under `root`, or InputError listing what is there."""
    found = [root / f"{ref}{ext}" for ext in EXTENSIONS if (root / f"{ref}{ext}").is_file()]
    if not found:
        folder = (root / ref).parent
        have = (
            sorted(p.stem for p in folder.iterdir() if p.suffix in EXTENSIONS)
            if folder.is_dir()
            else []
        )
        raise InputError(
            f"{root}: no file for split {ref!r} (looked for {ref}.jsonl/.json/.parquet); "
            f"splits present{f' in {folder.name}/' if folder != root else ''}: "
            f"{', '.join(have) or 'none'}"
        )
    return found[0]


def read_rows(path: Path) -> Rows:
    """(line number, raw record) pairs of one file; line numbers are 1-based (the record index
    for .json lists and .parquet)."""
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


_SLICE = re.compile(r"^(?P<ref>.+)\[(?P<start>\d*):(?P<stop>\d*)\]$")


def parse_slice(ref: str) -> tuple[str, slice | None]:
    """`retain90[400:]` → ('retain90', slice(400, None)); a ref without [a:b] → (ref, None)."""
    m = _SLICE.match(ref)
    if m is None:
        return ref, None
    start, stop = (int(m[k]) if m[k] else None for k in ("start", "stop"))
    return m["ref"], slice(start, stop)


def read_split(source: str | Path, ref: str) -> tuple[Rows, str]:
    """The raw rows of split `ref` of `source` and a 'where' prefix for messages.

    A trailing `[start:stop]` takes those records of the split, in order (e.g. the authors'
    `retain90[400:]`). A local path wins over a hub id of the same name. An empty split (or
    slice) raises InputError.
    """
    ref, part = parse_slice(ref)
    rows, where = _read_whole(source, ref)
    if part is not None:
        rows = rows[part]
        if not rows:
            raise InputError(f"{where}: slice [{part.start or ''}:{part.stop or ''}] is empty")
    return rows, where


def _read_whole(source: str | Path, ref: str) -> tuple[Rows, str]:
    source, ref = parse_ref(source, ref)
    as_file = Path(ref)
    if as_file.suffix in EXTENSIONS and as_file.is_file():
        rows, where = read_rows(as_file), str(as_file)
    else:
        root = Path(source)
        if root.is_dir():
            path = split_file(root, ref)
            rows, where = read_rows(path), str(path)
        elif root.exists():
            raise InputError(f"{root}: expected a directory of split files")
        else:
            rows, where = _load_hub(str(source), ref), f"{source}[{ref}]"
    if not rows:
        raise InputError(f"{where}: split {ref!r} is empty")
    return rows, where


def _load_hub(repo_id: str, ref: str) -> Rows:
    """Records of one split from the hub (needs network access)."""
    if "/" not in repo_id:
        raise InputError(
            f"{repo_id}: neither a local directory nor a hub id of the form owner/name"
        )
    import datasets

    config, split = ref.split("/", 1) if "/" in ref else (ref, "train")
    try:
        ds = datasets.load_dataset(repo_id, config, split=split)
    except Exception as e:  # offline, unknown id or config: one clear line
        reason = " ".join(str(e).split()) or type(e).__name__  # one line for the CLI
        raise InputError(f"cannot load {repo_id!r} split {ref!r} from the hub: {reason}") from None
    return list(enumerate(ds.to_list(), 1))


def check_fields(record: object, fields: dict[str, type], where: str) -> dict:
    """Check a record's required fields and their types (str, int, or list = non-empty list
    of strings); returns a copy. `where` is 'file:line' for the message."""
    if not isinstance(record, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for name, tp in fields.items():
        if name not in record:
            raise InputError(f"{where}: missing field {name!r}")
        value = record[name]
        if tp is list:
            if not isinstance(value, (list, tuple)) or not value:
                raise InputError(f"{where}: field {name!r} must be a non-empty list of strings")
            if not all(isinstance(v, str) for v in value):
                raise InputError(f"{where}: field {name!r} must hold strings only")
        elif tp is int:
            if not isinstance(value, int) or isinstance(value, bool):
                raise InputError(f"{where}: field {name!r} must be an integer, got {value!r:.60}")
        elif not isinstance(value, tp):
            raise InputError(f"{where}: field {name!r} must be a string, got {value!r:.60}")
    return dict(record)


def load_records(
    source: str | Path,
    ref: str,
    fields: dict[str, type],
    check: Callable[[dict, str], None] | None = None,
) -> list[dict]:
    """Every record of split `ref`, each checked against `fields` and then by
    `check(record, where)` (which raises InputError) when given."""
    rows, where = read_split(source, ref)
    out = []
    for i, row in rows:
        record = check_fields(row, fields, f"{where}:{i}")
        if check is not None:
            check(record, f"{where}:{i}")
        out.append(record)
    return out


def has_split(source: str | Path, ref: str) -> bool:
    """Is there a local file for `ref`? (Hub sources: assumed present.)"""
    source, ref = parse_ref(source, parse_slice(ref)[0])
    root = Path(source)
    if Path(ref).suffix in EXTENSIONS:
        return Path(ref).is_file()
    if not root.is_dir():
        return True
    return any((root / f"{ref}{e}").is_file() for e in EXTENSIONS)


def load_texts(source: str | Path, ref: str, *, min_chars: int = 1) -> list[str]:
    """The `text` field of every record of a corpus split (MUSE raw/privleak, WMDP corpora).

    Records shorter than `min_chars` are skipped (wikitext holds many empty lines); a split
    with no text left raises InputError.
    """
    rows, where = read_split(source, ref)
    return corpus_texts(rows, where, min_chars=min_chars)


def corpus_texts(rows: Rows, where: str, *, min_chars: int = 1) -> list[str]:
    """The checked `text` fields of a corpus split's rows (see `load_texts`)."""
    records = [check_fields(r, {"text": str}, f"{where}:{i}") for i, r in rows]
    texts = [r["text"] for r in records if len(r["text"].strip()) >= min_chars]
    if not texts:
        raise InputError(f"{where}: the corpus holds no text of ≥ {min_chars} characters")
    return texts


TEXT_FIELDS = ("question", "answer", "paraphrased_answer", "perturbed_answer")
TEXT_FIELDS += ("text", "prompt", "gt", "choices")  # MUSE and WMDP


HOLDOUT_SPLIT = re.compile(r"holdout\d+")


def benchmark_texts(data: str | Path) -> list[str]:
    """Every question, answer, passage and choice string of a local benchmark, split files in
    sorted order, sub-folders included (the tokenizer training corpus of a preset). TOFU's
    membership-inference holdout splits (`holdoutXX` at the top) are left out: they came
    after the other splits, and leaving them out keeps every preset's tokenizer, and so every
    number trained on it, what it was without them."""
    root = Path(data)
    if not root.is_dir():
        raise InputError(f"{data}: training a tokenizer needs a local benchmark directory")
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix in EXTENSIONS]
    refs = sorted({p.relative_to(root).with_suffix("").as_posix() for p in files})
    refs = [r for r in refs if not HOLDOUT_SPLIT.fullmatch(r)]
    texts: list[str] = []
    for ref in refs:
        for _, r in read_split(root, ref)[0]:
            for name in TEXT_FIELDS:
                value = r.get(name) if isinstance(r, dict) else None
                texts += value if isinstance(value, list) else [value]
    return [t for t in texts if isinstance(t, str) and t]
