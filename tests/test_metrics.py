"""Tests for satimp.metrics: hand-computed values, with the derivation beside each number."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from rouge_score import rouge_scorer
from torch.testing import assert_close

from satimp import metrics as M
from satimp.errors import InputError

T, F = True, False


# ------------------------------------------------------------------------- ES / EM / prob


def test_extraction_strength_hand_values() -> None:
    """Rows of 4 answer tokens, mask all True.

    all right           → k* = 0               → ES = 1
    last (index 3) wrong → k* = 1 + 3 = 4       → ES = 1 − 4/4 = 0
    index 1 wrong        → k* = 1 + 1 = 2       → ES = 1 − 2/4 = 0.5
    index 0 wrong only   → k* = 1               → ES = 1 − 1/4 = 0.75
    indices 0 and 2 wrong → last wrong is 2, k* = 3 → ES = 0.25
    """
    correct = torch.tensor([[T, T, T, T], [T, T, T, F], [T, F, T, T], [F, T, T, T], [F, T, F, T]])
    mask = torch.ones_like(correct)
    assert_close(M.extraction_strength(correct, mask), torch.tensor([1.0, 0.0, 0.5, 0.75, 0.25]))


def test_extraction_strength_uses_rank_among_masked_positions() -> None:
    """Left padding, gaps and ragged lengths in one batch; unmasked positions never count.

    row 0: left-padded, answer at positions 2..4 = [T, F, T] → last wrong index 1, k* = 2,
           ES = 1 − 2/3 = 1/3. The padding positions are wrong but unmasked.
    row 1: non-contiguous mask at positions 0, 2, 4 = [T, T, F] → k* = 3, ES = 0.
    row 2: answer of length 1 at position 0, correct → ES = 1.
    row 3: empty answer (all-False mask) → ES = 0 by convention.
    """
    correct = torch.tensor([[F, F, T, F, T], [T, F, T, F, F], [T, F, F, F, F], [T, T, T, T, T]])
    mask = torch.tensor([[F, F, T, T, T], [T, F, T, F, T], [T, F, F, F, F], [F, F, F, F, F]])
    assert_close(M.extraction_strength(correct, mask), torch.tensor([1 / 3, 0.0, 1.0, 0.0]))


def test_extraction_strength_equals_generation_based() -> None:
    """One-pass ES equals ES from greedy generation under a toy deterministic 'model'.

    The model's greedy next token is a hash of the whole prefix (so it depends on context).
    Generation-based k* = min{k : greedy from [x, y_<k] reproduces y_≥k}; ES = 1 − k*/|y|.
    """
    g = torch.Generator().manual_seed(0)
    vocab = 3  # small so that the model is often right

    def greedy(prefix: tuple[int, ...]) -> int:
        return hash(prefix) % vocab

    for _ in range(50):
        prompt = tuple(torch.randint(vocab, (2,), generator=g).tolist())
        n = int(torch.randint(1, 7, (1,), generator=g))
        y = tuple(torch.randint(vocab, (n,), generator=g).tolist())
        # occasionally make the answer the model's own greedy continuation
        if torch.rand(1, generator=g) < 0.3:
            seq = prompt
            for _ in range(n):
                seq += (greedy(seq),)
            y = seq[len(prompt) :]

        def reproduces(k: int, y: tuple[int, ...] = y, prompt: tuple[int, ...] = prompt) -> bool:
            seq = prompt + y[:k]
            for _ in range(len(y) - k):
                seq += (greedy(seq),)
            return seq[len(prompt) :] == y

        k_star = min(k for k in range(n + 1) if reproduces(k))  # k = n always reproduces
        expected = 1 - k_star / n
        correct = torch.tensor([[greedy(prompt + y[:i]) == y[i] for i in range(n)]])
        got = M.extraction_strength(correct, torch.ones_like(correct))
        assert_close(got, torch.tensor([expected]))


def test_exact_memorization() -> None:
    """row 0: 3 of 4 right → 0.75; row 1: masked [T, F] (the unmasked F ignored) → 0.5;
    row 2: empty → 0."""
    correct = torch.tensor([[T, F, T, T], [T, F, F, T], [T, T, T, T]])
    mask = torch.tensor([[T, T, T, T], [T, T, F, F], [F, F, F, F]])
    assert_close(M.exact_memorization(correct, mask), torch.tensor([0.75, 0.5, 0.0]))


def test_mean_nll_and_answer_prob() -> None:
    """row 0: logps over the mask = [log .5, log .25] → mean NLL = (log 2 + log 4)/2 = 1.5 log 2,
    prob = 2^-1.5; the unmasked NaN/-inf are ignored.
    row 1: single token log 0.9 → NLL = −log 0.9, prob = 0.9.
    row 2: empty → NLL = +inf, prob = 0."""
    nan, inf = math.nan, math.inf
    logps = torch.tensor(
        [[math.log(0.5), math.log(0.25), nan], [-inf, math.log(0.9), 0.0], [-1.0, -2.0, -3.0]]
    )
    mask = torch.tensor([[T, T, F], [F, T, F], [F, F, F]])
    assert_close(M.mean_nll(logps, mask), torch.tensor([1.5 * math.log(2), -math.log(0.9), inf]))
    assert_close(M.answer_prob(logps, mask), torch.tensor([2**-1.5, 0.9, 0.0]))


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="shape"):
        M.exact_memorization(torch.ones(2, 3, dtype=torch.bool), torch.ones(2, 4, dtype=torch.bool))


# ---------------------------------------------------------------- truth ratio, FQ, MU


def test_truth_ratio_with_eps_is_open_unlearnings_float64_arithmetic() -> None:
    """With ε (open-unlearning), R from float32 mean NLLs equals its numpy float64 formula
    exp(−mean_k nll_k) / (exp(−nll_base) + ε) to 1e-15 relative: the mean over the perturbed
    answers is taken in float64 too (in float32 it is ~1e-7 off for NLLs of a few nats)."""
    g = torch.Generator().manual_seed(0)
    base = (torch.rand(64, generator=g) * 8).float()
    pert = (torch.rand(64, 5, generator=g) * 8 + 0.123456).float()
    got = M.truth_ratio(base, pert, eps=1e-10)
    b, p = base.double().numpy(), pert.double().numpy()
    want = torch.from_numpy(np.exp(-p.mean(-1)) / (np.exp(-b) + 1e-10))
    assert got.dtype == torch.float64
    assert_close(got, want, rtol=1e-15, atol=0)


def test_truth_ratio_and_scores() -> None:
    """item 0: nll_para = 1, perturbed nll = [2, 4] → mean 3 → R = exp(1 − 3) = e^-2.
    item 1: nll_para = 2, perturbed [1, 1] → R = exp(1) = e.
    forget score = mean(min(R, 1/R)) = (e^-2 + e^-1)/2;
    other score = mean(max(0, 1 − R)) = ((1 − e^-2) + 0)/2."""
    r = M.truth_ratio(torch.tensor([1.0, 2.0]), torch.tensor([[2.0, 4.0], [1.0, 1.0]]))
    assert_close(r, torch.tensor([math.exp(-2), math.e]))
    e2, e1 = math.exp(-2), math.exp(-1)
    assert M.truth_ratio_score(r, forget=True) == pytest.approx((e2 + e1) / 2)
    assert M.truth_ratio_score(r, forget=False) == pytest.approx((1 - e2) / 2)
    # R = 1: forget score 1, non-forget score 0; R = 0: both edge values without errors
    assert M.truth_ratio_score([1.0], forget=True) == pytest.approx(1.0)
    assert M.truth_ratio_score([0.0], forget=True) == 0.0
    assert M.truth_ratio_score([0.0], forget=False) == 1.0
    with pytest.raises(ValueError):
        M.truth_ratio_score([], forget=True)


def test_normalized_true_prob() -> None:
    """item 0: p_true = e^-1, p_pert = [e^-2, e^-3] → e^-1/(e^-1 + e^-2 + e^-3) = 1/(1 + e^-1 + e^-2).
    item 1: very large NLLs (probabilities underflow to 0 in float32) with equal values:
    the softmax still gives 1/3. item 2: everything +inf → 0 by convention."""
    inf = math.inf
    got = M.normalized_true_prob(
        torch.tensor([1.0, 500.0, inf]), torch.tensor([[2.0, 3.0], [500.0, 500.0], [inf, inf]])
    )
    expected = torch.tensor([1 / (1 + math.exp(-1) + math.exp(-2)), 1 / 3, 0.0])
    assert_close(got, expected)


def test_epsilon_in_ratios_by_hand() -> None:
    """open-unlearning's ε = 1e-10 (tr_eps): R = P̄/(P_base + ε), forget score min(R, 1/(R+ε)),
    normalised probability p/(p + Σp_k + ε). Item 0: P_base = e^-23 ≈ 1.03e-10, perturbed
    nll [22, 24] → P̄ = e^-23 → R = e^-23/(e^-23 + 1e-10) ≈ 0.507, not 1. Item 1: the
    probabilities are ~0.37, so ε changes nothing visible. Item 2: P_base underflows even in
    float64 → R = P̄/ε, finite, where ε = 0 gives inf."""
    eps, p = 1e-10, math.exp(-23)
    base = torch.tensor([23.0, 1.0, 800.0])
    pert = torch.tensor([[22.0, 24.0], [1.0, 1.0], [20.0, 20.0]])
    r = M.truth_ratio(base, pert, eps=eps)
    expected = [p / (p + eps), math.exp(-1) / (math.exp(-1) + eps), math.exp(-20) / eps]
    for got, want in zip(r.tolist(), expected, strict=True):
        assert got == pytest.approx(want, rel=1e-12)
    assert M.truth_ratio(base, pert)[:2].tolist() == pytest.approx([1.0, 1.0], rel=1e-6)
    assert M.truth_ratio(base, pert)[2].item() == math.inf
    # forget: min(R, 1/(R + ε)) per item
    ratios = [0.5, 2.0, 1e-12]
    want = (0.5 + 1 / (2.0 + eps) + 1e-12) / 3
    assert M.truth_ratio_score(ratios, forget=True, eps=eps) == pytest.approx(want, rel=1e-12)
    assert M.truth_ratio_score([0.0], forget=True, eps=eps) == 0.0
    # normalised probability: e^-23 / (e^-23 + 2·e^-30 + ε)
    q = M.normalized_true_prob(torch.tensor([23.0]), torch.tensor([[30.0, 30.0]]), eps=eps)
    assert q.item() == pytest.approx(p / (p + 2 * math.exp(-30) + eps), rel=1e-12)
    assert M.normalized_true_prob(torch.tensor([23.0]), torch.tensor([[30.0, 30.0]])).item() == (
        pytest.approx(p / (p + 2 * math.exp(-30)), rel=1e-6)
    )


def test_epsilon_decides_collapsed_cases_by_hand() -> None:
    """Where ε is not a rounding detail: a collapsed model, whose answers are all equally
    (un)likely, at probabilities near ε, and a model whose probabilities are all 0.

    All-equal probabilities p = ε = 1e-10 (mean NLL −ln 1e-10 ≈ 23.03 for every answer), K = 2
    perturbed answers:
    - truth ratio R = P̄/(P_base + ε) = p/(p + p) = 1/2, where ε = 0 gives p/p = 1;
    - normalised probability p/(p + 2p + ε) = p/(4p) = 1/4, where ε = 0 gives 1/3.
    All probabilities 0 (NLL +inf): R = 0/(0 + ε) = 0, a finite ratio whose forget score is
    min(0, 1/ε) = 0; with ε = 0 the ratio is 0/0 (NaN).
    The forget score's own ε: R = [2, 1/2] (a model preferring a perturbed answer twice as
    much, and one preferring the true answer), ε = 1/2: min(2, 1/2.5) = 0.4 and min(1/2, 1/1)
    = 1/2 → mean 0.45, where ε = 0 gives min(2, 1/2) = 1/2 and 1/2 → 0.5.
    Tolerances: float64 throughout, values of order 1 → abs 1e-12 (ε's effects are ≥ 0.05)."""
    eps = 1e-10
    nll = -math.log(eps)
    base = torch.tensor([nll], dtype=torch.float64)
    pert = torch.tensor([[nll, nll]], dtype=torch.float64)
    for mean in M.TR_MEANS:  # the perturbed answers are equal: both means give P̄ = p
        assert M.truth_ratio(base, pert, mean=mean, eps=eps).item() == pytest.approx(0.5, abs=1e-12)
        assert M.truth_ratio(base, pert, mean=mean).item() == pytest.approx(1.0, abs=1e-12)
    assert M.normalized_true_prob(base, pert, eps=eps).item() == pytest.approx(0.25, abs=1e-12)
    assert M.normalized_true_prob(base, pert).item() == pytest.approx(1 / 3, abs=1e-12)

    inf = torch.tensor([math.inf], dtype=torch.float64)
    zero = M.truth_ratio(inf, torch.tensor([[math.inf, math.inf]], dtype=torch.float64), eps=eps)
    assert zero.item() == 0.0
    assert M.truth_ratio_score(zero, forget=True, eps=eps) == 0.0
    assert math.isnan(M.truth_ratio(inf, torch.tensor([[math.inf, math.inf]])).item())

    assert M.truth_ratio_score([2.0, 0.5], forget=True, eps=0.5) == pytest.approx(0.45, abs=1e-12)
    assert M.truth_ratio_score([2.0, 0.5], forget=True) == pytest.approx(0.5, abs=1e-12)


def test_forget_quality() -> None:
    """Identical samples → KS statistic 0 → p = 1. Disjoint samples of 30 → statistic 1 →
    exact p = 2/C(60, 30) ≈ 2e-17."""
    a = torch.linspace(0.1, 0.9, 30)
    assert M.forget_quality(a, a.clone()) == pytest.approx(1.0)
    assert M.forget_quality(a, a + 10.0) < 1e-6
    with pytest.raises(ValueError):
        M.forget_quality([], [1.0])


def test_model_utility() -> None:
    """H(0.5, 1) = 2/(2 + 1) = 2/3; H(x, x, x) = x; any zero → 0; negatives and empty raise."""
    assert M.model_utility([0.5, 1.0]) == pytest.approx(2 / 3)
    assert M.model_utility({"a": 0.3, "b": 0.3, "c": 0.3}) == pytest.approx(0.3)
    assert M.model_utility([0.5, 0.0, 1.0]) == 0.0
    with pytest.raises(ValueError):
        M.model_utility([0.5, -0.1])
    with pytest.raises(ValueError):
        M.model_utility([])


# --------------------------------------------------------------------------------- ROUGE

ROUGE_PAIRS = [
    ("The cat sat on the mat.", "the cat is on the mat"),
    ("He was running and runs daily", "He runs; he ran, running fast"),
    ("", "a reference"),
    ("a prediction", ""),
    ("", ""),
    ("!!! ... ???", "punctuation only"),
    ("Born in 1984, she wrote 3 novels.", "She was born in 1984 and wrote three novels"),
    ("the the the the", "the cat the dog the"),
    ("Dying skies and the NEWS proceed", "dying sky news proceeds"),
    ("Jean-Luc's café—naïve résumé", "jean luc s cafe naive resume"),
    ("Generously, happily, fairly owned", "generous happy fair owner"),
    ("Tab\tseparated\nnew-lines", "tab separated new lines"),
    ("x", "x"),
    ("Completely different words here", "nothing in common at all"),
    ("a b c d e f g", "g f e d c b a"),
    ("The author's books include 'Shadows of the Past' (2001).", "Shadows of the Past, 2001"),
]


@pytest.mark.parametrize("stem", [True, False])
def test_rouge_l_matches_rouge_score(stem: bool) -> None:
    """Precision, recall and F equal rouge_score's RougeScorer(['rougeL'], use_stemmer=stem);
    note its score(target, prediction) argument order."""
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stem)
    for pred, ref in ROUGE_PAIRS:
        want = scorer.score(ref, pred)["rougeL"]
        got = M.rouge_l(pred, ref, stem=stem)
        assert (got.precision, got.recall, got.fmeasure) == pytest.approx(
            (want.precision, want.recall, want.fmeasure)
        ), (pred, ref)
        if stem:
            assert M.rouge_l_recall(pred, ref) == pytest.approx(want.recall)
            assert M.rouge_l_f1(pred, ref) == pytest.approx(want.fmeasure)


