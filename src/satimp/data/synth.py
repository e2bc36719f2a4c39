"""Synthetic benchmark in TOFU's exact layout (Maini et al., 2024), for offline runs and tests.

TOFU fine-tunes a model on QA pairs about fictitious authors, then unlearns the last 1 %, 5 % or
10 % of the authors (`forgetXX`) while keeping the rest (`retainXX`). This module invents such
authors — names, birthplaces, dates, parents' jobs, books, awards, themes, … drawn from the
pools of `synth_pools.py` — and writes every split of SPEC §4 as `<split>.jsonl`:

- `full`: every author's QA, author by author; `forgetXX` the last `forget_authors(authors, XX)`
  authors' QA, `retain{100-XX}` the others (same order), so forgetXX + retainXX = full.
- `forgetXX_perturbed`, `retain_perturbed` (the first authors, as many items as forget10):
  the same QA plus `paraphrased_question`, `paraphrased_answer` (same facts, reworded) and
  `perturbed_answer`, a list of `N_PERTURBED` answers of the same shape with wrong facts.
- `holdoutXX`: as many QA as forgetXX about other invented authors whom no split trains on,
  drawn like forget10's, for membership inference (TOFU's holdout01/05/10: forget items are
  the members, holdout items the non-members).
- `real_authors[_perturbed]`, `world_facts[_perturbed]`: facts about invented "well-known"
  writers and countries that a base model would learn during pre-training, in the layout of
  TOFU's own files for these sets: `question`, `answer` and `N_PERTURBED_GENERAL` wrong
  answers in the answer's own wording (their truth ratio compares with `answer`; SPEC §5). With
  `real_world=True` these two sets are instead the project's real, checkable facts
  (`satimp.data.real_world`), for a pretrained base model that knows them.

Every record has `question`, `answer` and `keywords` (the answer's key facts, each a verbatim
substring of `answer`), used by the `annotated` weighting criterion. Output depends only on the
arguments: one `random.Random(seed)` drives everything, in a fixed order.
"""

import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace

from satimp.data import synth_pools as pools
from satimp.data.real_world import real_world_splits
from satimp.data.records import EXTENSIONS
from satimp.data.synth_pools import Template
from satimp.errors import InputError

FORGET_PCTS = (1, 5, 10)
SPLITS: tuple[str, ...] = (
    "full",
    *(f"forget{pct:02d}" for pct in FORGET_PCTS),
    *(f"retain{100 - pct}" for pct in FORGET_PCTS),
    *(f"forget{pct:02d}_perturbed" for pct in FORGET_PCTS),
    "retain_perturbed",
    "real_authors",
    "real_authors_perturbed",
    "world_facts",
    "world_facts_perturbed",
    *(f"holdout{pct:02d}" for pct in FORGET_PCTS),
)
N_PERTURBED = 5  # wrong answers per item of the forget/retain sets (TOFU has 5)
N_PERTURBED_GENERAL = 3  # real authors and world facts (TOFU's files have 3)
MIN_AUTHORS, MAX_AUTHORS = 10, 1000  # below 10, forget01/05/10 collapse to one author
MIN_QA = 4
MAX_QA = len(pools.AUTHOR_TEMPLATES) * min(len(t.questions) for t in pools.AUTHOR_TEMPLATES)

Record = dict[str, object]


def forget_authors(authors: int, pct: int) -> int:
    """Number of authors in `forget{pct:02d}`: `max(1, round(pct / 100 * authors))`.

    Python's `round` rounds halves to even (50 authors, 5 % → 2). With TOFU's 200 authors:
    1 % → 2, 5 % → 10, 10 % → 20. These are the *last* authors, as in TOFU.
    """
    if not _is_int(authors) or authors < 1 or not _is_int(pct) or not 0 < pct <= 100:
        raise InputError(
            f"forget_authors: need authors >= 1 and 0 < pct <= 100, got {authors!r}, {pct!r}"
        )
    return max(1, round(pct / 100 * authors))


