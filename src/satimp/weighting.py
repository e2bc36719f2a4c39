"""Token weights for loss-reweighted unlearning: the paper's criteria, granularity and smoothing.

Yang et al., "Exploring Criteria of Loss Reweighting to Enhance LLM Unlearning", ICML 2025
(SPEC §1). Every weight here multiplies a token's NLL in `L_forget = −(1/N) Σ_k w_k ℓ_k`.

Conventions (shared by every function):
- `logps` [B, T] float: log p_k of each label token; `p_k = exp(logps)`.
- `mask` [B, T] bool: valid answer tokens. Padding may hold any logps (even −inf): it is
  replaced before use, so it never affects a weight and never makes a NaN.
- Weights are detached (they steer the gradient, they carry none) and exactly 0 outside `mask`.

Pipeline of `token_weights`: criterion (token level) → granularity → temperature `tau`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Real

import torch
from torch import Tensor

from satimp.errors import InputError

GRANULARITIES = ("token", "group", "instance", "batch")


# ---------------------------------------------------------------------------------------------
# Shared preparation
# ---------------------------------------------------------------------------------------------
def _prepare(logps: Tensor, mask: Tensor) -> Tensor:
    """Detached logps in ≥ float32, set to 0 on padding and clamped to ≤ 0 (so p ∈ [0, 1])."""
    dtype = torch.promote_types(logps.dtype, torch.float32)
    lp = logps.detach().to(dtype)
    return torch.where(mask, lp, torch.zeros_like(lp)).clamp(max=0.0)


def _sort_ranks(key: Tensor, *, descending: bool = False) -> Tensor:
    """Rank of each entry of `key` [B, T] in its row's stable sort (ties: lower position first)."""
    order = key.sort(dim=1, descending=descending, stable=True).indices
    positions = torch.arange(key.shape[1], device=key.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, positions)


def _sample_sizes(mask: Tensor, frac: float) -> Tensor:
    """Algorithm 1's sample size per row [B, 1]: s = max(1, floor(frac·n + 0.5)), 0 if n = 0.

    Rounding is half *up* (2.5 → 3), not Python's banker's rounding.
    """
    n = mask.sum(dim=1, keepdim=True)
    s = torch.floor(frac * n.double() + 0.5).long().clamp(min=1)
    return torch.where(n > 0, s, torch.zeros_like(s))


# ---------------------------------------------------------------------------------------------
# Criteria (token level). Each: fn(logps [B, T], mask [B, T], **params) -> [B, T] detached
# weights, 0 outside mask.
# ---------------------------------------------------------------------------------------------
def ga_weights(logps: Tensor, mask: Tensor) -> Tensor:
    """Plain gradient ascent: w_k = 1 on every valid token.

    Args: logps [B, T] (unused but for dtype/device); mask [B, T] bool.
    Returns: [B, T] = mask as float.
    """
    return mask.to(_prepare(logps, mask).dtype)


def saturation_weights(logps: Tensor, mask: Tensor, *, beta: float) -> Tensor:
    """Saturation (SimSat) / WGA weights (Yang et al. ICML 2025; Wang et al. ICLR 2025): w = p^β.

    Low-likelihood (already forgotten) tokens get low weight. p = 0 (logps = −inf) gives 0
    (or 1 when β = 0: 0^0 = 1).
    Args: logps [B, T]; mask [B, T] bool; beta ≥ 0.
    Returns: [B, T] detached, 0 outside mask.
    """
    p = _prepare(logps, mask).exp()
    return torch.where(mask, p.pow(beta), torch.zeros_like(p))


def importance_weights(logps: Tensor, mask: Tensor, *, beta: float) -> Tensor:
    """Importance (SimImp) weights (Yang et al., ICML 2025): w = (1 − p)^β.

    Emphasises low-likelihood tokens. 1 − p is computed as |expm1(logps)| for accuracy near
    p = 1, where the weight is 0 (or 1 when β = 0).
    Args: logps [B, T]; mask [B, T] bool; beta ≥ 0.
    Returns: [B, T] detached, 0 outside mask.
    """
    one_minus_p = torch.expm1(_prepare(logps, mask)).abs()  # abs: +0, not −0, at p = 1
    return torch.where(mask, one_minus_p.pow(beta), torch.zeros_like(one_minus_p))


