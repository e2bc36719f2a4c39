"""bench/keep_knowledge.py's rehearsal data: its generic prompts and the sentence cut."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from satimp.data.real_world import real_world_splits

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def keep():
    path = ROOT / "bench" / "keep_knowledge.py"
    spec = importlib.util.spec_from_file_location("bench_keep_knowledge", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The first sentence here. Second one is cut off mid", "The first sentence here."),
        ("Water it daily! Then wait. And then", "Water it daily! Then wait."),
        ("Is the bread ready yet? Yes", "Is the bread ready yet?"),
        ("Is it ready? Yes", "Is it ready? Yes"),
        ("Short. Then a long tail without an end", "Short. Then a long tail without an end"),
        ("No sentence end at all", "No sentence end at all"),
        ("Ends cleanly after twenty chars.", "Ends cleanly after twenty chars."),
    ],
)
def test_whole_sentences_by_hand(keep, text: str, expected: str) -> None:
    # a last sentence end before character 20 ("Short.", "Is it ready?") would leave too
    # little: no cut
    assert keep.whole_sentences(text) == expected


def test_replay_prompts_are_generic_and_distinct(keep) -> None:
    """120 distinct prompts, none naming anything the real-world sets ask about: no proper
    noun beyond the sentence's first word and "I", and no real-world answer among their words."""
    prompts = keep.replay_prompts()
    assert len(prompts) == 120 == len(set(prompts))
    splits = real_world_splits(None, seed=0)
    answers = {
        r["answer"].lower()
        for name in ("real_authors", "world_facts")
        for r in splits[name]
        if len(r["answer"]) >= 4
    }
    questions = {r["question"] for name in ("real_authors", "world_facts") for r in splits[name]}
    assert not questions & set(prompts)
    for p in prompts:
        words = re.findall(r"[A-Za-z][\w'-]*", p)
        assert all(w == "I" or w.islower() for w in words[1:]), p
        assert not {w.lower() for w in words} & answers, p
