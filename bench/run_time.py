"""Wall time of a whole `satimp run`, cold and warm: the SmolLM2 config's time targets.

    python bench/run_time.py configs/tofu_smollm2.yaml        # cold ≤ 90 min, warm ≤ 45 min
    python bench/run_time.py [CONFIG] [key=value ...] [--dir DIR]

Cold: an empty model cache ($SATIMP_CACHE_DIR) and run cache (`cache_dir=`), so the run
converts the GGUF, builds the original and retain models, evaluates the reference models and
runs every method. Warm: the same command again with a new `--out`, both caches kept: the
models and the reference evaluations are cache hits, the methods run again. Each run is its
own `satimp run` process with this script's thread count. Reports both wall times, the
phases of the cold run (builds from its log, evaluations and methods from `results.json`),
and whether the warm run's results equal the cold run's in every field but the times.
`--dir` keeps the caches and both run folders there (default: a temporary folder, removed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402


def timed_run(args: list[str], root: Path, out: str) -> tuple[float, str, list[dict]]:
    """One `satimp run` with root's caches: (wall seconds, its stdout, its result rows)."""
    env = {**os.environ, "SATIMP_CACHE_DIR": str(root / "models")}
    cmd = [sys.executable, "-m", "satimp.cli", "run", *args, f"cache_dir={root / 'run'}"]
    t0 = time.time()
    done = subprocess.run([*cmd, "--out", str(root / out)], env=env, capture_output=True, text=True)
    seconds = time.time() - t0
    if done.returncode != 0:
        sys.exit(f"satimp run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done.stdout, json.loads((root / out / "results.json").read_text())


def untimed(rows: list[dict]) -> list[dict]:
    """Result rows without their `seconds`: what a rerun must reproduce."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def report(root: Path, args: list[str]) -> None:
    cold, log, cold_rows = timed_run(args, root, "cold")
    warm, _, warm_rows = timed_run(args, root, "warm")
    builds = {
        m[0]: float(m[1])
        for m in re.findall(r"^\s+(base model|original|retain)\s+\S+\s+\((\S+)s\)", log, re.M)
    }
    refs = [r for r in cold_rows if r["status"] == "reference"]
    methods = [r for r in cold_rows if r["status"] != "reference"]
    same = untimed(cold_rows) == untimed(warm_rows)
    print(f"machine: {machine()}")
    print(f"satimp run {' '.join(args)}\n")
    print("| quantity | seconds | minutes |\n|---|---|---|")
    for name, sec in [
        ("cold run (empty caches)", cold),
        *((f"  build: {k}", v) for k, v in builds.items()),
        *((f"  evaluation: {r['method']}", r["seconds"]) for r in refs),
        (f"  methods: {len(methods)}, summed", sum(r["seconds"] for r in methods)),
        ("warm run (models and reference evaluations cached)", warm),
    ]:
        print(f"| {name} | {sec:.0f} | {sec / 60:.1f} |")
    print(f"\nwarm results equal cold results but for the times: {'yes' if same else 'NO'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="?", help="a run config (default: the embedded default)")
    ap.add_argument("overrides", nargs="*", help="key=value, as `satimp run` takes them")
    ap.add_argument("--dir", type=Path, help="keep the caches and run folders here (empty)")
    a = ap.parse_args()
    if a.config and "=" in a.config:  # no config, only overrides
        a.config, a.overrides = None, [a.config, *a.overrides]
    args = [*([a.config] if a.config else []), *a.overrides]
    if a.dir is not None:
        if a.dir.exists() and any(a.dir.iterdir()):
            sys.exit(f"--dir {a.dir}: not empty (a cold run needs empty caches)")
        a.dir.mkdir(parents=True, exist_ok=True)
        report(a.dir, args)
    else:
        with tempfile.TemporaryDirectory(prefix="satimp-run-time-") as d:
            report(Path(d), args)


if __name__ == "__main__":
    main()
