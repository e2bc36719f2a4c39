"""Tests for the synthetic TOFU-format benchmark (satimp.data.synth)."""

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from satimp.data import synth, synth_pools
from satimp.data.synth import SPLITS, forget_authors, synth_records, synth_tofu
from satimp.errors import InputError

PLAIN_FIELDS = ["question", "answer", "keywords"]
PERTURBED_FIELDS = [
    "question",
    "answer",
    "paraphrased_answer",
    "perturbed_answer",
    "paraphrased_question",
    "keywords",
]
# TOFU's own real-authors / world-facts files: no paraphrase, 3 wrong answers in the answer's form
GENERAL_FIELDS = ["question", "answer", "perturbed_answer", "keywords"]
GENERAL = ("real_authors_perturbed", "world_facts_perturbed")
AUTHORS, QA = 20, 6  # small benchmark: forget01 = 1 author, forget05 = 1, forget10 = 2


def _read(path: Path) -> list[dict]:
    """Records of one .jsonl file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    """The small benchmark written once and read back, {split: records}."""
    out = tmp_path_factory.mktemp("synth")
    counts = synth_tofu(out, authors=AUTHORS, qa_per_author=QA, seed=0)
    splits = {name: _read(out / f"{name}.jsonl") for name in SPLITS}
    assert counts == {name: len(records) for name, records in splits.items()}
    return splits


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    synth_tofu(tmp_path / "a", authors=10, qa_per_author=4, seed=7)
    synth_tofu(tmp_path / "b", authors=10, qa_per_author=4, seed=7)
    for name in SPLITS:
        assert (tmp_path / "a" / f"{name}.jsonl").read_bytes() == (
            tmp_path / "b" / f"{name}.jsonl"
        ).read_bytes()


def test_different_seed_gives_different_files(tmp_path: Path) -> None:
    synth_tofu(tmp_path / "a", authors=10, qa_per_author=4, seed=0)
    synth_tofu(tmp_path / "b", authors=10, qa_per_author=4, seed=1)
    for name in ("full", "real_authors", "world_facts"):
        assert (tmp_path / "a" / f"{name}.jsonl").read_bytes() != (
            tmp_path / "b" / f"{name}.jsonl"
        ).read_bytes()


def test_file_format(tmp_path: Path) -> None:
    """UTF-8, "\\n" line ends, one object per line, non-ASCII written as is."""
    synth_tofu(tmp_path, authors=10, qa_per_author=4, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{s}.jsonl" for s in SPLITS)
    for name in SPLITS:
        raw = (tmp_path / f"{name}.jsonl").read_bytes()
        assert raw.endswith(b"\n") and b"\r" not in raw and b"\\u" not in raw
        assert all(isinstance(json.loads(line), dict) for line in raw.decode("utf-8").splitlines())


def test_every_split_has_its_fields(bench: dict[str, list[dict]]) -> None:
    assert list(bench) == list(SPLITS)
    for name, records in bench.items():
        assert records, name
        fields = PERTURBED_FIELDS if name.endswith("_perturbed") else PLAIN_FIELDS
        fields = GENERAL_FIELDS if name in GENERAL else fields
        for r in records:
            assert list(r) == fields, name
            assert all(
                isinstance(r[f], str) and r[f]
                for f in fields
                if f not in ("keywords", "perturbed_answer")
            )
            assert r["keywords"] and all(isinstance(k, str) and k for k in r["keywords"])


def test_perturbed_answers_are_wrong_and_distinct(bench: dict[str, list[dict]]) -> None:
    for name in [s for s in SPLITS if s.endswith("_perturbed")]:
        for r in bench[name]:
            wrong = r["perturbed_answer"]
            assert isinstance(wrong, list) and len(wrong) >= (3 if name in GENERAL else 5)
            assert all(isinstance(w, str) for w in wrong)
            assert len(set(wrong)) == len(wrong)
            assert r["answer"] not in wrong and r.get("paraphrased_answer") not in wrong
            for w in wrong:  # every key fact replaced by another value of its kind
                assert not any(_contains_word(w, k) for k in r["keywords"]), (r["answer"], w)


def _contains_word(text: str, phrase: str) -> bool:
    """Whether phrase occurs in text as whole words ("6" is not in "46 languages")."""
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None


def test_general_sets_perturb_the_answers_wording(bench: dict[str, list[dict]]) -> None:
    """Their truth ratio compares with `answer` (TOFU's base_answer_key): a wrong answer is
    the answer's sentence with other facts, word for word elsewhere."""
    for name in GENERAL:
        for r in bench[name]:
            skeleton = r["answer"]
            for k in r["keywords"]:
                skeleton = skeleton.replace(k, "#")
            for w in r["perturbed_answer"]:
                parts = [p for p in skeleton.split("#") if p]
                assert all(p in w for p in parts), (r["answer"], w)


def test_paraphrases_keep_the_facts(bench: dict[str, list[dict]]) -> None:
    for name in [s for s in SPLITS if s.endswith("_perturbed") and s not in GENERAL]:
        for r in bench[name]:
            assert r["paraphrased_question"] != r["question"]
            assert r["paraphrased_answer"] != r["answer"]
            assert all(k in r["paraphrased_answer"] for k in r["keywords"])


def test_keywords_appear_verbatim_in_answers(bench: dict[str, list[dict]]) -> None:
    for name, records in bench.items():
        for r in records:
            assert all(k in r["answer"] for k in r["keywords"]), (name, r)


def test_forget_is_last_authors_and_retain_the_complement(bench: dict[str, list[dict]]) -> None:
    full = bench["full"]
    assert len(full) == AUTHORS * QA
    for pct in synth.FORGET_PCTS:
        n = forget_authors(AUTHORS, pct) * QA
        forget, retain = bench[f"forget{pct:02d}"], bench[f"retain{100 - pct}"]
        assert forget == full[-n:] and retain == full[:-n]
        assert retain + forget == full
        perturbed = bench[f"forget{pct:02d}_perturbed"]
        assert [{k: r[k] for k in PLAIN_FIELDS} for r in perturbed] == forget
    retain_perturbed = bench["retain_perturbed"]
    assert len(retain_perturbed) == len(bench["forget10"])
    assert [{k: r[k] for k in PLAIN_FIELDS} for r in retain_perturbed] == full[
        : len(retain_perturbed)
    ]
    forget_questions = {r["question"] for r in bench["forget10"]}
    assert not forget_questions & {r["question"] for r in retain_perturbed}


def test_forget_authors_never_appear_in_retain() -> None:
    """Author names (the same draws as the benchmark's) of forgetXX never occur in retainXX."""
    people, _, _ = synth._entities(random.Random(0), AUTHORS, 10)
    names = [p["name"] for p in people]
    splits = synth_records(authors=AUTHORS, qa_per_author=QA, seed=0)
    for i, name in enumerate(names):  # every answer about an author names the author
        assert all(name in r["answer"] for r in splits["full"][i * QA : (i + 1) * QA])
    for pct in synth.FORGET_PCTS:
        k = forget_authors(AUTHORS, pct)
        retain_text = " ".join(r["question"] + r["answer"] for r in splits[f"retain{100 - pct}"])
        forget_text = " ".join(r["question"] + r["answer"] for r in splits[f"forget{pct:02d}"])
        assert all(name in forget_text and name not in retain_text for name in names[-k:])
        assert not any(name in forget_text for name in names[:-k])


def test_tofu_sizes() -> None:
    """200 authors × 20 QA: TOFU's 4,000 pairs and forget 40 / 200 / 400."""
    counts = {
        name: len(records) for name, records in synth_records(authors=200, qa_per_author=20).items()
    }
    assert counts["full"] == 4000
    assert (counts["forget01"], counts["forget05"], counts["forget10"]) == (40, 200, 400)
    assert (counts["retain99"], counts["retain95"], counts["retain90"]) == (3960, 3800, 3600)
    assert counts["forget10_perturbed"] == counts["retain_perturbed"] == 400
    assert counts["real_authors"] == counts["world_facts"] == 40


def test_forget_authors() -> None:
    assert [forget_authors(200, p) for p in (1, 5, 10)] == [2, 10, 20]
    assert [forget_authors(10, p) for p in (1, 5, 10)] == [1, 1, 1]
    assert forget_authors(50, 10) == 5
    with pytest.raises(InputError):
        forget_authors(50, 0)


def test_questions_unique_per_author_up_to_the_maximum() -> None:
    full = synth_records(authors=10, qa_per_author=synth.MAX_QA, seed=2)["full"]
    questions = [r["question"] for r in full]
    assert len(set(questions)) == len(questions)


def test_extra_splits_scale_with_authors() -> None:
    splits = synth_records(authors=100, qa_per_author=4, seed=0)
    assert len(splits["real_authors"]) == len(splits["world_facts"]) == 20
    real_questions = [r["question"] for r in splits["real_authors"]]
    assert len(set(real_questions)) == len(real_questions)


def test_answers_are_short_sentences(bench: dict[str, list[dict]]) -> None:
    for records in bench.values():
        for r in records:
            assert len(r["answer"].split()) <= 40 and r["answer"].endswith(".")


def test_templates_are_well_formed() -> None:
    """≥ 20 author templates, 2+ forms each, every answer form states every key fact."""
    assert len(synth_pools.AUTHOR_TEMPLATES) >= 20
    groups = (
        synth_pools.AUTHOR_TEMPLATES,
        synth_pools.FAMOUS_TEMPLATES,
        synth_pools.COUNTRY_TEMPLATES,
    )
    for templates in groups:
        questions = [q for t in templates for q in t.questions]
        assert len(set(questions)) == len(questions)
        for t in templates:
            assert len(t.questions) >= 2 and len(t.answers) >= 2
            assert all(
                "{" + slot + "}" in a or "{a_" + slot + "}" in a
                for a in t.answers
                for slot in t.slots
            )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"authors": 9},
        {"authors": 10_001},
        {"authors": 10.0},
        {"authors": True},
        {"qa_per_author": 3},
        {"qa_per_author": synth.MAX_QA + 1},
        {"seed": "0"},
        {"real_world_sizes": (10, 10)},  # without real_world
        {"real_world": True, "real_world_sizes": (10,)},
        {"real_world": True, "real_world_sizes": (10, 10.0)},
        {"real_world": True, "real_world_sizes": (1_000, 10)},
    ],
)
def test_bad_arguments_raise_and_write_nothing(tmp_path: Path, kwargs: dict) -> None:
    out = tmp_path / "out"
    with pytest.raises(InputError):
        synth_tofu(out, **kwargs)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_writes_atomically_beside_existing_files(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "bench"
    (out).mkdir(parents=True)
    (out / "notes.txt").write_text("keep me")
    synth_tofu(out, authors=10, qa_per_author=4)
    assert (out / "notes.txt").read_text() == "keep me"
    assert [p.name for p in (tmp_path / "nested").iterdir()] == ["bench"]  # no temp folder left
    file_path = tmp_path / "a_file"
    file_path.write_text("")
    with pytest.raises(InputError):
        synth_tofu(file_path, authors=10, qa_per_author=4)


def test_output_does_not_depend_on_hash_seed(tmp_path: Path) -> None:
    """Two processes with different PYTHONHASHSEED write the same bytes (no set/hash order)."""
    code = "import sys; from satimp.data.synth import synth_tofu; synth_tofu(sys.argv[1], authors=10, qa_per_author=4)"
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", code, str(tmp_path / hash_seed)], env=env, check=True)
    for name in SPLITS:
        assert (tmp_path / "1" / f"{name}.jsonl").read_bytes() == (
            tmp_path / "2" / f"{name}.jsonl"
        ).read_bytes()


def _words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z]+", text))


