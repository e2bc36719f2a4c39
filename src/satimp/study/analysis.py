"""Analyses of a built model beside the results table: the token weights each criterion gives
the forget set's tokens against their likelihood (observation ii).
"""

from __future__ import annotations

from pathlib import Path

import torch

from satimp.data.encoding import iter_batches
from satimp.data.examples import training_examples
from satimp.logprobs import forward_logps
from satimp.models import load_model
from satimp.weighting import token_weights


def weight_curves(model_dir: Path, data, forget, *, max_tokens: int = 3000) -> dict:
    """Token likelihoods of the forget set under `model_dir` and the weights each criterion
    gives them (observation ii): {criterion: {"p": [...], "w": [...]}}."""
    model, tok = load_model(model_dir)
    model.eval()
    examples = training_examples(tok, data, forget, max_length=512)
    out = {c: {"p": [], "w": []} for c in ("simsat", "simimp", "satimp")}
    with torch.no_grad():
        for _, batch in iter_batches(examples, 32, tok.pad_token_id):
            r = forward_logps(model, batch)
            for c in out:
                w = token_weights(c, r.logps, r.mask)
                out[c]["p"] += r.logps[r.mask].exp().tolist()
                out[c]["w"] += w[r.mask].tolist()
    return {c: {k: v[:max_tokens] for k, v in d.items()} for c, d in out.items()}
