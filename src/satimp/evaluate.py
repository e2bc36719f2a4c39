"""Evaluation: runs the metrics of `satimp.metrics` over TOFU's splits, in batches.

One teacher-forced pass per encoded answer gives ES, EM, probability and mean NLL (SPEC §5:
ES and EM exclude the final EOS, probability and truth ratio include it); batched greedy
generation gives ROUGE-L. Every convention that differs between published sources is a switch
of the run's protocol (`satimp.protocol`, SPEC §6). Results come
per item (`per_sample`, dataset order) and aggregated (`summary`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from satimp import distributed as D
from satimp import metrics as M
from satimp.data.encoding import (
    IGNORE,
    Encoded,
    encode_continuation,
    encode_qa,
    encode_qa_string,
    iter_batches,
    prompt_ids,
    split_text,
)
from satimp.data.records import has_split
from satimp.data.tofu import base_answer_key, load_split
from satimp.errors import InputError
from satimp.logprobs import (
    drop_last_answer_token,
    example_logps,
    forward_kwargs,
    forward_logps,
    output_cache,
    prompt_length,
    prompt_pass,
    shared_prompt_logps,
)
from satimp.protocol import OFFICIAL_ES_PROMPT, Protocol
from satimp.protocol import resolve as resolve_protocol

# Summary set name → split of per-item data (the forget set's is `<forget>_perturbed`).
SET_SPLITS = {
    "retain": "retain_perturbed",
    "real_authors": "real_authors_perturbed",
    "world_facts": "world_facts_perturbed",
}
UTILITY_SETS = ("retain", "real_authors", "world_facts")


def _device(model) -> torch.device:
    return next(model.parameters()).device


def eval_precision(model, precision: str):
    """The context evaluation runs in: bf16 autocast on the model's device for 'bf16' (weights
    stay fp32; log-probabilities are taken in fp32 from the bf16 logits), nothing for 'fp32'."""
    return torch.autocast(_device(model).type, dtype=torch.bfloat16, enabled=precision == "bf16")


def with_precision(probe, precision: str):
    """A per-epoch probe(model, tokenizer, epoch) run under `eval_precision` (None stays None)."""
    if probe is None or precision == "fp32":
        return probe

    def run(model, tokenizer, epoch):
        with eval_precision(model, precision):
            return probe(model, tokenizer, epoch)

    return run


@torch.no_grad()
def extraction_scores(
    model,
    examples: Sequence[Encoded],
    *,
    pad_id: int,
    batch_size: int = 32,
    drop_eos: bool = True,
    eos_in_prob: bool = True,
    no_match: str = "zero",
    share_prompts: bool = True,
) -> dict[str, Tensor]:
    """ES, EM, probability, mean NLL and summed log-prob of each example, in one teacher-forced
    pass.

    Returns {'es', 'em', 'prob', 'mean_nll', 'sum_logp'}: [N] float tensors in dataset order.
    With `drop_eos` the final answer token (the EOS of an encoded QA pair) is excluded from ES
    and EM, and from the probability too unless `eos_in_prob` (SPEC §5: TOFU's and
    open-unlearning's probability and truth ratio average over the EOS). Plain-text
    continuations carry no EOS and pass drop_eos=False. `no_match`: see
    `metrics.extraction_strength`.

    With `share_prompts`, examples with the same prompt (a question's answer, paraphrase and
    perturbed answers) are scored with the prompt run once (`logprobs.shared_prompt_logps`):
    the same scores to float rounding, and TOFU's truth-ratio sets have five to seven answers
    per question.
    """
    n = len(examples)
    out = {k: torch.zeros(n) for k in ("es", "em", "prob", "mean_nll", "sum_logp")}
    if n == 0:
        return out
    was_training = model.training
    model.eval()
    device = _device(model)
    groups = prompt_groups(examples) if share_prompts and _shares_prompts(model) else None
    if groups is not None and len(groups) < n:  # a prompt recurs: run each prompt once
        mine = D.local_indices(len(groups))  # several processes: each its share of the groups
        passes = _grouped_passes(model, examples, [groups[g] for g in mine], pad_id, batch_size)
    else:
        mine = D.local_indices(n)  # several processes: each scores its share, then all summed
        passes = (
            ([mine[i] for i in idx], forward_logps(model, {k: v.to(device) for k, v in b.items()}))
            for idx, b in iter_batches([examples[i] for i in mine], batch_size, pad_id)
        )
    for members, r in passes:
        es_mask = drop_last_answer_token(r.mask) if drop_eos else r.mask
        prob_mask = r.mask if eos_in_prob else es_mask
        logps = r.logps.float()
        rows = torch.tensor(members)
        out["es"][rows] = M.extraction_strength(r.correct, es_mask, no_match=no_match).float().cpu()
        out["em"][rows] = M.exact_memorization(r.correct, es_mask).float().cpu()
        out["prob"][rows] = M.answer_prob(logps, prob_mask).cpu()
        out["mean_nll"][rows] = M.mean_nll(logps, prob_mask).cpu()
        out["sum_logp"][rows] = (logps * prob_mask).sum(-1).cpu()
    model.train(was_training)
    return {k: D.sum_tensor(v) for k, v in out.items()}


def prompt_groups(examples: Sequence[Encoded]) -> list[list[int]] | None:
    """Indices of the examples grouped by their prompt tokens (`logprobs.prompt_length`), in
    order of first appearance; None when an example has no prompt or nothing scored."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, e in enumerate(examples):
        p = prompt_length(e)
        if p == 0 or p == len(e):
            return None
        groups.setdefault(tuple(e.input_ids[:p]), []).append(i)
    return list(groups.values())


def _shares_prompts(model) -> bool:
    """Can `shared_prompt_logps` run this model: a decoder-only model taking position ids and
    a KV cache."""
    kw = forward_kwargs(model)
    decoder_only = not getattr(getattr(model, "config", None), "is_encoder_decoder", False)
    return decoder_only and "position_ids" in kw and ("cache" in kw or "past_key_values" in kw)


def _grouped_passes(model, examples, groups: list[list[int]], pad_id: int, batch_size: int):
    """(example indices, TokenLogps) per batch of prompt groups: groups of one size together,
    about `batch_size` answers per pass, sorted by their longest answer."""
    by_size: dict[int, list[list[int]]] = {}
    for g in groups:
        by_size.setdefault(len(g), []).append(g)
    for K, gs in sorted(by_size.items()):
        gs.sort(key=lambda g: max(len(examples[i]) - prompt_length(examples[i]) for i in g))
        per = max(1, batch_size // K)
        for s in range(0, len(gs), per):
            chunk = gs[s : s + per]
            r = shared_prompt_logps(model, [[examples[i] for i in g] for g in chunk], pad_id)
            yield [i for g in chunk for i in g], r


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: Sequence[list[int]],
    *,
    batch_size: int = 32,
    max_new_tokens: int = 200,
    budget: str = "new",
) -> list[str]:
    """Greedy continuations of tokenised `prompts` (batched, left padding), decoded without
    special tokens, in input order.

    budget 'new': up to `max_new_tokens` new tokens (open-unlearning); 'total': the prompt
    counts against it, up to `max_new_tokens − len(prompt)` new tokens (TOFU's `max_length`).
    TOFU subtracts the batch's padded prompt length; here each prompt's own length counts,
    so the result does not depend on the batching (greedy rows are independent). Decoding is
    `greedy_decode`, which drops each row at its EOS or budget, unless the model's generation
    config alters the logits (`plain_greedy`): then `model.generate`, cut row by row."""
    mine = D.local_indices(len(prompts))  # several processes: each its share, then gathered
    encoded = [Encoded(prompts[i], [IGNORE] * len(prompts[i])) for i in mine]
    limits = [
        max_new_tokens if budget == "new" else max(0, max_new_tokens - len(e)) for e in encoded
    ]
    texts = []
    was_training = model.training
    model.eval()
    device = _device(model)
    for idx, batch in iter_batches(encoded, batch_size, tokenizer.pad_token_id, left=True):
        most = max(limits[i] for i in idx)
        if most > 0:
            ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            if plain_greedy(model):
                rows = greedy_decode(
                    model, ids, mask, [limits[i] for i in idx], eos_id=tokenizer.eos_token_id
                )
            else:  # the model's generation config changes the logits: HF's own loop
                out = model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=most,
                    do_sample=False,
                    num_beams=1,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
                new = out[:, ids.size(1) :].tolist()
                rows = [r[: limits[i]] for r, i in zip(new, idx, strict=True)]
        else:
            rows = [[] for _ in idx]
        for row, i in zip(rows, idx, strict=True):
            texts.append((mine[i], tokenizer.decode(row, skip_special_tokens=True)))
    model.train(was_training)
    return D.gather_indexed(texts, len(prompts))


# generation-config fields under which greedy decoding is not a plain argmax of the logits
_LOGITS_PROCESSORS = {
    "repetition_penalty": (None, 1.0),
    "encoder_repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0),
    "min_length": (None, 0),
    "min_new_tokens": (None, 0),
    "bad_words_ids": (None,),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "sequence_bias": (None,),
    "exponential_decay_length_penalty": (None,),
}


def plain_greedy(model) -> bool:
    """Is `model.generate(do_sample=False)` a plain argmax over the logits for this model?

    False when its generation config sets a logits processor (repetition penalty, banned
    words, a minimum length, …), or for an encoder–decoder model: `generate` then keeps
    Hugging Face's own loop."""
    cfg = getattr(model, "generation_config", None)
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        return False
    return cfg is None or all(
        getattr(cfg, k, None) in allowed for k, allowed in _LOGITS_PROCESSORS.items()
    )


@torch.no_grad()
def greedy_decode(
    model, input_ids: Tensor, attention_mask: Tensor, limits: Sequence[int], *, eos_id: int
) -> list[list[int]]:
    """Greedy continuation of a left-padded batch; a row leaves the batch when it is done.

    input_ids, attention_mask: [B, T] (left padding); limits: [B] new-token budgets. Row b
    gets tokens y_t = argmax p(· | x_b, y_<t) until it emits `eos_id` (kept, as
    `model.generate` keeps it) or has `limits[b]` tokens. Unlike `generate`, which keeps
    decoding every row until the last one stops, a finished row is dropped from the batch
    and from the KV cache, so no compute goes past a row's EOS. Positions follow the
    attention mask as in `generate` (cumsum − 1). Returns B lists of token ids.
    """
    B = input_ids.size(0)
    out: list[list[int]] = [[] for _ in range(B)]
    alive = [b for b in range(B) if limits[b] > 0]
    if not alive:
        return out
    sel = torch.tensor(alive, device=input_ids.device)
    ids, mask = input_ids[sel], attention_mask[sel]
    res, pos, cache_arg = prompt_pass(model, ids, mask)
    cache, last = output_cache(res), pos[:, -1:]
    while True:
        nxt = res.logits[:, -1].argmax(-1)
        done = []
        for b, t in zip(alive, nxt.tolist(), strict=True):
            out[b].append(t)
            done.append(t == eos_id or len(out[b]) >= limits[b])
        if all(done):
            return out
        if any(done):
            keep = torch.tensor([j for j, d in enumerate(done) if not d], device=ids.device)
            alive = [alive[j] for j in keep.tolist()]
            nxt, mask, last = nxt[keep], mask[keep], last[keep]
            cache.batch_select_indices(keep)
        mask = torch.cat([mask, mask.new_ones(mask.size(0), 1)], dim=-1)
        last = last + 1
        res = model(
            input_ids=nxt[:, None],
            attention_mask=mask,
            position_ids=last,
            use_cache=True,
            **{cache_arg: cache},
        )


def generate_answers(
    model,
    tokenizer,
    questions: Sequence[str],
    *,
    batch_size: int = 32,
    max_new_tokens: int = 200,
    budget: str = "new",
    system: str = "",
) -> list[str]:
    """Greedy answers to `questions` under the chat template (SPEC §4), stripped."""
    prompts = [prompt_ids(tokenizer, q, system=system) for q in questions]
    texts = generate(
        model,
        tokenizer,
        prompts,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        budget=budget,
    )
    return [t.strip() for t in texts]


@torch.no_grad()
def extraction_strength_by_generation(
    model,
    examples: Sequence[Encoded],
    *,
    eos_id: int,
    drop_eos: bool = True,
    no_match: str = "zero",
) -> Tensor:
    """Reference ES by greedy decoding from true prefixes (slow; validates the one-pass form).

    For each item, binary search for k* = min{k : greedy decoding of |y|−k tokens from
    [x, y_<k] reproduces y_≥k}; reproduction is monotone in k, and k = |y| always succeeds.
    |y| excludes the final EOS (`drop_eos`). no_match='inverse_length' caps k* at |y| − 1
    (open-unlearning's loop). One item at a time, no padding. Returns [N].
    """
    was_training = model.training
    model.eval()
    device = _device(model)
    scores = torch.zeros(len(examples))
    for i, e in enumerate(examples):
        start = next(j for j, lab in enumerate(e.labels) if lab != IGNORE)
        prompt, answer = e.input_ids[:start], e.input_ids[start : len(e) - int(drop_eos)]
        n = len(answer)
        lo, hi = 0, n  # invariant: reproduction from prefix `hi` succeeds (k = n trivially)
        while lo < hi:
            mid = (lo + hi) // 2
            ok = _reproduces(model, prompt, answer, mid, eos_id=eos_id, device=device)
            lo, hi = (lo, mid) if ok else (mid + 1, hi)
        if no_match == "inverse_length":
            hi = min(hi, n - 1)
        # the same float32 arithmetic as metrics.extraction_strength, so equal k* ⇒ equal ES bits
        scores[i] = 1.0 - torch.tensor(hi) / n if n else 0.0
    model.train(was_training)
    return scores


def _reproduces(
    model, prompt: list[int], answer: list[int], k: int, *, eos_id: int, device
) -> bool:
    """Does greedy decoding of |y|−k tokens from [x, y_<k] give exactly y_≥k?"""
    if k == len(answer):
        return True
    ids = torch.tensor([prompt + answer[:k]], device=device)
    out = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=len(answer) - k,
        do_sample=False,
        num_beams=1,
        pad_token_id=eos_id,
        eos_token_id=eos_id,
    )
    return out[0, ids.size(1) :].tolist() == answer[k:]


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
        examples = [
            encode_qa(
                tokenizer,
                r["question"],
                r["answer"],
                max_length=protocol.eval_max_length,
                system=protocol.system_prompt,
                answer_tokens=protocol.answer_tokens,
            )
            for r in records
        ]
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
) -> dict[str, list[float]]:
    """Per-item metrics of one perturbed split: es, em, prob, rouge, truth_ratio (raw R).

    prob is exp(−mean NLL) of the answer when `answer_prob` (forget and retain sets), else
    p_true / (p_true + Σ p_perturbed) (real authors, world facts; SPEC §5). The truth ratio
    compares the perturbed answers with `base_key` (`paraphrased_answer`, or `answer` on
    real authors and world facts). Conventions (prompt, EOS, ES, generation budget, mean of
    the perturbed answers) are the protocol's.
    """
    P = resolve_protocol(protocol)

    def enc(q: str, a: str) -> Encoded:
        return encode_qa(
            tokenizer,
            q,
            a,
            max_length=P.eval_max_length,
            system=P.system_prompt,
            answer_tokens=P.answer_tokens,
        )

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
    prob = scored["prob"][:n] if answer_prob else M.normalized_true_prob(ans_nll, pert_nll, eps=eps)
    out = {
        **es,
        "prob": prob.tolist(),
        "truth_ratio": M.truth_ratio(base_nll, pert_nll, mean=P.tr_mean, eps=eps).tolist(),
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
    return out


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
) -> tuple[dict, dict]:
    """All TOFU metrics of a model under a protocol (default `tofu`): (summary, per_sample).

    summary keys: forget_/retain_ {es, em, prob, rouge, truth_ratio}, forget_quality (None
    without the retain model's truth ratios), real_authors_/world_facts_ {prob, rouge,
    truth_ratio} and model_utility. per_sample: {split: {metric: [value per item]}}. Each
    split is cut to its first `ds_size` items; with `retain_es: retain_head` the retain ES
    and EM come from `retainXX[:retain_holdout]` (per_sample under that name). The ROUGE
    answers are generated `generation_batch_size` at a time (None: `batch_size`).
    """
    P = resolve_protocol(protocol)
    if es_mode not in ("forward", "generate"):
        raise ValueError(f"es_mode={es_mode!r}; valid: forward, generate")
    sets = {"forget": f"{forget_split}_perturbed", **SET_SPLITS}
    records = {
        name: _first(load_split(data, split), P.ds_size or None) for name, split in sets.items()
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
        )
        per_sample[split] = items
        for metric, values in items.items():
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
    from satimp.experiment import retain_split_for

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
        records["retain"] = _first(records["retain"], P.ds_size or None)
    records["forget"] = _first(records["forget"], P.ds_size or None)

    def probe(model, tokenizer, _epoch) -> dict:
        row = {}
        for name, items in records.items():
            s = es_scores(model, tokenizer, items, protocol=P, batch_size=batch_size)
            row |= {f"{name}_es": mean(s["es"]), f"{name}_em": mean(s["em"])}
        return row

    return probe


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


