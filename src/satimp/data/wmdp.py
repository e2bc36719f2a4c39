"""WMDP loader (Li et al., 2024): multiple-choice questions from `cais/wmdp` (configs
`wmdp-bio`, `wmdp-cyber`, `wmdp-chem`, split `test`), MMLU-style utility questions
(`cais/mmlu::all/test`), and the unlearning corpora (`cais/wmdp-corpora`, or local `.jsonl`
files of `{"text": …}` records, as the bio forget corpus is distributed on request).

A multiple-choice record is `{"question": str, "choices": [str, …], "answer": int}` with
`answer` the 0-based index of the right choice. A local directory holds `CONFIG/SPLIT.jsonl`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from satimp.config import opt
from satimp.data.records import load_records
from satimp.errors import InputError

MCQ_FIELDS: dict[str, type] = {"question": str, "choices": list, "answer": int}


def _check_answer(record: dict, where: str) -> None:
    n = len(record["choices"])
    if not 0 <= record["answer"] < n:
        raise InputError(
            f"{where}: answer index {record['answer']} is out of range for {n} choices "
            f"(valid: 0..{n - 1})"
        )


def load_mcq(source: str | Path, ref: str) -> list[dict]:
    """Multiple-choice records of split `ref`; an answer index outside the choices raises
    InputError naming the file and record."""
    return load_records(source, ref, MCQ_FIELDS, _check_answer)


# lm-evaluation-harness's subject line for each WMDP set (MMLU records carry a `subject`).
TOPICS = {"wmdp-bio": "biology", "wmdp-cyber": "computer security", "wmdp-chem": "chemistry"}


@dataclass
class WmdpConfig:
    """Which WMDP questions and corpora to use, and how to score multiple choice (SPEC §5)."""

    sets: list = opt(["wmdp-bio/test"], "hazardous-knowledge MCQ sets (CONFIG/SPLIT refs)")
    utility: list = opt(["mmlu/test"], "general-knowledge MCQ sets, e.g. cais/mmlu::all/test")
    forget: list = opt(["bio-forget-corpus/train"], "forget corpora ({text} records)")
    retain: list = opt(["bio-retain-corpus/train"], "retain corpora (RMU: wikitext)")
    original_train: list = opt(
        ["bio-forget-corpus/train", "bio-retain-corpus/train"], "preset models: original's corpus"
    )
    retain_train: list = opt(["bio-retain-corpus/train"], "preset models: retain model's corpus")
    format: str = opt(
        "letters",
        "'letters': lm-eval's prompt listing A–D, scoring ' A'…' D'; 'text': 'Question: q\n"
        "Answer:' scoring each choice's text (for small models that cannot read a list)",
    )
    min_chars: int = opt(50, "corpus texts shorter than this are skipped (as RMU does)")
    max_items: int | None = opt(None, "score the first N questions of each set (None: all)")
    probe_texts: int = opt(100, "corpus texts used for forget/retain ES")

    def validate(self) -> None:
        if self.format not in ("letters", "text"):
            raise InputError(f"wmdp.format={self.format!r}; valid: letters, text")
        if not self.sets:
            raise InputError("wmdp.sets is empty")
