"""Tests for satimp.weighting: hand-computed weights for every criterion, granularity and tau.

Convention: logps [B, T] = log p of each label token; mask [B, T] bool. Each expected value
is derived in a comment next to it.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from satimp import weighting as W
from satimp.weighting import (
    CRITERIA,
    group_mean,
    temperature_smooth,
    token_weights,
    weight_stats,
)

SOFT = [name for name, spec in CRITERIA.items() if spec.kind == "soft"]
HARD = [name for name, spec in CRITERIA.items() if spec.kind == "hard"]


def _logps(p: list[list[float]]) -> torch.Tensor:
    """log of a probability table (0 → −inf)."""
    return torch.tensor(p, dtype=torch.float64).log()


def _extra(criterion: str, mask: torch.Tensor) -> dict:
    """key_mask for `annotated` (every other token), nothing for the rest."""
    if CRITERIA[criterion].needs_key_mask:
        key = torch.zeros_like(mask)
        key[:, ::2] = True
        return {"key_mask": key}
    return {}


# p = [0.5, 0.25, 1.0, 0.0] and a padding slot holding garbage (logp = +3, i.e. "p = e^3").
P4 = _logps([[0.5, 0.25, 1.0, 0.0, 1.0]])
P4[0, 4] = 3.0
M4 = torch.tensor([[True, True, True, True, False]])


# ------------------------------------------------------------------------------------------
# Soft criteria, token level
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("criterion", "params", "expected"),
    [
        ("ga", {}, [1.0, 1.0, 1.0, 1.0, 0.0]),
        # p^1 = p; p = 0 (logp = −inf) → 0
        ("simsat", {"beta": 1.0}, [0.5, 0.25, 1.0, 0.0, 0.0]),
        ("wga", {}, [0.5, 0.25, 1.0, 0.0, 0.0]),
        # (1 − p)^2 = [0.5², 0.75², 0², 1²]
        ("simimp", {"beta": 2.0}, [0.25, 0.5625, 0.0, 1.0, 0.0]),
        # default beta = 5: [0.5^5, 0.75^5, 0, 1]
        ("simimp", {}, [0.03125, 0.2373046875, 0.0, 1.0, 0.0]),
        # p²(1 − p) = [0.25·0.5, 0.0625·0.75, 1·0, 0·1]
        ("satimp", {"beta1": 2.0, "beta2": 1.0}, [0.125, 0.046875, 0.0, 0.0, 0.0]),
        # defaults beta1 = 5, beta2 = 0.1: [0.5^5.1, 0.25^5 · 0.75^0.1, 1·0^0.1 = 0, 0^5 = 0]
        ("satimp", {}, [0.5**5.1, 0.25**5 * 0.75**0.1, 0.0, 0.0, 0.0]),
        # beta = 0: 0^0 = 1, so every valid token gets 1, including p = 0 and p = 1
        ("simsat", {"beta": 0.0}, [1.0, 1.0, 1.0, 1.0, 0.0]),
        ("simimp", {"beta": 0.0}, [1.0, 1.0, 1.0, 1.0, 0.0]),
    ],
)
def test_soft_criteria_by_hand(criterion: str, params: dict, expected: list[float]) -> None:
    w = token_weights(criterion, P4, M4, **params)
    assert_close(w, torch.tensor([expected], dtype=torch.float64))
    assert torch.isfinite(w).all()
    assert not torch.signbit(w).any()  # no −0.0 at p = 1


def test_registry_defaults_follow_spec() -> None:
    # SimSat is not WGA: the authors' simsat_gd uses p^β with β = 5 (WGA's own default is 1)
    assert CRITERIA["simsat"].defaults == {"beta": 5.0}
    assert CRITERIA["wga"].defaults == {"beta": 1.0}
    assert CRITERIA["simimp"].defaults == {"beta": 5.0}
    assert CRITERIA["satimp"].defaults == {"beta1": 5.0, "beta2": 0.1}
    assert CRITERIA["topk"].defaults == CRITERIA["bottomk"].defaults == {"frac": 0.3}
    assert CRITERIA["random"].defaults == {"frac": 0.3, "seed": 0, "soft_p": 1.0}
    assert CRITERIA["annotated"].defaults == {"rho": 0.3}
    assert all(spec.kind in ("soft", "hard") and spec.help for spec in CRITERIA.values())


def test_satimp_zero_exponents_equals_ga() -> None:
    # p^0 (1 − p)^0 = 1 for every p in [0, 1], including 0^0 at p = 0 and p = 1.
    logps = torch.log(torch.rand(3, 7, generator=torch.Generator().manual_seed(1)))
    logps[0, 0], logps[1, 1] = -math.inf, 0.0
    mask = torch.rand(3, 7, generator=torch.Generator().manual_seed(2)) > 0.3
    for granularity in ("token", "group", "instance", "batch"):
        sat = token_weights("satimp", logps, mask, beta1=0.0, beta2=0.0, granularity=granularity)
        ga = token_weights("ga", logps, mask, granularity=granularity)
        assert_close(sat, ga)
        assert_close(ga, mask.float())


def test_annotated_by_hand() -> None:
    # rho = 0.3: key tokens 1 − 0.3 = 0.7, others 0.3; a key flag on padding is ignored.
    key = torch.tensor([[True, False, True, False, True]])
    w = token_weights("annotated", P4, M4, key_mask=key)
    assert_close(w, torch.tensor([[0.7, 0.3, 0.7, 0.3, 0.0]], dtype=torch.float64))
    w = token_weights("annotated", P4, M4, key_mask=key, rho=0.0)
    assert_close(w, torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.0]], dtype=torch.float64))


# ------------------------------------------------------------------------------------------
# Hard sampling (Algorithm 1)
# ------------------------------------------------------------------------------------------
# n = 10 valid tokens, 2 padding slots. frac 0.3 → s = floor(3 + 0.5) = 3.
# ascending: 0.05 (7), 0.1 (1), 0.2 (5), 0.3 (3), 0.4 (9), 0.5 (2), 0.6 (8), 0.7 (4), 0.8 (6), 0.9 (0)
P10 = _logps([[0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.05, 0.6, 0.4, 0.01, 0.99]])
M10 = torch.tensor([[True] * 10 + [False] * 2])


def _onehot(indices: list[int], T: int) -> torch.Tensor:
    w = torch.zeros(1, T, dtype=torch.float64)
    w[0, indices] = 1.0
    return w


def test_topk_bottomk_algorithm1() -> None:
    # TopK = L[0:3] = positions {7, 1, 5}; BottomK = L[7:10] = positions {4, 6, 0}.
    # The padding (p = 0.01 and 0.99) would be picked if it leaked in.
    assert_close(token_weights("topk", P10, M10), _onehot([1, 5, 7], 12))
    assert_close(token_weights("bottomk", P10, M10), _onehot([0, 4, 6], 12))


def test_hard_sampling_ties_and_rounding() -> None:
    # p = [0.5, 0.2, 0.5, 0.2, 0.5]; stable ascending sort: 0.2(1), 0.2(3), 0.5(0), 0.5(2), 0.5(4).
    logps = _logps([[0.5, 0.2, 0.5, 0.2, 0.5]])
    mask = torch.ones(1, 5, dtype=torch.bool)
    # frac 0.4: s = floor(2 + 0.5) = 2 → TopK L[0:2] = {1, 3}; BottomK L[3:5] = {2, 4}
    assert_close(token_weights("topk", logps, mask, frac=0.4), _onehot([1, 3], 5))
    assert_close(token_weights("bottomk", logps, mask, frac=0.4), _onehot([2, 4], 5))
    # frac 0.2: s = floor(1 + 0.5) = 1 → TopK {1} (first tie), BottomK {4} (last element)
    assert_close(token_weights("topk", logps, mask, frac=0.2), _onehot([1], 5))
    assert_close(token_weights("bottomk", logps, mask, frac=0.2), _onehot([4], 5))
    # frac 0.5: 2.5 rounds half UP to s = 3 (Python's round would give 2) → {1, 3, 0}
    assert_close(token_weights("topk", logps, mask, frac=0.5), _onehot([0, 1, 3], 5))
    # frac 1: every token
    assert_close(token_weights("bottomk", logps, mask, frac=1.0), torch.ones(1, 5).double())


def test_hard_sampling_short_rows_take_at_least_one() -> None:
    # Row 0: n = 2, frac 0.1 → floor(0.2 + 0.5) = 0 → s = max(1, 0) = 1.
    # Row 1: n = 1 (one-token answer) → s = 1. Row 2: n = 0 → nothing.
    logps = _logps([[0.3, 0.6, 0.9], [0.4, 0.2, 0.1], [0.5, 0.5, 0.5]])
    mask = torch.tensor([[True, True, False], [False, True, False], [False, False, False]])
    exp_top = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=torch.float64)
    exp_bottom = torch.tensor([[0.0, 1, 0], [0, 1, 0], [0, 0, 0]], dtype=torch.float64)
    assert_close(token_weights("topk", logps, mask, frac=0.1), exp_top)
    assert_close(token_weights("bottomk", logps, mask, frac=0.1), exp_bottom)


def test_random_sampling_is_seeded_exact_and_valid_only() -> None:
    gen = torch.Generator().manual_seed(3)
    logps = torch.rand(4, 20, generator=gen).log()
    lengths = torch.tensor([20, 13, 7, 1])
    mask = torch.arange(20)[None, :] < lengths[:, None]
    a = token_weights("random", logps, mask, seed=5)
    assert_close(a, token_weights("random", logps, mask, seed=5))  # deterministic
    # s = max(1, floor(0.3 n + 0.5)): n = 20 → 6, 13 → floor(4.4) = 4, 7 → floor(2.6) = 2, 1 → 1
    assert a.sum(dim=1).tolist() == [6.0, 4.0, 2.0, 1.0]
    assert (a[~mask] == 0).all() and set(a.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(a, token_weights("random", logps, mask, seed=6))  # seed matters
    # identical rows draw independently
    same = torch.ones(2, 20, dtype=torch.bool)
    b = token_weights("random", torch.zeros(2, 20), same, seed=0)
    assert not torch.equal(b[0], b[1])


# ------------------------------------------------------------------------------------------
# Properties shared by every criterion
# ------------------------------------------------------------------------------------------
def _cases() -> list[tuple[str, str]]:
    cases = [(c, g) for c in CRITERIA for g in ("token", "group")]
    return cases + [(c, g) for c in SOFT for g in ("instance", "batch")]


@pytest.mark.parametrize(("criterion", "granularity"), _cases())
@pytest.mark.parametrize("tau", [None, 0.5])
def test_masked_positions_have_no_effect_and_no_grad(
    criterion: str, granularity: str, tau: float | None
) -> None:
    gen = torch.Generator().manual_seed(0)
    logps = torch.rand(3, 6, generator=gen).log()
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]).bool()
    kw = {"granularity": granularity, "tau": tau, **_extra(criterion, mask)}
    base = token_weights(criterion, logps, mask, **kw)
    for garbage in (-math.inf, 0.0, 5.0, -1e4):
        noisy = logps.masked_fill(~mask, garbage).requires_grad_(True)
        w = token_weights(criterion, noisy, mask, **kw)
        assert_close(w, base)
        assert not w.requires_grad and w.grad_fn is None
    assert torch.isfinite(base).all()
    assert (base[~mask] == 0).all()  # includes the all-masked row
    # one-token answer (row 1): hard picks it; group/instance keep the token-level value
    assert base[1, 0] >= 0


@pytest.mark.parametrize("criterion", list(CRITERIA))
def test_all_masked_batch_is_zero(criterion: str) -> None:
    logps = torch.full((2, 3), -math.inf)
    mask = torch.zeros(2, 3, dtype=torch.bool)
    grans = ("token", "group", "instance", "batch") if criterion in SOFT else ("token", "group")
    for granularity in grans:
        for tau in (None, 1.0):
            w = token_weights(
                criterion, logps, mask, granularity=granularity, tau=tau, **_extra(criterion, mask)
            )
            assert_close(w, torch.zeros(2, 3))


def test_dtype_follows_logps() -> None:
    assert token_weights("satimp", P4.float(), M4).dtype == torch.float32
    assert token_weights("satimp", P4, M4).dtype == torch.float64


# ------------------------------------------------------------------------------------------
# Granularity
# ------------------------------------------------------------------------------------------
def test_group_granularity_by_hand() -> None:
    # simsat beta=1 → w = p = [0.1, 0.9, 0.5, 0.3, 0.7] (+ a padding slot).
    # Sorted descending: 0.9 (1), 0.7 (4) | 0.5 (2), 0.3 (3) | 0.1 (0); G = 2
    # group means: 0.8, 0.4, 0.1 → [0.1, 0.8, 0.4, 0.4, 0.8]
    logps = _logps([[0.1, 0.9, 0.5, 0.3, 0.7, 1.0]])
    mask = torch.tensor([[True] * 5 + [False]])
    w = token_weights("wga", logps, mask, granularity="group", group_size=2)
    assert_close(w, torch.tensor([[0.1, 0.8, 0.4, 0.4, 0.8, 0.0]], dtype=torch.float64))
    # G = 3: {0.9, 0.7, 0.5} → 0.7; {0.3, 0.1} → 0.2
    w = token_weights("wga", logps, mask, granularity="group", group_size=3)
    assert_close(w, torch.tensor([[0.2, 0.7, 0.7, 0.2, 0.7, 0.0]], dtype=torch.float64))
    # G = 1 is token level; G >= n is the row mean (2.5 / 5 = 0.5)
    token = token_weights("wga", logps, mask)
    assert_close(token_weights("wga", logps, mask, granularity="group", group_size=1), token)
    w = group_mean(token, mask, 8)
    assert_close(w, torch.tensor([[0.5] * 5 + [0.0]], dtype=torch.float64))


def test_instance_and_batch_granularity_by_hand() -> None:
    # Row 0: p = [0.5, 0.5] → S = 2 ln 2, P = 0.25. Row 1: p = [0.8] → P = 0.8. Row 2: empty.
    logps = _logps([[0.5, 0.5], [0.8, 0.1], [0.3, 0.3]])
    mask = torch.tensor([[True, True], [True, False], [False, False]])

    def expected(w0: float, w1: float) -> torch.Tensor:
        return torch.tensor([[w0, w0], [w1, 0.0], [0.0, 0.0]], dtype=torch.float64)

    inst = {"granularity": "instance"}
    # wga (beta=1): P; simimp beta=1: 1 − P; satimp 1,1: P(1 − P) = 0.1875, 0.16
    assert_close(token_weights("wga", logps, mask, **inst), expected(0.25, 0.8))
    assert_close(token_weights("simimp", logps, mask, beta=1.0, **inst), expected(0.75, 0.2))
    w = token_weights("satimp", logps, mask, beta1=1.0, beta2=1.0, **inst)
    assert_close(w, expected(0.1875, 0.16))
    # simsat beta=2: P² = 0.0625, 0.64
    assert_close(token_weights("wga", logps, mask, beta=2.0, **inst), expected(0.0625, 0.64))
    # batch: mean over the two non-empty rows: (0.25 + 0.8) / 2 = 0.525; simimp (0.75+0.2)/2
    assert_close(token_weights("wga", logps, mask, granularity="batch"), expected(0.525, 0.525))
    w = token_weights("simimp", logps, mask, beta=1.0, granularity="batch")
    assert_close(w, expected(0.475, 0.475))


# ------------------------------------------------------------------------------------------
# Temperature
# ------------------------------------------------------------------------------------------
def test_tau_by_hand_and_limits() -> None:
    # simsat beta=1 → f = p = [0.5, 0.25, 1.0] (n = 3, one padding slot).
    logps = _logps([[0.5, 0.25, 1.0, 0.7]])
    mask = torch.tensor([[True, True, True, False]])
    # tau = 1: w_k = 3 e^{f_k} / (e^0.5 + e^0.25 + e^1)
    z = math.exp(0.5) + math.exp(0.25) + math.exp(1.0)
    exp = [3 * math.exp(0.5) / z, 3 * math.exp(0.25) / z, 3 * math.exp(1.0) / z, 0.0]
    w = token_weights("wga", logps, mask, tau=1.0)
    assert_close(w, torch.tensor([exp], dtype=torch.float64))
    assert_close(w.sum(), torch.tensor(3.0, dtype=torch.float64))  # mean weight 1
    # tau → ∞: uniform 1 (= GA); tau → 0: all n = 3 on the max (position 2)
    big = token_weights("wga", logps, mask, tau=1e9)
    assert_close(big, torch.tensor([[1.0, 1.0, 1.0, 0.0]], dtype=torch.float64))
    small = token_weights("wga", logps, mask, tau=1e-300)
    assert_close(small, torch.tensor([[0.0, 0.0, 3.0, 0.0]], dtype=torch.float64))
    # one-token row: n · softmax = 1
    one = token_weights("wga", logps, torch.tensor([[False, True, False, False]]), tau=0.1)
    assert_close(one, torch.tensor([[0.0, 1.0, 0.0, 0.0]], dtype=torch.float64))


def test_tau_applies_after_granularity() -> None:
    logps = _logps([[0.1, 0.9, 0.5, 0.3, 0.7]])
    mask = torch.ones(1, 5, dtype=torch.bool)
    grouped = token_weights("satimp", logps, mask, granularity="group", group_size=2)
    w = token_weights("satimp", logps, mask, granularity="group", group_size=2, tau=0.3)
    assert_close(w, temperature_smooth(grouped, mask, 0.3))


# ------------------------------------------------------------------------------------------
# weight_stats
# ------------------------------------------------------------------------------------------
def test_weight_stats() -> None:
    # simsat on p = [0.5, 0.25, 1, 0]: mean 1.75/4 = 0.4375, min 0, max 1; w = p → corr = +1
    w = token_weights("wga", P4, M4)
    stats = weight_stats(w, P4, M4)
    assert stats == pytest.approx({"mean": 0.4375, "min": 0.0, "max": 1.0, "corr": 1.0})
    # importance: decreasing in p → negative correlation; GA: constant → 0
    assert weight_stats(token_weights("simimp", P4, M4), P4, M4)["corr"] < 0
    assert weight_stats(token_weights("satimp", P4, M4, beta2=0.0), P4, M4)["corr"] > 0
    assert weight_stats(token_weights("ga", P4, M4), P4, M4)["corr"] == 0.0
    empty = torch.zeros_like(M4)
    assert weight_stats(w, P4, empty) == {"mean": 0.0, "min": 0.0, "max": 0.0, "corr": 0.0}


# ------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("criterion", "kwargs", "match"),
    [
        ("nope", {}, "unknown criterion 'nope'; valid: ga, simsat, wga, simimp, satimp"),
        ("satimp", {"beta": 1.0}, r"unknown parameter.*'beta'.*valid: beta1, beta2"),
        ("ga", {"beta": 1.0}, "valid: none"),
        ("simsat", {"beta": -1.0}, "beta=-1.0 out of range; need beta >= 0"),
        ("satimp", {"beta2": float("nan")}, "need beta2 >= 0"),
        ("topk", {"frac": 0.0}, "need 0 < frac <= 1"),
        ("bottomk", {"frac": 1.5}, "need 0 < frac <= 1"),
        ("random", {"seed": 1.5}, "seed an integer"),
        ("annotated", {"rho": 1.2, "key_mask": M4}, "need 0 <= rho <= 1"),
        ("annotated", {}, "needs key_mask"),
        ("simsat", {"group_size": 0}, "need an integer group_size >= 1"),
        ("simsat", {"tau": 0.0}, "need tau > 0"),
        ("simsat", {"tau": -2.0}, "need tau > 0"),
        ("simsat", {"granularity": "word"}, "unknown granularity 'word'; valid: token, group"),
        ("topk", {"granularity": "instance"}, "token or group granularity only"),
        ("annotated", {"granularity": "batch", "key_mask": M4}, "token or group granularity"),
    ],
)
def test_errors_name_the_problem(criterion: str, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        token_weights(criterion, P4, M4, **kwargs)


def test_bad_shapes_rejected() -> None:
    with pytest.raises(ValueError, match="bool mask"):
        token_weights("ga", P4, M4.float())
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        token_weights("ga", P4[0], M4[0])


# ------------------------------------------------------------------------------------------
# Mutation-testing additions
# ------------------------------------------------------------------------------------------
def test_group_short_group_holds_the_lowest_weights() -> None:
    """Groups are cut from the weights sorted DESCENDING, so when n is not a multiple of G the
    short last group holds the lowest weights (SPEC §1 observation iii).

    wga → w = p = [0.1, 0.9, 0.5, 0.3, 0.7], n = 5, G = 2, no padding:
    descending 0.9 (1), 0.7 (4) | 0.5 (2), 0.3 (3) | 0.1 (0) → means 0.8, 0.4, 0.1
    → [0.1, 0.8, 0.4, 0.4, 0.8]. (Cutting an ascending sort would give {0.1, 0.3} → 0.2,
    {0.5, 0.7} → 0.6, {0.9} → 0.9.) Row 1 is the same with two padding slots in front; padding
    must not shift the cut either.
    Tolerance: float64 sums of three numbers of order 1 → assert_close's float64 default."""
    logps = _logps([[0.1, 0.9, 0.5, 0.3, 0.7, 1.0, 1.0], [0.6, 0.6, 0.1, 0.9, 0.5, 0.3, 0.7]])
    mask = torch.tensor([[True] * 5 + [False] * 2, [False] * 2 + [True] * 5])
    w = token_weights("wga", logps, mask, granularity="group", group_size=2)
    expected = [[0.1, 0.8, 0.4, 0.4, 0.8, 0.0, 0.0], [0.0, 0.0, 0.1, 0.8, 0.4, 0.4, 0.8]]
    assert_close(w, torch.tensor(expected, dtype=torch.float64))