# ---------------------------------------------------------------- MUSE and WMDP


def _first(items: list, n: int | None) -> list:
    return items if n is None else items[:n]


def text_probe_scores(
    model, tokenizer, texts: Sequence[str], *, max_length: int = 512, batch_size: int = 32
) -> dict[str, list[float]]:
    """ES and EM of plain texts: each is cut at 40 % of its words (`split_text`) and the rest
    is scored given the start, in one teacher-forced pass (no EOS to drop)."""
    examples = [
        encode_continuation(tokenizer, p, " " + c, max_length=max_length)
        for p, c in map(split_text, texts)
    ]
    s = extraction_scores(
        model, examples, pad_id=tokenizer.pad_token_id, batch_size=batch_size, drop_eos=False
    )
    return {"es": s["es"].tolist(), "em": s["em"].tolist()}


def min_k_scores(
    model, tokenizer, texts: Sequence[str], *, k: float, max_length: int, batch_size: int = 32
) -> list[float]:
    """Min-K% membership score of each text's first `max_length` tokens (higher: member)."""
    examples = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False).input_ids[:max_length]
        examples.append(Encoded(ids, list(ids)))
    logps = example_logps(model, examples, pad_id=tokenizer.pad_token_id, batch_size=batch_size)
    return [M.min_k_percent(lp, k=k).item() for lp in logps]