def satimp_weights(logps: Tensor, mask: Tensor, *, beta1: float, beta2: float) -> Tensor:
    """SatImp weights (Yang et al., ICML 2025): w = p^β1 · (1 − p)^β2.

    0 at p = 0 (β1 > 0) and at p = 1 (β2 > 0); β1 = β2 = 0 gives 1 everywhere (= GA).
    Args: logps [B, T]; mask [B, T] bool; beta1, beta2 ≥ 0.
    Returns: [B, T] detached, 0 outside mask.
    """
    lp = _prepare(logps, mask)
    w = lp.exp().pow(beta1) * torch.expm1(lp).abs().pow(beta2)  # 1 − p = |expm1(logp)|
    return torch.where(mask, w, torch.zeros_like(w))


def topk_weights(logps: Tensor, mask: Tensor, *, frac: float) -> Tensor:
    """Hard sampling TopK (Algorithm 1): 1 on the s lowest-likelihood valid tokens, else 0.

    Per row: sort p ascending (stable: ties keep position order), take L[0:s],
    s = max(1, floor(frac·n + 0.5)), n = valid tokens. Rows with n = 0 are all 0.
    Args: logps [B, T]; mask [B, T] bool; frac ∈ (0, 1].
    Returns: [B, T] in {0, 1}, detached.
    """
    lp = _prepare(logps, mask)
    rank = _sort_ranks(lp.masked_fill(~mask, math.inf))  # valid tokens hold ranks 0..n-1
    chosen = mask & (rank < _sample_sizes(mask, frac))
    return chosen.to(lp.dtype)


def bottomk_weights(logps: Tensor, mask: Tensor, *, frac: float) -> Tensor:
    """Hard sampling BottomK (Algorithm 1): 1 on the s highest-likelihood valid tokens, else 0.

    Per row: sort p ascending (stable), take L[n−s:n] — so among ties the *later* positions
    are taken, exactly as Algorithm 1 reads. s as in `topk_weights`; rows with n = 0 are all 0.
    Args: logps [B, T]; mask [B, T] bool; frac ∈ (0, 1].
    Returns: [B, T] in {0, 1}, detached.
    """
    lp = _prepare(logps, mask)
    rank = _sort_ranks(lp.masked_fill(~mask, math.inf))
    n = mask.sum(dim=1, keepdim=True)
    chosen = mask & (rank >= n - _sample_sizes(mask, frac))
    return chosen.to(lp.dtype)


def random_weights(
    logps: Tensor, mask: Tensor, *, frac: float, seed: int, soft_p: float = 1.0
) -> Tensor:
    """Hard sampling Random (Algorithm 1): 1 on s uniformly drawn valid tokens per row, else 0.

    A CPU `torch.Generator` seeded with `seed` draws one uniform key per position [B, T]; each
    row takes its s smallest valid keys. Deterministic for a given seed and shape; rows draw
    independently. s as in `topk_weights`; rows with n = 0 are all 0.
    Soft form (the authors' `soft_p`): w = soft_p on the drawn tokens, 1 − soft_p on the other
    valid ones; soft_p = 1 is the hard form. (Their code stores these weights in an int32
    mask, which truncates any soft_p strictly between 0 and 1 to 0: only 0 and 1 run there.)
    Args: logps [B, T] (unused but for dtype/device); mask [B, T] bool; frac ∈ (0, 1]; seed int;
    soft_p ∈ [0, 1].
    Returns: [B, T] detached, 0 outside mask.
    """
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    keys = torch.rand(mask.shape, generator=gen, dtype=torch.float64).to(mask.device)
    rank = _sort_ranks(keys.masked_fill(~mask, math.inf))
    chosen = mask & (rank < _sample_sizes(mask, frac))
    dtype = _prepare(logps, mask).dtype
    if soft_p == 1.0:
        return chosen.to(dtype)
    w = torch.full(mask.shape, 1.0 - soft_p, dtype=dtype, device=mask.device)  # [B, T]
    w = w.masked_fill(chosen, soft_p)  # built in logps' dtype: no float32 rounding
    return torch.where(mask, w, torch.zeros_like(w))


def annotated_weights(logps: Tensor, mask: Tensor, *, key_mask: Tensor, rho: float) -> Tensor:
    """Annotated importance: w = 1 − ρ on annotated key tokens, ρ on other valid tokens.

    Key tokens come from human/key-fact annotations (the dataset's `keywords` field).
    Args: logps [B, T] (unused but for dtype/device); mask, key_mask [B, T] bool; rho ∈ [0, 1].
    Returns: [B, T] detached, 0 outside mask (also where key_mask is True outside mask).
    """
    dtype = _prepare(logps, mask).dtype
    w = torch.full(mask.shape, rho, dtype=dtype, device=mask.device)  # [B, T], logps' dtype
    w = w.masked_fill(key_mask.bool(), 1.0 - rho)
    return torch.where(mask, w, torch.zeros_like(w))


