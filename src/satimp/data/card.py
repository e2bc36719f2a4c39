"""A benchmark folder as a Hugging Face dataset: the README.md whose `configs:` block lets
`datasets.load_dataset(FOLDER, CONFIG, split=SPLIT)` (and tools that read TOFU from the hub,
such as open-unlearning) open it.

The mapping is the one `records` uses to read a hub dataset, so the folder and its card name
the same data: a file at the top, `forget10.jsonl`, is config `forget10` with its one split
`train` (TOFU's layout); a file one folder down, `raw/forget.jsonl`, is split `forget` of config
`raw` (MUSE's and WMDP's). Where a split has files of several of records.EXTENSIONS, the card
points at the one satimp reads (`records.split_file`). satimp itself never reads the card.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import yaml

from satimp.data.records import EXTENSIONS, read_rows, split_file
from satimp.errors import InputError
from satimp.runs import write_atomic

CARD = "README.md"
_SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")  # what `datasets` accepts as a split name
_BUILDER = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}  # records.EXTENSIONS


def split_refs(root: Path) -> list[str]:
    """The split references of a local benchmark folder: every file with one of
    records.EXTENSIONS, relative and without its suffix, sorted; hidden files and folders
    (a name starting with '.') are skipped."""
    refs = set()
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if path.is_file() and path.suffix in EXTENSIONS:
            if not any(part.startswith(".") for part in rel.parts):
                refs.add(rel.with_suffix("").as_posix())
    return sorted(refs)


def card_configs(files: dict[str, str], where: Path) -> list[dict]:
    """The `configs:` entries of a card, from {split reference: file path relative to the
    folder}: one config per top-level file (split `train`) or per folder of files (one split
    each), sorted by name. InputError (naming the file under `where`) for a file deeper than
    one folder, a name `datasets` does not take as a split, two files for one split, or
    JSON and parquet files in one folder (`datasets` reads a folder with one builder)."""
    kinds = {_BUILDER[Path(p).suffix]: p for p in sorted(files.values())}
    if len(kinds) > 1:
        raise InputError(
            f"{where}: holds JSON and parquet split files ({kinds['json']}, {kinds['parquet']}); "
            "datasets reads a folder's files with one builder: convert one kind"
        )
    configs: dict[str, dict[str, str]] = {}
    for ref, path in sorted(files.items()):
        parts = ref.split("/")
        if len(parts) > 2:
            raise InputError(
                f"{where / path}: a split file sits at the top (SPLIT.jsonl) or one folder down "
                "(CONFIG/SPLIT.jsonl) to be a dataset config; this one is deeper"
            )
        config, split = (parts[0], "train") if len(parts) == 1 else parts
        if not _SPLIT_NAME.match(split):
            raise InputError(
                f"{where / path}: {split!r} is not a split name datasets accepts "
                "(letters, digits and _, parts joined by '.')"
            )
        splits = configs.setdefault(config, {})
        if split in splits:
            raise InputError(
                f"{where / path}: config {config!r} split {split!r} is also "
                f"{where / splits[split]}; keep one of them"
            )
        splits[split] = path
    return [
        {
            "config_name": config,
            "data_files": [{"split": s, "path": p} for s, p in sorted(splits.items())],
        }
        for config, splits in sorted(configs.items())
    ]


def card_text(configs: list[dict], name: str) -> str:
    """README.md: the YAML header with `configs:`, then how to load the folder."""
    header = yaml.safe_dump({"configs": configs}, sort_keys=False, allow_unicode=True)
    first = configs[0]["config_name"] if configs else "CONFIG"
    return (
        f"---\n{header}---\n\n# {name}\n\n"
        "A benchmark folder written by satimp, with one dataset config per split file "
        "(TOFU's layout: config `forget10`, split `train`) or per folder of split files "
        "(MUSE's: config `raw`, split `forget`). Load a split with\n\n"
        f'```python\ndatasets.load_dataset("path/to/{name}", "{first}")\n```\n\n'
        "or give the folder to satimp as `--data`.\n"
    )


def write_card(root: Path, refs: Iterable[str], *, overwrite: bool = False) -> list[dict]:
    """Write README.md for the split references `refs` of `root` (each read from the file
    satimp reads for it); returns the configs. InputError, nothing written, when a README.md
    is there and not `overwrite`, or a reference cannot be a config (`card_configs`)."""
    card = root / CARD
    if card.exists() and not overwrite:
        raise InputError(f"{card} exists (--overwrite replaces it)")
    files = {ref: split_file(root, ref).relative_to(root).as_posix() for ref in refs}
    configs = card_configs(files, root)
    write_atomic(card, card_text(configs, root.resolve().name))
    return configs


def export_folder(root: str | Path, *, overwrite: bool = False) -> list[dict]:
    """`satimp data export`: add README.md to an existing benchmark folder after checking that
    every split file is readable and holds records (InputError naming the file and line,
    nothing written, otherwise); returns the configs."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"--data {root}: not a folder")
    refs = split_refs(root)
    if not refs:
        raise InputError(
            f"--data {root}: no split files ({', '.join('*' + e for e in EXTENSIONS)}) in it"
        )
    if (root / CARD).exists() and not overwrite:  # before reading every file
        raise InputError(f"{root / CARD} exists (--overwrite replaces it)")
    for ref in refs:
        path = split_file(root, ref)
        if not read_rows(path):
            raise InputError(f"{path}: no records in it")
    return write_card(root, refs, overwrite=overwrite)
