"""Per-module mutation scores of the last `make mutation` (mutmut), as a Markdown table.

    python scripts/mutation_scores.py            # in the folder mutmut ran in

Reads `mutmut results --all true` (one `module.function__mutmut_N: status` line a mutant) and
counts, per module, the mutants by status. The score is killed ÷ checked, where checked is
every mutant a test ran against or could have (killed, survived, timeout, no tests): a
mutant no test reaches counts against the score, one mutmut skipped or did not check does
not count at all. Survivors are listed after the table, for docs/mutation.md.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

KILLED = {"killed", "caught by type check"}
CHECKED = KILLED | {"survived", "timeout", "no tests", "suspicious", "segfault"}
LINE = re.compile(r"^\s*(?P<name>\S+?)__mutmut_\d+: (?P<status>.+?)\s*$")


def module_of(name: str) -> str:
    """satimp.stats.x_mean → satimp.stats; satimp.protocol.xǁProtocolConfigǁresolve → …protocol."""
    return re.split(r"\.x[_ǁ]", name, maxsplit=1)[0]


def scores(lines: list[str]) -> tuple[dict[str, Counter], list[str]]:
    """({module: Counter(status)}, survivors' names) from mutmut's result lines."""
    counts: dict[str, Counter] = defaultdict(Counter)
    survivors = []
    for line in lines:
        m = LINE.match(line)
        if not m:
            continue
        status = m["status"]
        counts[module_of(m["name"])][status] += 1
        if status in CHECKED - KILLED:
            survivors.append(line.strip())
    return counts, survivors


def table(counts: dict[str, Counter]) -> str:
    rows = [
        "| module | mutants | killed | survived | no tests | timeout | score |",
        "|" + "---|" * 7,
    ]
    for module in sorted(counts):
        c = counts[module]
        checked = sum(v for k, v in c.items() if k in CHECKED)
        killed = sum(v for k, v in c.items() if k in KILLED)
        score = f"{100 * killed / checked:.1f} %" if checked else "–"
        rows.append(
            f"| `{module}` | {sum(c.values())} | {killed} | {c['survived']} | "
            f"{c['no tests']} | {c['timeout']} | {score} |"
        )
    return "\n".join(rows)


def main() -> int:
    mutmut = Path(sys.executable).with_name("mutmut")
    out = subprocess.run(
        [str(mutmut), "results", "--all", "true"], capture_output=True, text=True, check=True
    ).stdout
    counts, survivors = scores(out.splitlines())
    if not counts:
        print("no mutmut results here: run `make mutation` first", file=sys.stderr)
        return 1
    print(table(counts))
    if survivors:
        print("\nsurvivors:\n" + "\n".join(f"- {s}" for s in survivors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
