"""Evaluation: runs the metrics of `satimp.metrics` over TOFU's splits, in batches.

One teacher-forced pass per encoded answer gives ES, EM, probability and mean NLL (SPEC §5:
answer tokens excluding the final EOS); batched greedy generation gives ROUGE-L. Results come
per item (`per_sample`, dataset order) and aggregated (`summary`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from satimp import metrics as M
from satimp.data.encoding import IGNORE, Encoded, encode_qa, iter_batches, prompt_ids
from satimp.data.tofu import load_split
from satimp.logprobs import drop_last_answer_token, forward_logps

# Summary set name → split of per-item data (the forget set's is `<forget>_perturbed`).
SET_SPLITS = {
    "retain": "retain_perturbed",
    "real_authors": "real_authors_perturbed",
    "world_facts": "world_facts_perturbed",
}
UTILITY_SETS = ("retain", "real_authors", "world_facts")


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def extraction_scores(
    model, examples: Sequence[Encoded], *, pad_id: int, batch_size: int = 32
) -> dict[str, Tensor]:
    """ES, EM, probability and mean NLL of each example, in one teacher-forced pass.

    Returns {'es', 'em', 'prob', 'mean_nll'}: [N] float tensors in dataset order. The final
    answer token (EOS) is excluded, as SPEC §5 asks.
    """
    n = len(examples)
    out = {k: torch.zeros(n) for k in ("es", "em", "prob", "mean_nll")}
    if n == 0:
        return out
    was_training = model.training
    model.eval()
    device = _device(model)
    for idx, batch in iter_batches(examples, batch_size, pad_id):
        r = forward_logps(model, {k: v.to(device) for k, v in batch.items()})
        mask = drop_last_answer_token(r.mask)
        rows = torch.tensor(idx)
        out["es"][rows] = M.extraction_strength(r.correct, mask).float().cpu()
        out["em"][rows] = M.exact_memorization(r.correct, mask).float().cpu()
        out["prob"][rows] = M.answer_prob(r.logps.float(), mask).cpu()
        out["mean_nll"][rows] = M.mean_nll(r.logps.float(), mask).cpu()
    model.train(was_training)
    return out


@torch.no_grad()
def generate_answers(
    model, tokenizer, questions: Sequence[str], *, batch_size: int = 32, max_new_tokens: int = 200
) -> list[str]:
    """Greedy answers to `questions` (batched, left padding), decoded without special tokens."""
    prompts = [
        Encoded(ids, [IGNORE] * len(ids)) for ids in (prompt_ids(tokenizer, q) for q in questions)
    ]
    answers = [""] * len(questions)
    was_training = model.training
    model.eval()
    device = _device(model)
    for idx, batch in iter_batches(prompts, batch_size, tokenizer.pad_token_id, left=True):
        out = model.generate(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new = out[:, batch["input_ids"].size(1) :]
        for row, i in enumerate(idx):
            answers[i] = tokenizer.decode(new[row], skip_special_tokens=True).strip()
    model.train(was_training)
    return answers


@torch.no_grad()
def extraction_strength_by_generation(model, examples: Sequence[Encoded], *, eos_id: int) -> Tensor:
    """Reference ES by greedy decoding from true prefixes (slow; validates the one-pass form).

    For each item, binary search for k* = min{k : greedy decoding of |y|−k tokens from
    [x, y_<k] reproduces y_≥k}; reproduction is monotone in k, and k = |y| always succeeds.
    |y| excludes the final EOS. One item at a time, no padding. Returns [N].
    """
    was_training = model.training
    model.eval()
    device = _device(model)
    scores = torch.zeros(len(examples))
    for i, e in enumerate(examples):
        start = next(j for j, lab in enumerate(e.labels) if lab != IGNORE)
        prompt, answer = e.input_ids[:start], e.input_ids[start:-1]  # drop EOS
        n = len(answer)
        lo, hi = 0, n  # invariant: reproduction from prefix `hi` succeeds (k = n trivially)
        while lo < hi:
            mid = (lo + hi) // 2
            ok = _reproduces(model, prompt, answer, mid, eos_id=eos_id, device=device)
            lo, hi = (lo, mid) if ok else (mid + 1, hi)
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


def score_split(
    model,
    tokenizer,
    records: list[dict],
    *,
    answer_prob: bool = True,
    batch_size: int = 32,
    max_new_tokens: int = 200,
    max_length: int = 512,
    es_mode: str = "forward",
    rouge: bool = True,
) -> dict[str, list[float]]:
    """Per-item metrics of one perturbed split: es, em, prob, rouge, truth_ratio (raw R).

    prob is exp(−mean NLL) of the answer when `answer_prob` (forget and retain sets), else
    p_true / (p_true + Σ p_perturbed) (real authors, world facts; SPEC §5).
    """

    def enc(q: str, a: str) -> Encoded:
        return encode_qa(tokenizer, q, a, max_length=max_length)

    n, K = len(records), min(len(r["perturbed_answer"]) for r in records)
    answers = [enc(r["question"], r["answer"]) for r in records]
    para = [enc(r["question"], r["paraphrased_answer"]) for r in records]
    pert = [enc(r["question"], p) for r in records for p in r["perturbed_answer"][:K]]
    scored = extraction_scores(
        model, answers + para + pert, pad_id=tokenizer.pad_token_id, batch_size=batch_size
    )
    nll = scored["mean_nll"]
    ans_nll, para_nll, pert_nll = nll[:n], nll[n : 2 * n], nll[2 * n :].view(n, K)
    es = scored["es"][:n]
    if es_mode == "generate":
        es = extraction_strength_by_generation(model, answers, eos_id=tokenizer.eos_token_id)
    prob = scored["prob"][:n] if answer_prob else M.normalized_true_prob(ans_nll, pert_nll)
    out = {
        "es": es.tolist(),
        "em": scored["em"][:n].tolist(),
        "prob": prob.tolist(),
        "truth_ratio": M.truth_ratio(para_nll, pert_nll).tolist(),
    }
    if rouge:
        gens = generate_answers(
            model,
            tokenizer,
            [r["question"] for r in records],
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
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
    retain_truth_ratios: Sequence[float] | None = None,
    batch_size: int = 32,
    max_new_tokens: int = 200,
    es_mode: str = "forward",
    rouge: bool = True,
    progress: bool = True,
) -> tuple[dict, dict]:
    """All TOFU metrics of a model: (summary, per_sample).

    summary keys: forget_/retain_ {es, em, prob, rouge, truth_ratio}, forget_quality (None
    without the retain model's truth ratios), real_authors_/world_facts_ {prob, rouge,
    truth_ratio} and model_utility. per_sample: {split: {metric: [value per item]}}.
    """
    if es_mode not in ("forward", "generate"):
        raise ValueError(f"es_mode={es_mode!r}; valid: forward, generate")
    sets = {"forget": f"{forget_split}_perturbed", **SET_SPLITS}
    records = {name: load_split(data, split) for name, split in sets.items()}
    per_sample, summary = {}, {}
    for name, split in tqdm(
        sets.items(), desc="evaluate", leave=False, disable=not (progress and sys.stderr.isatty())
    ):
        items = score_split(
            model,
            tokenizer,
            records[name],
            batch_size=batch_size,
            answer_prob=name in ("forget", "retain"),
            es_mode=es_mode,
            max_new_tokens=max_new_tokens,
            rouge=rouge,
        )
        per_sample[split] = items
        for metric, values in items.items():
            if metric == "truth_ratio":
                value = M.truth_ratio_score(values, forget=name == "forget")
            else:
                value = sum(values) / len(values)
            if name in ("forget", "retain") or metric in ("prob", "rouge", "truth_ratio"):
                summary[f"{name}_{metric}"] = value
    forget_tr = per_sample[sets["forget"]]["truth_ratio"]
    summary["forget_quality"] = (
        M.forget_quality(forget_tr, retain_truth_ratios) if retain_truth_ratios else None
    )
    if rouge:
        summary["model_utility"] = M.model_utility(
            [summary[f"{s}_{m}"] for s in UTILITY_SETS for m in ("prob", "rouge", "truth_ratio")]
        )
    return summary, per_sample


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
    """A two-column text table of the summary, in SUMMARY_ORDER."""
    lines = []
    for k in SUMMARY_ORDER:
        if k in summary:
            v = summary[k]
            lines.append(f"{k:<26} {'n/a' if v is None else f'{v:.4f}'}")
    return "\n".join(lines)