# ---------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CriterionSpec:
    """One reweighting criterion.

    `fn(logps, mask, **params)` gives token-level weights. `kind` "soft": a smooth function of
    the likelihood, valid at every granularity; "hard": a token selection/assignment
    (Algorithm 1 or annotations), token and group granularity only.
    """

    fn: Callable[..., Tensor]
    defaults: dict[str, float | int] = field(default_factory=dict)
    kind: str = "soft"
    help: str = ""
    needs_key_mask: bool = False


CRITERIA: dict[str, CriterionSpec] = {
    "ga": CriterionSpec(ga_weights, {}, "soft", "w = 1 (plain gradient ascent)"),
    "simsat": CriterionSpec(saturation_weights, {"beta": 5.0}, "soft", "saturation: w = p^beta"),
    "wga": CriterionSpec(saturation_weights, {"beta": 1.0}, "soft", "weighted GA: w = p^beta"),
    "simimp": CriterionSpec(importance_weights, {"beta": 5.0}, "soft", "importance: w = (1-p)^beta"),
    "satimp": CriterionSpec(satimp_weights, {"beta1": 5.0, "beta2": 0.1}, "soft", "SatImp: w = p^beta1 (1-p)^beta2"),
    "topk": CriterionSpec(topk_weights, {"frac": 0.3}, "hard", "1 on the frac lowest-likelihood tokens"),
    "bottomk": CriterionSpec(bottomk_weights, {"frac": 0.3}, "hard", "1 on the frac highest-likelihood tokens"),
    "random": CriterionSpec(random_weights, {"frac": 0.3, "seed": 0, "soft_p": 1.0}, "hard", "1 (soft_p) on frac random tokens (seeded), 0 (1-soft_p) elsewhere"),
    "annotated": CriterionSpec(annotated_weights, {"rho": 0.3}, "hard", "1-rho on key tokens, rho elsewhere", needs_key_mask=True),
}  # fmt: skip

# parameter -> (test, description of the valid range)
_RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "beta": (lambda v: v >= 0, "beta >= 0"),
    "beta1": (lambda v: v >= 0, "beta1 >= 0"),
    "beta2": (lambda v: v >= 0, "beta2 >= 0"),
    "frac": (lambda v: 0 < v <= 1, "0 < frac <= 1"),
    "rho": (lambda v: 0 <= v <= 1, "0 <= rho <= 1"),
    "soft_p": (lambda v: 0 <= v <= 1, "0 <= soft_p <= 1"),
    "seed": (lambda v: float(v).is_integer(), "seed an integer"),
}


def get_criterion(criterion: str) -> CriterionSpec:
    """Look up a criterion; an unknown name raises ValueError (InputError) listing valid ones."""
    if criterion not in CRITERIA:
        raise InputError(f"unknown criterion {criterion!r}; valid: {', '.join(CRITERIA)}")
    return CRITERIA[criterion]


def resolve_params(criterion: str, **params: float) -> dict[str, float | int]:
    """A criterion's full parameters: its defaults overridden by `params`, all validated.

    Raises ValueError (InputError) for an unknown criterion, an unknown parameter (listing the
    criterion's parameters) or a value out of range (naming the parameter and its range).
    """
    spec = get_criterion(criterion)
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        valid = ", ".join(spec.defaults) or "none"
        raise InputError(
            f"unknown parameter(s) {unknown} for criterion {criterion!r}; valid: {valid}"
        )
    resolved = {**spec.defaults, **params}
    for name, value in resolved.items():
        ok, valid_range = _RANGES[name]
        if isinstance(value, bool) or not isinstance(value, Real) or not ok(value):
            raise InputError(f"{criterion}: {name}={value!r} out of range; need {valid_range}")
    return resolved


def _check_inputs(
    logps: Tensor, mask: Tensor, granularity: str, group_size: int, tau: float | None
) -> None:
    if logps.dim() != 2 or mask.shape != logps.shape or mask.dtype != torch.bool:
        raise InputError(
            f"need logps [B, T] and a bool mask of the same shape; got logps "
            f"{tuple(logps.shape)}, mask {tuple(mask.shape)} {mask.dtype}"
        )
    if granularity not in GRANULARITIES:
        raise InputError(f"unknown granularity {granularity!r}; valid: {', '.join(GRANULARITIES)}")
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise InputError(f"group_size={group_size!r} out of range; need an integer group_size >= 1")
    if tau is not None and (isinstance(tau, bool) or not isinstance(tau, Real) or not tau > 0):
        raise InputError(f"tau={tau!r} out of range; need tau > 0 (or None for off)")