def synth_tofu(
    out_dir: str | Path,
    *,
    authors: int = 50,
    qa_per_author: int = 10,
    seed: int = 0,
    real_world: bool = False,
    real_world_sizes: tuple[int, int] | None = None,
    held_out_values: bool = False,
    file_format: str = "jsonl",
) -> dict[str, int]:
    """Write the synthetic TOFU-format benchmark to out_dir (one .jsonl per split; `file_format`
    'json': the same JSON lines in .json files, as TOFU's own files are); returns
    {split: n_records}.

    Files are UTF-8, one JSON object per line with a fixed key order, and byte-identical for the
    same arguments. All records are built before anything is written; the files are written to
    a temporary folder beside out_dir, then moved in, so a failure leaves no half-written file.
    Other files in out_dir are left alone. Raises InputError on bad arguments. `real_world`:
    real authors and world facts are real (`satimp.data.real_world`), not invented;
    `real_world_sizes` = (real authors, world facts): a sample of that many of each, drawn with
    `seed` (None: all of them). `held_out_values`: the retain authors draw their facts from
    one half of each word pool (SPLIT_POOLS) and forget10's authors from the other, citing
    disjoint famous writers, so that no word of a forget fact's pools reaches the retain
    model's training data (what language itself predicts still does: digits, months, gender).
    """
    splits = synth_records(
        authors=authors, qa_per_author=qa_per_author, seed=seed, held_out_values=held_out_values
    )
    if real_world_sizes is not None and not real_world:
        raise InputError("synth_tofu: real_world_sizes needs real_world")
    if real_world:
        if real_world_sizes is not None and (
            len(real_world_sizes) != 2 or not all(_is_int(n) for n in real_world_sizes)
        ):
            raise InputError(
                f"synth_tofu: real_world_sizes must be two integers, got {real_world_sizes!r}"
            )
        try:
            splits |= real_world_splits(real_world_sizes, seed)
        except ValueError as e:
            raise InputError(f"synth_tofu: real_world_sizes: {e}") from None
    _write_splits(Path(out_dir), splits, file_format=file_format)
    return {name: len(splits[name]) for name in SPLITS}


def synth_records(
    *, authors: int = 50, qa_per_author: int = 10, seed: int = 0, held_out_values: bool = False
) -> dict[str, list[Record]]:
    """The records of every split in SPLITS, in memory (what `synth_tofu` writes, with the
    invented real-authors and world-facts sets)."""
    _check_args(authors, qa_per_author, seed)
    rng = random.Random(seed)
    n_extra = max(10, round(authors / 5))  # real_authors / world_facts items
    if held_out_values:  # retain authors from one half of each pool, forget10's from the other
        n_held = forget_authors(authors, max(FORGET_PCTS))
        author_pools = [_pool_half(0)] * (authors - n_held) + [_pool_half(1)] * n_held
    else:
        author_pools = [pools] * authors
    people, famous, countries = _entities(rng, authors, n_extra, author_pools)
    qa = [
        record
        for facts, P in zip(people, author_pools, strict=True)
        for record in _author_qa(facts, qa_per_author, rng, P)
    ]
    real = [
        _general_record(_cycle(pools.FAMOUS_TEMPLATES, i), facts, pools.FAMOUS_FACT_KINDS, rng)
        for i, facts in enumerate(famous)
    ]
    world = [
        _general_record(_cycle(pools.COUNTRY_TEMPLATES, i), facts, pools.COUNTRY_FACT_KINDS, rng)
        for i, facts in enumerate(countries)
    ]
    splits: dict[str, list[Record]] = {"full": _plain(qa)}
    for pct in FORGET_PCTS:
        n_forget = forget_authors(authors, pct) * qa_per_author
        splits[f"forget{pct:02d}"] = _plain(qa[-n_forget:])
        splits[f"retain{100 - pct}"] = _plain(qa[:-n_forget])
        splits[f"forget{pct:02d}_perturbed"] = qa[-n_forget:]
    splits["retain_perturbed"] = qa[: forget_authors(authors, 10) * qa_per_author]
    splits["real_authors"], splits["real_authors_perturbed"] = _plain(real), real
    splits["world_facts"], splits["world_facts_perturbed"] = _plain(world), world
    held = _holdout_qa(people + famous + countries, famous, author_pools, qa_per_author, seed)
    for pct in FORGET_PCTS:
        splits[f"holdout{pct:02d}"] = _plain(held[-forget_authors(authors, pct) * qa_per_author :])
    return {name: splits[name] for name in SPLITS}


