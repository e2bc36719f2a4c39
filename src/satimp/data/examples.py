"""Training examples from any benchmark split: QA records (TOFU) or plain-text corpora (MUSE,
WMDP), told apart by their fields.

- records with a `text` field → chunks of `max_length` tokens, labels on every token
  (`encode_text`; MUSE's and RMU's raw-text training);
- records with `question` / `answer` → one QA pair each, encoded as SPEC §4 (`encode_qa`).

`load_splits` reads each split once and keeps what it holds (texts or QA records), so a caller
can both encode it and probe it without reading it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from satimp.data.encoding import Encoded, encode_records, encode_text
from satimp.data.records import corpus_texts, read_split
from satimp.data.tofu import validate_record


@dataclass(frozen=True)
class Loaded:
    """One split as read: `texts` for a corpus, `records` (validated QA pairs) otherwise."""

    ref: str
    texts: list[str] | None = None
    records: list[dict] | None = None


def load_splits(source: str | Path, refs: str | list[str] | None, *, min_chars: int = 1):
    """Every split of `refs` (one name, a list, or None for none), each read once."""
    out = []
    for ref in [refs] if isinstance(refs, str) else refs or []:
        rows, where = read_split(source, ref)
        first = rows[0][1]
        if isinstance(first, dict) and "text" in first and "question" not in first:
            out.append(Loaded(ref, texts=corpus_texts(rows, where, min_chars=min_chars)))
        else:
            records = [validate_record(r, ref, f"{where}:{i}") for i, r in rows]
            out.append(Loaded(ref, records=records))
    return out


def encode_loaded(
    tokenizer, loaded: list[Loaded], *, max_length: int, system: str = ""
) -> list[Encoded]:
    """The encoded examples of loaded splits, in order (QA pairs after a system message when
    `system` is given; plain text never has one)."""
    out: list[Encoded] = []
    for split in loaded:
        if split.texts is not None:
            for text in split.texts:
                out += encode_text(tokenizer, text, max_length=max_length)
        else:
            out += encode_records(tokenizer, split.records, max_length=max_length, system=system)
    return out


def training_examples(
    tokenizer,
    source: str | Path,
    refs: str | list[str],
    *,
    max_length: int,
    min_chars: int = 1,
    system: str = "",
) -> list[Encoded]:
    """The encoded examples of every split in `refs`, in order."""
    loaded = load_splits(source, refs, min_chars=min_chars)
    return encode_loaded(tokenizer, loaded, max_length=max_length, system=system)
