"""Batched teacher-forced scoring: one forward pass per encoded answer gives extraction
strength, exact memorisation, probability, mean NLL and summed log-probability (SPEC §5: ES and
EM exclude the final EOS, probability and truth ratio include it). Every benchmark's
evaluation and the per-epoch probes score through `extraction_scores`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from satimp import distributed as D
from satimp import metrics as M
from satimp.data.encoding import (
    Encoded,
    encode_continuation,
    encode_qa,
    iter_batches,
    split_text,
)
from satimp.logprobs import (
    drop_last_answer_token,
    forward_kwargs,
    forward_logps,
    prompt_length,
    shared_prompt_logps,
)
from satimp.protocol import Protocol


def protocol_qa(tokenizer, question: str, answer: str, protocol: Protocol) -> Encoded:
    """A QA pair encoded as the evaluation scores it under `protocol`: its system message,
    answer tokens and length budget (SPEC §4, §6)."""
    return encode_qa(
        tokenizer,
        question,
        answer,
        max_length=protocol.eval_max_length,
        system=protocol.system_prompt,
        answer_tokens=protocol.answer_tokens,
    )


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def eval_precision(model, precision: str):
    """The context evaluation runs in: bf16 autocast on the model's device for 'bf16' (weights
    stay fp32; log-probabilities are taken in fp32 from the bf16 logits), nothing for 'fp32'."""
    return torch.autocast(
        model_device(model).type, dtype=torch.bfloat16, enabled=precision == "bf16"
    )


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
    device = model_device(model)
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


def first_n(items: list, n: int | None) -> list:
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