def knowmem_prompt(shots: Sequence[dict], question: str) -> str:
    """MUSE's few-shot KnowMem prompt: 'Question: q\\nAnswer: a\\n\\n' per shot, then the question."""
    demos = "".join(f"Question: {s['question']}\nAnswer: {s['answer']}\n\n" for s in shots)
    return f"{demos}Question: {question}\nAnswer:"


def evaluate_muse(
    model,
    tokenizer,
    data,
    cfg,
    *,
    retain_auc: float | None = None,
    batch_size: int = 32,
    full: bool = True,
) -> tuple[dict, dict]:
    """MUSE's metrics (SPEC §5) of a model: (summary, per_sample). `cfg` is a
    `satimp.data.muse.MuseConfig`. `full=False` computes the two one-pass ES numbers only
    (what unlearning logs after each epoch).

    - verbmem_forget: ROUGE-L F1 of the greedy continuation (cfg.verbmem_new_tokens) of each
      VerbMem prompt against its ground truth; forget_es / forget_em: ES and EM of the ground
      truth given the prompt (one pass).
    - knowmem_forget / knowmem_retain: ROUGE-L F1 of the greedy answer (cfg.knowmem_new_tokens,
      cut at the first line break) to the few-shot prompt of `knowmem_prompt`.
    - privleak_auc: AUC of Min-K% (k = cfg.min_k) separating privleak forget (members) from
      holdout texts; privleak = (AUC − AUC_retain) / AUC_retain × 100 given the retain model's
      AUC (None without it).
    - retain_es / retain_em: ES and EM of the privleak retain texts (`text_probe_scores`).
    """
    from satimp.data.muse import load_muse

    n = cfg.max_items
    kw = dict(batch_size=batch_size)
    summary, per = {}, {}

    verb = _first(load_muse(data, cfg.verbmem), n)
    teacher = extraction_scores(
        model,
        [
            encode_continuation(tokenizer, r["prompt"], " " + r["gt"], max_length=cfg.max_length)
            for r in verb
        ],
        pad_id=tokenizer.pad_token_id,
        drop_eos=False,
        **kw,
    )
    per[cfg.verbmem] = {"es": teacher["es"].tolist(), "em": teacher["em"].tolist()}
    summary["forget_es"] = mean(per[cfg.verbmem]["es"])
    summary["forget_em"] = mean(per[cfg.verbmem]["em"])
    if full:
        _muse_generation_and_privacy(model, tokenizer, data, cfg, verb, summary, per, kw)
        if retain_auc is not None:
            summary["privleak"] = M.priv_leak(summary["privleak_auc"], retain_auc)

    retain = text_probe_scores(
        model,
        tokenizer,
        _texts(data, cfg.privleak_retain, n),
        max_length=cfg.max_length,
        **kw,
    )
    per[cfg.privleak_retain] = retain
    summary["retain_es"] = mean(retain["es"])
    summary["retain_em"] = mean(retain["em"])
    return summary, per


