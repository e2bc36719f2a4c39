"""Membership-inference scores (satimp.metrics, SPEC §7) against values computed by hand.

Orientation: every score is higher for a more likely member; AUC = P(member > non-member)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from satimp import metrics as M


def test_loss_and_reference_scores_by_hand() -> None:
    """LOSS: s = −mean NLL. Reference: s = NLL_ref − NLL (1.5 − 1.0 = 0.5; 1.5 − 2.0 = −0.5)."""
    nll = torch.tensor([0.5, 1.0, 2.0])
    assert_close(M.loss_score(nll), torch.tensor([-0.5, -1.0, -2.0]))
    ref = torch.tensor([1.5, 1.5, 1.5])
    assert_close(M.reference_score(nll, ref), torch.tensor([1.0, 0.5, -0.5]))


def test_zlib_score_divides_by_the_compressed_length() -> None:
    """A zlib stream is a 2-byte header, the deflate data and a 4-byte Adler-32: b"" takes 8
    bytes (one empty final block, 2 bytes), b"a" 9. −0.8/8 = −0.1, −0.9/9 = −0.1; 100 bytes
    of "ab" compress to 13, so −1.3/13 = −0.1 as well, where the raw losses differ."""
    nll = torch.tensor([0.8, 0.9, 1.3])
    assert_close(M.zlib_score(nll, ["", "a", "ab" * 50]), torch.tensor([-0.1, -0.1, -0.1]))
    with pytest.raises(ValueError, match="2 texts for 3 scores"):
        M.zlib_score(nll, ["a", "b"])


def test_vocab_moments_by_hand() -> None:
    """Two tokens with p = (1/4, 3/4) (logits 0 and ln 3): μ = ¼·ln¼ + ¾·ln¾ = −0.562335;
    for two outcomes σ² = p(1−p)(ln p − ln(1−p))² = (3/16)(ln 3)² = 0.226303. Uniform logits over
    V tokens: μ = −ln V, σ² = 0."""
    mu, var = M.vocab_moments(torch.tensor([[0.0, math.log(3.0)], [2.0, 2.0]]))
    expected_mu = 0.25 * math.log(0.25) + 0.75 * math.log(0.75)
    assert_close(mu, torch.tensor([expected_mu, -math.log(2.0)]))
    assert_close(var, torch.tensor([3 / 16 * math.log(3.0) ** 2, 0.0]), atol=1e-6, rtol=0)
    assert abs(expected_mu - -0.562335) < 1e-6


def test_min_k_plus_plus_by_hand() -> None:
    """logps (−1, −2, −0.5), μ = −1 everywhere, σ² = (1, 4, 0): z = (0, −0.5, 0.5/√1e−6 = 500)
    (σ² floored at 1e−6). k = 0.4 of 3 tokens: m = max(1, ⌊1.2⌋) = 1, the lowest z, −0.5;
    k = 1: the mean, (0 − 0.5 + 500)/3 = 166.5. The masked fourth token never counts."""
    logps = torch.tensor([[-1.0, -2.0, -0.5, 9.0]])
    mu = torch.full_like(logps, -1.0)
    var = torch.tensor([[1.0, 4.0, 0.0, 1.0]])
    mask = torch.tensor([[True, True, True, False]])
    assert_close(M.min_k_plus_plus(logps, mu, var, mask, k=0.4), torch.tensor([-0.5]))
    assert_close(M.min_k_plus_plus(logps, mu, var, mask, k=1.0), torch.tensor([166.5]))


def test_min_k_plus_plus_equals_a_literal_loop_on_random_logits() -> None:
    """The vectorised score against a position-by-position computation from the definition."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 11, generator=g) * 3
    targets = torch.randint(0, 11, (3, 6), generator=g)
    mask = torch.rand(3, 6, generator=g) > 0.3
    mask[:, 0] = True
    logps = logits.log_softmax(-1).gather(-1, targets[..., None])[..., 0]
    mu, var = M.vocab_moments(logits)
    fast = M.min_k_plus_plus(logps, mu, var, mask, k=0.4)
    for b in range(3):
        z = []
        for t in range(6):
            if not mask[b, t]:
                continue
            p = [math.exp(x) for x in logits[b, t].log_softmax(-1).tolist()]
            lp = [math.log(x) for x in p]
            m1 = sum(pi * li for pi, li in zip(p, lp, strict=True))
            m2 = sum(pi * li * li for pi, li in zip(p, lp, strict=True))
            z.append((lp[targets[b, t]] - m1) / math.sqrt(max(m2 - m1 * m1, 1e-6)))
        m = max(1, int(len(z) * 0.4))
        assert fast[b].item() == pytest.approx(sum(sorted(z)[:m]) / m, rel=1e-4, abs=1e-5)