def test_batch_granularity_with_one_nonempty_sequence_is_its_instance_weight() -> None:
    """Batch weight = mean of w_i over the sequences WITH tokens: with one non-empty row (and
    one empty row) it is that row's instance weight, not half of it.
    Row 0: p = [0.5, 0.5] → P = 0.25 → wga (β = 1) w = 0.25 on both tokens; row 1 empty → 0."""
    logps = _logps([[0.5, 0.5], [0.3, 0.3]])
    mask = torch.tensor([[True, True], [False, False]])
    expected = torch.tensor([[0.25, 0.25], [0.0, 0.0]], dtype=torch.float64)
    assert_close(token_weights("wga", logps, mask, granularity="batch"), expected)
    assert_close(token_weights("wga", logps[:1], mask[:1], granularity="batch"), expected[:1])


@pytest.mark.parametrize("criterion", list(CRITERIA))
def test_criterion_functions_return_the_dtype_of_logps(criterion: str) -> None:
    """Each CRITERIA entry's fn, called directly (as `_sequence_weights` does for soft
    criteria), returns [B, T] weights in logps' dtype (≥ float32): float64 logps → float64
    weights, float32 → float32. Checked on P4/M4 with the criterion's defaults."""
    spec = CRITERIA[criterion]
    for dtype in (torch.float64, torch.float32):
        w = spec.fn(P4.to(dtype), M4, **spec.defaults, **_extra(criterion, M4))
        assert w.shape == P4.shape
        assert w.dtype == dtype, (criterion, dtype, w.dtype)


