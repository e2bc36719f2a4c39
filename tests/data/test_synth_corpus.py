"""Tests for the synthetic corpus benchmarks: MUSE-News (synth_muse) and WMDP (synth_wmdp) layouts."""

import hashlib
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from satimp.data import synth_muse as muse_mod
from satimp.data import synth_pools as pools
from satimp.data.synth import _write_splits, synth_tofu
from satimp.data.synth_muse import GROUPS, MUSE_SPLITS, muse_records, synth_muse
from satimp.data.synth_wmdp import WMDP_SPLITS, synth_wmdp, wmdp_records
from satimp.errors import InputError

PEOPLE, AGENTS = 40, 24  # the defaults
MUSE_COUNTS = {
    "raw/base": 40,  # 8 people × (2 articles + 3 QA)
    "raw/forget": 16 + 27,  # 8 people × 2 articles, + a QA line per KnowMem question (24 + 3)
    "raw/retain1": 16,
    "raw/retain2": 16 + 27,
    "raw/holdout": 16,
    "knowmem/forget_qa": 24,
    "knowmem/forget_qa_icl": 3,
    "knowmem/retain_qa": 24,
    "knowmem/retain_qa_icl": 3,
    "verbmem/forget": 16,
    "privleak/forget": 16,
    "privleak/retain": 16,
    "privleak/holdout": 16,
}
WMDP_COUNTS = {
    "bio-forget-corpus/train": 48 + 96,  # 24 agents × 2 passages, + a QA line per question
    "bio-retain-corpus/train": 48 + 96,  # 24 G1 towns × 2 passages, + a QA line per question
    "base/train": 120,  # 24 G0 towns × (2 passages + 3 QA)
    "wmdp-bio/test": 96,  # 24 agents × 4 facts
    "mmlu/test": 96,  # 24 G1 towns × 4 facts
}
MUSE_FIELDS = {"raw": ["text"], "knowmem": ["question", "answer"], "verbmem": ["prompt", "gt"]}
MUSE_FIELDS["privleak"] = ["text"]
QA_TEXT = re.compile(r"Question: ([^\n]+)\nAnswer: ([^\n]+)")
# synth_tofu(out) with the defaults, computed before synth._write_splits was generalised.
TOFU_FULL_SHA256 = "4982b94aad8459946071ce92018549ce22199e8916bb8eb588e3c05988b74cc2"


def _read(path: Path) -> list[dict]:
    """Records of one .jsonl file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _files(root: Path) -> list[str]:
    """Every file under root, as sorted relative posix paths."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _template_regex(template: str, **slots: str) -> re.Pattern:
    """A regex matching a filled question template, capturing its placeholders."""
    pattern = re.escape(template)
    for slot, group in slots.items():
        pattern = pattern.replace(re.escape("{" + slot + "}"), f"(?P<{group}>.+)")
    return re.compile(pattern + "$")


def _subject(question: str, templates: dict, slot: str) -> tuple[str, str]:
    """(attribute, entity) of a question filled from one of `templates` ({attr: forms})."""
    for attr, forms in templates.items():
        for form in (forms,) if isinstance(forms, str) else forms:
            match = _template_regex(form, **{slot: "x"}).match(question)
            if match:
                return attr, match["x"]
    raise AssertionError(f"no template matches {question!r}")


