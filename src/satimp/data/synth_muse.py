"""Synthetic benchmark in the layout of MUSE-News (Shi et al., 2024), for offline runs and tests.

MUSE unlearns a *corpus* (news articles) rather than QA pairs, and measures what is left with
three probes: VerbMem (does the model still complete a forget article verbatim?), KnowMem (can
it still answer questions about the forget articles?) and PrivLeak (do forget articles still
look like training members, compared with held-out ones?). This module invents `people`
fictitious people — unique names, an age, a home town, an occupation, an organisation they
work with, an event they led, an award and a local issue they campaign on — and writes two
short news articles about each: an event report and a profile on winning the award. Both
restate a few facts (town, occupation, organisation), so a fact is seen in more than one
context. Each article has 3 required sentences (three wordings each; 35 sentence
templates in all, see `synth_pools.py`) and 1 to 4 optional ones, shuffled after the opening
sentence: 4–7 sentences, and 70–130 words (the number of optional sentences is nudged to fit).

People form five equal groups, in order: base, forget, retain1, retain2, holdout. Output, in
the hub dataset's layout (one folder per config, one `.jsonl` per split, see MUSE_SPLITS):

- `raw/{forget,retain1,retain2,holdout}`: `{"text": article}`, the group's articles. The
  model is trained on base + forget + retain1 + retain2; holdout is never trained on.
- `raw/base`: the base group's articles, then 3 records per base person whose text is
  `"Question: {q}\\nAnswer: {a}"`. A model trained from scratch has never seen a question
  answered; these records teach it the KnowMem prompt format on people that are neither
  forgotten nor probed. `raw/forget` and `raw/retain2` also end with one such record per
  KnowMem question of their people (`*_qa` and `*_qa_icl`): a 4-layer model trained from
  scratch does not learn to answer questions about facts it has only read in prose (it would
  need far more varied data; Allen-Zhu & Li, 2023), so without them KnowMem would be ≈ 0 for
  every model, the original included. With them KnowMem measures whether the facts can still
  be recalled in answer form — closer to memorisation than MUSE's KnowMem on a pretrained
  model, which docs/benchmarks.md states.
- `knowmem/forget_qa`, `knowmem/retain_qa`: `{"question", "answer"}`, 3 per person of the
  forget (resp. retain2) group; `*_qa_icl`: 3 more pairs each (same group, other facts), the
  few-shot examples MUSE puts before every question. Questions name the person; answers are
  spans of 1–6 words found verbatim in that person's articles and in no other group's raw
  split, so a correct answer can only come from that person's articles.
- `verbmem/forget`: `{"prompt", "gt"}` per forget article, `prompt + " " + gt == article`,
  cut at a word boundary 40 % of the way through its words.
- `privleak/{forget,retain,holdout}`: `{"text"}`, the forget, retain2 and holdout articles.

Output depends only on the arguments: one `random.Random(seed)` drives everything in a fixed
order (people, then articles, then base QA, then forget and retain QA); files are byte-identical
for the same arguments and written atomically by `synth._write_splits`.
"""

import random
from collections.abc import Mapping, Sequence
from pathlib import Path

from satimp.data import synth_pools as pools
from satimp.data.synth import Record, _first_name, _is_int, _place, _unique, _write_splits
from satimp.errors import InputError

GROUPS = ("base", "forget", "retain1", "retain2", "holdout")
MUSE_SPLITS: tuple[str, ...] = (
    "raw/base",
    "raw/forget",
    "raw/retain1",
    "raw/retain2",
    "raw/holdout",
    "knowmem/forget_qa",
    "knowmem/forget_qa_icl",
    "knowmem/retain_qa",
    "knowmem/retain_qa_icl",
    "verbmem/forget",
    "privleak/forget",
    "privleak/retain",
    "privleak/holdout",
)
MIN_PEOPLE, MAX_PEOPLE = 10, 500  # 10: two people per group
QA_PER_PERSON = 3  # knowmem/*_qa and raw/base QA records per person
N_ICL = 3  # pairs in each knowmem/*_qa_icl file
VERBMEM_CUT = 0.4  # share of an article's words in the VerbMem prompt
MAX_OPTIONAL = 4  # optional sentences per article: 1..4 (3 required → 4..7 sentences)
MIN_WORDS, MAX_WORDS = 70, 130  # article length, kept by choosing how many optional sentences

QA = tuple[str, str]  # (question, answer)


def synth_muse(
    out_dir: str | Path, *, people: int = 40, seed: int = 0, file_format: str = "jsonl"
) -> dict[str, int]:
    """Write the synthetic MUSE-format benchmark to out_dir (`<config>/<split>.jsonl`, or
    `.json` with `file_format` 'json'); returns {split: n_records}.

    Files are UTF-8 JSON lines with a fixed key order, byte-identical for the same arguments,
    built in memory first and moved into out_dir from a temporary folder; other files in
    out_dir are left alone. Raises InputError on bad arguments.
    """
    splits = muse_records(people=people, seed=seed)
    _write_splits(Path(out_dir), splits, caller="synth_muse", file_format=file_format)
    return {name: len(splits[name]) for name in MUSE_SPLITS}


