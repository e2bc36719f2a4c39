"""Weight-only quantization (satimp.quantization): each scheme against values computed by hand,
and on a model: what is quantized, and int8 moving the logits less than int4."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.testing import assert_close

from satimp.models import build_model
from satimp.quantization import (
    NF4_LEVELS,
    quantize_model,
    quantize_nf4,
    quantize_rtn,
    quantize_weight,
)

ROW = torch.tensor([[1.0, -0.4, 0.26, 0.0]])


def test_rtn_per_channel_by_hand() -> None:
    """int4: s = 1/7, w/s = [7, −2.8, 1.82, 0] → [7, −3, 2, 0] → [1, −3/7, 2/7, 0];
    int8: s = 1/127, w/s = [127, −50.8, 33.02, 0] → [127, −51, 33, 0]."""
    assert_close(quantize_rtn(ROW, 4), torch.tensor([[1.0, -3 / 7, 2 / 7, 0.0]]))
    assert_close(quantize_rtn(ROW, 8), torch.tensor([[1.0, -51 / 127, 33 / 127, 0.0]]))
    # rows are their own channels: scaling one row leaves the other's result alone
    two = torch.cat([ROW, 10 * ROW])
    assert_close(quantize_rtn(two, 4), torch.cat([quantize_rtn(ROW, 4), 10 * quantize_rtn(ROW, 4)]))


def test_rtn_group_wise_by_hand() -> None:
    """group_size 2: [1, −0.4] with s = 1/7 → [1, −3/7]; [0.26, 0] with s = 0.26/7 → [0.26, 0]
    (its own scale keeps the small weight exact); an all-zero group stays 0."""
    assert_close(quantize_rtn(ROW, 4, group_size=2), torch.tensor([[1.0, -3 / 7, 0.26, 0.0]]))
    zeros = torch.zeros(2, 4)
    assert torch.equal(quantize_rtn(zeros, 4, group_size=2), zeros)
    # rows of 3, groups of 2: blocks over the row-major weights (the last padded with zeros),
    # [1, −0.4 | 0.26, 0.5 | 0.1, 0]: the middle block's s = 0.5/7, 0.26/s = 3.64 → 4s = 2/7
    odd = torch.tensor([[1.0, -0.4, 0.26], [0.5, 0.1, 0.0]])
    want = torch.tensor([[1.0, -3 / 7, 4 * 0.5 / 7], [0.5, 0.1, 0.0]])
    assert_close(quantize_rtn(odd, 4, group_size=2), want)
    assert quantize_nf4(odd, group_size=4).shape == odd.shape
    with pytest.raises(ValueError, match="group_size must be >= 1"):
        quantize_rtn(ROW, 4, group_size=0)


def test_nf4_by_hand() -> None:
    """One block, s = max|w| = 1: 0.5 → 0.4407 (0.059 away; 0.5626 is 0.063), −1 → −1,
    0.1 → 0.0796, 0 → 0; a block scaled by 3 gives levels times 3."""
    w = torch.tensor([[0.5, -1.0, 0.1, 0.0]])
    want = torch.tensor([[NF4_LEVELS[12], -1.0, NF4_LEVELS[8], 0.0]])
    assert_close(quantize_nf4(w, group_size=4), want)
    assert_close(quantize_nf4(3 * w, group_size=4), 3 * want)
    levels = torch.tensor([list(NF4_LEVELS)])  # the levels themselves are fixed points
    assert torch.equal(quantize_nf4(levels, group_size=16), levels)


def test_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="unknown quantization scheme 'int3'"):
        quantize_weight(ROW, "int3")


def test_model_int8_moves_logits_less_than_int4(tiny_tok) -> None:
    """Every linear layer but the (tied) head is quantized; the logits move, int8 much less
    than int4, and the embedding (the head's weight) is untouched."""
    model = build_model("tiny", tiny_tok, seed=0).eval()
    ids = torch.tensor([tiny_tok.encode("Who wrote the book?")])
    with torch.no_grad():
        base = model(input_ids=ids).logits
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    moved = {}
    for scheme in ("int8", "int4", "nf4"):
        q = copy.deepcopy(model)
        n = quantize_model(q, scheme)
        assert n == len(linears) - 1  # all but lm_head
        assert torch.equal(q.get_input_embeddings().weight, model.get_input_embeddings().weight)
        with torch.no_grad():
            moved[scheme] = (q(input_ids=ids).logits - base).abs().max().item()
    assert 0 < moved["int8"] < moved["int4"] / 4, moved
    assert 0 < moved["nf4"], moved
