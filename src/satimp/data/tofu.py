"""TOFU loader: a local directory of split files, or a hub id such as `locuslab/TOFU`.

A local directory holds one file per split, `<split>.json`, `<split>.jsonl` or `<split>.parquet`
(SPEC §4). Records are validated on load: a missing file or field, an empty split, a malformed
line or a non-list `perturbed_answer` raises `InputError` naming the file, line and field.
"""

from __future__ import annotations

from pathlib import Path

from satimp.data.records import EXTENSIONS, check_fields, read_split, split_file
from satimp.errors import InputError

__all__ = [
    "EXTENSIONS",
    "GENERAL_KNOWLEDGE",
    "base_answer_key",
    "load_split",
    "load_splits",
    "required_fields",
    "split_file",
    "validate_record",
]


GENERAL_KNOWLEDGE = ("real_authors", "world_facts")


def base_answer_key(split: str) -> str:
    """The answer a split's truth ratio compares the perturbed answers with (TOFU's
    `base_answer_key`): `answer` on real authors and world facts, `paraphrased_answer` on the
    forget and retain sets."""
    name = split.split("::")[-1].split("[")[0]
    return "answer" if name.startswith(GENERAL_KNOWLEDGE) else "paraphrased_answer"


def required_fields(split: str) -> dict[str, type]:
    """Fields (and their types) a record of `split` must carry (SPEC §4). TOFU's own
    real-authors and world-facts files hold no paraphrased answer; they need none."""
    fields: dict[str, type] = {"question": str, "answer": str}
    if split.split("[")[0].endswith("_perturbed"):
        fields |= {base_answer_key(split): str, "perturbed_answer": list}
    return fields


def validate_record(record: object, split: str, where: str) -> dict:
    """Check one record's fields and types; `where` is 'file:line' for the message."""
    try:
        record = check_fields(record, required_fields(split), where)
    except InputError as e:
        raise InputError(f"{e} (split {split!r})") from None
    keywords = record.get("keywords")
    if keywords is not None and not (
        isinstance(keywords, (list, tuple)) and all(isinstance(k, str) for k in keywords)
    ):
        raise InputError(f"{where}: field 'keywords' must be a list of strings")
    return record


def load_split(source: str | Path, split: str) -> list[dict]:
    """All records of `split` from a local directory or a hub dataset id, validated.

    A local path wins over a hub id of the same name. Hub loading goes through `datasets`
    (`load_dataset(source, split)["train"]`, TOFU's layout: one config per split).
    """
    rows, where = read_split(source, split)
    return [validate_record(r, split, f"{where}:{i}") for i, r in rows]


def load_splits(source: str | Path, splits: list[str]) -> dict[str, list[dict]]:
    """Several splits at once; every split is validated before any is returned."""
    return {s: load_split(source, s) for s in splits}


def retain_split_for(forget: str) -> str:
    """forget01 → retain99, forget05 → retain95, forget10 → retain90 (TOFU's pairs)."""
    if not (forget.startswith("forget") and forget[6:].isdigit()):
        raise InputError(f"forget split {forget!r} is not of the form forgetXX")
    return f"retain{100 - int(forget[6:])}"
