"""Run every benchmark in sequence (`make bench`), each in its own process, 2 threads.

Figures go in docs/performance.md with the machine named. Not timed tests: a shared machine's timings
vary, so ratios are measured within one run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
SCRIPTS = [
    ["models.py"],
    ["unlearn_cost.py"],
    ["unlearn_cost.py", "--preset", "medium"],
    ["eval_speed.py"],
    ["throughput.py"],
    ["distributed.py"],
    ["run_time.py"],
]

if __name__ == "__main__":
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("SATIMP_BENCH_THREADS", "2")}
    for script, *args in SCRIPTS:
        print(f"\n## bench/{' '.join([script, *args])}\n", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *args], check=True, env=env)
