"""Redraw a trade-off figure (forget ES against retain ES) with the current plotting style.

    python scripts/redraw_tradeoff.py runs/NAME/TIMESTAMP/results.json OUT.png
    python scripts/redraw_tradeoff.py docs/smollm2.md OUT.png     # a results table in the docs

The source is a run's results.json, or a Markdown page whose first results table (columns
`method`, `forget ES ↓`, `retain ES ↑`, as `satimp run` prints them) holds the rows: for a
figure whose run folder is gone, redrawn from the numbers as printed (3 digits).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from satimp.report import HEADERS, REFERENCES, method_styles, save_figure, tradeoff_figure


def rows_from_markdown(text: str) -> list[dict]:
    """The rows of the first Markdown table with method, forget ES and retain ES columns."""
    keys = {HEADERS[k]: k for k in ("method", "forget_es", "retain_es")}
    header = None
    rows = []
    for line in text.splitlines():
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        if header is None:
            if line.startswith("|") and set(keys) <= set(cells):
                header = cells
            continue
        if not line.startswith("|"):
            break
        if set(line) <= set("|-: "):
            continue
        row = dict(zip(header, cells, strict=True))
        method = row["method"]
        rows.append(
            {
                "method": method,
                "status": "reference" if method in REFERENCES else "ok",
                "forget_es": float(row[HEADERS["forget_es"]]),
                "retain_es": float(row[HEADERS["retain_es"]]),
            }
        )
    if not rows:
        raise SystemExit("no results table (method, forget ES ↓, retain ES ↑) found")
    return rows


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    source, out = Path(argv[0]), Path(argv[1])
    text = source.read_text()
    rows = json.loads(text) if source.suffix == ".json" else rows_from_markdown(text)
    shown = [r for r in rows if "n_seeds" in r] or rows  # with seeds: the aggregates
    save_figure(tradeoff_figure(shown, method_styles(r["method"] for r in rows)), out)
    print(f"{len(shown)} rows → {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
