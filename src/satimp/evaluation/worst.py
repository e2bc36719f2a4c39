"""The items a model gets most wrong, as tables to read: the forget items it still reproduces
(highest ES, then probability) and the retain items it lost (lowest ES, then probability),
each with its question, the dataset's answer and the answer the model generated for ROUGE.

Items are numbered by their 0-based position in the split, the order of per_sample.json's
lists (open-unlearning's `value_by_index` keys are the same numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class WorstItems:
    """One table: `rows` are dicts with index, es, prob, rouge (None where the split has no
    such value), question, answer and generation (None without a generated answer)."""

    title: str
    split: str
    rows: list[dict]


def rank_items(
    per_sample: dict, records: Sequence[dict], *, highest: bool, n: int = 10
) -> list[dict]:
    """The `n` items of one split ranked by ES, ties by probability, then by position:
    highest first (`highest`: still reproduced) or lowest first (lost).

    per_sample: that split's {metric: [value per item]} (es required; prob, rouge and
    generation used when present); records: the split's records in the same order.
    """
    es = per_sample["es"]
    if len(es) != len(records):
        raise ValueError(f"rank_items: {len(es)} scored items for {len(records)} records")
    prob = per_sample.get("prob")
    sign = -1 if highest else 1

    def key(i: int) -> tuple:
        return (sign * es[i], sign * (prob[i] if prob else 0.0), i)

    def value(name: str, i: int):
        values = per_sample.get(name)
        return values[i] if values is not None else None

    return [
        {
            "index": i,
            "es": es[i],
            "prob": value("prob", i),
            "rouge": value("rouge", i),
            "question": records[i]["question"],
            "answer": records[i]["answer"],
            "generation": value("generation", i),
        }
        for i in sorted(range(len(es)), key=key)[:n]
    ]


def _cell(value) -> str:
    """A Markdown table cell: numbers to 3 decimals, text on one line with `|` escaped."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return " ".join(str(value).split()).replace("|", "\\|") or "(empty)"


def worst_items_markdown(tables: Sequence[WorstItems], *, title: str) -> str:
    """worst_items.md: one Markdown table per WorstItems, under `title`."""
    cols = ("#", "item", "ES", "prob", "ROUGE", "question", "answer", "generated answer")
    fields = ("index", "es", "prob", "rouge", "question", "answer", "generation")
    md = [f"# {title}", ""]
    for t in tables:
        md += [f"## {t.title} ({t.split})", ""]
        md += ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        for rank, row in enumerate(t.rows, 1):
            md.append("| " + " | ".join([str(rank), *(_cell(row[f]) for f in fields)]) + " |")
        md.append("")
    return "\n".join(md)