def test_annotated_and_soft_random_weights_are_exact_in_float64() -> None:
    """With float64 log-probs the weights are ρ, 1 − ρ and soft_p, 1 − soft_p to float64
    precision (0.3 in float32 is 0.30000001192…, 1.2e−8 off): they were built in float32
    and cast afterwards."""
    logps = torch.zeros(1, 4, dtype=torch.float64)
    mask = torch.tensor([[True, True, True, False]])
    key_mask = torch.tensor([[True, False, True, True]])
    w = W.annotated_weights(logps, mask, key_mask=key_mask, rho=0.3)
    assert w.tolist() == [[1.0 - 0.3, 0.3, 1.0 - 0.3, 0.0]]
    r = W.random_weights(logps, mask, frac=0.34, seed=0, soft_p=0.3)
    assert sorted(r[0, :3].tolist()) == [0.3, 1.0 - 0.3, 1.0 - 0.3] and r[0, 3].item() == 0.0


def test_hard_sampling_ties_on_a_long_row_keep_position_order() -> None:
    """Ties are broken by position on rows of any length (the sort is stable): 20 valid tokens
    all with p = 0.5 (a flat row), frac 0.3 → s = floor(6 + 0.5) = 6. The ascending stable sort
    is the identity, so TopK = L[0:6] = positions 0..5 and BottomK = L[14:20] = 14..19. (An
    unstable sort reorders equal keys on rows of 17 or more and takes other positions.)
    Group level, G = 6, on weights 0.9 then 19 × 0.5: descending stable order 0, 1, 2, …, so
    group 0 = {0.9, 0.5 at 1..5} → 3.4/6 = 17/30, every later 0.5 keeps 0.5."""
    logps = torch.full((1, 20), math.log(0.5), dtype=torch.float64)
    mask = torch.ones(1, 20, dtype=torch.bool)
    assert_close(token_weights("topk", logps, mask), _onehot(list(range(6)), 20))
    assert_close(token_weights("bottomk", logps, mask), _onehot(list(range(14, 20)), 20))
    weights = torch.tensor([[0.9] + [0.5] * 19], dtype=torch.float64)
    expected = torch.tensor([[17 / 30] * 6 + [0.5] * 14], dtype=torch.float64)
    assert_close(group_mean(weights, mask, 6), expected)


