"""Greedy generation: ROUGE answers, MUSE continuations, and the slow reference ES by
decoding from true prefixes (which validates the one-pass form of `scoring`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from satimp import distributed as D
from satimp.data.encoding import (
    IGNORE,
    Encoded,
    iter_batches,
    prompt_ids,
)
from satimp.evaluation.scoring import model_device
from satimp.logprobs import (
    output_cache,
    prompt_pass,
)


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
    device = model_device(model)
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
    device = model_device(model)
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