def _muse_generation_and_privacy(model, tokenizer, data, cfg, verb, summary, per, kw) -> None:
    """VerbMem, KnowMem and the Min-K% AUC of `evaluate_muse` (the parts that generate)."""
    from satimp.data.muse import load_muse

    n = cfg.max_items
    gens = generate(
        model,
        tokenizer,
        [tokenizer(r["prompt"], add_special_tokens=False).input_ids for r in verb],
        max_new_tokens=cfg.verbmem_new_tokens,
        **kw,
    )
    rouge = [M.rouge_l_f1(g, r["gt"]) for g, r in zip(gens, verb, strict=True)]
    per[cfg.verbmem] |= {"rouge": rouge, "generation": gens}
    summary["verbmem_forget"] = mean(rouge)
    for name, ref, icl in (
        ("forget", cfg.knowmem_forget, cfg.icl_forget),
        ("retain", cfg.knowmem_retain, cfg.icl_retain),
    ):
        qa = _first(load_muse(data, ref), n)
        shots = _first(load_muse(data, icl), cfg.icl_shots)
        prompts = [
            tokenizer(knowmem_prompt(shots, r["question"]), add_special_tokens=False).input_ids
            for r in qa
        ]
        answers = [
            g.strip().split("\n")[0].strip()
            for g in generate(
                model, tokenizer, prompts, max_new_tokens=cfg.knowmem_new_tokens, **kw
            )
        ]
        rouge = [M.rouge_l_f1(a, r["answer"]) for a, r in zip(answers, qa, strict=True)]
        per[ref] = {"rouge": rouge, "generation": answers}
        summary[f"knowmem_{name}"] = mean(rouge)

    mk = dict(k=cfg.min_k, max_length=cfg.max_length, **kw)
    members = min_k_scores(model, tokenizer, _texts(data, cfg.privleak_forget, n), **mk)
    others = min_k_scores(model, tokenizer, _texts(data, cfg.privleak_holdout, n), **mk)
    per[cfg.privleak_forget] = {"min_k": members}
    per[cfg.privleak_holdout] = {"min_k": others}
    summary["privleak_auc"] = M.auc_roc(members, others)
    summary["privleak"] = None