def test_rouge_l_hand_value() -> None:
    """pred 'the cat sat on the mat' (6), ref 'the cat is on the mat' (6): LCS = the cat on the
    mat = 5 → P = R = F = 5/6."""
    s = M.rouge_l("The cat sat on the mat.", "the cat is on the mat")
    assert (s.precision, s.recall, s.fmeasure) == pytest.approx((5 / 6, 5 / 6, 5 / 6))


# ------------------------------------------------------------------------- MUSE and WMDP


def test_min_k_percent() -> None:
    """row 0: 5 tokens, k = 0.4 → m = floor(2.0) = 2 lowest of [-1,-5,-2,-4,-3] = -5,-4 → -4.5.
    row 1: mask keeps 2 tokens [-1, -3] → m = max(1, floor(0.8)) = 1 → -3 (the masked -9 ignored).
    row 2: empty → -inf. 1-D input gives a 0-dim result."""
    logps = torch.tensor(
        [[-1.0, -5.0, -2.0, -4.0, -3.0], [-1.0, -9.0, -3.0, 0.0, 0.0]] + [[0.0] * 5]
    )
    mask = torch.tensor([[T] * 5, [T, F, T, F, F], [F] * 5])
    assert_close(M.min_k_percent(logps, mask, k=0.4), torch.tensor([-4.5, -3.0, -math.inf]))
    one = M.min_k_percent(logps[0], k=0.4)
    assert one.dim() == 0
    assert_close(one, torch.tensor(-4.5))
    # k = 1 is the mean log-prob over the answer
    assert_close(M.min_k_percent(logps[:1], k=1.0), torch.tensor([-3.0]))


