"""Weight-only quantization in plain torch, as an attack on unlearning (SPEC §7): round the
weights of a model to a few bits and back, then evaluate it again. Zhang et al. (ICLR 2025)
found that 4-bit weights bring back much of what gradient-ascent-style unlearning removed, the
unlearning update being smaller than one quantization step.

Each scheme maps a weight matrix W [out, in] to its dequantized copy Ŵ (same shape and dtype),
the weights a quantized model computes with; no packed storage, so it runs on any device:

- `int8`, `int4` (round-to-nearest, symmetric absmax): per block of weights sharing a scale,
  s = max|w| / q_max with q_max = 2^(b−1) − 1 (127, 7), Ŵ = s · clamp(round(w / s), −q_max, q_max).
  A block is one output channel (a row; `group_size` None) or `group_size` consecutive weights
  in row-major order (group-wise; within a row when `group_size` divides its length, as GPTQ/AWQ's
  groups are);
- `nf4` (QLoRA's 4-bit NormalFloat, Dettmers et al. 2023): per block of `group_size` (default
  64) consecutive weights, s = max|w|, Ŵ = s · the NF4 level nearest to w / s.

A block whose weights are all 0 stays 0. `quantize_model` applies a scheme to every linear
layer's weight except the output head (and any layer sharing the input embedding), as
bitsandbytes and GPTQ leave the head in full precision.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

# QLoRA's NF4 code book: the 16 levels of 4-bit NormalFloat (quantiles of N(0, 1), scaled to
# [−1, 1], with an exact 0), as bitsandbytes defines them.
NF4_LEVELS = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
)  # fmt: skip
SCHEMES = ("int8", "int4", "nf4")
NF4_BLOCK = 64  # bitsandbytes' NF4 block size


def _blockwise(w: Tensor, group_size: int | None, fn) -> Tensor:
    """Apply `fn` ([n_blocks, block] float32 → same) to w's blocks and reassemble: one block
    per row (`group_size` None), or `group_size` consecutive weights of w in row-major order,
    the last block padded with zeros (bitsandbytes' blockwise layout; a zero changes no
    block's absmax). Returns w's shape and dtype."""
    if w.dim() != 2:
        raise ValueError(
            f"quantize: a weight matrix [out, in] is needed, got shape {tuple(w.shape)}"
        )
    x = w.float()
    if group_size is None:
        return fn(x).to(w.dtype)
    if group_size < 1:
        raise ValueError(f"quantize: group_size must be >= 1, got {group_size}")
    flat = x.reshape(-1)
    pad = -flat.numel() % group_size
    blocks = torch.nn.functional.pad(flat, (0, pad)).view(-1, group_size)
    return fn(blocks).reshape(-1)[: flat.numel()].view(w.shape).to(w.dtype)


def _absmax_scale(b: Tensor, q: float) -> tuple[Tensor, Tensor]:
    """(scale = max|b| / q per row, the scale with 0 replaced by 1 to divide by)."""
    scale = b.abs().amax(-1, keepdim=True) / q
    return scale, torch.where(scale > 0, scale, torch.ones_like(scale))


def quantize_rtn(w: Tensor, bits: int, group_size: int | None = None) -> Tensor:
    """Symmetric round-to-nearest, dequantized: Ŵ = s · clamp(round(w / s), −q, q), q = 2^(b−1) − 1,
    s = max|w| / q per block (a row, or `group_size` weights: `_blockwise`). Args: w [out, in];
    bits ≥ 2. Returns: [out, in], w's dtype. Computed in float32."""
    if bits < 2:
        raise ValueError(f"quantize_rtn: bits must be >= 2, got {bits}")
    q = 2 ** (bits - 1) - 1

    def rtn(b: Tensor) -> Tensor:
        scale, safe = _absmax_scale(b, q)
        return (b / safe).round().clamp(-q, q) * scale

    return _blockwise(w, group_size, rtn)


def quantize_nf4(w: Tensor, group_size: int = NF4_BLOCK) -> Tensor:
    """NF4, dequantized: per block of `group_size` weights (`_blockwise`), s = max|w|,
    Ŵ = s · the NF4 level nearest to w / s (ties to the lower level). Args: w [out, in].
    Returns: [out, in]."""
    levels = torch.tensor(NF4_LEVELS, device=w.device)

    def nf4(b: Tensor) -> Tensor:
        scale, safe = _absmax_scale(b, 1.0)
        return levels[((b / safe).unsqueeze(-1) - levels).abs().argmin(-1)] * scale

    return _blockwise(w, group_size, nf4)


def quantize_weight(w: Tensor, scheme: str, group_size: int | None = None) -> Tensor:
    """Ŵ of one weight matrix under `scheme` (SCHEMES); group_size None: per channel for the
    integer schemes, NF4_BLOCK for nf4."""
    if scheme == "int8":
        return quantize_rtn(w, 8, group_size)
    if scheme == "int4":
        return quantize_rtn(w, 4, group_size)
    if scheme == "nf4":
        return quantize_nf4(w, group_size or NF4_BLOCK)
    raise ValueError(f"unknown quantization scheme {scheme!r}; valid: {', '.join(SCHEMES)}")


@torch.no_grad()
def quantize_model(model: nn.Module, scheme: str, group_size: int | None = None) -> int:
    """Replace, in place, the weight of every nn.Linear except the output head (and any layer
    whose weight is the input embedding's) by its `quantize_weight`; returns how many."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    embed = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    skip = {id(embed.weight)} if embed is not None else set()
    n = 0
    for module in model.modules():
        if not isinstance(module, nn.Linear) or module is head or id(module.weight) in skip:
            continue
        module.weight.copy_(quantize_weight(module.weight, scheme, group_size))
        n += 1
    return n
