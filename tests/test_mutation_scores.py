"""scripts/mutation_scores.py: per-module counts and scores from mutmut's result lines."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "mutation_scores.py"


def _load():
    spec = importlib.util.spec_from_file_location("mutation_scores", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LINES = [
    "    satimp.stats.x_mean__mutmut_1: killed",
    "    satimp.stats.x_mean__mutmut_2: survived",
    "    satimp.stats.x_ci95__mutmut_1: killed",
    "    satimp.stats.x_ci95__mutmut_2: no tests",
    "    satimp.stats.x_ci95__mutmut_3: skipped",
    "    satimp.protocol.xǁProtocolConfigǁresolve__mutmut_1: killed",
    "    satimp.protocol.x_resolve__mutmut_4: timeout",
    "    satimp.study.frontier.x_ranking__mutmut_7: not checked",
    "some other line",
]


def test_scores_count_per_module_and_score_killed_over_checked() -> None:
    """stats: 5 mutants, 2 killed, checked = killed + survived + no tests = 4 (the skipped one
    does not count): 50 %. protocol: 1 killed of 2 checked (a timeout counts against): 50 %.
    frontier: nothing checked: no score."""
    m = _load()
    counts, survivors = m.scores(LINES)
    assert dict(counts["satimp.stats"]) == {"killed": 2, "survived": 1, "no tests": 1, "skipped": 1}
    assert dict(counts["satimp.protocol"]) == {"killed": 1, "timeout": 1}
    assert dict(counts["satimp.study.frontier"]) == {"not checked": 1}
    assert survivors == [
        "satimp.stats.x_mean__mutmut_2: survived",
        "satimp.stats.x_ci95__mutmut_2: no tests",
        "satimp.protocol.x_resolve__mutmut_4: timeout",
    ]
    rows = {r.split("|")[1].strip(): r for r in m.table(counts).splitlines()[2:]}
    assert rows["`satimp.stats`"].endswith("| 5 | 2 | 1 | 1 | 0 | 50.0 % |")
    assert rows["`satimp.protocol`"].endswith("| 2 | 1 | 0 | 0 | 1 | 50.0 % |")
    assert rows["`satimp.study.frontier`"].endswith("| 1 | 0 | 0 | 0 | 0 | – |")