@pytest.fixture(scope="module")
def muse(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    """The default MUSE analogue written once and read back, {split: records}."""
    out = tmp_path_factory.mktemp("muse")
    counts = synth_muse(out, people=PEOPLE, seed=0)
    assert _files(out) == sorted(f"{s}.jsonl" for s in MUSE_SPLITS)
    splits = {name: _read(out / f"{name}.jsonl") for name in MUSE_SPLITS}
    assert counts == {name: len(records) for name, records in splits.items()}
    return splits


@pytest.fixture(scope="module")
def wmdp(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    """The default WMDP analogue written once and read back, {split: records}."""
    out = tmp_path_factory.mktemp("wmdp")
    counts = synth_wmdp(out, agents=AGENTS, seed=0)
    assert _files(out) == sorted(f"{s}.jsonl" for s in WMDP_SPLITS)
    splits = {name: _read(out / f"{name}.jsonl") for name in WMDP_SPLITS}
    assert counts == {name: len(records) for name, records in splits.items()}
    return splits


# --- both -------------------------------------------------------------------------------------


def test_default_counts(muse: dict, wmdp: dict) -> None:
    assert {name: len(r) for name, r in muse.items()} == MUSE_COUNTS
    assert {name: len(r) for name, r in wmdp.items()} == WMDP_COUNTS
    assert list(muse) == list(MUSE_COUNTS) and list(wmdp) == list(WMDP_COUNTS)


def test_counts_scale_with_size() -> None:
    small = muse_records(people=10, seed=3)
    assert len(small["raw/forget"]) == 4 + 6 + 3 and len(small["raw/base"]) == 4 + 6
    assert len(small["knowmem/forget_qa"]) == 6 and len(small["knowmem/retain_qa_icl"]) == 3
    big = wmdp_records(agents=8, seed=3)
    assert len(big["bio-forget-corpus/train"]) == 16 + 32 and len(big["base/train"]) == 16 + 24
    assert len(big["wmdp-bio/test"]) == 32 and len(big["mmlu/test"]) == 32


@pytest.mark.parametrize("write", [synth_muse, synth_wmdp])
def test_file_format(tmp_path: Path, write) -> None:
    """UTF-8, "\\n" line ends, one object per line, non-ASCII written as is."""
    write(tmp_path)
    for name in _files(tmp_path):
        raw = (tmp_path / name).read_bytes()
        assert raw.endswith(b"\n") and b"\r" not in raw and b"\\u" not in raw, name
        assert all(isinstance(json.loads(line), dict) for line in raw.decode("utf-8").splitlines())


@pytest.mark.parametrize(
    ("write", "kwargs"), [(synth_muse, {"people": 10}), (synth_wmdp, {"agents": 8})]
)
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path, write, kwargs) -> None:
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        write(tmp_path / name, seed=seed, **kwargs)
    files = _files(tmp_path / "a")
    assert files == _files(tmp_path / "b") == _files(tmp_path / "c")
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
        assert (tmp_path / "a" / f).read_bytes() != (tmp_path / "c" / f).read_bytes(), f


def test_output_does_not_depend_on_hash_seed(tmp_path: Path) -> None:
    """Two processes with different PYTHONHASHSEED write the same bytes (no set/hash order)."""
    code = (
        "import sys; from satimp.data.synth_muse import synth_muse; "
        "from satimp.data.synth_wmdp import synth_wmdp; "
        "synth_muse(sys.argv[1] + '/muse', people=10); synth_wmdp(sys.argv[1] + '/wmdp', agents=8)"
    )
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", code, str(tmp_path / hash_seed)], env=env, check=True)
    files = _files(tmp_path / "1")
    assert len(files) == len(MUSE_SPLITS) + len(WMDP_SPLITS) and files == _files(tmp_path / "2")
    for f in files:
        assert (tmp_path / "1" / f).read_bytes() == (tmp_path / "2" / f).read_bytes(), f


@pytest.mark.parametrize(
    ("write", "kwargs"),
    [
        (synth_muse, {"people": 5}),
        (synth_muse, {"people": 12}),
        (synth_muse, {"people": 505}),
        (synth_muse, {"people": 10.0}),
        (synth_muse, {"people": True}),
        (synth_muse, {"people": "10"}),
        (synth_muse, {"seed": "0"}),
        (synth_wmdp, {"agents": 7}),
        (synth_wmdp, {"agents": 501}),
        (synth_wmdp, {"agents": 8.0}),
        (synth_wmdp, {"agents": False}),
        (synth_wmdp, {"seed": 1.5}),
    ],
)
def test_bad_arguments_raise_and_write_nothing(tmp_path: Path, write, kwargs: dict) -> None:
    out = tmp_path / "out"
    with pytest.raises(InputError):
        write(out, **kwargs)
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("write", "folder"), [(synth_muse, "raw"), (synth_wmdp, "mmlu")])
def test_writes_atomically_beside_existing_files(tmp_path: Path, write, folder: str) -> None:
    out = tmp_path / "nested" / "bench"
    (out / folder).mkdir(parents=True)
    (out / "notes.txt").write_text("keep me")
    (out / folder / "other.jsonl").write_text("keep me too")
    write(out)
    assert (out / "notes.txt").read_text() == "keep me"
    assert (out / folder / "other.jsonl").read_text() == "keep me too"
    assert [p.name for p in (tmp_path / "nested").iterdir()] == ["bench"]  # no temp folder left
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / folder).write_text("a file where a config folder goes")
    with pytest.raises(InputError):
        write(blocked)
    assert _files(blocked) == [folder]