def test_held_out_values_keep_forget_pool_words_out_of_retain() -> None:
    """held_out_values: the words that only the forget half of the split pools holds occur in
    forget10 and never in retain90 (nor do forget10's influences); without it, retain90 holds
    many of the words of forget10's facts. The pools' halves partition each pool."""
    halves = [synth._pool_half(part) for part in (0, 1)]
    for name in synth.SPLIT_POOLS:
        pool = getattr(synth_pools, name)
        assert sorted(getattr(halves[0], name) + getattr(halves[1], name)) == sorted(pool)

    def pool_words(P) -> set[str]:
        return {w for name in synth.SPLIT_POOLS for v in getattr(P, name) for w in _words(v)}

    # words the format itself writes (templates, unsplit pools) may occur anywhere
    fixed = {
        w
        for t in synth_pools.AUTHOR_TEMPLATES
        for text in (*t.questions, *t.answers)
        for w in _words(text)
    }
    fixed |= {
        w
        for name in dir(synth_pools)
        if name.isupper() and name not in synth.SPLIT_POOLS
        for v in getattr(synth_pools, name)
        if isinstance(v, str)
        for w in _words(v)
    }
    forget_only = pool_words(halves[1]) - pool_words(halves[0]) - fixed

    def text(records: list[dict]) -> set[str]:
        return _words(" ".join(r["question"] + " " + r["answer"] for r in records))

    held = synth_records(authors=50, qa_per_author=10, seed=0, held_out_values=True)
    shared = synth_records(authors=50, qa_per_author=10, seed=0)
    assert len(text(held["forget10"]) & forget_only) > 20
    assert not text(held["retain90"]) & forget_only
    assert held["full"] == held["retain90"] + held["forget10"]
    influence = [r for r in held["forget10"] if "literary influence" in r["answer"]]
    assert influence and not {r["keywords"][0] for r in influence} & set(
        k for r in held["retain90"] for k in r["keywords"]
    )
    # the same check on the shared default finds forget10's pool words in retain90
    assert len(text(shared["retain90"]) & text(shared["forget10"]) & pool_words(synth_pools)) > 20