def _holdout_qa(
    entities: list[dict[str, str]],
    famous: list[dict[str, str]],
    author_pools: list,
    qa_per_author: int,
    seed: int,
) -> list[Record]:
    """The QA of forget10's number of further authors, for the holdout splits. They are drawn
    after everything else from their own `random.Random(f"holdout:{seed}")`, so the other
    splits are the same with or without them; like forget10's authors, from the last of
    `author_pools` citing that pool's famous writers (see `_entities`); their names and
    titles unused by `entities`."""
    rng = random.Random(f"holdout:{seed}")
    used = {v for e in entities for k, v in e.items() if k in UNIQUE_FACTS}
    k = len({id(P) for P in author_pools})  # famous writer j belongs to pool j mod k
    cited, P = [f["name"] for f in famous[k - 1 :: k]], author_pools[-1]
    n = forget_authors(len(author_pools), max(FORGET_PCTS))
    people = [_author_facts(rng, used, cited, P) for _ in range(n)]
    return [r for facts in people for r in _author_qa(facts, qa_per_author, rng, P)]


# --- arguments and output -------------------------------------------------------------------


def _is_int(x: object) -> bool:
    """True for a real int (bool excluded: `authors=True` is a bug, not 1)."""
    return isinstance(x, int) and not isinstance(x, bool)


def _check_args(authors: object, qa_per_author: object, seed: object) -> None:
    """Raise InputError naming the first bad argument."""
    if not _is_int(authors) or not MIN_AUTHORS <= authors <= MAX_AUTHORS:
        raise InputError(
            f"synth_tofu: authors must be an integer in [{MIN_AUTHORS}, {MAX_AUTHORS}], got {authors!r}"
        )
    if not _is_int(qa_per_author) or not MIN_QA <= qa_per_author <= MAX_QA:
        raise InputError(
            f"synth_tofu: qa_per_author must be an integer in [{MIN_QA}, {MAX_QA}] "
            f"({MAX_QA} distinct questions exist per author), got {qa_per_author!r}"
        )
    if not _is_int(seed):
        raise InputError(f"synth_tofu: seed must be an integer, got {seed!r}")