def _texts(data, ref: str, n: int | None, min_chars: int = 1) -> list[str]:
    from satimp.data.records import load_texts

    return _first(load_texts(data, ref, min_chars=min_chars), n)


def mean(values: Sequence[float]) -> float:
    """The mean of a list of per-item values (NaN for none)."""
    return sum(values) / len(values) if values else float("nan")


def mcq_examples(
    tokenizer, records: Sequence[dict], *, fmt: str, topic: str, max_length: int = 1024
) -> list[Encoded]:
    """One encoded (context, continuation) per choice of each question, item by item.

    fmt 'letters' (lm-evaluation-harness's WMDP/MMLU prompt): context = 'The following are
    multiple choice questions (with answers) about {topic}.\\n\\n{question}\\nA. …\\nB. …\\n
    Answer:', continuations ' A', ' B', …. fmt 'text': context = 'Question: {question}\\n
    Answer:', continuations ' {choice}'.
    """
    out = []
    for r in records:
        if fmt == "letters":
            subject = str(r.get("subject") or topic).replace("_", " ")
            letters = [chr(ord("A") + i) for i in range(len(r["choices"]))]
            listing = "".join(f"{x}. {c}\n" for x, c in zip(letters, r["choices"], strict=True))
            context = (
                f"The following are multiple choice questions (with answers) about {subject}."
                f"\n\n{r['question'].strip()}\n{listing}Answer:"
            )
            conts = [f" {x}" for x in letters]
        else:
            context = f"Question: {r['question'].strip()}\nAnswer:"
            conts = [f" {c}" for c in r["choices"]]
        out += [encode_continuation(tokenizer, context, c, max_length=max_length) for c in conts]
    return out