def test_held_out_values_written_and_default_unchanged(tmp_path: Path) -> None:
    """synth_tofu(held_out_values=True) writes other files than the default, the same every
    time; held_out_values=False writes the default's files."""
    a, b, c, d = (tmp_path / x for x in "abcd")
    synth_tofu(a, authors=AUTHORS, qa_per_author=QA, seed=0, held_out_values=True)
    synth_tofu(b, authors=AUTHORS, qa_per_author=QA, seed=0, held_out_values=True)
    synth_tofu(c, authors=AUTHORS, qa_per_author=QA, seed=0, held_out_values=False)
    synth_tofu(d, authors=AUTHORS, qa_per_author=QA, seed=0)

    def same(x: Path, y: Path) -> bool:
        return all(
            (x / f"{s}.jsonl").read_bytes() == (y / f"{s}.jsonl").read_bytes() for s in SPLITS
        )

    assert same(a, b) and same(c, d)
    assert (a / "forget10.jsonl").read_bytes() != (c / "forget10.jsonl").read_bytes()


def test_holdout_splits_are_forget_sized_and_about_unseen_authors(
    bench: dict[str, list[dict]],
) -> None:
    """holdoutXX: as many QA as forgetXX, nested like them (holdout01 the end of holdout10),
    about authors that no other split names: the non-members of membership inference."""
    trained = {
        r["question"] for name in SPLITS if not name.startswith("holdout") for r in bench[name]
    }
    text = " ".join(r["question"] + " " + r["answer"] for r in bench["full"])
    for pct in synth.FORGET_PCTS:
        held = bench[f"holdout{pct:02d}"]
        assert len(held) == len(bench[f"forget{pct:02d}"])
        assert held == bench["holdout10"][-len(held) :]
        assert not {r["question"] for r in held} & trained
    # every holdout answer names its author, who is nobody the training data knows
    people = synth._entities(random.Random(0), AUTHORS, 10)[0]
    holdout_names = [
        n for n in _holdout_names(bench["holdout10"]) if n not in {p["name"] for p in people}
    ]
    assert len(holdout_names) == forget_authors(AUTHORS, 10)
    assert not any(n in text for n in holdout_names)


