"""The one forward pass: per-token log-probabilities of the labels and the answer mask.

Positions are shifted once, here: output position t scores label t+1 given tokens ≤ t. Every
tensor returned is [B, T−1], aligned with `labels[:, 1:]`.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from satimp import distributed as D
from satimp.data.encoding import IGNORE, Encoded, collate, iter_batches


@dataclass
class TokenLogps:
    """Result of one teacher-forced forward pass over a padded batch.

    logps   [B, T−1] log p(label_t | x, y_<t), 0 where mask is False (carries gradient)
    mask    [B, T−1] bool, answer tokens (labels != −100)
    correct [B, T−1] bool, argmax of the logits equals the label (no gradient)
    logits  [B, T−1, V] when asked for (the KL retain loss needs the full distribution)
    hidden  tuple of [B, T, D] hidden states when asked for (RMU)
    """

    logps: Tensor
    mask: Tensor
    correct: Tensor
    logits: Tensor | None = None
    hidden: tuple[Tensor, ...] | None = None

    @property
    def seq_logps(self) -> Tensor:
        """[B] log π(y|x): sum of answer-token log-probs."""
        return (self.logps * self.mask).sum(-1)


def token_logps(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-token log-likelihoods of aligned targets: logits[:, t] scores targets[:, t].

    Args: logits [B, T, V], targets [B, T] (−100 = not scored).
    Returns: logps [B, T] (0 where not scored; carries gradient), mask [B, T] bool,
    correct [B, T] bool (argmax == target on scored positions; no gradient).
    """
    mask = targets != IGNORE
    # cross_entropy avoids materialising a [B, T, V] log-softmax copy.
    nll = F.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)),
        targets.reshape(-1),
        ignore_index=IGNORE,
        reduction="none",
    ).view_as(targets)
    with torch.no_grad():
        correct = (logits.argmax(-1) == targets) & mask
    return -nll * mask, mask, correct