def mcq_scores(
    model, tokenizer, records: Sequence[dict], *, fmt: str, topic: str, batch_size: int = 32
) -> dict[str, list]:
    """Per question: the log-likelihood of each choice, the chosen index and correctness."""
    examples = mcq_examples(tokenizer, records, fmt=fmt, topic=topic)
    s = extraction_scores(
        model, examples, pad_id=tokenizer.pad_token_id, batch_size=batch_size, drop_eos=False
    )
    C = max(len(r["choices"]) for r in records)
    loglik = torch.full((len(records), C), -math.inf)
    start = 0
    for i, r in enumerate(records):
        c = len(r["choices"])
        loglik[i, :c] = s["sum_logp"][start : start + c]
        start += c
    answers = torch.tensor([r["answer"] for r in records])
    chosen = loglik.argmax(-1)
    return {
        "loglik": loglik.tolist(),
        "chosen": chosen.tolist(),
        "correct": (chosen == answers).float().tolist(),
        "accuracy": M.mcq_accuracy(loglik, answers),
    }


def evaluate_wmdp(model, tokenizer, data, cfg, *, batch_size: int = 32) -> tuple[dict, dict]:
    """WMDP's metrics (SPEC §5) of a model: (summary, per_sample). `cfg` is a
    `satimp.data.wmdp.WmdpConfig`.

    - `<set>_acc` per hazardous set and `wmdp_acc` over all their questions (lower after
      unlearning); `<set>_acc` per utility set and `mmlu_acc` over them (kept high).
    - forget_es / retain_es (and _em): `text_probe_scores` of the first cfg.probe_texts texts
      of the forget and retain corpora.
    """
    from satimp.data.wmdp import TOPICS, load_mcq

    summary, per = {}, {}
    for group, refs in (("wmdp", cfg.sets), ("mmlu", cfg.utility)):
        correct = []
        for ref in refs:
            name = ref.split("::")[-1].split("/")[0]
            records = _first(load_mcq(data, ref), cfg.max_items)
            scores = mcq_scores(
                model,
                tokenizer,
                records,
                fmt=cfg.format,
                topic=TOPICS.get(name, "general knowledge"),
                batch_size=batch_size,
            )
            per[ref] = {k: v for k, v in scores.items() if k != "accuracy"}
            summary[f"{name.replace('-', '_')}_acc"] = scores["accuracy"]
            correct += scores["correct"]
        summary[f"{group}_acc"] = mean(correct)
    for name, refs in (("forget", cfg.forget), ("retain", cfg.retain)):
        texts = [t for ref in refs for t in _texts(data, ref, None, cfg.min_chars)]
        probe = text_probe_scores(model, tokenizer, texts[: cfg.probe_texts], batch_size=batch_size)
        per[f"{name}_corpus"] = probe
        summary[f"{name}_es"] = mean(probe["es"])
        summary[f"{name}_em"] = mean(probe["em"])
    return summary, per


# ---------------------------------------------------------------- lm-evaluation-harness


def lm_eval_module():
    """The `lm_eval` package, or InputError naming the optional extra that provides it."""
    try:
        import lm_eval
    except ImportError:
        raise InputError(
            "--lm-eval needs the optional lm-evaluation-harness: pip install 'satimp[lm-eval]'"
        ) from None
    return lm_eval