def test_sample_sizes_by_hand() -> None:
    """Algorithm 1's s per row [B, 1], frac 0.3: n = 5 → floor(1.5 + 0.5) = 2; n = 1 →
    max(1, floor(0.8)) = 1; n = 0 → 0 (an empty row samples nothing)."""
    mask = torch.tensor([[True] * 5, [True] + [False] * 4, [False] * 5])
    assert W._sample_sizes(mask, 0.3).tolist() == [[2], [1], [0]]


def test_random_weights_default_is_the_hard_form_and_draws_float64_keys() -> None:
    """Called directly without soft_p, random_weights is the hard form (soft_p = 1): weights in
    {0, 1}, s per row. The draw is the seed's float64 uniform keys [B, T] (torch.rand on a CPU
    generator), each row taking its s smallest valid keys; a float32 draw from the same seed
    picks other tokens, so recorded seeds would not reproduce.
    Row 0: n = 8 → s = floor(2.4 + 0.5) = 2; row 1: n = 5 (last three padding) → s = 2."""
    logps = torch.zeros(2, 8, dtype=torch.float64)
    mask = torch.tensor([[True] * 8, [True] * 5 + [False] * 3])
    w = W.random_weights(logps, mask, frac=0.3, seed=4)
    keys = torch.rand(2, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    keys = keys.masked_fill(~mask, math.inf)
    expected = torch.zeros(2, 8, dtype=torch.float64)
    expected.scatter_(1, keys.argsort(dim=1)[:, :2], 1.0)
    assert_close(w, expected)
    assert w.sum(dim=1).tolist() == [2.0, 2.0]


def test_weights_follow_the_device_of_their_inputs() -> None:
    """Every tensor built inside lives on the inputs' device: on the `meta` device (shapes, no
    data; stands in for a GPU here) each criterion at token and group level, with tau, and
    random's soft form, runs without a device mismatch and returns [B, T] weights there."""
    logps = torch.zeros(2, 5, device="meta")
    mask = torch.ones(2, 5, dtype=torch.bool, device="meta")
    for criterion in CRITERIA:
        extra = {"key_mask": mask} if CRITERIA[criterion].needs_key_mask else {}
        for granularity in ("token", "group"):
            w = token_weights(criterion, logps, mask, granularity=granularity, tau=0.5, **extra)
            assert w.device.type == "meta" and w.shape == (2, 5)
    w = token_weights("random", logps, mask, soft_p=0.3)
    assert w.device.type == "meta" and w.shape == (2, 5)


def test_sequence_weights_by_hand() -> None:
    """w_i = f(P_i) per row [B, 1]. wga (β = 1): row 0 p = [0.5, 0.5] → P = 0.25; row 1 has no
    valid token → 0 (not f(P = e^0 = 1) = 1, which its zeroed log-probs would give)."""
    logps = _logps([[0.5, 0.5], [0.3, 0.3]])
    mask = torch.tensor([[True, True], [False, False]])
    w = W._sequence_weights(CRITERIA["wga"], logps, mask, beta=1.0)
    assert_close(w, torch.tensor([[0.25], [0.0]], dtype=torch.float64))


def test_tau_normalises_each_row_on_its_own() -> None:
    """Rows are smoothed independently: each by its own max and its own count n.
    f = [[1e9, 0, 0], [1, 0, (7 padding)]], τ = 1e−300 (→ hard top-1 per row; a normal float:
    1e−308 is subnormal, and a process whose training flushed denormals reads it as 0):
    row 0: z = (f − 1e9)/τ = [0, −inf, −inf] → 3 · [1, 0, 0] = [3, 0, 0];
    row 1: z = (f − 1)/τ = [0, −1e300, pad] → 2 · [1, 0] = [2, 0, 0].
    Shifting row 1 by row 0's max (1e9) would overflow both its entries to −inf (NaN), and so
    would f + max (2e9/τ = inf); scaling by the batch count (5) would give 5 on both maxima.
    Tolerance: exact 0/1 softmax values times n → assert_close's float64 default."""
    f = torch.tensor([[1e9, 0.0, 0.0], [1.0, 0.0, 7.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    w = temperature_smooth(f, mask, 1e-300)
    assert_close(w, torch.tensor([[3.0, 0.0, 0.0], [2.0, 0.0, 0.0]], dtype=torch.float64))
    # τ = 1 on rows [4, 0, 0] and [1, 0]: row 0 = 3 e^{[4, 0, 0]} / (e^4 + 2), row 1 =
    # 2 · [e, 1] / (e + 1)
    f = torch.tensor([[4.0, 0.0, 0.0], [1.0, 0.0, 7.0]], dtype=torch.float64)
    e = math.e
    r0 = [3 * e**4 / (e**4 + 2), 3 / (e**4 + 2), 3 / (e**4 + 2)]
    r1 = [2 * e / (e + 1), 2 / (e + 1), 0.0]
    assert_close(temperature_smooth(f, mask, 1.0), torch.tensor([r0, r1], dtype=torch.float64))


def test_weight_stats_corr_edge_cases() -> None:
    """corr (Pearson of w and p = exp(min(logp, 0))) over valid tokens.
    - Two tokens are enough: w = [0.2, 0.6] against p = [0.5, 0.25] → perfectly opposed, −1.
    - Constant w = 0.1 × 3 (whose float64 mean is off by 1.4e−17) or constant p = 0.7 × 3
      (likewise): undefined → exactly 0.0, not a ratio of rounding errors (~1e−16).
    - A positive logp (garbage on a valid token) reads as p = 1: logps [ln 0.5, 0, 2] and
      wga's own weights [0.5, 1, 1] are w = p → corr = 1 (p = e² would break the line).
    - Exactly linear data stays within [−1, 1]: w = 2p on p = [0.1, 0.2, 0.3] (the raw ratio
      rounds to 1 + 2.2e−16) → 1; simimp β = 1 (w = 1 − p) on p = [0.25, 0.5, 1] (raw
      −1 − 2.2e−16) → −1.
    - Tiny weights whose squares underflow: w = [0, 1e−200, 0, 1e−200] against
      p = [0.25, 0.25, 0.5, 0.5] are uncorrelated (Σ dw·dp = 0) → 0.0, never 0/0 = NaN."""

    def lp(p: list[float]) -> torch.Tensor:
        return _logps([p])

    def stats(w: list[float], logps: torch.Tensor) -> dict[str, float]:
        mask = torch.ones_like(logps, dtype=torch.bool)
        return weight_stats(torch.tensor([w], dtype=torch.float64), logps, mask)

    assert stats([0.2, 0.6], lp([0.5, 0.25]))["corr"] == pytest.approx(-1.0, abs=1e-12)
    assert stats([0.1, 0.1, 0.1], lp([0.5, 0.25, 1.0]))["corr"] == 0.0
    assert stats([0.1, 0.2, 0.7], lp([0.7, 0.7, 0.7]))["corr"] == 0.0
    garbage = torch.tensor([[math.log(0.5), 0.0, 2.0]], dtype=torch.float64)
    w = token_weights("wga", garbage, torch.ones(1, 3, dtype=torch.bool))
    assert w.tolist() == [[0.5, 1.0, 1.0]]
    assert stats(w[0].tolist(), garbage)["corr"] == pytest.approx(1.0, abs=1e-12)
    up = stats([0.2, 0.4, 0.6], lp([0.1, 0.2, 0.3]))["corr"]
    assert up <= 1.0 and up == pytest.approx(1.0, abs=1e-12)
    p = lp([0.25, 0.5, 1.0])
    w = token_weights("simimp", p, torch.ones(1, 3, dtype=torch.bool), beta=1.0)
    down = stats(w[0].tolist(), p)["corr"]
    assert down >= -1.0 and down == pytest.approx(-1.0, abs=1e-12)
    tiny = stats([0.0, 1e-200, 0.0, 1e-200], lp([0.25, 0.25, 0.5, 0.5]))
    assert tiny["corr"] == 0.0 and tiny["max"] == 1e-200
    # tiny weights that do rise with p (SimSat's p^5 on forgotten tokens): their squares
    # underflow unless scaled first; perfectly correlated → 1
    rising = stats([1e-200, 2e-200, 3e-200], lp([0.1, 0.2, 0.3]))["corr"]
    assert rising == pytest.approx(1.0, abs=1e-12)