def test_auc_roc_and_priv_leak() -> None:
    """Perfect separation → 1; reversed → 0; identical → 0.5 (all ties).
    pos [1, 2], neg [2, 0]: pairs (1>2 no, 1>0 yes, 2=2 half, 2>0 yes) → 2.5/4 = 0.625."""
    assert M.auc_roc([3.0, 4.0], [1.0, 2.0]) == 1.0
    assert M.auc_roc(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])) == 0.0
    assert M.auc_roc([1.0, 1.0, 1.0], [1.0, 1.0]) == 0.5
    assert M.auc_roc([1.0, 2.0], [2.0, 0.0]) == pytest.approx(0.625)
    # PrivLeak: (0.6 − 0.5)/0.5 × 100 = 20 (under-unlearning); (0.4 − 0.5)/0.5 × 100 = −20
    assert M.priv_leak(0.6, 0.5) == pytest.approx(20.0)
    assert M.priv_leak(0.4, 0.5) == pytest.approx(-20.0)
    assert M.priv_leak(0.5, 0.5) == 0.0


def test_mcq_accuracy() -> None:
    """Item 0 argmax = 2 (right); item 1 argmax = 0 (wrong, answer 1); item 2 has a padded
    option 3 at -inf and argmax 1 (right) → 2/3. Masking option 0 of item 1 leaves option 1
    as argmax → 3/3."""
    inf = math.inf
    ll = torch.tensor(
        [[-3.0, -2.0, -1.0, -4.0], [-1.0, -2.0, -3.0, -4.0], [-2.0, -1.0, -3.0, -inf]]
    )
    answers = torch.tensor([2, 1, 1])
    assert M.mcq_accuracy(ll, answers) == pytest.approx(2 / 3)
    option_mask = torch.tensor([[T, T, T, T], [F, T, T, T], [T, T, T, F]])
    assert M.mcq_accuracy(ll, answers, option_mask) == pytest.approx(1.0)


