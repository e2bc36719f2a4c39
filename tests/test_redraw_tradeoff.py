"""scripts/redraw_tradeoff.py: the rows of a results table in Markdown, and the figure."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "redraw_tradeoff.py"

PAGE = """# A page

Some text | with a pipe.

| method | status | forget ES ↓ | forget EM ↓ | retain ES ↑ |
|---|---|---|---|---|
| original | reference | 0.973 | 0.997 | 0.971 |
| satimp | ok | **0.459** | 0.919 | **0.971** |
| ga | ok | 0.537 | 0.956 | 0.898 |

| method | forget ES ↓ | retain ES ↑ |
|---|---|---|
| later | 0.1 | 0.2 |
"""


def _load():
    spec = importlib.util.spec_from_file_location("redraw_tradeoff", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rows_come_from_the_first_results_table_bold_stripped() -> None:
    rows = _load().rows_from_markdown(PAGE)
    assert rows == [
        {"method": "original", "status": "reference", "forget_es": 0.973, "retain_es": 0.971},
        {"method": "satimp", "status": "ok", "forget_es": 0.459, "retain_es": 0.971},
        {"method": "ga", "status": "ok", "forget_es": 0.537, "retain_es": 0.898},
    ]


def test_a_page_without_a_results_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no results table"):
        _load().rows_from_markdown("| a | b |\n|---|---|\n| 1 | 2 |\n")


def test_the_figure_is_written(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    assert _load().main([str(page), str(tmp_path / "t.png")]) == 0
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
