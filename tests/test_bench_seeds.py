"""scripts/run_seeds.py: rows of two run folders joined by seed, intervals and paired
differences against values computed by hand."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "run_seeds.py"


def _load():
    spec = importlib.util.spec_from_file_location("run_seeds", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(out: Path, rows: list[dict]) -> Path:
    out.mkdir()
    (out / "results.json").write_text(json.dumps(rows))
    return out


def _row(method, forget, retain, seed=None, status="ok"):
    r = {"method": method, "status": status, "forget_es": forget, "retain_es": retain}
    return r | {"model_utility": 0.25} | ({} if seed is None else {"seed": seed})


def _runs(tmp_path):
    s0 = _write(tmp_path / "s0", [_row("original", 0.9, 0.9, status="reference"),
                                  _row("ga", 0.5, 0.9), _row("satimp", 0.4, 0.95)])  # fmt: skip
    s12 = _write(tmp_path / "s12", [
        _row("ga", 0.6, 0.8, 1), _row("satimp", 0.45, 0.9, 1),
        _row("ga", 0.55, 0.85, 2), _row("satimp", 0.35, 0.92, 2),
        {"method": "ga", "status": "ok", "n_seeds": 2, "forget_es_mean": 0.575},
    ])  # fmt: skip
    return s0, s12


def test_rows_join_by_seed_and_skip_references_and_aggregates(tmp_path):
    table = _load().per_seed(list(_runs(tmp_path)), default_seed=0)
    assert sorted(table) == ["ga", "satimp"]
    assert {s: r["forget_es"] for s, r in table["ga"].items()} == {0: 0.5, 1: 0.6, 2: 0.55}


def test_table_by_hand(tmp_path):
    s0, s12 = _runs(tmp_path)
    cmd = [sys.executable, str(SCRIPT), str(s0), str(s12), "--paired", "satimp"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    ga = next(line for line in out.splitlines() if line.startswith("| ga |"))
    # ga forget ES 0.5, 0.6, 0.55: mean 0.55, s 0.05, t(0.975, 2) = 4.3027 → ± 0.124;
    # minus satimp's 0.4, 0.45, 0.35: 0.1, 0.15, 0.2 → +0.150 ± 0.124, t = 5.196, p = 0.035
    assert "| 0.500, 0.600, 0.550 | 0.550 ± 0.124 |" in ga
    assert "+0.150 ± 0.124 (0.035)" in ga


def test_seed_in_two_folders_is_an_error(tmp_path):
    s0, _ = _runs(tmp_path)
    again = _write(tmp_path / "again", [_row("ga", 0.5, 0.9, 0)])
    done = subprocess.run([sys.executable, str(SCRIPT), str(s0), str(again)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode != 0 and "ga seed 0 is in another folder" in done.stderr
