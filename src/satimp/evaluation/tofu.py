"""TOFU's evaluation (SPEC §5): ES, EM, probability, ROUGE-L and truth ratio per split, forget
quality and model utility, under the run's protocol (SPEC §6). Results come per item
(`per_sample`, dataset order) and aggregated (`summary`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tqdm.auto import tqdm

from satimp import metrics as M
from satimp.data.encoding import (
    Encoded,
    encode_qa_string,
)
from satimp.data.records import has_split
from satimp.data.tofu import base_answer_key, load_split, retain_split_for
from satimp.evaluation.generation import extraction_strength_by_generation, generate_answers
from satimp.evaluation.mia import holdout_split_for, mia
from satimp.evaluation.scoring import extraction_scores, first_n, protocol_qa
from satimp.evaluation.worst import WorstItems, rank_items
from satimp.protocol import OFFICIAL_ES_PROMPT, Protocol
from satimp.protocol import resolve as resolve_protocol
from satimp.stats import mean

# Summary set name → split of per-item data (the forget set's is `<forget>_perturbed`).
SET_SPLITS = {
    "retain": "retain_perturbed",
    "real_authors": "real_authors_perturbed",
    "world_facts": "world_facts_perturbed",
}
UTILITY_SETS = ("retain", "real_authors", "world_facts")
# The per-item metrics the summary averages; per_sample also holds ITEM_FIELDS, the values
# behind them (open-unlearning's per-item names where it has one: avg_loss, generation).
SUMMARY_METRICS = ("es", "em", "prob", "truth_ratio", "rouge")
ITEM_FIELDS = (
    "prob_raw",
    "prob_normalised",
    "avg_loss",
    "paraphrased_avg_loss",
    "perturbed_avg_loss",
    "generation",
)


def es_scores(
    model,
    tokenizer,
    records: Sequence[dict],
    *,
    protocol: Protocol,
    batch_size: int = 32,
    es_mode: str = "forward",
) -> dict[str, list[float]]:
    """ES and EM of each record's `answer` under the protocol's ES conventions: the chat prompt
    (EOS excluded) or the authors' `### Question:` string (no EOS), and the no-match value.
    es_mode 'generate' checks the one-pass ES by greedy decoding (slow)."""
    if protocol.es_prompt == "qa":
        examples = [
            encode_qa_string(
                tokenizer,
                OFFICIAL_ES_PROMPT.format(question=r["question"]),
                r["answer"],
                max_length=protocol.eval_max_length,
            )
            for r in records
        ]
    else:
        examples = [protocol_qa(tokenizer, r["question"], r["answer"], protocol) for r in records]
    drop_eos = protocol.es_prompt == "chat"
    kw = dict(drop_eos=drop_eos, no_match=protocol.es_no_match)
    s = extraction_scores(
        model, examples, pad_id=tokenizer.pad_token_id, batch_size=batch_size, **kw
    )
    es = s["es"]
    if es_mode == "generate":
        es = extraction_strength_by_generation(model, examples, eos_id=tokenizer.eos_token_id, **kw)
    return {"es": es.tolist(), "em": s["em"].tolist()}


def score_split(
    model,
    tokenizer,
    records: list[dict],
    *,
    protocol: Protocol | None = None,
    base_key: str = "paraphrased_answer",
    answer_prob: bool = True,
    batch_size: int = 32,
    es_mode: str = "forward",
    rouge: bool = True,
    generation_batch_size: int | None = None,
    generations: bool = True,
) -> dict[str, list]:
    """Per-item metrics of one perturbed split: es, em, prob, truth_ratio (raw R), rouge, and
    the values behind them (ITEM_FIELDS).

    prob is exp(−mean NLL) of the answer when `answer_prob` (forget and retain sets), else
    p_true / (p_true + Σ p_perturbed) (real authors, world facts; SPEC §5); both are kept as
    prob_raw and prob_normalised. avg_loss is the answer's mean token NLL (the probability's
    tokens, so prob_raw = exp(−avg_loss)), perturbed_avg_loss [n][K] each perturbed answer's
    and paraphrased_avg_loss the base answer's when it is not the answer itself. The truth
    ratio compares the perturbed answers with `base_key` (`paraphrased_answer`, or `answer`
    on real authors and world facts). With `rouge`, `generation` holds the greedy answer ROUGE
    scored, unless `generations` is off. Conventions (prompt, EOS, ES, generation budget, mean
    of the perturbed answers) are the protocol's.
    """
    P = resolve_protocol(protocol)

    def enc(q: str, a: str) -> Encoded:
        return protocol_qa(tokenizer, q, a, P)

    n, K = len(records), min(len(r["perturbed_answer"]) for r in records)
    answers = [enc(r["question"], r["answer"]) for r in records]
    base = [] if base_key == "answer" else [enc(r["question"], r[base_key]) for r in records]
    pert = [enc(r["question"], p) for r in records for p in r["perturbed_answer"][:K]]
    scored = extraction_scores(
        model,
        answers + base + pert,
        pad_id=tokenizer.pad_token_id,
        batch_size=batch_size,
        eos_in_prob=P.eos_in_prob,
        no_match=P.es_no_match,
    )
    nll = scored["mean_nll"]
    ans_nll, pert_nll = nll[:n], nll[n + len(base) :].view(n, K)
    base_nll = nll[n : 2 * n] if base else ans_nll
    if P.es_prompt == "chat" and es_mode == "forward":  # ES/EM come free with this pass
        es = {"es": scored["es"][:n].tolist(), "em": scored["em"][:n].tolist()}
    else:
        es = es_scores(
            model, tokenizer, records, protocol=P, batch_size=batch_size, es_mode=es_mode
        )
    eps = P.tr_eps
    raw, normalised = scored["prob"][:n], M.normalized_true_prob(ans_nll, pert_nll, eps=eps)
    out: dict[str, list] = {
        **es,
        "prob": (raw if answer_prob else normalised).tolist(),
        "truth_ratio": M.truth_ratio(base_nll, pert_nll, mean=P.tr_mean, eps=eps).tolist(),
    }
    items = {  # the values behind the metrics, per item (added after them: nothing moves)
        "prob_raw": raw.tolist(),
        "prob_normalised": normalised.tolist(),
        "avg_loss": ans_nll.tolist(),
        "paraphrased_avg_loss": base_nll.tolist() if base else None,
        "perturbed_avg_loss": pert_nll.tolist(),  # [n][K]
    }
    if rouge:
        gens = generate_answers(
            model,
            tokenizer,
            [r["question"] for r in records],
            batch_size=generation_batch_size or batch_size,
            max_new_tokens=P.gen_tokens,
            budget=P.generation,
            system=P.system_prompt,
        )
        out["rouge"] = [
            M.rouge_l_recall(g, r["answer"]) for g, r in zip(gens, records, strict=True)
        ]
        if generations:
            items["generation"] = gens
    return out | {k: v for k, v in items.items() if v is not None}


def evaluate_tofu(
    model,
    tokenizer,
    data,
    forget_split: str,
    *,
    protocol: Protocol | None = None,
    retain_truth_ratios: Sequence[float] | None = None,
    batch_size: int = 32,
    es_mode: str = "forward",
    rouge: bool = True,
    progress: bool = True,
    generation_batch_size: int | None = None,
    generations: bool = True,
    membership: bool = True,
) -> tuple[dict, dict]:
    """All TOFU metrics of a model under a protocol (default `tofu`): (summary, per_sample).

    summary keys: forget_/retain_ {es, em, prob, rouge, truth_ratio}, forget_quality (None
    without the retain model's truth ratios), real_authors_/world_facts_ {prob, rouge,
    truth_ratio} and model_utility. per_sample: {split: {metric: [value per item]}}, the
    summary's metrics and the values behind them (`score_split`; the generated answers
    unless `generations` is off). Each split is cut to its first `ds_size` items; with
    `retain_es: retain_head` the retain ES and EM come from `retainXX[:retain_holdout]`
    (per_sample under that name). The ROUGE answers are generated `generation_batch_size` at
    a time (None: `batch_size`). With `membership` and a `holdoutXX` split beside the forget
    split, membership inference of the forget items against the holdout's (`mia.mia`, SPEC
    §7): summary `mia_<attack>_auc`, per_sample `mia_<attack>` under both splits.
    """
    P = resolve_protocol(protocol)
    if es_mode not in ("forward", "generate"):
        raise ValueError(f"es_mode={es_mode!r}; valid: forward, generate")
    sets = {"forget": f"{forget_split}_perturbed", **SET_SPLITS}
    records = {
        name: first_n(load_split(data, split), P.ds_size or None) for name, split in sets.items()
    }
    head = retain_es_split(P, forget_split)
    head_records = load_split(data, head) if head else None
    per_sample, summary = {}, {}
    for name, split in tqdm(
        sets.items(), desc="evaluate", leave=False, disable=not (progress and sys.stderr.isatty())
    ):
        items = score_split(
            model,
            tokenizer,
            records[name],
            protocol=P,
            base_key=base_answer_key(split),
            batch_size=batch_size,
            answer_prob=name in ("forget", "retain"),
            es_mode=es_mode,
            rouge=rouge,
            generation_batch_size=generation_batch_size,
            generations=generations,
        )
        per_sample[split] = items
        for metric, values in items.items():
            if metric not in SUMMARY_METRICS:
                continue
            if metric == "truth_ratio":
                value = M.truth_ratio_score(values, forget=name == "forget", eps=P.tr_eps)
            else:
                value = sum(values) / len(values)
            if name in ("forget", "retain") or metric in ("prob", "rouge", "truth_ratio"):
                summary[f"{name}_{metric}"] = value
    if head_records is not None:
        items = es_scores(
            model, tokenizer, head_records, protocol=P, batch_size=batch_size, es_mode=es_mode
        )
        per_sample[head] = items
        summary["retain_es"], summary["retain_em"] = mean(items["es"]), mean(items["em"])
    holdout = holdout_split_for(forget_split)
    if membership and has_split(data, holdout):
        non_members = first_n(load_split(data, holdout), P.ds_size or None)
        mia_summary, scores = mia(
            model, tokenizer, records["forget"], non_members, protocol=P, batch_size=batch_size
        )
        summary |= mia_summary
        for name, split in (("members", sets["forget"]), ("non_members", holdout)):
            items = per_sample.setdefault(split, {})
            items |= {f"mia_{attack}": values for attack, values in scores[name].items()}
    forget_tr = per_sample[sets["forget"]]["truth_ratio"]
    summary["forget_quality"] = (
        M.forget_quality(forget_tr, retain_truth_ratios) if retain_truth_ratios else None
    )
    if rouge:
        summary["model_utility"] = M.model_utility(
            [summary[f"{s}_{m}"] for s in UTILITY_SETS for m in ("prob", "rouge", "truth_ratio")]
        )
    return summary, per_sample


def retain_es_split(protocol: Protocol, forget_split: str) -> str | None:
    """The split holding the retain-ES items when they are not retain_perturbed's:
    `retainXX[:retain_holdout]` under `retain_es: retain_head` (the authors' eval_es.py)."""
    if protocol.retain_es != "retain_head":
        return None
    return f"{retain_split_for(forget_split)}[:{protocol.retain_holdout or 400}]"


def tofu_es_probe(data, forget_split: str, *, protocol: Protocol, batch_size: int):
    """Forget and retain ES/EM after an unlearning epoch, computed exactly as the final
    evaluation computes them (same items, prompt and conventions); returns
    probe(model, tokenizer, epoch) -> {forget_es, forget_em, retain_es, retain_em}."""
    P = resolve_protocol(protocol)
    sets = {"forget": f"{forget_split}_perturbed"}
    head = retain_es_split(P, forget_split)
    if head:
        sets["retain"] = head
    elif has_split(data, SET_SPLITS["retain"]):
        sets["retain"] = SET_SPLITS["retain"]
    records = {k: load_split(data, v) for k, v in sets.items()}
    if not head and "retain" in records:
        records["retain"] = first_n(records["retain"], P.ds_size or None)
    records["forget"] = first_n(records["forget"], P.ds_size or None)

    def probe(model, tokenizer, _epoch) -> dict:
        row = {}
        for name, items in records.items():
            s = es_scores(model, tokenizer, items, protocol=P, batch_size=batch_size)
            row |= {f"{name}_es": mean(s["es"]), f"{name}_em": mean(s["em"])}
        return row

    return probe


def tofu_worst_items(
    per_sample: dict, data, forget_split: str, *, protocol: Protocol, n: int = 10
) -> list[WorstItems]:
    """The forget items the model still reproduces (highest forget ES, then probability) and
    the retain items it lost (lowest ES, then probability, on the items the summary's retain
    ES comes from: retain_perturbed, or retainXX[:holdout] under `retain_es: retain_head`),
    with their records read again from `data` (cut to `ds_size`, as evaluated)."""
    P = resolve_protocol(protocol)
    forget = f"{forget_split}_perturbed"
    head = retain_es_split(P, forget_split)
    retain = head or SET_SPLITS["retain"]
    tables = []
    for title, split, highest in (
        ("Forget items the model still reproduces: highest ES, then probability", forget, True),
        ("Retain items the model lost: lowest ES, then probability", retain, False),
    ):
        if split not in per_sample:
            continue
        records = load_split(data, split)
        records = records if split == head else first_n(records, P.ds_size or None)
        rows = rank_items(per_sample[split], records, highest=highest, n=n)
        tables.append(WorstItems(title, split, rows))
    return tables


SUMMARY_ORDER = (
    "forget_es",
    "forget_em",
    "forget_prob",
    "forget_rouge",
    "forget_truth_ratio",
    "forget_quality",
    "retain_es",
    "retain_em",
    "retain_prob",
    "retain_rouge",
    "retain_truth_ratio",
    "real_authors_prob",
    "real_authors_rouge",
    "real_authors_truth_ratio",
    "world_facts_prob",
    "world_facts_rouge",
    "world_facts_truth_ratio",
    "model_utility",
)


def format_summary(summary: dict) -> str:
    """A two-column text table of the summary: TOFU's keys in SUMMARY_ORDER, then the rest."""
    keys = [k for k in SUMMARY_ORDER if k in summary]
    keys += [k for k in summary if k not in SUMMARY_ORDER]
    lines = []
    for k in keys:
        v = summary[k]
        if v is None or isinstance(v, (int, float)):
            lines.append(f"{k:<26} {'n/a' if v is None else f'{v:.4f}'}")
    return "\n".join(lines)