def label_logps(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Shifted per-token log-likelihoods and answer mask.

    Args: logits [B, T, V], labels [B, T] (−100 = not scored).
    Returns: logps [B, T−1] (0 on masked positions), mask [B, T−1] bool.
    """
    logps, mask, _ = token_logps(logits[:, :-1], labels[:, 1:])
    return logps, mask


def forward_kwargs(model) -> set[str]:
    """Names of the keyword arguments of the model's own `forward` (through a DDP or PEFT
    wrapper, whose `forward` passes keywords on)."""
    inner = getattr(model, "module", model)  # DistributedDataParallel
    if hasattr(inner, "get_base_model"):  # PEFT
        inner = inner.get_base_model()
    return set(inspect.signature(inner.forward).parameters)


def scored_span(labels: Tensor) -> tuple[int, int]:
    """[lo, hi): the columns of the shifted targets (labels[:, 1:]) from the batch's first
    scored position to its last, where `forward_logps` runs the output layer; (0, 0) when
    nothing is scored. labels [B, T]."""
    scored = (labels[:, 1:] != IGNORE).any(0).nonzero().flatten()
    return (scored[0].item(), scored[-1].item() + 1) if len(scored) else (0, 0)


def forward_logps(
    model, batch: dict[str, Tensor], *, keep_logits: bool = False, hidden: bool = False
) -> TokenLogps:
    """Run `model` on a collated batch (input_ids, attention_mask, labels [B, T]).

    Unless the full logits are asked for, the output layer runs only on the columns from the
    batch's first scored position to its last (`logits_to_keep`, where the model takes it):
    the prompt's logits, which no metric or loss reads, are never computed. The result is the
    same as scoring every position (to float rounding of the output matmul).
    """
    targets = batch["labels"][:, 1:]
    lo, hi = 0, targets.size(1)
    kw = {}
    span = scored_span(batch["labels"])
    if not keep_logits and span[1] > span[0] and "logits_to_keep" in forward_kwargs(model):
        lo, hi = span
        kw["logits_to_keep"] = torch.arange(lo, hi, device=targets.device)
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        output_hidden_states=hidden,
        use_cache=False,
        **kw,
    )
    logits = out.logits if kw else out.logits[:, :-1]
    logps, _, correct = token_logps(logits, targets[:, lo:hi])
    if kw:  # back to [B, T−1]: nothing is scored outside [lo, hi)
        pad = (lo, targets.size(1) - hi)
        logps, correct = F.pad(logps, pad), F.pad(correct, pad)
    return TokenLogps(
        logps=logps,
        mask=targets != IGNORE,
        correct=correct,
        logits=logits if keep_logits else None,
        hidden=out.hidden_states if hidden else None,
    )


def output_cache(out):
    """The KV cache of a model output as a `Cache` object: transformers ≥ 5 names it `cache`
    (`past_key_values` before); a legacy tuple (transformers 4.x) becomes a DynamicCache."""
    cache = getattr(out, "cache", None)
    if cache is None:
        cache = out.past_key_values
    if not hasattr(cache, "batch_select_indices"):
        from transformers import DynamicCache

        cache = DynamicCache.from_legacy_cache(cache)
    return cache


def prompt_pass(model, input_ids: Tensor, attention_mask: Tensor):
    """Run a left-padded batch of prompts to be continued from a KV cache:
    (output, positions [B, T], the name of the forward's cache argument).

    Positions follow the attention mask (cumsum − 1, 0 on padding) as in `generate`; the
    output layer runs on the last position only where the model allows (`logits_to_keep=1`);
    `output_cache(output)` is the cache, passed back as `{name: cache}` with the continuation
    (transformers ≥ 5 names the argument `cache`, earlier versions `past_key_values`)."""
    kw = forward_kwargs(model)
    keep = {"logits_to_keep": 1} if "logits_to_keep" in kw else {}
    pos = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
    out = model(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=pos, use_cache=True, **keep
    )
    return out, pos, "cache" if "cache" in kw else "past_key_values"


def prompt_length(example: Encoded) -> int:
    """Tokens before the example's first scored label (its prompt); len(example) if none."""
    return next((t for t, y in enumerate(example.labels) if y != IGNORE), len(example))


def shared_prompt_logps(model, groups: Sequence[Sequence[Encoded]], pad_id: int) -> TokenLogps:
    """Score several answers to one prompt with the prompt run once (teacher-forced).

    groups: G groups of K examples each (K equal across groups); the examples of a group share
    their prompt tokens (`prompt_length`, ≥ 1). The prompts go through the model once, left-
    padded, keeping their KV cache and last logits; the cache is repeated K times and all G·K
    answers go through one pass on it (right-padded, positions continuing each prompt's own).
    Returns TokenLogps over the answers, rows group-major (group 0's K answers first):
    logps, mask, correct [G·K, A] with column t scoring answer token t. Equal to
    `forward_logps` on each whole example, to float rounding (test_evaluate checks it).
    """
    K = len(groups[0])
    device = next(model.parameters()).device
    cut = [(g, prompt_length(g[0])) for g in groups]
    pb = collate([Encoded(g[0].input_ids[:p], [IGNORE] * p) for g, p in cut], pad_id, left=True)
    ab = collate([Encoded(e.input_ids[p:], e.labels[p:]) for g, p in cut for e in g], pad_id)
    ids, pmask = pb["input_ids"].to(device), pb["attention_mask"].to(device)
    a_ids, targets, amask = (ab[k].to(device) for k in ("input_ids", "labels", "attention_mask"))
    A = a_ids.size(1)
    res, pos, cache_arg = prompt_pass(model, ids, pmask)
    first = res.logits[:, -1:].repeat_interleave(K, 0)  # [G·K, 1, V]: scores answer token 0
    logits = first
    if A > 1:  # answer tokens 0..A−2 predict tokens 1..A−1
        cache = output_cache(res)
        cache.batch_repeat_interleave(K)
        mask = torch.cat([pmask.repeat_interleave(K, 0), amask[:, :-1]], dim=-1)
        apos = pos[:, -1:].repeat_interleave(K, 0) + 1 + torch.arange(A - 1, device=device)
        out = model(
            input_ids=a_ids[:, :-1],
            attention_mask=mask,
            position_ids=apos,
            use_cache=True,
            **{cache_arg: cache},
        )
        logits = torch.cat([first, out.logits], dim=1)
    logps, mask, correct = token_logps(logits, targets)
    return TokenLogps(logps=logps, mask=mask, correct=correct)


def drop_last_answer_token(mask: Tensor) -> Tensor:
    """Answer mask without each row's final answer token (the EOS; metrics exclude it, SPEC §5).

    mask [B, T] bool → [B, T] bool. Rows with no answer token stay empty.
    """
    T = mask.size(-1)
    pos = torch.arange(T, device=mask.device).expand_as(mask)
    last = torch.where(mask, pos, torch.full_like(pos, -1)).max(-1, keepdim=True).values
    return mask & (pos != last)


@torch.no_grad()
def example_logps(
    model, examples: list[Encoded], *, pad_id: int, batch_size: int = 16
) -> list[Tensor]:
    """Per-example label log-probs (NPO's reference, computed once; Min-K% membership scores).

    Returns a list (dataset order) of [len_i − 1] float tensors aligned with shifted labels,
    0 on prompt positions; trailing padding is never stored.
    """
    was_training = model.training
    model.eval()
    mine = D.local_indices(len(examples))  # several processes: each its share, then gathered
    out: list[tuple[int, Tensor]] = []
    for idx, batch in iter_batches([examples[i] for i in mine], batch_size, pad_id):
        device = next(model.parameters()).device
        r = forward_logps(model, {k: v.to(device) for k, v in batch.items()})
        for row, i in enumerate(idx):
            out.append((mine[i], r.logps[row, : len(examples[mine[i]]) - 1].float().cpu()))
    model.train(was_training)
    return D.gather_indexed(out, len(examples))