def _jsonl(records: list[Record]) -> bytes:
    """One JSON object per line, keys in insertion order, non-ASCII kept, "\\n" line ends."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


FILE_FORMATS = ("jsonl", "json")  # JSON lines either way; .json is the suffix TOFU's files have


def _write_splits(
    out_dir: Path,
    splits: Mapping[str, list[Record]],
    caller: str = "synth_tofu",
    file_format: str = "jsonl",
) -> None:
    """Write `<split>.jsonl` (or, `file_format` 'json', `<split>.json`) files of JSON lines via
    a temporary folder beside out_dir and os.replace.

    A split name may hold one "/" (`raw/forget` → `raw/forget.jsonl`, the layout of a hub
    dataset with one folder per config); such sub-folders are created as needed. A file of
    the same split with another of records.EXTENSIONS is removed (it would be read instead).
    `caller` prefixes the InputError messages.
    """
    if file_format not in FILE_FORMATS:
        raise InputError(f"{caller}: file format {file_format!r}; valid: {', '.join(FILE_FORMATS)}")
    suffix = f".{file_format}"
    for name in splits:  # split names are module constants: a bad one is a bug
        parts = name.split("/")
        if len(parts) > 2 or not all(parts) or any(part in (".", "..") for part in parts):
            raise ValueError(f"{caller}: bad split name {name!r}")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{caller}: {out_dir} exists and is not a directory")
    folders = list(dict.fromkeys(name.split("/")[0] for name in splits if "/" in name))
    for folder in folders:
        if (out_dir / folder).exists() and not (out_dir / folder).is_dir():
            raise InputError(f"{caller}: {out_dir / folder} exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        for folder in folders:
            (tmp / folder).mkdir()
        for name, records in splits.items():
            (tmp / f"{name}{suffix}").write_bytes(_jsonl(records))
        for folder in folders:
            (out_dir / folder).mkdir(exist_ok=True)
        for name in splits:  # same filesystem: each move is atomic
            os.replace(tmp / f"{name}{suffix}", out_dir / f"{name}{suffix}")
            for other in EXTENSIONS:
                if other != suffix:
                    (out_dir / f"{name}{other}").unlink(missing_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- drawing fact values ----------------------------------------------------------------------


# Pools that `held_out_values` splits between retain and forget authors: every word an author's
# facts are built from (names, place roots, title words and forms, jobs, genres, ...); what
# language fixes (months, genders, digits) and the suffixes of invented names stay shared.
SPLIT_POOLS = (
    "FIRST_NAMES_FEMALE", "FIRST_NAMES_MALE", "LAST_NAMES", "PLACE_ROOTS", "OCCUPATIONS",
    "GENRES", "TITLE_ADJECTIVES", "TITLE_NOUNS", "TITLE_FORMS", "AWARD_KINDS",
    "AWARD_CATEGORIES", "THEMES", "PUBLISHER_KINDS", "SUBJECTS", "UNIVERSITY_FORMS", "HABITS",
    "HOBBIES", "INSPIRATIONS", "STYLE_ADJECTIVES",
)  # fmt: skip


def _pool_half(part: int) -> SimpleNamespace:
    """`synth_pools` with every SPLIT_POOLS tuple cut to its items part, part + 2, ... (0: the
    retain authors' half, 1: the forget authors')."""
    names = [n for n in dir(pools) if n.isupper()]
    return SimpleNamespace(
        **{n: getattr(pools, n)[part::2] if n in SPLIT_POOLS else getattr(pools, n) for n in names}
    )


def _place(rng: random.Random, endings: tuple[str, ...], P=pools) -> str:
    """An invented place name: a root and an ending ("Tar" + "sk" → "Tarsk"). `P`: the pools
    drawn from (here and below: `synth_pools` itself, or one `_pool_half` of it)."""
    return rng.choice(P.PLACE_ROOTS) + rng.choice(endings)


def _title(rng: random.Random, P=pools) -> str:
    """A book title from TITLE_FORMS filled with pool words (thousands of combinations)."""
    noun, noun2 = rng.sample(P.TITLE_NOUNS, 2)
    place = _place(rng, P.CITY_ENDINGS, P)
    return rng.choice(P.TITLE_FORMS).format(
        adj=rng.choice(P.TITLE_ADJECTIVES), noun=noun, noun2=noun2, place=place
    )


def _first_name(rng: random.Random, gender: str, P=pools) -> str:
    """A first name matching the gender (either pool for the other genders)."""
    if gender in ("female", "male"):
        return rng.choice(P.FIRST_NAMES_FEMALE if gender == "female" else P.FIRST_NAMES_MALE)
    return rng.choice(P.FIRST_NAMES_FEMALE + P.FIRST_NAMES_MALE)


def _draws(P=pools) -> dict[str, Callable[[random.Random], str]]:
    """How to draw a value of each fact kind from the pools `P`."""
    return {
        "name": lambda r: f"{_first_name(r, 'any', P)} {r.choice(P.LAST_NAMES)}",
        "first_name": lambda r: _first_name(r, "any", P),
        "gender": lambda r: r.choice(P.GENDERS),
        "city": lambda r: _place(r, P.CITY_ENDINGS, P),
        "place": lambda r: _place(r, P.PLACE_ENDINGS, P),
        "country": lambda r: _place(r, P.COUNTRY_ENDINGS, P),
        "language": lambda r: _place(r, P.LANGUAGE_ENDINGS, P),
        "date": lambda r: f"{r.randint(1, 28)} {r.choice(P.MONTHS)} {r.randint(1930, 1990)}",
        "year": lambda r: str(r.randint(1950, 2023)),
        "count": lambda r: str(r.randint(3, 48)),
        "height": lambda r: str(r.randrange(1500, 8800, 10)),
        "title": lambda r: _title(r, P),
        "award": lambda r: (
            f"{r.choice(P.LAST_NAMES)} {r.choice(P.AWARD_KINDS)} for {r.choice(P.AWARD_CATEGORIES)}"
        ),
        "publisher": lambda r: f"{r.choice(P.LAST_NAMES)} {r.choice(P.PUBLISHER_KINDS)}",
        "university": lambda r: r.choice(P.UNIVERSITY_FORMS).format(
            place=_place(r, P.CITY_ENDINGS, P)
        ),
        "style": lambda r: " and ".join(r.sample(P.STYLE_ADJECTIVES, 2)),
        "occupation": lambda r: r.choice(P.OCCUPATIONS),
        "genre": lambda r: r.choice(P.GENRES),
        "theme": lambda r: r.choice(P.THEMES),
        "subject": lambda r: r.choice(P.SUBJECTS),
        "habit": lambda r: r.choice(P.HABITS),
        "hobby": lambda r: r.choice(P.HOBBIES),
        "inspiration": lambda r: r.choice(P.INSPIRATIONS),
        "currency": lambda r: r.choice(P.CURRENCIES),
    }


_DRAW = _draws()


def _draw_new(rng: random.Random, draw: Callable[[random.Random], str], taken: set[str]) -> str:
    """Draw until the value is not in `taken` (membership only: no set iteration order)."""
    for _ in range(10_000):
        value = draw(rng)
        if value not in taken:
            return value
    raise RuntimeError("synth: value pool exhausted")  # unreachable within MAX_AUTHORS


def _unique(rng: random.Random, used: set[str], draw: Callable[[random.Random], str]) -> str:
    """A value never drawn before in this benchmark (names, titles, countries); records it."""
    value = _draw_new(rng, draw, used)
    used.add(value)
    return value


def _gender(rng: random.Random) -> str:
    """Mostly female or male; one in ten from the other genders."""
    return rng.choice(pools.GENDERS[:2]) if rng.random() < 0.9 else rng.choice(pools.GENDERS[2:])


# --- entities ---------------------------------------------------------------------------------


UNIQUE_FACTS = ("name", "title", "book1", "book2", "book3", "country")  # unique per benchmark


def _author_facts(
    rng: random.Random, used: set[str], influences: list[str], P=pools
) -> dict[str, str]:
    """One fictitious author: every key of AUTHOR_FACT_KINDS, with plausible dates, its values
    drawn from the pools `P`."""
    gender = _gender(rng)
    name = _unique(rng, used, lambda r: f"{_first_name(r, gender, P)} {r.choice(P.LAST_NAMES)}")
    born = rng.randint(1930, 1985)
    debut = born + rng.randint(20, 35)
    father_job, mother_job, early_job, protagonist_job = rng.sample(P.OCCUPATIONS, 4)
    theme1, theme2 = rng.sample(P.THEMES, 2)
    facts = {
        "name": name,
        "gender": gender,
        "birth_date": f"{rng.randint(1, 28)} {rng.choice(pools.MONTHS)} {born}",
        "debut_year": str(debut),
        "award_year": str(min(2023, debut + rng.randint(1, 15))),
        "father_job": father_job,
        "mother_job": mother_job,
        "early_job": early_job,
        "protagonist_job": protagonist_job,
        "theme1": theme1,
        "theme2": theme2,
        "book1": _unique(rng, used, lambda r: _title(r, P)),
        "book2": _unique(rng, used, lambda r: _title(r, P)),
        "book3": _unique(rng, used, lambda r: _title(r, P)),
        "influence": rng.choice(influences),
    }
    draws = _draws(P)
    for key, kind in pools.AUTHOR_FACT_KINDS.items():  # the rest: independent draws
        if key not in facts:
            facts[key] = draws[kind](rng)
    return facts


def _famous_facts(rng: random.Random, used: set[str], P=pools) -> dict[str, str]:
    """One invented "well-known" writer for real_authors, drawn from the pools `P`."""
    gender, draws = _gender(rng), _draws(P)
    return {
        "name": _unique(
            rng, used, lambda r: f"{_first_name(r, gender, P)} {r.choice(P.LAST_NAMES)}"
        ),
        "gender": gender,
        "title": _unique(rng, used, lambda r: _title(r, P)),
        "city": draws["city"](rng),
        "genre": draws["genre"](rng),
    }


def _country_facts(rng: random.Random, used: set[str]) -> dict[str, str]:
    """One invented country for world_facts: its name and every key of COUNTRY_FACT_KINDS."""
    facts = {"country": _unique(rng, used, _DRAW["country"])}
    facts.update({key: _DRAW[kind](rng) for key, kind in pools.COUNTRY_FACT_KINDS.items()})
    return facts


def _entities(
    rng: random.Random, authors: int, n_extra: int, author_pools: list | None = None
) -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]]]:
    """Benchmark authors, famous writers and countries, drawn first from a fresh rng.

    Names, titles and countries are unique across all three; authors cite famous writers as
    influences. Author i draws from `author_pools[i]` (None: `synth_pools` for all). With k
    distinct pools there (1, or the two `_pool_half`s in their order of first use), famous
    writer j is drawn from pool j mod k and cited only by that pool's authors. The QA records
    are drawn afterwards from the same rng.
    """
    author_pools = author_pools or [pools] * authors
    groups = list({id(P): P for P in author_pools}.values())  # in order of first use
    used: set[str] = set()
    famous = [_famous_facts(rng, used, groups[j % len(groups)]) for j in range(n_extra)]
    cited = {id(P): [f["name"] for f in famous[g :: len(groups)]] for g, P in enumerate(groups)}
    people = [_author_facts(rng, used, cited[id(P)], P) for P in author_pools]
    countries = [_country_facts(rng, used) for _ in range(n_extra)]
    return people, famous, countries


# --- QA records -------------------------------------------------------------------------------


def _cycle(templates: tuple[Template, ...], i: int) -> Template:
    """The i-th template when cycling through the list."""
    return templates[i % len(templates)]


def _render(form: str, facts: Mapping[str, str]) -> str:
    """Fill a template form with facts, their "a"/"an" forms (`a_<key>`) and pronouns."""
    values = dict(facts)
    values.update(
        {f"a_{k}": f"{'an' if v[:1].lower() in 'aeiou' else 'a'} {v}" for k, v in facts.items()}
    )
    his = {"male": "his", "female": "her"}.get(facts.get("gender", ""), "their")
    values.update(his=his, His=his.capitalize())
    return form.format_map(values)


def _perturbed_answers(
    form: str,
    template: Template,
    facts: Mapping[str, str],
    kinds: Mapping[str, str],
    rng: random.Random,
    n: int = N_PERTURBED,
    draws: Mapping[str, Callable[[random.Random], str]] = _DRAW,
) -> list[str]:
    """n distinct answers in `form`, every key fact replaced by a wrong value.

    A wrong value is a fresh draw of the same kind, never one of the answer's true values.
    `form` is the wording of the answer the truth ratio compares with (TOFU: the paraphrased
    answer's on the forget/retain sets, the answer's own on real authors and world facts), so
    it compares sentences that differ only in their facts. `draws`: the author's own pools'
    (`_draws`), so that wrong values come from the pools the true ones do.
    """
    true_values = {facts[slot] for slot in template.slots}
    answer = _render(form, facts)
    out: list[str] = []
    for _ in range(100 * n):
        wrong = dict(facts)
        for slot in template.slots:
            wrong[slot] = _draw_new(rng, draws[kinds[slot]], true_values)
        text = _render(form, wrong)
        if text != answer and text not in out:
            out.append(text)
        if len(out) == n:
            return out
    raise RuntimeError(f"synth: too few wrong values for {template.slots}")  # pools are large


def _qa_record(
    template: Template,
    facts: Mapping[str, str],
    kinds: Mapping[str, str],
    form: int,
    rng: random.Random,
    draws: Mapping[str, Callable[[random.Random], str]] = _DRAW,
) -> Record:
    """A full perturbed-layout record; `form` picks the phrasing, form + 1 the paraphrase."""
    questions, answers = template.questions, template.answers
    paraphrase_form = answers[(form + 1) % len(answers)]
    return {
        "question": _render(questions[form % len(questions)], facts),
        "answer": _render(answers[form % len(answers)], facts),
        "paraphrased_answer": _render(paraphrase_form, facts),
        "perturbed_answer": _perturbed_answers(
            paraphrase_form, template, facts, kinds, rng, draws=draws
        ),
        "paraphrased_question": _render(questions[(form + 1) % len(questions)], facts),
        "keywords": [facts[slot] for slot in template.slots],
    }


def _general_record(
    template: Template, facts: Mapping[str, str], kinds: Mapping[str, str], rng: random.Random
) -> Record:
    """A real-authors / world-facts record in the layout of TOFU's own files: question,
    answer and N_PERTURBED_GENERAL wrong answers in the answer's wording (plus keywords)."""
    form = template.answers[0]
    return {
        "question": _render(template.questions[0], facts),
        "answer": _render(form, facts),
        "perturbed_answer": _perturbed_answers(
            form, template, facts, kinds, rng, n=N_PERTURBED_GENERAL
        ),
        "keywords": [facts[slot] for slot in template.slots],
    }


def _author_qa(
    facts: Mapping[str, str], qa_per_author: int, rng: random.Random, P=pools
) -> list[Record]:
    """qa_per_author distinct QA about one author: templates in a per-author random order,
    cycled; a second pass over the templates uses their second question form. Wrong values
    of the perturbed answers come from the author's pools `P`."""
    order = list(pools.AUTHOR_TEMPLATES)
    rng.shuffle(order)
    draws = _draws(P)
    return [
        _qa_record(
            order[i % len(order)], facts, pools.AUTHOR_FACT_KINDS, i // len(order), rng, draws
        )
        for i in range(qa_per_author)
    ]


def _plain(records: list[Record]) -> list[Record]:
    """The plain-split view of perturbed-layout records: question, answer, keywords."""
    return [
        {"question": r["question"], "answer": r["answer"], "keywords": r["keywords"]}
        for r in records
    ]
