"""The one forward pass: per-token log-probabilities of the labels and the answer mask.

Positions are shifted once, here: output position t scores label t+1 given tokens ≤ t. Every
tensor returned is [B, T−1], aligned with `labels[:, 1:]`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from satimp.data.encoding import IGNORE, Encoded, iter_batches


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


def label_logps(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Shifted per-token log-likelihoods and answer mask.

    Args: logits [B, T, V], labels [B, T] (−100 = not scored).
    Returns: logps [B, T−1] (0 on masked positions), mask [B, T−1] bool.
    """
    logits, targets = logits[:, :-1], labels[:, 1:]
    mask = targets != IGNORE
    # cross_entropy avoids materialising a [B, T, V] log-softmax copy.
    nll = F.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)),
        targets.reshape(-1),
        ignore_index=IGNORE,
        reduction="none",
    ).view_as(targets)
    return -nll * mask, mask


def forward_logps(
    model, batch: dict[str, Tensor], *, keep_logits: bool = False, hidden: bool = False
) -> TokenLogps:
    """Run `model` on a collated batch (input_ids, attention_mask, labels [B, T])."""
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        output_hidden_states=hidden,
        use_cache=False,
    )
    logps, mask = label_logps(out.logits, batch["labels"])
    shifted = out.logits[:, :-1]
    with torch.no_grad():
        correct = (shifted.argmax(-1) == batch["labels"][:, 1:]) & mask
    return TokenLogps(
        logps=logps,
        mask=mask,
        correct=correct,
        logits=shifted if keep_logits else None,
        hidden=out.hidden_states if hidden else None,
    )


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
    from satimp import distributed as D

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