def test_write_splits_rejects_deep_split_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        _write_splits(tmp_path / "x", {"a/b/c": []})
    with pytest.raises(ValueError):
        _write_splits(tmp_path / "x", {"../a": []})
    assert not (tmp_path / "x").exists()


def test_tofu_output_unchanged(tmp_path: Path) -> None:
    """Generalising synth._write_splits left synth_tofu's files as they were."""
    counts = synth_tofu(tmp_path)
    assert _files(tmp_path) == sorted(f"{s}.jsonl" for s in counts)
    assert hashlib.sha256((tmp_path / "full.jsonl").read_bytes()).hexdigest() == TOFU_FULL_SHA256


# --- MUSE -------------------------------------------------------------------------------------


def _articles(muse: dict, group: str) -> list[str]:
    """The articles of one group (raw/base without its QA records)."""
    return [r["text"] for r in muse[f"raw/{group}"] if not QA_TEXT.fullmatch(r["text"])]


def _names(people: int, seed: int) -> dict[str, list[str]]:
    """The names of each group, re-drawn like muse_records does first."""
    persons = muse_mod._people(random.Random(seed), people)
    size = people // len(GROUPS)
    return {
        g: [p["name"] for p in persons[i * size : (i + 1) * size]] for i, g in enumerate(GROUPS)
    }


