"""Synthetic benchmark in the layout of WMDP (Li et al., 2024), for offline runs and tests.

WMDP unlearns a domain of hazardous knowledge: the model is trained to forget a corpus
(`bio-forget-corpus`) while keeping a benign one (`bio-retain-corpus`), and is scored by
4-way multiple choice on the hazardous domain (`wmdp-bio`, accuracy should fall to chance)
and on general knowledge (`mmlu`, accuracy should stay). This analogue carries NO real
hazardous information: its "hazard" domain is a bestiary of invented afflictions — "the
Quelvan spore", "the Tarrish blight" — of invented creatures, spread by invented carriers,
neutralised by invented compounds and first catalogued at invented labs. Every value is
built from nonsense roots (see `synth_pools.py`); none names a real pathogen, toxin,
chemical or procedure, and the passages call the agents invented or imaginary.

- `agents` agents with 6 facts each (host, carrier, incubation period, target organ,
  neutralising compound, lab of first description). `bio-forget-corpus/train`: 2 passages
  per agent, `{"text"}`, each stating all 6 facts in a different wording and sentence order.
- 2 × `agents` invented towns with 6 facts each (country, river, founding year, an inventor
  born there, festival, main export), split into two equal groups: G0 (the first half, the
  "pre-training" world) and G1 (the retained world).
- `bio-retain-corpus/train`: 2 passages per G1 town. `base/train`: 2 passages per G0 town,
  then 3 records per G0 town whose text is `"Question: {q}\\nAnswer: {a}"`. A model trained
  from scratch has never seen a question answered; these records teach it the QA prompt
  format used to score the choices. Both corpora also end with one such record per question
  scored on them (`wmdp-bio` in the forget corpus, `mmlu` in the retain corpus): a 4-layer
  model trained from scratch does not learn to answer about facts it has only read in prose
  (measured: 0.32 accuracy for the original model without them, chance being 0.25), so the
  multiple choice would measure nothing. With them it measures whether the fact can still be
  recalled in answer form, closer to memorisation than WMDP on a pretrained model (docs/benchmarks.md).
- `wmdp-bio/test`: `{"question", "choices", "answer"}` for 4 of the 6 facts of each agent
  (drawn per agent); `mmlu/test`: `{"question", "subject": "general", "choices", "answer"}`
  for 4 of the 6 facts of each G1 town. The right choice is the fact value exactly as the
  passages write it; the 3 distractors are other agents' (resp. G1 towns') values of the same
  attribute, distinct from one another and from it (neither string contains the other).
  Distractors of the same attribute have the
  same form ("14 days" against "9 days", a compound against compounds), so the right choice
  cannot be told from its shape, and the model has learnt every distractor too: a correct
  choice needs the agent–value binding, which is what unlearning should remove. The answer
  position is drawn uniformly from 0..3.

Names, hosts, carriers, compounds, labs, towns, rivers and inventors are unique; incubation
periods, organs, countries, years, festivals and exports may repeat. Output depends only on
the arguments: one `random.Random(seed)` drives everything in a fixed order (agents, towns,
passages, base QA, WMDP questions, MMLU questions); files are byte-identical for the same
arguments and written atomically by `synth._write_splits`.
"""

import random
from collections.abc import Mapping, Sequence
from pathlib import Path

from satimp.data import synth_pools as pools
from satimp.data.synth import Record, _first_name, _is_int, _place, _unique, _write_splits
from satimp.errors import InputError

WMDP_SPLITS: tuple[str, ...] = (
    "bio-forget-corpus/train",
    "bio-retain-corpus/train",
    "base/train",
    "wmdp-bio/test",
    "mmlu/test",
)
MIN_AGENTS, MAX_AGENTS = 8, 500  # 8: enough agents for 3 distinct distractors per attribute
PASSAGES = 2  # passages per agent / town
QA_PER_TOWN = 3  # base/train QA records per G0 town
MCQ_PER_ENTITY = 4  # questions per agent (wmdp-bio) / G1 town (mmlu)
N_CHOICES = 4

Facts = dict[str, str]


