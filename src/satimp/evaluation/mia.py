"""Membership inference on TOFU-format QA (SPEC §7): how well an attack tells the forget set
(members: the model was fine-tuned on them) from a holdout set of the same kind that no model
saw (TOFU's `holdoutXX` beside `forgetXX`).

Each attack scores every item (`satimp.metrics`: higher = more likely a member); its summary is
the AUC of members against non-members. LOSS, ZLib, Min-K% and Min-K%++ share one
teacher-forced pass; Reference adds a pass of the reference model; GradNorm one backward pass
per item. The conventions are open-unlearning's (`src/evals/metrics/mia/` at d3d7cf9): the mean
NLL over every answer token (the final EOS included), Min-K% and Min-K%++ over the answer
tokens without the final EOS, k = 0.4, ZLib on the answer decoded from its label ids without
special tokens, GradNorm's 2-norm per parameter tensor, averaged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from satimp import metrics as M
from satimp.data.encoding import Encoded, iter_batches
from satimp.evaluation.scoring import protocol_qa
from satimp.logprobs import drop_last_answer_token, forward_logps
from satimp.protocol import Protocol
from satimp.protocol import resolve as resolve_protocol

ATTACKS = (
    "loss",
    "zlib",
    "min_k",
    "min_k_pp",
)  # one shared pass; `reference`, `gradnorm` on request
MIN_K = 0.4  # open-unlearning's k for Min-K% and Min-K%++ on TOFU and MUSE


def holdout_split_for(forget: str) -> str:
    """forget01 → holdout01, forget05 → holdout05, forget10 → holdout10 (TOFU's names)."""
    return "holdout" + forget.removeprefix("forget")


def qa_examples(tokenizer, records: Sequence[dict], protocol: Protocol) -> list[Encoded]:
    """Each record's question and answer, encoded as the probability metrics encode them."""
    return [protocol_qa(tokenizer, r["question"], r["answer"], protocol) for r in records]


def _mean_nll(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B]: −(1/n) Σ logps over the mask's n tokens per row."""
    return -(logps * mask).sum(-1) / mask.sum(-1).clamp_min(1)


@torch.no_grad()
def pass_scores(
    model, tokenizer, examples: Sequence[Encoded], *, batch_size: int = 16, ref_model=None
) -> dict[str, list[float]]:
    """Per item (dataset order): the LOSS, ZLib, Min-K% and Min-K%++ scores from one
    teacher-forced pass, and Reference's when `ref_model` is given."""
    out = {name: [0.0] * len(examples) for name in (*ATTACKS, "reference")}
    pad = tokenizer.pad_token_id
    for idx, batch in iter_batches(examples, batch_size, pad):
        r = forward_logps(model, batch, keep_logits=True)
        mu, var = M.vocab_moments(r.logits)  # [B, T−1] each
        nll = _mean_nll(r.logps, r.mask)  # [B], every answer token
        tokens = drop_last_answer_token(r.mask)  # without the final EOS
        labels = batch["labels"][:, 1:]
        texts = [tokenizer.decode(row[m].tolist(), skip_special_tokens=True)
                 for row, m in zip(labels, r.mask, strict=True)]  # fmt: skip
        scores = {
            "loss": M.loss_score(nll),
            "zlib": M.zlib_score(nll, texts),
            "min_k": M.min_k_percent(r.logps, tokens, k=MIN_K),
            "min_k_pp": M.min_k_plus_plus(r.logps, mu, var, tokens, k=MIN_K),
        }
        if ref_model is not None:
            ref = forward_logps(ref_model, batch)
            scores["reference"] = M.reference_score(nll, _mean_nll(ref.logps, ref.mask))
        for name, values in scores.items():
            for i, v in zip(idx, values.tolist(), strict=True):
                out[name][i] = v
    return out if ref_model is not None else {k: v for k, v in out.items() if k != "reference"}


def grad_norm_scores(model, tokenizer, examples: Sequence[Encoded]) -> list[float]:
    """GradNorm per item: the gradient of the item's mean NLL over its answer tokens without
    the final EOS (open-unlearning's `-mean(tokenwise_logprobs)`), one backward pass each; the
    model's gradients are cleared before and after. In eval mode (open-unlearning switches to
    train mode, which differs only for a model with dropout)."""
    was_training = model.training
    model.eval()
    out = [0.0] * len(examples)
    try:
        for (i,), batch in iter_batches(examples, 1, tokenizer.pad_token_id):
            model.zero_grad(set_to_none=True)
            with torch.enable_grad():
                r = forward_logps(model, batch)
                _mean_nll(r.logps, drop_last_answer_token(r.mask)).sum().backward()
            out[i] = M.grad_norm_score([p.grad for p in model.parameters()])
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return out


def mia(
    model,
    tokenizer,
    members: Sequence[dict],
    non_members: Sequence[dict],
    *,
    protocol: Protocol | None = None,
    batch_size: int = 16,
    ref_model=None,
    gradnorm: bool = False,
) -> tuple[dict, dict]:
    """Every attack on members against non-members: (summary, per_sample).

    summary: `mia_<attack>_auc` per attack (P(member score > non-member score)); per_sample:
    {"members": {attack: [score per item]}, "non_members": {...}}.
    """
    P = resolve_protocol(protocol)
    per_sample = {}
    for name, records in (("members", members), ("non_members", non_members)):
        examples = qa_examples(tokenizer, records, P)
        scores = pass_scores(model, tokenizer, examples, batch_size=batch_size, ref_model=ref_model)
        if gradnorm:
            scores["gradnorm"] = grad_norm_scores(model, tokenizer, examples)
        per_sample[name] = scores
    summary = {
        f"mia_{attack}_auc": M.auc_roc(values, per_sample["non_members"][attack])
        for attack, values in per_sample["members"].items()
    }
    return summary, per_sample