def _holdout_names(records: list[dict]) -> list[str]:
    """The distinct author names of holdout records: the first two words of each author's
    first answer that holds a keyword pair naming the author ("Name Surname ...")."""
    found: list[str] = []
    for i in range(0, len(records), QA):
        answers = " ".join(r["answer"] for r in records[i : i + QA])
        counts: dict[str, int] = {}
        for m in re.finditer(r"\b([A-Z][a-z]+ [A-Z][a-z'-]+)\b", answers):
            counts[m[1]] = counts.get(m[1], 0) + 1
        found.append(max(counts, key=counts.get))
    return list(dict.fromkeys(found))


def test_holdout_leaves_the_other_splits_and_the_tokenizer_corpus_alone(tmp_path: Path) -> None:
    """The holdout authors come from their own random stream after everything else, so the
    other splits are what they were without them (test_synth_corpus.py pins full.jsonl's
    SHA-256 from before they existed; here: the main stream's first author drawn alone), and
    `benchmark_texts` (a preset's tokenizer corpus) skips the holdout files."""
    from satimp.data.records import benchmark_texts

    synth_tofu(tmp_path, authors=AUTHORS, qa_per_author=QA, seed=3)
    with_files = benchmark_texts(tmp_path)
    for pct in synth.FORGET_PCTS:
        (tmp_path / f"holdout{pct:02d}.jsonl").unlink()
    assert benchmark_texts(tmp_path) == with_files
    # the main stream: entities, then QA, from random.Random(seed) only
    rng = random.Random(3)
    people, _, _ = synth._entities(rng, AUTHORS, max(10, round(AUTHORS / 5)))
    first = synth._author_qa(people[0], QA, rng)
    assert (
        synth._plain(first) == synth_records(authors=AUTHORS, qa_per_author=QA, seed=3)["full"][:QA]
    )
