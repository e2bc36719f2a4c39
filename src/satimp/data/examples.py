"""Training examples from any benchmark split: QA records (TOFU) or plain-text corpora (MUSE,
WMDP), told apart by their fields.

- records with a `text` field → chunks of `max_length` tokens, labels on every token
  (`encode_text`; MUSE's and RMU's raw-text training);
- records with `question` / `answer` → one QA pair each, encoded as SPEC §4 (`encode_qa`).
"""

from __future__ import annotations

from pathlib import Path

from satimp.data.encoding import Encoded, encode_records, encode_text
from satimp.data.records import load_texts, read_split
from satimp.data.tofu import load_split


def is_text_split(source: str | Path, ref: str) -> bool:
    """Does split `ref` hold plain-text records (a `text` field)?"""
    rows, _ = read_split(source, ref)
    first = rows[0][1]
    return isinstance(first, dict) and "text" in first and "question" not in first


def training_examples(
    tokenizer, source: str | Path, refs: str | list[str], *, max_length: int, min_chars: int = 1
) -> list[Encoded]:
    """The encoded examples of every split in `refs`, in order."""
    out: list[Encoded] = []
    for ref in [refs] if isinstance(refs, str) else refs:
        if is_text_split(source, ref):
            for text in load_texts(source, ref, min_chars=min_chars):
                out += encode_text(tokenizer, text, max_length=max_length)
        else:
            out += encode_records(tokenizer, load_split(source, ref), max_length=max_length)
    return out