def test_grad_norm_score_by_hand() -> None:
    """Gradients (3, 4) and [[1, 0], [0, 0]], a third parameter without one: 2-norms 5 and 1,
    mean 3, s = −3; 1-norms 7 and 1, s = −4; ∞-norms 4 and 1, s = −2.5."""
    grads = [torch.tensor([3.0, 4.0]), torch.tensor([[1.0, 0.0], [0.0, 0.0]]), None]
    assert M.grad_norm_score(grads) == pytest.approx(-3.0)
    assert M.grad_norm_score(grads, p=1) == pytest.approx(-4.0)
    assert M.grad_norm_score(grads, p=math.inf) == pytest.approx(-2.5)
    with pytest.raises(ValueError, match="p must be"):
        M.grad_norm_score(grads, p=3)
    with pytest.raises(ValueError, match="no parameter"):
        M.grad_norm_score([None])


def test_auc_is_the_same_in_open_unlearnings_orientation_and_privleak_by_hand() -> None:
    """Members (−0.5, −0.2) against non-members (−1, −0.3): 3 of the 4 pairs have the member
    higher, AUC = 3/4. open-unlearning negates the scores and takes the holdout as positives:
    pairs (1 > 0.5, 1 > 0.2, 0.3 < 0.5, 0.3 > 0.2), again 3/4. privleak against a retain AUC of
    1/2: ((1 − 0.75) − (1 − 0.5)) / (1 − 0.5) × 100 = −50; equal AUCs give 0."""
    members, others = [-0.5, -0.2], [-1.0, -0.3]
    assert M.auc_roc(members, others) == pytest.approx(0.75)
    assert M.auc_roc([-x for x in others], [-x for x in members]) == pytest.approx(0.75)
    assert M.priv_leak_mia(0.75, 0.5) == pytest.approx(-50.0)
    assert M.priv_leak_mia(0.5, 0.5) == pytest.approx(0.0, abs=1e-12)


def test_min_k_plus_plus_default_k_is_0_4() -> None:
    """k defaults to 0.4, as in min_k_percent: z = (0, −0.5, 500) from the by-hand test, 3 tokens
    → m = max(1, ⌊1.2⌋) = 1 → −0.5."""
    logps = torch.tensor([[-1.0, -2.0, -0.5]])
    mu = torch.full_like(logps, -1.0)
    var = torch.tensor([[1.0, 4.0, 0.0]])
    assert_close(M.min_k_plus_plus(logps, mu, var), torch.tensor([-0.5]))


def test_priv_leak_mia_with_a_perfect_retain_auc() -> None:
    """AUC_retain = 1 leaves only the 1e−10 guard in the denominator:
    ((1 − 0.5) − 0) / (0 + 1e−10) × 100 = +5e11 (positive: the guard is added, not
    subtracted); AUC = AUC_retain = 1 gives 0 / 1e−10 = 0."""
    assert M.priv_leak_mia(0.5, 1.0) == pytest.approx(5e11, rel=1e-9)
    assert M.priv_leak_mia(1.0, 1.0) == 0.0


def test_zlib_score_follows_the_device_of_the_losses() -> None:
    """The compressed lengths move to the losses' device: on `meta` (shapes, no data; stands in
    for a GPU here) zlib_score runs without a device mismatch and returns [B] there."""
    score = M.zlib_score(torch.zeros(2, device="meta"), ["a", "bb"])
    assert score.device.type == "meta" and score.shape == (2,)