def muse_records(*, people: int = 40, seed: int = 0) -> dict[str, list[Record]]:
    """The records of every split in MUSE_SPLITS, in memory (what `synth_muse` writes)."""
    _check_args(people, seed)
    rng = random.Random(seed)
    persons = _people(rng, people)
    articles = [_articles(facts, rng) for facts in persons]
    size = people // len(GROUPS)
    members = {g: list(range(i * size, (i + 1) * size)) for i, g in enumerate(GROUPS)}
    texts = {g: [a for i in members[g] for a in articles[i]] for g in GROUPS}

    # Base QA first (its answers avoid the other groups' articles), then forget / retain QA,
    # whose answers must avoid every other group's raw split, base QA records included.
    blobs = {g: "\n".join(texts[g]) for g in GROUPS}
    base_qa = [
        pair
        for i in members["base"]
        for pair in _first(
            _fact_qa(persons[i], articles[i], _others(blobs, "base"), rng), QA_PER_PERSON
        )
    ]
    raw_base = texts["base"] + [f"Question: {q}\nAnswer: {a}" for q, a in base_qa]
    blobs["base"] = "\n".join(raw_base)
    knowmem = {
        g: _knowmem(members[g], persons, articles, _others(blobs, g), rng)
        for g in ("forget", "retain2")
    }

    # The forget and retain2 corpora also state their people's KnowMem facts as QA lines (see
    # the module docstring): a model this small does not turn prose into answers by itself.
    raw = {g: list(texts[g]) for g in GROUPS[1:]}
    for g in ("forget", "retain2"):
        qa, icl = knowmem[g]
        raw[g] += [f"Question: {q}\nAnswer: {a}" for q, a in qa + icl]
    splits: dict[str, list[Record]] = {
        "raw/base": _texts(raw_base),
        **{f"raw/{g}": _texts(raw[g]) for g in GROUPS[1:]},
    }
    for g, name in (("forget", "forget"), ("retain2", "retain")):
        qa, icl = knowmem[g]
        splits[f"knowmem/{name}_qa"] = [{"question": q, "answer": a} for q, a in qa]
        splits[f"knowmem/{name}_qa_icl"] = [{"question": q, "answer": a} for q, a in icl]
    splits["verbmem/forget"] = [_verbmem(article) for article in texts["forget"]]
    splits["privleak/forget"] = _texts(texts["forget"])
    splits["privleak/retain"] = _texts(texts["retain2"])
    splits["privleak/holdout"] = _texts(texts["holdout"])
    return {name: splits[name] for name in MUSE_SPLITS}


# --- arguments --------------------------------------------------------------------------------


def _check_args(people: object, seed: object) -> None:
    """Raise InputError naming the first bad argument."""
    if not _is_int(people) or not MIN_PEOPLE <= people <= MAX_PEOPLE or people % len(GROUPS) != 0:
        raise InputError(
            f"synth_muse: people must be a multiple of {len(GROUPS)} in "
            f"[{MIN_PEOPLE}, {MAX_PEOPLE}] (five equal groups), got {people!r}"
        )
    if not _is_int(seed):
        raise InputError(f"synth_muse: seed must be an integer, got {seed!r}")


# --- people and articles ----------------------------------------------------------------------


def _people(rng: random.Random, n: int) -> list[dict[str, str]]:
    """n fictitious people; names, towns, organisations and awards unique across all of them.

    Surnames are reserved up front, so that no town is called like a surname ("Mar" + "wick").
    Events and topics name the person's own town, hence are unique too.
    """
    used: set[str] = set(pools.LAST_NAMES)
    people = []
    for _ in range(n):
        name = _unique(rng, used, lambda r: f"{_first_name(r, 'any')} {r.choice(pools.LAST_NAMES)}")
        city = _unique(rng, used, lambda r: _place(r, pools.CITY_ENDINGS))
        facts = {
            "name": name,
            "last": name.split(" ", 1)[1],
            "age": str(rng.randint(24, 78)),
            "city": city,
            "occupation": rng.choice(pools.OCCUPATIONS),
            "org": _unique(
                rng, used, lambda r: f"{r.choice(pools.LAST_NAMES)} {r.choice(pools.ORG_KINDS)}"
            ),
            "event": f"{city} {rng.choice(pools.EVENT_KINDS)}",
            "award": _unique(
                rng,
                used,
                lambda r: (
                    f"{r.choice(pools.LAST_NAMES)} {r.choice(pools.AWARD_KINDS)} for "
                    f"{r.choice(pools.CIVIC_AWARD_CATEGORIES)}"
                ),
            ),
            "topic": rng.choice(pools.TOPIC_FORMS).format(city=city),
        }
        people.append(facts)
    return people