# ------------------------------------------------------------------------------ the table


def test_metrics_table_and_unknown_name() -> None:
    assert set(M.METRICS) == {"es", "em", "prob", "rouge", "truth_ratio"}
    assert M.get_metric("es").fn is M.extraction_strength
    assert M.get_metric("es").higher_is_better is True
    assert "forget" in M.get_metric("es").help
    with pytest.raises(InputError) as err:
        M.get_metric("bleu")
    for name in M.METRICS:
        assert name in str(err.value)


# ------------------------------------------------------------- mutation-testing additions


def test_min_k_percent_default_k_one_token_rows_and_bad_k() -> None:
    """k defaults to 0.4 (MUSE): 5 tokens [-1, -5, -2, -4, -3] → m = floor(2.0) = 2 lowest
    = -5, -4 → -4.5, the same as k = 0.4 given explicitly.
    A one-token answer is a real answer, not an empty one: n = 1 → m = max(1, floor(0.4)) = 1
    → its own log-prob (-0.7), never the empty row's -inf.
    k outside (0, 1] is refused, with a message that names k: k = 0 would silently become
    m = 1 through the clamp, and k = 1.5 would ask for more tokens than the row has."""
    logps = torch.tensor([[-1.0, -5.0, -2.0, -4.0, -3.0], [-0.7, -9.0, -9.0, -9.0, -9.0]])
    mask = torch.tensor([[T] * 5, [T, F, F, F, F]])
    assert_close(M.min_k_percent(logps, mask), torch.tensor([-4.5, -0.7]))
    assert_close(M.min_k_percent(logps[1, :1]), torch.tensor(-0.7))
    for bad in (0.0, -0.2, 1.5):
        with pytest.raises(ValueError, match="k must be in"):
            M.min_k_percent(logps, mask, k=bad)


