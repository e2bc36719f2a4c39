"""MUSE loader (Shi et al., 2024): hub ids `muse-bench/MUSE-News`, `muse-bench/MUSE-Books`, or a
local directory in the same layout, one folder per config and one file per split:

    raw/{forget,retain1,retain2,holdout}       {"text"}          unlearning and training corpora
    verbmem/forget                             {"prompt", "gt"}  verbatim memorisation probes
    knowmem/{forget,retain}_qa[_icl]           {"question", "answer"}  knowledge QA (+ few-shot)
    privleak/{forget,retain,holdout}           {"text"}          membership-inference sets

References are `CONFIG/SPLIT` (see `satimp.data.records`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from satimp.config import opt
from satimp.data.records import load_records, parse_ref
from satimp.errors import InputError

FIELDS: dict[str, dict[str, type]] = {
    "raw": {"text": str},
    "train": {"text": str},
    "privleak": {"text": str},
    "verbmem": {"prompt": str, "gt": str},
    "knowmem": {"question": str, "answer": str},
}


def load_muse(source: str | Path, ref: str) -> list[dict]:
    """Records of one MUSE split (`raw/forget`, `verbmem/forget`, `knowmem/forget_qa`, …),
    each checked for its config's fields."""
    _, bare = parse_ref(source, ref)
    config = bare.split("/", 1)[0]
    if "/" not in bare or config not in FIELDS:
        raise InputError(
            f"MUSE split {ref!r}: expected CONFIG/SPLIT with CONFIG one of {', '.join(FIELDS)}"
        )
    return load_records(source, ref, FIELDS[config])


@dataclass
class MuseConfig:
    """Which MUSE splits play which role, and the evaluation settings (SPEC §5)."""

    forget: str = opt("raw/forget", "unlearning forget corpus")
    retain: str = opt("raw/retain1", "unlearning retain corpus (GD/NPO retain term, RMU)")
    original_train: list = opt(
        ["raw/forget", "raw/retain1", "raw/retain2"], "preset models: the original's corpus"
    )
    retain_train: list = opt(["raw/retain1", "raw/retain2"], "preset models: the retain model's")
    verbmem: str = opt("verbmem/forget", "VerbMem probes {prompt, gt}")
    knowmem_forget: str = opt("knowmem/forget_qa", "KnowMem questions on the forget data")
    knowmem_retain: str = opt("knowmem/retain_qa", "KnowMem questions on the retain data")
    icl_forget: str = opt("knowmem/forget_qa_icl", "few-shot examples for knowmem_forget")
    icl_retain: str = opt("knowmem/retain_qa_icl", "few-shot examples for knowmem_retain")
    privleak_forget: str = opt("privleak/forget", "membership attack: members")
    privleak_holdout: str = opt("privleak/holdout", "membership attack: non-members")
    privleak_retain: str = opt("privleak/retain", "retain texts for retain ES")
    verbmem_new_tokens: int = opt(128, "VerbMem greedy continuation length")
    knowmem_new_tokens: int = opt(32, "KnowMem greedy answer length")
    icl_shots: int | None = opt(None, "few-shot examples per KnowMem prompt (None: all)")
    min_k: float = opt(0.4, "Min-K% fraction of the lowest token log-probs")
    max_length: int = opt(512, "token limit of a scored text (privleak texts are truncated)")
    max_items: int | None = opt(None, "evaluate the first N items of each set (None: all)")
    select: str = opt(
        "last",
        "which epoch's model is reported: 'last', or 'privleak' (the epoch whose |PrivLeak| is "
        "smallest, the latest on ties; every epoch is evaluated)",
    )

    def validate(self) -> None:
        if self.select not in ("last", "privleak"):
            raise InputError(f"muse.select={self.select!r}; valid: last, privleak")
        if not 0 < self.min_k <= 1:
            raise InputError(f"muse.min_k={self.min_k} must be in (0, 1]")