# ---------------------------------------------------------------------------------------------
# Granularity and smoothness
# ---------------------------------------------------------------------------------------------
def group_mean(weights: Tensor, mask: Tensor, group_size: int) -> Tensor:
    """Group-level weights (SPEC §1, observation iii): average within groups of sorted weights.

    Per row, sort the valid tokens' weights descending (stable), cut them into consecutive
    groups of `group_size` (the last may be smaller) and give each token its group's mean.
    Args: weights [B, T]; mask [B, T] bool; group_size ≥ 1.
    Returns: [B, T], 0 outside mask; each row's sum over valid tokens is unchanged.
    """
    B, T = weights.shape
    rank = _sort_ranks(weights.masked_fill(~mask, -math.inf), descending=True)
    group = rank // group_size  # [B, T]; valid tokens hold ranks 0..n-1, so groups are theirs
    n_groups = (T + group_size - 1) // group_size
    valid_w = torch.where(mask, weights, torch.zeros_like(weights))
    sums = weights.new_zeros(B, n_groups).scatter_add_(1, group, valid_w)
    counts = weights.new_zeros(B, n_groups).scatter_add_(1, group, mask.to(weights.dtype))
    means = sums / counts.clamp(min=1)  # [B, n_groups]
    return torch.where(mask, means.gather(1, group), torch.zeros_like(weights))


def _sequence_weights(spec: CriterionSpec, logps: Tensor, mask: Tensor, **params: float) -> Tensor:
    """w_i = f(P_i) [B, 1]: the soft criterion on P_i = exp(−S_i), S_i = −Σ_k logps_ik (valid k)."""
    seq_logps = _prepare(logps, mask).sum(dim=1, keepdim=True)  # [B, 1] = −S_i
    return spec.fn(seq_logps, mask.any(dim=1, keepdim=True), **params)  # [B, 1]


def instance_weights(spec: CriterionSpec, logps: Tensor, mask: Tensor, **params: float) -> Tensor:
    """Instance-level weights (SPEC §1, observation iii): the criterion on sequence likelihood.

    S_i = Σ_k ℓ_ik = −Σ_k logps_ik over valid tokens, P_i = exp(−S_i); w_i = f(P_i) with the
    soft criterion's formula (e.g. SatImp: P_i^β1 (1 − P_i)^β2), broadcast to every valid token.
    The matching objective is the sequence-sum loss −(1/B) Σ_i w_i S_i; normalisation is the
    objective's business. Rows with no valid tokens are all 0.
    Args: spec a soft criterion; logps [B, T]; mask [B, T] bool. Returns: [B, T], detached.
    """
    w_seq = _sequence_weights(spec, logps, mask, **params)  # [B, 1]
    return torch.where(mask, w_seq, torch.zeros_like(w_seq))


def batch_weights(spec: CriterionSpec, logps: Tensor, mask: Tensor, **params: float) -> Tensor:
    """Batch-level weights (SPEC §1): one scalar, the mean instance weight, on every valid token.

    w = mean of w_i over sequences with ≥ 1 valid token (a rescaled GA); all-masked batch → 0.
    Args: spec a soft criterion; logps [B, T]; mask [B, T] bool. Returns: [B, T], detached.
    """
    w_seq = _sequence_weights(spec, logps, mask, **params)[:, 0]  # [B]
    has_tokens = mask.any(dim=1).to(w_seq.dtype)  # [B]
    mean = (w_seq * has_tokens).sum() / has_tokens.sum().clamp(min=1)  # no host sync
    return torch.where(mask, mean, torch.zeros_like(mean))


