"""Import smoke test: every module under src/satimp imports cleanly and has a docstring (the
layering and the absence of import circles: test_layering.py)."""

import importlib
import pkgutil

import pytest

import satimp

MODULES = sorted(info.name for info in pkgutil.walk_packages(satimp.__path__, prefix="satimp."))


def test_the_package_tree_is_found() -> None:
    assert {"satimp.cli", "satimp.config", "satimp.data.tofu", "satimp.data.encoding"} <= set(
        MODULES
    )


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__name__ == name
    assert module.__doc__, f"{name} has no module docstring"