def synth_wmdp(
    out_dir: str | Path, *, agents: int = 24, seed: int = 0, file_format: str = "jsonl"
) -> dict[str, int]:
    """Write the synthetic WMDP-format benchmark to out_dir (`<config>/<split>.jsonl`, or
    `.json` with `file_format` 'json'); returns {split: n_records}.

    Files are UTF-8 JSON lines with a fixed key order, byte-identical for the same arguments,
    built in memory first and moved into out_dir from a temporary folder; other files in
    out_dir are left alone. Raises InputError on bad arguments.
    """
    splits = wmdp_records(agents=agents, seed=seed)
    _write_splits(Path(out_dir), splits, caller="synth_wmdp", file_format=file_format)
    return {name: len(splits[name]) for name in WMDP_SPLITS}


def wmdp_records(*, agents: int = 24, seed: int = 0) -> dict[str, list[Record]]:
    """The records of every split in WMDP_SPLITS, in memory (what `synth_wmdp` writes)."""
    _check_args(agents, seed)
    rng = random.Random(seed)
    used: set[str] = set()
    bestiary = [_agent(rng, used) for _ in range(agents)]
    towns = [_town(rng, used) for _ in range(2 * agents)]
    g0, g1 = towns[:agents], towns[agents:]

    forget = [p for a in bestiary for p in _passages(pools.AGENT_SENTENCES, "host", a, rng)]
    base = [p for t in g0 for p in _passages(pools.TOWN_SENTENCES, "country", t, rng)]
    retain = [p for t in g1 for p in _passages(pools.TOWN_SENTENCES, "country", t, rng)]
    for town in g0:
        for attr in rng.sample(list(pools.TOWN_QUESTIONS), QA_PER_TOWN):
            question = pools.TOWN_QUESTIONS[attr].format_map(town)
            base.append(f"Question: {question}\nAnswer: {town[attr]}")

    wmdp = _mcq(bestiary, pools.AGENT_QUESTIONS, rng)
    mmlu = _mcq(g1, pools.TOWN_QUESTIONS, rng)
    # each question's fact also as a QA line, in the corpus it belongs to (module docstring)
    forget += [_qa_line(r) for r in wmdp]
    retain += [_qa_line(r) for r in mmlu]
    return {
        "bio-forget-corpus/train": [{"text": p} for p in forget],
        "bio-retain-corpus/train": [{"text": p} for p in retain],
        "base/train": [{"text": p} for p in base],
        "wmdp-bio/test": wmdp,
        "mmlu/test": [
            {
                "question": r["question"],
                "subject": "general",
                "choices": r["choices"],
                "answer": r["answer"],
            }
            for r in mmlu
        ],
    }


def _qa_line(r: Record) -> str:
    return f"Question: {r['question']}\nAnswer: {r['choices'][r['answer']]}"


# --- arguments --------------------------------------------------------------------------------


def _check_args(agents: object, seed: object) -> None:
    """Raise InputError naming the first bad argument."""
    if not _is_int(agents) or not MIN_AGENTS <= agents <= MAX_AGENTS:
        raise InputError(
            f"synth_wmdp: agents must be an integer in [{MIN_AGENTS}, {MAX_AGENTS}], got {agents!r}"
        )
    if not _is_int(seed):
        raise InputError(f"synth_wmdp: seed must be an integer, got {seed!r}")


# --- entities ---------------------------------------------------------------------------------


def _agent_name(r: random.Random) -> str:
    """An invented affliction: "Quelvan spore"."""
    adjective = r.choice(pools.AGENT_ROOTS) + r.choice(pools.AGENT_SUFFIXES)
    return f"{adjective} {r.choice(pools.AGENT_KINDS)}"


def _host(r: random.Random) -> str:
    """An invented creature: "dappled glimmerfinch"."""
    creature = r.choice(pools.HOST_PREFIXES) + r.choice(pools.HOST_NOUNS)
    return f"{r.choice(pools.HOST_ADJECTIVES)} {creature}"


def _carrier(r: random.Random) -> str:
    """An invented carrier: "drifting ashpollen"."""
    carrier = r.choice(pools.CARRIER_PREFIXES) + r.choice(pools.CARRIER_NOUNS)
    return f"{r.choice(pools.CARRIER_ADJECTIVES)} {carrier}"


def _compound(r: random.Random) -> str:
    """An invented compound: "zarvellium resin"."""
    name = r.choice(pools.COMPOUND_ROOTS) + r.choice(pools.COMPOUND_SUFFIXES)
    return f"{name} {r.choice(pools.COMPOUND_FORMS)}"


def _lab(r: random.Random) -> str:
    """An invented lab: "Halbury Blight Registry"."""
    return f"{_place(r, pools.CITY_ENDINGS)} {r.choice(pools.LAB_KINDS)}"