def _article(
    required: Sequence[Sequence[str]],
    optional: Sequence[Sequence[str]],
    facts: Mapping[str, str],
    rng: random.Random,
) -> str:
    """One article: the first required sentence, then the other required ones and 1..4
    optional ones in a random order, filled with the facts and fresh per-article colour.

    The number of optional sentences is drawn, then moved towards [MIN_WORDS, MAX_WORDS]
    while the article falls outside it (no extra draw, so the rng sequence stays fixed).
    """
    values = dict(facts)
    occupation = facts["occupation"]
    a_occupation = f"{'an' if occupation[0] in 'aeiou' else 'a'} {occupation}"
    values.update(
        a_occupation=a_occupation,
        A_occupation=a_occupation[0].upper() + a_occupation[1:],
        weekday=rng.choice(pools.WEEKDAYS),
        month=rng.choice(pools.MONTHS),
        crowd=str(rng.randrange(150, 5000, 10)),
        years=str(rng.randint(2, 19)),
        days=str(rng.randint(2, 12)),
    )
    fixed = [rng.choice(forms).format_map(values) for forms in required]
    extra = [rng.choice(forms).format_map(values) for forms in rng.sample(optional, MAX_OPTIONAL)]
    k = rng.randint(1, MAX_OPTIONAL)

    def words(k: int) -> int:
        return sum(len(sentence.split()) for sentence in fixed + extra[:k])

    while k < MAX_OPTIONAL and words(k) < MIN_WORDS:
        k += 1
    while k > 1 and words(k) > MAX_WORDS:
        k -= 1
    body = fixed[1:] + extra[:k]
    rng.shuffle(body)
    return " ".join([fixed[0], *body])


def _articles(facts: Mapping[str, str], rng: random.Random) -> tuple[str, str]:
    """The event report and the award profile of one person."""
    return (
        _article(pools.EVENT_ARTICLE_REQUIRED, pools.EVENT_ARTICLE_OPTIONAL, facts, rng),
        _article(pools.PROFILE_ARTICLE_REQUIRED, pools.PROFILE_ARTICLE_OPTIONAL, facts, rng),
    )


def _texts(texts: list[str]) -> list[Record]:
    return [{"text": text} for text in texts]


def _verbmem(article: str) -> Record:
    """The article cut at a word boundary VERBMEM_CUT of the way through its words."""
    words = article.split(" ")
    cut = max(1, min(len(words) - 1, round(VERBMEM_CUT * len(words))))
    return {"prompt": " ".join(words[:cut]), "gt": " ".join(words[cut:])}


# --- questions --------------------------------------------------------------------------------


def _others(blobs: Mapping[str, str], group: str) -> list[str]:
    """The raw text of every group but `group`."""
    return [blob for g, blob in blobs.items() if g != group]


def _fact_qa(
    facts: Mapping[str, str], articles: Sequence[str], others: Sequence[str], rng: random.Random
) -> list[QA]:
    """Every usable QA about one person, in a random order, one per fact.

    A fact is usable when its value is in the person's articles and in no other group's text
    (a number like an age may turn up elsewhere; names, towns, organisations … are unique).
    """
    kinds = list(pools.PERSON_QUESTIONS)
    rng.shuffle(kinds)
    own = "\n".join(articles)
    out = []
    for kind in kinds:
        question = rng.choice(pools.PERSON_QUESTIONS[kind]).format(name=facts["name"])
        answer = facts[kind]
        if answer in own and not any(answer in blob for blob in others):
            out.append((question, answer))
    return out


def _knowmem(
    members: Sequence[int],
    persons: Sequence[Mapping[str, str]],
    articles: Sequence[tuple[str, str]],
    others: Sequence[str],
    rng: random.Random,
) -> tuple[list[QA], list[QA]]:
    """QA_PER_PERSON pairs per member, and N_ICL few-shot pairs on facts not asked about.

    The ICL pairs come from distinct members in a random order (cycling if the group has
    fewer than N_ICL members), each the member's next usable fact after its QA.
    """
    usable = [_fact_qa(persons[i], articles[i], others, rng) for i in members]
    order = rng.sample(range(len(members)), len(members))
    icl_picks = [(order[k % len(order)], QA_PER_PERSON + k // len(order)) for k in range(N_ICL)]
    qa = [pair for u in usable for pair in _first(u, QA_PER_PERSON)]
    icl = [_first(usable[member], rank + 1)[rank] for member, rank in icl_picks]
    return qa, icl


def _first(usable: list[QA], n: int) -> list[QA]:
    """The first n usable pairs; 5 of the 7 facts are unique to their person, so n <= 5 always
    exist (the error guards against a change to the pools)."""
    if len(usable) < n:
        raise RuntimeError(f"synth_muse: fewer than {n} facts unique to one person")
    return usable[:n]
