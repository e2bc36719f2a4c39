"""The package's layering: imports run one way, down the layers, with no circle.

foundation → math/config → data/models → compute → evaluation → benchmarks → report →
pipelines → study → cli (docs/design.md). Every `import` statement of every module is read
from its source, those inside functions included, so a circle cannot hide behind a lazy
import; and satimp's own modules are never imported inside a function (imports there are
for optional dependencies only).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Each layer may import from itself and from the layers before it. A name ending in ".*"
# stands for a package and every module in it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("satimp", "satimp.errors", "satimp.distributed", "satimp.hf_compat",
                    "satimp.checkpoint", "satimp.runs")),
    ("math/config", ("satimp.stats", "satimp.config", "satimp.protocol")),
    ("data/models", ("satimp.data.*", "satimp.models")),
    ("compute", ("satimp.logprobs", "satimp.weighting", "satimp.objectives", "satimp.metrics",
                 "satimp.quantization",
                 "satimp.tracking", "satimp.train")),
    ("evaluation", ("satimp.evaluation.*",)),
    ("benchmarks", ("satimp.benchmarks",)),
    ("report", ("satimp.report",)),
    ("pipelines", ("satimp.experiment", "satimp.attack")),
    ("study", ("satimp.study.*",)),
    ("cli", ("satimp.cli_flags", "satimp.cli")),
]  # fmt: skip
LAZY_ALLOWED: set[str] = set()  # modules that may import satimp modules inside functions


def module_names(root: Path, package: str) -> dict[str, Path]:
    """{dotted module name: file} of every module under root/package (packages by __init__)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def layer_of(module: str, layers=LAYERS) -> int:
    for rank, (_, names) in enumerate(layers):
        for name in names:
            if module == name or (name.endswith(".*") and module.startswith(name[:-1])):
                return rank
            if name.endswith(".*") and module == name[:-2]:
                return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")


def imports_of(path: Path, modules: set[str], package: str) -> list[tuple[str, int, bool]]:
    """(imported package module, line, inside a function) for each import of `path` that names
    a module of `package` (`from a.b import c` names a.b.c when that is a module)."""
    tree = ast.parse(path.read_text(), str(path))
    lazy_lines = {
        n.lineno
        for f in ast.walk(tree)
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
        for n in ast.walk(f)
        if isinstance(n, (ast.Import, ast.ImportFrom))
    }
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: use absolute imports"
            base = node.module or ""
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]  # fmt: skip
        else:
            continue
        for t in targets:
            if t == package or t.startswith(package + "."):
                out.append((t, node.lineno, node.lineno in lazy_lines))
    return out


def violations(root: Path, package: str = "satimp", layers=LAYERS, lazy_ok=LAZY_ALLOWED):
    """Every import that runs back up a layer, every lazy import of the package outside
    `lazy_ok`, and every circle of the import graph, as readable lines."""
    modules = module_names(root, package)
    problems, graph = [], {m: set() for m in modules}
    for name, path in modules.items():
        for target, line, lazy in imports_of(path, set(modules), package):
            where = f"{path.relative_to(root)}:{line}"
            if layer_of(target, layers) > layer_of(name, layers):
                up = layers[layer_of(target, layers)][0]
                problems.append(f"{where}: {name} imports {target} from a later layer ({up})")
            if lazy and name not in lazy_ok:
                problems.append(f"{where}: {name} imports {target} inside a function")
            if target != name and not (name.startswith(target + ".") and target in modules):
                graph[name].add(target)  # (a package's submodule importing the package: no edge)
    problems += [f"import circle: {' → '.join(c)}" for c in cycles(graph)]
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected part of more than one module (depth-first)."""
    state, stack, found = {}, [], []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_imports_run_down_the_layers_without_circles() -> None:
    assert violations(SRC) == []


def test_every_module_has_a_layer() -> None:
    for name in module_names(SRC, "satimp"):
        layer_of(name)


def _package(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


TOY = [("low", ("toy", "toy.low")), ("mid", ("toy.mid.*",)), ("top", ("toy.top",))]


def test_the_check_catches_a_back_import_a_lazy_one_and_a_circle(tmp_path: Path) -> None:
    """The checker on a toy package: a clean tree passes; an import back up (at module level,
    or hidden inside a function) and a circle inside one layer are each reported."""
    clean = {
        "toy/__init__.py": "",
        "toy/low.py": "import os\n",
        "toy/mid/__init__.py": "",
        "toy/mid/a.py": "from toy.low import x\n",
        "toy/mid/b.py": "from toy.mid import a\n",
        "toy/top.py": "from toy.mid.b import y\nimport toy.low\n",
    }
    _package(tmp_path, clean)
    assert violations(tmp_path, "toy", TOY, set()) == []

    _package(tmp_path, {"toy/low.py": "def f():\n    from toy.top import z\n"})
    found = violations(tmp_path, "toy", TOY, set())
    assert any("toy.low imports toy.top from a later layer (top)" in p for p in found)
    assert any("inside a function" in p for p in found)

    _package(tmp_path, {"toy/low.py": "import os\n", "toy/mid/a.py": "from toy.mid.b import q\n"})
    found = violations(tmp_path, "toy", TOY, set())
    assert found == ["import circle: toy.mid.a → toy.mid.b → toy.mid.a"]