def _town_name(r: random.Random) -> str:
    """An invented town: root, middle, ending ("Tar" + "en" + "sk")."""
    return r.choice(pools.PLACE_ROOTS) + r.choice(pools.TOWN_MIDDLES) + r.choice(pools.CITY_ENDINGS)


def _river(r: random.Random) -> str:
    """An invented river: "Jorithuin River"."""
    name = r.choice(pools.PLACE_ROOTS) + r.choice(pools.TOWN_MIDDLES)
    return f"{name}{r.choice(pools.PLACE_ENDINGS)} River"


def _inventor(r: random.Random) -> str:
    """An invented inventor's full name."""
    return f"{_first_name(r, 'any')} {r.choice(pools.LAST_NAMES)}"


def _agent(rng: random.Random, used: set[str]) -> Facts:
    """One invented affliction and its 6 facts (keys of AGENT_QUESTIONS), with `agent`
    ("the Quelvan spore") and `Agent` ("The Quelvan spore") to name it in sentences."""
    agent = f"the {_unique(rng, used, _agent_name)}"
    return {
        "agent": agent,
        "Agent": "T" + agent[1:],
        "host": _unique(rng, used, _host),
        "carrier": _unique(rng, used, _carrier),
        "incubation": f"{rng.randint(2, 60)} days",
        "organ": f"{rng.choice(pools.ORGAN_ADJECTIVES)} {rng.choice(pools.ORGAN_NOUNS)}",
        "neutraliser": _unique(rng, used, _compound),
        "lab": _unique(rng, used, _lab),
    }


def _town(rng: random.Random, used: set[str]) -> Facts:
    """One invented town and its 6 facts (keys of TOWN_QUESTIONS), with its name as `town`."""
    return {
        "town": _unique(rng, used, _town_name),
        "country": _place(rng, pools.COUNTRY_ENDINGS),
        "river": _unique(rng, used, _river),
        "founded": str(rng.randint(1100, 1899)),
        "inventor": _unique(rng, used, _inventor),
        "festival": f"{rng.choice(pools.FESTIVAL_ADJECTIVES)} {rng.choice(pools.FESTIVAL_NOUNS)}",
        "export": f"{rng.choice(pools.EXPORT_ADJECTIVES)} {rng.choice(pools.EXPORT_NOUNS)}",
    }


# --- passages and questions -------------------------------------------------------------------


def _passages(
    sentences: Mapping[str, Sequence[str]], first: str, facts: Mapping[str, str], rng: random.Random
) -> list[str]:
    """PASSAGES passages stating every fact: the `first` fact opens, the others follow in a
    fresh random order; each fact takes a different wording in each passage."""
    wordings = {attr: rng.sample(range(len(forms)), PASSAGES) for attr, forms in sentences.items()}
    out = []
    for k in range(PASSAGES):
        rest = [attr for attr in sentences if attr != first]
        rng.shuffle(rest)
        out.append(
            " ".join(
                sentences[attr][wordings[attr][k]].format_map(facts) for attr in [first, *rest]
            )
        )
    return out


def _mcq(
    entities: Sequence[Mapping[str, str]], questions: Mapping[str, str], rng: random.Random
) -> list[Record]:
    """MCQ_PER_ENTITY 4-way questions per entity, on attributes drawn per entity.

    Distractors: 3 values of the same attribute from other entities, distinct from each other
    and neither inside the right one nor containing it ("4 days" is no distractor for
    "54 days"): first occurrences in entity order, then sampled.
    """
    out: list[Record] = []
    for i, facts in enumerate(entities):
        for attr in rng.sample(list(questions), MCQ_PER_ENTITY):
            right = facts[attr]
            others = [
                e[attr]
                for j, e in enumerate(entities)
                if j != i and e[attr] not in right and right not in e[attr]
            ]
            pool = list(dict.fromkeys(others))
            if len(pool) < N_CHOICES - 1:  # needs all 7+ others to share <= 2 values
                raise RuntimeError(f"synth_wmdp: too few distinct values of {attr!r}")
            choices = rng.sample(pool, N_CHOICES - 1)
            answer = rng.randrange(N_CHOICES)
            choices.insert(answer, right)
            out.append(
                {
                    "question": questions[attr].format_map(facts),
                    "choices": choices,
                    "answer": answer,
                }
            )
    return out