def test_auc_roc_single_scores_and_empty_sides() -> None:
    """One score per side is a valid sample: pos [2] vs neg [1] → the one pair is ordered →
    AUC = 1; pos [1] vs neg [2, 0.5] → 1 of 2 pairs → 0.5. An empty side (either one) has no
    pairs, so AUC is undefined and must raise, naming the empty scores."""
    assert M.auc_roc([2.0], [1.0]) == 1.0
    assert M.auc_roc([1.0], [2.0, 0.5]) == pytest.approx(0.5)
    assert M.auc_roc([2.0, 0.5], [1.0]) == pytest.approx(0.5)
    for pos, neg in (([], [1.0, 2.0]), ([1.0, 2.0], []), ([], [])):
        with pytest.raises(ValueError, match="non-empty"):
            M.auc_roc(pos, neg)


def test_priv_leak_with_perfect_retain_auc_and_zero() -> None:
    """AUC_retain = 1 is legal: (0.5 − 1)/1 × 100 = −50. AUC_retain = 0 divides by zero and
    raises, naming auc_retain."""
    assert M.priv_leak(0.5, 1.0) == pytest.approx(-50.0)
    with pytest.raises(ValueError, match="auc_retain"):
        M.priv_leak(0.5, 0.0)


def test_mcq_accuracy_single_item_and_no_items() -> None:
    """One item is enough: argmax of [-2, -1, -3] = 1 = answer → 1.0; answer 0 → 0.0.
    No items ([0, 4]) has no mean (0/0) and raises, saying an item is needed."""
    ll = torch.tensor([[-2.0, -1.0, -3.0]])
    assert M.mcq_accuracy(ll, torch.tensor([1])) == 1.0
    assert M.mcq_accuracy(ll, torch.tensor([0])) == 0.0
    with pytest.raises(ValueError, match="at least one item"):
        M.mcq_accuracy(torch.empty(0, 4), torch.empty(0, dtype=torch.long))


