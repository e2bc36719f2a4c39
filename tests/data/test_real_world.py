"""Tests for the project's real-world knowledge sets (satimp.data.real_world)."""

import ast
import sys
from pathlib import Path

import pytest

from satimp.data import real_world
from satimp.data.real_world import REAL_AUTHORS, WORLD_FACTS, real_world_splits

SETS = {"real_authors": REAL_AUTHORS, "world_facts": WORLD_FACTS}
FIELDS = {"question", "answer", "perturbed_answer"}
K = 3  # perturbed answers per item
MAX_LEN_RATIO = 3  # perturbed vs true answer, in whitespace tokens


def _norm(text: str) -> str:
    return text.strip().casefold()


@pytest.fixture(params=sorted(SETS))
def items(request: pytest.FixtureRequest) -> list[dict]:
    return SETS[request.param]


def test_counts() -> None:
    assert len(REAL_AUTHORS) >= 100
    assert len(WORLD_FACTS) >= 100
    assert real_world.N_PERTURBED == K


def test_fields_and_types(items: list[dict]) -> None:
    for item in items:
        assert set(item) == FIELDS, item
        assert isinstance(item["question"], str)
        assert isinstance(item["answer"], str)
        assert isinstance(item["perturbed_answer"], list)
        assert len(item["perturbed_answer"]) == K, item
        assert all(isinstance(p, str) for p in item["perturbed_answer"]), item


def test_no_empty_or_padded_strings(items: list[dict]) -> None:
    for item in items:
        for text in (item["question"], item["answer"], *item["perturbed_answer"]):
            assert text.strip(), item
            assert text == text.strip(), item
        assert item["question"].endswith("?"), item


def test_questions_unique() -> None:
    questions = [_norm(i["question"]) for items in SETS.values() for i in items]
    assert len(questions) == len(set(questions))


def test_answer_not_perturbed(items: list[dict]) -> None:
    for item in items:
        perturbed = {_norm(p) for p in item["perturbed_answer"]}
        assert _norm(item["answer"]) not in perturbed, item


def test_perturbed_distinct(items: list[dict]) -> None:
    for item in items:
        perturbed = [_norm(p) for p in item["perturbed_answer"]]
        assert len(perturbed) == len(set(perturbed)), item


def test_perturbed_length_comparable(items: list[dict]) -> None:
    for item in items:
        n_answer = len(item["answer"].split())
        for p in item["perturbed_answer"]:
            n = len(p.split())
            assert max(n, n_answer) <= MAX_LEN_RATIO * min(n, n_answer), (item, p)


def test_answers_short(items: list[dict]) -> None:
    for item in items:
        assert len(item["answer"].split()) <= 8, item


def test_splits_consistent() -> None:
    splits = real_world_splits()
    assert set(splits) == {
        "real_authors",
        "real_authors_perturbed",
        "world_facts",
        "world_facts_perturbed",
    }
    for name, items in SETS.items():
        plain, perturbed = splits[name], splits[f"{name}_perturbed"]
        assert plain == [{"question": i["question"], "answer": i["answer"]} for i in items]
        assert perturbed == items
        assert all(set(r) == {"question", "answer"} for r in plain)
        assert all(set(r) == FIELDS for r in perturbed)


def test_splits_are_fresh_copies() -> None:
    first = real_world_splits()
    first["real_authors"][0]["answer"] = "changed"
    first["world_facts_perturbed"][0]["perturbed_answer"].append("extra")
    first["world_facts"].clear()
    second = real_world_splits()
    assert second["real_authors"][0]["answer"] == REAL_AUTHORS[0]["answer"]
    assert REAL_AUTHORS[0]["answer"] != "changed"
    assert len(second["world_facts_perturbed"][0]["perturbed_answer"]) == K
    assert len(WORLD_FACTS[0]["perturbed_answer"]) == K
    assert len(second["world_facts"]) == len(WORLD_FACTS)


def test_sizes_keep_a_seeded_sample_in_order() -> None:
    """sizes=(a, w): a and w items of each set, a subset in the set's order, the same items in
    the plain and perturbed splits, fixed by the seed and different for another seed."""
    splits = real_world_splits((100, 117), seed=0)
    for name, n in (("real_authors", 100), ("world_facts", 117)):
        plain, perturbed = splits[name], splits[f"{name}_perturbed"]
        assert len(plain) == len(perturbed) == n
        assert [r["question"] for r in plain] == [r["question"] for r in perturbed]
        index = [SETS[name].index(r) for r in perturbed]
        assert index == sorted(set(index))  # distinct items, in the set's order
    assert splits == real_world_splits((100, 117), seed=0)
    other = real_world_splits((100, 117), seed=1)
    assert other["real_authors"] != splits["real_authors"]
    full = real_world_splits((len(REAL_AUTHORS), len(WORLD_FACTS)))
    assert full == real_world_splits()


def test_sample_items_is_a_fixed_sample() -> None:
    """The sample does not depend on the process (a string seed, not Python's hash)."""
    assert real_world.sample_items(5, 5, 3) == [0, 1, 2, 3, 4]
    once = real_world.sample_items(160, 117, 0)
    assert len(once) == 117 and once == sorted(set(once)) and 0 <= once[0] and once[-1] < 160
    assert once == real_world.sample_items(160, 117, 0)


@pytest.mark.parametrize("sizes", [(0, 10), (10, len(WORLD_FACTS) + 1), (-1, 5)])
def test_bad_sizes_raise(sizes: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="size must be in"):
        real_world_splits(sizes)


def test_standard_library_only() -> None:
    """The module imports nothing outside the standard library."""
    tree = ast.parse(Path(real_world.__file__).read_text(encoding="utf-8"))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            modules.add((node.module or "").split(".")[0])
    assert modules <= set(sys.stdlib_module_names), modules