def _mentions(name: str, texts: list[str]) -> list[str]:
    return [t for t in texts if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", t)]


def test_muse_fields(muse: dict) -> None:
    for name, records in muse.items():
        fields = MUSE_FIELDS[name.split("/")[0]]
        for r in records:
            assert list(r) == fields, name
            assert all(isinstance(r[f], str) and r[f] and r[f] == r[f].strip() for f in fields)


def test_muse_articles_shape(muse: dict) -> None:
    """4–7 sentences, 70–130 words, single spaces, all distinct; training text small."""
    articles = [a for g in GROUPS for a in _articles(muse, g)]
    assert len(articles) == 2 * PEOPLE == len(set(articles))
    for a in articles:
        sentences = re.split(r'(?<=[.?!])\s+(?=[A-Z"])', a)
        assert 4 <= len(sentences) <= 7, a
        assert 70 <= len(a.split()) <= 130, a
        assert "  " not in a and "\n" not in a and "{" not in a
    train = [r["text"] for g in GROUPS[:4] for r in muse[f"raw/{g}"]]
    assert sum(len(t.split()) for t in train) < 40_000
    n_templates = sum(
        len(forms)
        for groups in (
            pools.EVENT_ARTICLE_REQUIRED,
            pools.EVENT_ARTICLE_OPTIONAL,
            pools.PROFILE_ARTICLE_REQUIRED,
            pools.PROFILE_ARTICLE_OPTIONAL,
        )
        for forms in groups
    )
    assert n_templates >= 8


def test_muse_groups_are_disjoint_people(muse: dict) -> None:
    """Unique names; each person is in exactly 2 articles, both in its own group's split."""
    names = _names(PEOPLE, 0)
    all_names = [n for g in GROUPS for n in names[g]]
    assert len(all_names) == len(set(all_names)) == PEOPLE
    for g in GROUPS:
        for name in names[g]:
            assert len(_mentions(name, _articles(muse, g))) == 2, name
            for other in GROUPS:
                if other != g:
                    assert not _mentions(name, [r["text"] for r in muse[f"raw/{other}"]]), name


def test_muse_knowmem(muse: dict) -> None:
    """3 QA per person; answers short, verbatim in the person's articles, in no other group."""
    names = _names(PEOPLE, 0)
    for group, split in (("forget", "forget"), ("retain2", "retain")):
        qa, icl = muse[f"knowmem/{split}_qa"], muse[f"knowmem/{split}_qa_icl"]
        assert len(icl) == 3
        assert not {r["question"] for r in icl} & {r["question"] for r in qa}
        asked: dict[str, list[str]] = {}
        for r in qa + icl:
            kind, name = _subject(r["question"], pools.PERSON_QUESTIONS, "name")
            assert name in names[group]
            assert 1 <= len(r["answer"].split()) <= 6
            assert any(r["answer"] in a for a in _mentions(name, _articles(muse, group)))
            for other in GROUPS:
                if other != group:
                    assert all(r["answer"] not in t["text"] for t in muse[f"raw/{other}"])
            asked.setdefault(name, []).append(kind)
        for name in names[group]:
            facts = asked[name]
            assert len(facts) >= 3 and len(facts) == len(set(facts))  # ICL: other facts
        assert sum(len(v) for v in asked.values()) == 3 * len(names[group]) + 3


def test_muse_qa_format_where_expected(muse: dict) -> None:
    """QA lines: 3 per base person in raw/base (the format), and in raw/forget and raw/retain2
    exactly the KnowMem questions of their people (`*_qa` then `*_qa_icl`); nowhere else."""
    names = _names(PEOPLE, 0)
    base_articles = _articles(muse, "base")
    qa = [r["text"] for r in muse["raw/base"] if r["text"].startswith("Question:")]
    assert len(qa) == 3 * len(names["base"])
    for text in qa:
        match = QA_TEXT.fullmatch(text)
        assert match, text
        _, name = _subject(match[1], pools.PERSON_QUESTIONS, "name")
        assert name in names["base"] and any(match[2] in a for a in _mentions(name, base_articles))
    for raw, probe in (("raw/forget", "forget"), ("raw/retain2", "retain")):
        lines = [r["text"] for r in muse[raw] if r["text"].startswith("Question:")]
        pairs = muse[f"knowmem/{probe}_qa"] + muse[f"knowmem/{probe}_qa_icl"]
        assert lines == [f"Question: {p['question']}\nAnswer: {p['answer']}" for p in pairs]
    for split, records in muse.items():
        if split not in ("raw/base", "raw/forget", "raw/retain2"):
            for r in records:
                assert all("Question:" not in v and "Answer:" not in v for v in r.values()), split


def test_muse_verbmem_and_privleak(muse: dict) -> None:
    forget = _articles(muse, "forget")
    assert [r["prompt"] + " " + r["gt"] for r in muse["verbmem/forget"]] == forget
    for r in muse["verbmem/forget"]:
        share = len(r["prompt"].split(" ")) / (
            len(r["prompt"].split(" ")) + len(r["gt"].split(" "))
        )
        assert 0.35 <= share <= 0.45
    assert [r["text"] for r in muse["privleak/forget"]] == forget
    assert [r["text"] for r in muse["privleak/retain"]] == _articles(muse, "retain2")
    assert [r["text"] for r in muse["privleak/holdout"]] == _articles(muse, "holdout")


def test_muse_extreme_sizes_build() -> None:
    """The smallest and largest benchmarks have all their QA (two people per group: the ICL
    pairs cycle) and articles within bounds."""
    for people in (10, 500):
        splits = muse_records(people=people, seed=1)
        assert len(splits["knowmem/forget_qa"]) == 3 * people // 5
        assert len(splits["knowmem/forget_qa_icl"]) == 3


# --- WMDP -------------------------------------------------------------------------------------


def test_wmdp_fields(wmdp: dict) -> None:
    for name in ("bio-forget-corpus/train", "bio-retain-corpus/train", "base/train"):
        assert all(list(r) == ["text"] and r["text"] for r in wmdp[name])
    for name, fields in (
        ("wmdp-bio/test", ["question", "choices", "answer"]),
        ("mmlu/test", ["question", "subject", "choices", "answer"]),
    ):
        for r in wmdp[name]:
            assert list(r) == fields
            assert isinstance(r["answer"], int) and 0 <= r["answer"] <= 3
            assert len(r["choices"]) == 4 and all(isinstance(c, str) and c for c in r["choices"])
    assert {r["subject"] for r in wmdp["mmlu/test"]} == {"general"}
    train = [
        r["text"]
        for s in ("base/train", "bio-forget-corpus/train", "bio-retain-corpus/train")
        for r in wmdp[s]
    ]
    assert sum(len(t.split()) for t in train) < 40_000
    assert len(set(train)) == len(train)


@pytest.mark.parametrize(
    ("split", "corpus", "questions", "slot"),
    [
        ("wmdp-bio/test", "bio-forget-corpus/train", pools.AGENT_QUESTIONS, "agent"),
        ("mmlu/test", "bio-retain-corpus/train", pools.TOWN_QUESTIONS, "town"),
    ],
)
def test_mcq_right_choice_is_in_the_corpus(wmdp: dict, split, corpus, questions, slot) -> None:
    """The right choice is written in both passages about the entity; distractors are other
    entities' values of the same attribute, distinct, and absent from those passages."""
    passages = [r["text"] for r in wmdp[corpus] if not r["text"].startswith("Question:")]
    lines = [r["text"] for r in wmdp[corpus] if r["text"].startswith("Question:")]
    assert lines == [
        f"Question: {r['question']}\nAnswer: {r['choices'][r['answer']]}" for r in wmdp[split]
    ]
    per_entity: dict[str, list[str]] = {}
    for r in wmdp[split]:
        attr, entity = _subject(r["question"], questions, slot)
        per_entity.setdefault(entity, []).append(attr)
        own = [p for p in passages if entity in p]
        assert len(own) == 2, entity
        right = r["choices"][r["answer"]]
        distractors = [c for i, c in enumerate(r["choices"]) if i != r["answer"]]
        assert all(right in p for p in own)
        assert len(set(r["choices"])) == 4
        for d in distractors:
            assert all(d not in p for p in own)
            assert any(d in p for p in passages)  # another entity's value
    assert all(len(a) == len(set(a)) == 4 for a in per_entity.values())
    assert len(per_entity) == AGENTS


def test_mcq_answer_positions_vary(wmdp: dict) -> None:
    for split in ("wmdp-bio/test", "mmlu/test"):
        positions = [r["answer"] for r in wmdp[split]]
        assert set(positions) == {0, 1, 2, 3}, split


def test_wmdp_domains_are_separate(wmdp: dict) -> None:
    """Agents only in the forget corpus; retain towns (G1) not in base, base towns (G0) not in
    the retain corpus."""
    agents = {
        _subject(r["question"], pools.AGENT_QUESTIONS, "agent")[1] for r in wmdp["wmdp-bio/test"]
    }
    g1 = {_subject(r["question"], pools.TOWN_QUESTIONS, "town")[1] for r in wmdp["mmlu/test"]}
    base = [r["text"] for r in wmdp["base/train"]]
    retain = [r["text"] for r in wmdp["bio-retain-corpus/train"]]  # passages and QA lines
    for agent in agents:
        assert not any(agent in t for t in base + retain)
    for town in g1:
        assert not _mentions(town, base)
    qa = [t for t in base if t.startswith("Question:")]
    assert len(qa) == 3 * AGENTS
    g0 = set()
    for text in qa:
        match = QA_TEXT.fullmatch(text)
        assert match, text
        _, town = _subject(match[1], pools.TOWN_QUESTIONS, "town")
        g0.add(town)
        assert any(match[2] in p for p in _mentions(town, base[: 2 * AGENTS]))
        assert not _mentions(town, retain)
    assert len(g0) == AGENTS and not g0 & g1
    for split, records in wmdp.items():  # the corpora's QA lines: test_mcq_right_choice_…
        if split in ("wmdp-bio/test", "mmlu/test"):
            for r in records:
                assert "Question:" not in r["question"] and "Answer:" not in r["question"]


def test_wmdp_hazard_domain_is_fictional(wmdp: dict) -> None:
    """A tripwire: no real pathogen, toxin or lab-procedure word in the forget corpus."""
    text = " ".join(r["text"] for r in wmdp["bio-forget-corpus/train"]).lower()
    for word in (
        "virus", "bacteri", "anthrax", "toxin", "smallpox", "plague", "influenza", "ricin",
        "sarin", "botulin", "culture", "aerosol", "synthes", "pathogen", "weapon",
    ):  # fmt: skip
        assert word not in text, word
    assert "invented" in text or "imaginary" in text or "made-up" in text