def temperature_smooth(weights: Tensor, mask: Tensor, tau: float) -> Tensor:
    """Temperature smoothing (SPEC §1; this project's definition): w = n · softmax_k(f_k / τ).

    Softmax over each row's valid tokens, scaled by its count n so the mean weight is 1.
    τ → ∞ gives 1 everywhere (= GA); τ → 0 gives hard top-1 (n on the max; tied maxima share).
    Computed on f − max(f) so a tiny τ yields no inf − inf.
    Args: weights f [B, T]; mask [B, T] bool; tau > 0. Returns: [B, T], 0 outside mask.
    """
    neg_inf = torch.full_like(weights, -math.inf)
    f = torch.where(mask, weights, neg_inf)
    f_max = f.amax(dim=1, keepdim=True)
    has_tokens = mask.any(dim=1, keepdim=True)
    z = torch.where(mask, (f - torch.where(has_tokens, f_max, 0.0)) / tau, neg_inf)
    z = torch.where(has_tokens, z, torch.zeros_like(z))  # empty rows: avoid softmax of all −inf
    n = mask.sum(dim=1, keepdim=True).to(weights.dtype)
    return torch.where(mask, n * torch.softmax(z, dim=1), torch.zeros_like(weights))


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------
def token_weights(
    criterion: str,
    logps: Tensor,
    mask: Tensor,
    *,
    granularity: str = "token",
    group_size: int = 4,
    tau: float | None = None,
    key_mask: Tensor | None = None,
    **params: float,
) -> Tensor:
    """Per-token forget-loss weights for a criterion (Yang et al., ICML 2025, SPEC §1).

    Order: criterion (token level, or on P_i = exp(−S_i) at instance/batch level) →
    granularity (`token` | `group` of `group_size` sorted weights | `instance` | `batch`) →
    optional temperature `tau` (w = n · softmax(f/τ) per row; None = off).
    The loss is `−(1/N) Σ_k w_k ℓ_k` (instance/batch: −(1/B) Σ_i w_i S_i); normalising is
    the objective's business, this returns only weights.

    Args:
        criterion: a key of `CRITERIA`.
        logps: [B, T] log p_k of each label token; padding may hold anything finite or −inf.
        mask: [B, T] bool, valid answer tokens.
        key_mask: [B, T] bool annotated key tokens; required for `annotated` only.
        **params: the criterion's parameters (see `CRITERIA[criterion].defaults`).
    Returns: [B, T] detached weights, exactly 0 outside `mask`; all-masked rows are all 0.
    Raises: ValueError (InputError) for unknown names/parameters, out-of-range values, a hard
        or annotated criterion at instance/batch granularity, or a missing `key_mask`.
    """
    _check_inputs(logps, mask, granularity, group_size, tau)
    spec = get_criterion(criterion)
    resolved = resolve_params(criterion, **params)
    if spec.kind == "hard" and granularity in ("instance", "batch"):
        raise InputError(
            f"criterion {criterion!r} is hard (a token selection) and works at "
            f"token or group granularity only, not {granularity!r}"
        )
    if spec.needs_key_mask:
        if key_mask is None or key_mask.shape != mask.shape or key_mask.dtype != torch.bool:
            raise InputError(
                f"criterion {criterion!r} needs key_mask: a [B, T] bool tensor of "
                "annotated key tokens (from the dataset's `keywords` field)"
            )
        resolved["key_mask"] = key_mask

    if granularity == "instance":
        w = instance_weights(spec, logps, mask, **resolved)
    elif granularity == "batch":
        w = batch_weights(spec, logps, mask, **resolved)
    else:
        w = spec.fn(logps, mask, **resolved)
        if granularity == "group":
            w = group_mean(w, mask, group_size)
    if tau is not None:
        w = temperature_smooth(w, mask, float(tau))
    return w.to(logps.dtype)


def weight_stats(weights: Tensor, logps: Tensor, mask: Tensor) -> dict[str, float]:
    """Summary of weights over valid tokens, for the paper's observation (ii).

    mean, min, max of w, and `corr` = Pearson correlation between w and p = exp(logps)
    (positive for saturation: low-likelihood tokens get low weight; negative for importance).
    corr is 0.0 when undefined (fewer than 2 tokens, or constant w or p); with no valid tokens
    every value is 0.0.
    Args: weights, logps [B, T]; mask [B, T] bool. Returns: {"mean", "min", "max", "corr"}.
    """
    w = weights.detach()[mask].double()
    if w.numel() == 0:
        return {"mean": 0.0, "min": 0.0, "max": 0.0, "corr": 0.0}
    p = logps.detach()[mask].double().clamp(max=0.0).exp()
    stats = {"mean": w.mean().item(), "min": w.min().item(), "max": w.max().item(), "corr": 0.0}
    if w.numel() >= 2 and w.max() > w.min() and p.max() > p.min():
        dw, dp = w - w.mean(), p - p.mean()
        # scaled to max |·| = 1 first (r does not change): weights of 1e−200, as SimSat's p^β
        # gives forgotten tokens, would otherwise square to 0 and read as uncorrelated
        dw, dp = dw / dw.abs().max(), dp / dp.abs().max()
        denom = (dw.square().sum() * dp.square().sum()).sqrt()
        if denom > 0:
            stats["corr"] = (dw * dp).sum().div(denom).clamp(-1.0, 1.0).item()
    return stats