def test_error_messages_are_exact() -> None:
    """Each refusal says what is wrong in full, and get_metric lists the valid names sorted and
    comma-separated: em, es, prob, rouge, truth_ratio."""
    cases = [
        (lambda: M.auc_roc([], [1.0]), "auc_roc needs non-empty positive and negative scores"),
        (lambda: M.priv_leak(0.5, 0.0), "priv_leak is undefined for auc_retain = 0"),
        (lambda: M.grad_norm_score([None]), "grad_norm_score: no parameter has a gradient"),
        (
            lambda: M.mcq_accuracy(torch.empty(0, 2), torch.empty(0)),
            "mcq_accuracy needs at least one item",
        ),
        (
            lambda: M.get_metric("bleu"),
            "unknown metric 'bleu'; valid metrics: em, es, prob, rouge, truth_ratio",
        ),
        (
            lambda: M.truth_ratio_score([], forget=True),
            "truth_ratio_score needs at least one ratio",
        ),
        (lambda: M.forget_quality([1.0], []), "forget_quality needs two non-empty samples"),
        (lambda: M.model_utility({}), "model_utility needs at least one value"),
        (
            lambda: M.model_utility([0.5, -0.1, math.inf]),
            "model_utility values must be finite and >= 0, got [-0.1, inf]",
        ),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as err:
            call()
        assert str(err.value) == message


def test_min_k_percent_follows_the_device_of_logps() -> None:
    """No tensor is built on the CPU by default: on the `meta` device (shapes, no data; stands
    in for a GPU here) min_k_percent runs without a device mismatch and returns [B] there."""
    logps = torch.zeros(2, 5, device="meta")
    score = M.min_k_percent(logps, torch.ones(2, 5, dtype=torch.bool, device="meta"))
    assert score.device.type == "meta" and score.shape == (2,)


def test_forget_quality_one_item_samples() -> None:
    """A sample of one is a sample: exact two-sided KS p-values, counting the C(n + m, m)
    equally likely orderings of the pooled values.
    [0.1, 0.2, 0.3] vs [0.9]: D = 1; the one retain value sits in 4 places, first or last
    give D = 1, the middle two D = 2/3 → p = P(D ≥ 1) = 2/4 = 0.5 (either argument order).
    [0.5, 0.7] vs [0.6]: D = 1/2, the smallest D possible → p = 1."""
    assert M.forget_quality([0.1, 0.2, 0.3], [0.9]) == pytest.approx(0.5, abs=1e-12)
    assert M.forget_quality([0.9], [0.1, 0.2, 0.3]) == pytest.approx(0.5, abs=1e-12)
    assert M.forget_quality([0.5, 0.7], [0.6]) == pytest.approx(1.0, abs=1e-12)


def test_normalized_true_prob_with_epsilon_is_per_row() -> None:
    """With ε > 0 each row sums its own perturbed probabilities: p/(p + Σ_k p_k + ε).
    Row 0: NLLs 1 | [1, 1] → e^-1/(3e^-1 + ε) = 1/3 (ε shifts it by ~1e-10);
    row 1: 1 | [2, 3] → 1/(1 + e^-1 + e^-2) = 0.6652. Pooling both rows' perturbed
    probabilities (2e^-1 + e^-2 + e^-3) would give e^-1/(e^-1 + that) = 0.2855 for both.
    Tolerance abs 1e-9: values of order 1, ε's own effect ≤ 3e-10."""
    got = M.normalized_true_prob(
        torch.tensor([1.0, 1.0]), torch.tensor([[1.0, 1.0], [2.0, 3.0]]), eps=1e-10
    )
    expected = [1 / 3, 1 / (1 + math.exp(-1) + math.exp(-2))]
    assert got.tolist() == pytest.approx(expected, abs=1e-9)


def test_float32_inputs_are_aggregated_in_float64() -> None:
    """A float32 tensor is read as float64 before the arithmetic: the forget score of R = 3 is
    min(3, 1/3) = 1/3 to float64 precision (float32 arithmetic would give 0.33333334, 1e−8
    off; tolerance 1e−15)."""
    r = torch.tensor([3.0], dtype=torch.float32)
    assert M.truth_ratio_score(r, forget=True) == pytest.approx(1 / 3, abs=1e-15)
