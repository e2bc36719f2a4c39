"""Tests for satimp.objectives: the pure losses by hand, their gradients, NPO's precomputed
reference, and every method of METHODS end to end through the training loop."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from satimp.config import MethodConfig, TrainConfig
from satimp.data.encoding import IGNORE, Encoded, encode_records
from satimp.data.tofu import load_split
from satimp.errors import InputError
from satimp.evaluation.scoring import extraction_scores
from satimp.logprobs import forward_logps
from satimp.models import load_model
from satimp.objectives import (
    METHODS,
    Objective,
    finetune_objective,
    kl_loss,
    nll_loss,
    npo_loss,
    resolve_params,
    rmu_forget_loss,
    rmu_retain_loss,
    simnpo_loss,
    weighted_ga_loss,
)
from satimp.protocol import PROTOCOLS
from satimp.train import make_collate, train
from satimp.weighting import CRITERIA, token_weights

T, F_ = True, False


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# ------------------------------------------------------------------ weighted GA, by hand

# logps, mask and weights of two sequences (the last token of row 0 and two of row 1 masked).
LOGPS = torch.tensor([[-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0]])
MASK = torch.tensor([[T, T, F_], [T, F_, F_]])
W = torch.tensor([[0.5, 1.0, 0.0], [2.0, 0.0, 0.0]])


@pytest.mark.parametrize(
    ("normalize", "expected"),
    [
        # Σ_k w_k log p_k over valid tokens = 0.5·(−1) + 1·(−2) + 2·(−4) = −10.5
        ("tokens", -10.5 / 3),  # N = 3 valid tokens
        ("weights", -10.5 / 3.5),  # Σ w = 0.5 + 1 + 2 = 3.5
        ("sequences", -10.5 / 2),  # 2 sequences with a valid token
    ],
)
def test_weighted_ga_loss_by_hand(normalize: str, expected: float) -> None:
    """L = (1/N) Σ_k w_k log p_k = −(1/N) Σ_k w_k ℓ_k; masked entries never count."""
    loss = weighted_ga_loss(LOGPS, MASK, W, normalize=normalize)
    assert_close(loss, torch.tensor(expected))


def test_weighted_ga_loss_ignores_masked_entries() -> None:
    """Changing logps and weights on masked positions leaves the loss unchanged."""
    logps2 = LOGPS.clone()
    logps2[~MASK] = -123.0
    w2 = W.clone()
    w2[~MASK] = 7.0
    for normalize in ("tokens", "sequences"):
        assert_close(
            weighted_ga_loss(logps2, MASK, w2, normalize=normalize),
            weighted_ga_loss(LOGPS, MASK, W, normalize=normalize),
        )


@pytest.mark.parametrize("normalize", ["tokens", "weights", "sequences"])
def test_weighted_ga_loss_all_masked_is_zero(normalize: str) -> None:
    """No valid token: loss 0 and gradient 0, never NaN (0/0)."""
    logps = LOGPS.clone().requires_grad_(True)
    mask = torch.zeros_like(MASK)
    loss = weighted_ga_loss(logps, mask, torch.zeros_like(W), normalize=normalize)
    (grad,) = torch.autograd.grad(loss, logps)
    assert loss.item() == 0.0
    assert torch.isfinite(grad).all() and (grad == 0).all()


def test_weighted_ga_loss_rejects_unknown_normalize() -> None:
    with pytest.raises(ValueError, match="tokens"):
        weighted_ga_loss(LOGPS, MASK, W, normalize="batch")


# ------------------------------------------------------------------ the gradient property


def _criterion_inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random logps [3, 6] (p spread over (0, 1)), a ragged mask and a key mask."""
    g = torch.Generator().manual_seed(seed)
    logps = torch.rand(3, 6, generator=g).clamp_min(0.02).log()
    mask = torch.tensor([[T, T, T, T, T, F_], [T, T, T, F_, F_, F_], [F_, T, T, T, T, T]])
    keys = torch.rand(3, 6, generator=g) < 0.5
    return logps, mask, keys


@pytest.mark.parametrize("criterion", list(CRITERIA))
def test_gradient_of_token_weighted_loss_is_w_over_n(criterion: str) -> None:
    """For L = (1/N) Σ_k w_k log p_k with w = sg(f(p)) computed from the SAME logps that carry
    gradient, ∂L/∂log p_k = w_k / N on valid tokens and 0 elsewhere: the weights steer the
    gradient and carry none. With normalize='weights', ∂L/∂log p_k = w_k / Σ w."""
    base, mask, keys = _criterion_inputs()
    logps = base.clone().requires_grad_(True)
    w = token_weights(criterion, logps, mask, key_mask=keys)
    assert not w.requires_grad
    n = mask.sum()
    (grad,) = torch.autograd.grad(weighted_ga_loss(logps, mask, w), logps)
    assert_close(grad, torch.where(mask, w / n, torch.zeros_like(w)))
    (grad,) = torch.autograd.grad(weighted_ga_loss(logps, mask, w, normalize="weights"), logps)
    assert_close(grad, torch.where(mask, w / (w * mask).sum(), torch.zeros_like(w)))


def test_satimp_with_zero_exponents_is_ga() -> None:
    """SatImp with β1 = β2 = 0: w = p^0 (1 − p)^0 = 1 on valid tokens, so the loss is GA's
    (1/N) Σ log p_k = −NLL and the gradient 1/N on valid tokens — exactly."""
    base, mask, _ = _criterion_inputs(1)
    logps = base.clone().requires_grad_(True)
    w = token_weights("satimp", logps, mask, beta1=0.0, beta2=0.0)
    assert torch.equal(w, mask.float())
    loss = weighted_ga_loss(logps, mask, w)
    ga = weighted_ga_loss(logps, mask, token_weights("ga", logps, mask))
    assert torch.equal(loss, ga)
    assert_close(loss, -nll_loss(base, mask))
    (grad,) = torch.autograd.grad(loss, logps)
    assert_close(grad, mask.float() / mask.sum())


def test_satimp_with_zero_exponents_equals_ga_objective(tiny_tok) -> None:
    """The same through `Objective` on a model: loss and every parameter gradient equal GA's."""
    from satimp.models import build_model

    model = build_model("tiny", tiny_tok, seed=0)
    ex = _tok_examples(tiny_tok, ["How are you?", "Who?"], ["I am fine, thank you.", "Me."])
    batch = make_collate(tiny_tok.pad_token_id)([(i, e, None) for i, e in enumerate(ex)])
    results = []
    for cfg in (
        MethodConfig("satimp", alpha=0, params={"beta1": 0, "beta2": 0}),
        MethodConfig("ga"),
    ):
        model.zero_grad()
        loss, _ = Objective(cfg)(model, batch)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (loss_s, grads_s), (loss_g, grads_g) = results
    assert torch.equal(loss_s, loss_g)
    for a, b in zip(grads_s, grads_g, strict=True):
        assert torch.equal(a, b)


def _tok_examples(tok, questions: list[str], answers: list[str]):
    from satimp.data.encoding import encode_qa

    return [encode_qa(tok, q, a) for q, a in zip(questions, answers, strict=True)]


# ------------------------------------------------------------------ NPO, SimNPO, KL, RMU


def test_npo_loss_by_hand() -> None:
    """NPO: (2/β) softplus(β (log π_θ − log π_ref)), mean over sequences.

    seq = −2, ref = −1, β = 0.1 → (2/0.1) · softplus(0.1 · (−1)) = 20 · log(1 + e^−0.1).
    seq = ref → 20 · softplus(0) = 20 log 2.
    """
    loss = npo_loss(torch.tensor([-2.0]), torch.tensor([-1.0]), beta=0.1)
    assert_close(loss, torch.tensor(20 * softplus(-0.1)))
    loss = npo_loss(torch.tensor([-2.0, -1.0]), torch.tensor([-1.0, -1.0]), beta=0.1)
    assert_close(loss, torch.tensor((20 * softplus(-0.1) + 20 * math.log(2)) / 2))


def test_npo_gradient_at_reference_equals_ga() -> None:
    """∂/∂seq_i of mean_i (2/β) softplus(β Δ_i) = (2/B) σ(β Δ_i); at θ = ref (Δ = 0) this is
    1/B for every β — NPO starts as gradient ascent on the sequence log-likelihood."""
    for beta in (0.1, 1.0, 5.0):
        seq = torch.tensor([-3.0, -7.0, -1.0], requires_grad=True)
        (grad,) = torch.autograd.grad(npo_loss(seq, seq.detach().clone(), beta=beta), seq)
        assert_close(grad, torch.full((3,), 1 / 3))
    seq = torch.tensor([-2.0], requires_grad=True)
    (grad,) = torch.autograd.grad(npo_loss(seq, torch.tensor([-1.0]), beta=0.1), seq)
    assert_close(grad, torch.tensor([2 * torch.sigmoid(torch.tensor(-0.1)).item()]))


def test_simnpo_loss_by_hand() -> None:
    """SimNPO: (2/β) softplus(β · seq/|y| + δ), mean over sequences.

    seq = −6, |y| = 3, β = 2.5, δ = 0   → 0.8 · softplus(−5)
    seq = −6, |y| = 3, β = 2.5, δ = 0.5 → 0.8 · softplus(−4.5)
    seq = −1, |y| = 1, β = 1,   δ = 0   → 2 · softplus(−1)
    """
    seq, lengths = torch.tensor([-6.0]), torch.tensor([3])
    assert_close(simnpo_loss(seq, lengths, beta=2.5, delta=0.0), torch.tensor(0.8 * softplus(-5)))
    assert_close(simnpo_loss(seq, lengths, beta=2.5, delta=0.5), torch.tensor(0.8 * softplus(-4.5)))
    both = simnpo_loss(torch.tensor([-6.0, -1.0]), torch.tensor([3, 1]), beta=1.0, delta=0.0)
    assert_close(both, torch.tensor((2 * softplus(-2) + 2 * softplus(-1)) / 2))


def test_kl_loss_zero_for_identical_logits() -> None:
    logits = torch.randn(2, 4, 7, generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[T, T, F_, T], [F_, T, T, T]])
    assert_close(kl_loss(logits, logits.clone(), mask), torch.tensor(0.0))


def test_kl_loss_by_hand_two_token_vocab() -> None:
    """KL(π_ref ‖ π_θ), averaged over valid tokens.

    token 0: π_θ = (1/2, 1/2) (logits 0, 0), π_ref = (3/4, 1/4) (logits log 3, 0):
             KL = 3/4 · log(3/4 ÷ 1/2) + 1/4 · log(1/4 ÷ 1/2) = 0.75 log 1.5 + 0.25 log 0.5
             (the reverse KL(π_θ ‖ π_ref) = 0.5 log(2/3) + 0.5 log 2 would differ).
    token 1: identical distributions → 0.   token 2: masked, wildly different → ignored.
    Mean over the 2 valid tokens = KL_0 / 2.
    """
    logits = torch.tensor([[[0.0, 0.0], [1.0, 2.0], [5.0, -5.0]]])
    ref = torch.tensor([[[math.log(3), 0.0], [1.0, 2.0], [-5.0, 5.0]]])
    mask = torch.tensor([[T, T, F_]])
    kl0 = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert_close(kl_loss(logits, ref, mask), torch.tensor(kl0 / 2))


def test_rmu_losses_by_hand() -> None:
    """RMU: mean over valid tokens of ‖h − target‖² / D.

    h = [[1, 2], [3, 4]] (2 tokens, D = 2), control c·u = [1, 1]:
      token 0: ((1−1)² + (2−1)²)/2 = 0.5; token 1: ((3−1)² + (4−1)²)/2 = 6.5.
      mask [T, F] → 0.5; mask [T, T] → 3.5.
    Retain against ref h = [[0, 2], [3, 0]]: token 0 (1 + 0)/2 = 0.5, token 1 (0 + 16)/2 = 8.
    """
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    control = torch.tensor([1.0, 1.0])
    assert_close(rmu_forget_loss(h, control, torch.tensor([[T, F_]])), torch.tensor(0.5))
    assert_close(rmu_forget_loss(h, control, torch.tensor([[T, T]])), torch.tensor(3.5))
    ref = torch.tensor([[[0.0, 2.0], [3.0, 0.0]]])
    assert_close(rmu_retain_loss(h, ref, torch.tensor([[T, T]])), torch.tensor(4.25))
    assert_close(rmu_retain_loss(h, ref, torch.tensor([[F_, T]])), torch.tensor(8.0))


def test_rmu_losses_average_over_the_hidden_size_not_the_tokens() -> None:
    """T = 3 tokens, D = 2 (T ≠ D, so the mean over D cannot pass for one over T):
    h = [[1, 2], [3, 4], [0, 0]], c·u = [1, 1]: per token 0.5, 6.5, 1 → all valid 8/3, mask
    [T, F, T] 0.75. Against ref [[0, 2], [3, 0], [0, 0]]: 0.5, 8, 0 → 8.5/3; [F, T, T] 4."""
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]]])
    control = torch.tensor([1.0, 1.0])
    assert_close(rmu_forget_loss(h, control, torch.tensor([[T, T, T]])), torch.tensor(8 / 3))
    assert_close(rmu_forget_loss(h, control, torch.tensor([[T, F_, T]])), torch.tensor(0.75))
    ref = torch.tensor([[[0.0, 2.0], [3.0, 0.0], [0.0, 0.0]]])
    assert_close(rmu_retain_loss(h, ref, torch.tensor([[T, T, T]])), torch.tensor(8.5 / 3))
    assert_close(rmu_retain_loss(h, ref, torch.tensor([[F_, T, T]])), torch.tensor(4.0))


# ------------------------------------------------------------------ NPO's reference, fast = slow


@pytest.fixture(scope="module")
def data(tiny_trained: Path, bench_dir: Path):
    """(tokenizer, forget examples (forget10, 4), retain examples (8 of retain90))."""
    _, tok = load_model(tiny_trained)
    forget = encode_records(tok, load_split(bench_dir, "forget10"), max_length=128)
    retain = encode_records(tok, load_split(bench_dir, "retain90")[:8], max_length=128)
    return tok, forget, retain


def test_npo_precomputed_reference_equals_live_reference(tiny_trained: Path, data) -> None:
    """Objective('npo') with reference log-probs computed once in prepare() gives the same loss
    and gradient as the literal form: npo_loss with a live frozen copy of the model's forward
    pass on the same batch (+ α · retain NLL). No reference model is kept for NPO."""
    tok, forget, retain = data
    model, _ = load_model(tiny_trained)
    objective = Objective(MethodConfig("npo"))
    objective.prepare(model, forget, pad_id=tok.pad_token_id, batch_size=3)  # padded batches
    assert objective.ref_model is None and objective.ref_logps is not None
    ref_model = copy.deepcopy(model).eval().requires_grad_(False)
    with torch.no_grad():  # move the policy away from the reference, as training does
        g = torch.Generator().manual_seed(0)
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    order = [3, 0, 2]  # dataset indices in a shuffled batch, with padding
    batch = make_collate(tok.pad_token_id)([(i, forget[i], retain[j]) for j, i in enumerate(order)])

    loss, logs = objective(model, batch)
    f = forward_logps(model, batch["forget"])
    with torch.no_grad():
        ref = forward_logps(ref_model, batch["forget"])
    r = forward_logps(model, batch["retain"])
    assert not torch.allclose(f.seq_logps, ref.seq_logps, atol=1e-3)  # a real difference
    forget_expected = npo_loss(f.seq_logps, ref.seq_logps, beta=0.1)
    expected = forget_expected + 1.0 * nll_loss(r.logps, r.mask)
    assert_close(loss, expected)
    assert logs["forget_loss"] == pytest.approx(forget_expected.item(), rel=1e-5)
    params = [p for p in model.parameters()]
    for a, b in zip(
        torch.autograd.grad(loss, params), torch.autograd.grad(expected, params), strict=True
    ):
        assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", list(METHODS))
def test_reference_model_only_when_needed(name: str, tiny_trained: Path, data) -> None:
    """With its default retain loss, only RMU keeps a frozen copy of the model; NPO keeps its
    precomputed reference log-probs instead (one [len_i − 1] tensor per forget example)."""
    tok, forget, _ = data
    model, _ = load_model(tiny_trained)
    objective = Objective(MethodConfig(name))
    objective.prepare(model, forget, pad_id=tok.pad_token_id)
    assert (objective.ref_model is not None) == (name == "rmu")
    assert (objective.ref_logps is not None) == (METHODS[name].forget == "npo")
    if name == "npo":
        assert [r.numel() for r in objective.ref_logps] == [len(e) - 1 for e in forget]


def test_kl_retain_keeps_frozen_reference(tiny_trained: Path, data) -> None:
    """retain='kl' keeps a frozen copy — but not when α = 0 makes the retain term unused."""
    tok, forget, _ = data
    model, _ = load_model(tiny_trained)
    kl = Objective(MethodConfig("gd", retain="kl"))
    kl.prepare(model, forget, pad_id=tok.pad_token_id)
    assert kl.ref_model is not None and kl.ref_model is not model
    assert all(not p.requires_grad for p in kl.ref_model.parameters())
    unused = Objective(MethodConfig("ga", retain="kl"))  # ga: α = 0
    unused.prepare(model, forget, pad_id=tok.pad_token_id)
    assert unused.ref_model is None


@pytest.mark.parametrize("kl", ["all", "answer"])
def test_protocol_kl_sets_the_positions_of_the_kl_retain_term(
    kl: str, tiny_trained: Path, data
) -> None:
    """gd with retain='kl' under `protocol.kl`: the retain term the Objective hands the loop
    (α · KL, α = 1) is the KL(ref ‖ policy) per position, summed over the vocabulary and
    averaged over every one of the padded batch's B·(T−1) positions ('all': prompt and
    padding included, open-unlearning's batchmean) or over the answer tokens only ('answer').
    The expectation is computed here from the two models' full logits; the policy is the
    reference moved by noise, so the KL differs per position and the two averages differ."""
    tok, forget, retain = data
    model, _ = load_model(tiny_trained)
    protocol = dataclasses.replace(PROTOCOLS["tofu"], kl=kl)
    objective = Objective(MethodConfig("gd", retain="kl"), protocol=protocol)
    objective.prepare(model, forget, pad_id=tok.pad_token_id)
    with torch.no_grad():  # move the policy away from its frozen reference
        g = torch.Generator().manual_seed(0)
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    batch = make_collate(tok.pad_token_id)([(i, forget[i], retain[i + 3]) for i in (0, 1, 2)])
    r = batch["retain"]
    assert (r["attention_mask"] == 0).any()  # padded rows: 'all' counts the padding too
    with torch.no_grad():
        kw = dict(input_ids=r["input_ids"], attention_mask=r["attention_mask"])
        logp = model(**kw).logits[:, :-1].log_softmax(-1)
        ref_logp = objective.ref_model(**kw).logits[:, :-1].log_softmax(-1)
    per_position = (ref_logp.exp() * (ref_logp - logp)).sum(-1)  # [B, T−1]
    answer = r["labels"][:, 1:] != IGNORE
    expected = {"all": per_position.mean(), "answer": per_position[answer].mean()}
    # measured: 2.96 (all) against 3.16 (answer); the comparison below is at 1e-5 relative
    assert abs(expected["all"] - expected["answer"]) > 0.02 * expected["answer"]

    parts = objective.parts(model, batch)
    assert len(parts) == 2
    term, logs = parts[1]()
    assert_close(term.detach(), expected[kl], rtol=1e-5, atol=1e-7)
    assert logs["retain_loss"] == pytest.approx(expected[kl].item(), rel=1e-5)


def _case_id(cfg: MethodConfig) -> str:
    return cfg.name + (f"-{cfg.retain}" if cfg.retain else "")


@pytest.mark.parametrize(
    "cfg",
    [MethodConfig(n) for n in ("gd", "npo", "simnpo", "satimp", "rmu")]
    + [MethodConfig("gd", retain="kl"), MethodConfig("ga")],
    ids=_case_id,
)
def test_parts_sum_to_the_loss_and_their_gradients_to_its_gradient(
    cfg: MethodConfig, tiny_trained: Path, data
) -> None:
    """`Objective.parts` (forget term, then the retain term where α ≠ 0), each backpropagated
    in turn as the training loop does, give the loss, log fields and parameter gradients of
    the whole loss backpropagated at once."""
    tok, forget, retain = data
    model, _ = load_model(tiny_trained)
    objective = Objective(cfg, seed=0)
    objective.prepare(model, forget, pad_id=tok.pad_token_id)
    batch = make_collate(tok.pad_token_id)([(i, forget[i], retain[i + 2]) for i in (2, 0, 1)])
    params = objective.trainable(model)

    loss, logs = objective(model, batch, step=3)
    whole = torch.autograd.grad(loss, params)
    parts = objective.parts(model, batch, step=3)
    assert len(parts) == (2 if objective.uses_retain else 1)
    total, part_logs = 0.0, {}
    for part in parts:
        term, more = part()
        term.backward()
        total, part_logs = total + term.item(), part_logs | more
    assert total == pytest.approx(loss.item(), rel=1e-6, abs=1e-7)
    assert part_logs.keys() == logs.keys()
    assert all(part_logs[k] == pytest.approx(v, rel=1e-6, abs=1e-7) for k, v in logs.items())
    for p, g in zip(params, whole, strict=True):
        assert_close(p.grad, g, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------ every method, end to end

CASES = [MethodConfig(name) for name in METHODS] + [MethodConfig("gd", retain="kl")]
STEP_FIELDS = ("step", "loss", "lr", "grad_norm", "forget_loss")
WEIGHT_FIELDS = ("weight_mean", "weight_min", "weight_max", "weight_corr")


# Forgetting, measured on the memorised tiny model after this test's 2 steps at lr 1e-3 (forget
# mean NLL after/before): every method's NLL rises, but so would any perturbation of a model at
# its NLL minimum — AdamW's first steps are ±lr on every weight whatever the gradient's size —
# so a rise alone cannot tell ascent from descent. Most methods also flip greedy tokens (forget
# ES 1 → ≤ 0.71, NLL ×1.7 or more): they must lower forget ES. SLOW_TO_FORGET keep ES at 1
# here: simimp and bottomk weigh the memorised tokens (p ≈ 1) by ≈ 0 or ascend only on them,
# where the gradient of log p vanishes (docs/results.md: importance alone barely unlearns), random
# ascends on 30 % of the tokens. For them the weaker property that still fails on a sign error:
# the NLL rises more than under the mirror run (γ → −γ, descending with the same weights):
# measured ascent/mirror 1.024 (simimp), 1.12 (bottomk), 1.20 (random); asserted > MIRROR.
# RMU steers a hidden layer, not the log-probs: its forget activations must move towards the
# control vector (mean squared distance ×0.913 measured, ×1.106 for its mirror; asserted < RMU).
SLOW_TO_FORGET = {"simimp", "bottomk", "random"}
NLL_RISE, MIRROR, RMU = 1.05, 1.01, 0.95


def _unlearn_steps(cfg: MethodConfig, tiny_trained: Path, data, out_dir: Path | None):
    """(model, objective, TrainResult): 2 steps (batch 2, lr 1e-3, seed 0) of `cfg`."""
    tok, forget, retain = data
    model, _ = load_model(tiny_trained)
    objective = Objective(cfg, seed=0)
    objective.prepare(model, forget, pad_id=tok.pad_token_id)
    train_cfg = TrainConfig(epochs=1, batch_size=2, lr=1e-3, warmup_epochs=0, seed=0, device="cpu")
    result = train(
        model,
        objective,
        forget,
        train_cfg,
        pad_id=tok.pad_token_id,
        retain=retain if objective.uses_retain else None,
        params=objective.trainable(model),
        out_dir=out_dir,
        desc=cfg.name,
    )
    return model, objective, result


def _forget_nll(model, data) -> float:
    tok, forget, _ = data
    return extraction_scores(model, forget, pad_id=tok.pad_token_id)["mean_nll"].mean().item()


def _rmu_distance(model, objective: Objective, data) -> float:
    """Mean squared distance of the forget set's layer-ℓ activations to RMU's control."""
    tok, forget, _ = data
    batch = make_collate(tok.pad_token_id)([(i, f, None) for i, f in enumerate(forget)])["forget"]
    with torch.no_grad():
        hidden = forward_logps(model, batch, hidden=True).hidden[objective.params["layer"] + 1]
    return rmu_forget_loss(hidden, objective.control, batch["attention_mask"].bool()).item()


@pytest.mark.parametrize("cfg", CASES, ids=_case_id)
def test_method_end_to_end(cfg: MethodConfig, tiny_trained: Path, data, tmp_path: Path) -> None:
    """2 steps of satimp.train.train on 4 forget examples (+ retain) of the memorised tiny
    model: the method forgets (see SLOW_TO_FORGET above for what each must show), finite loss,
    every trained parameter changed, RMU leaves everything outside layers ℓ−2..ℓ alone, and
    metrics.jsonl has the step fields (+ retain_loss, + weight statistics for token-weighted
    methods)."""
    tok, forget, _ = data
    original, _ = load_model(tiny_trained)
    before = extraction_scores(original, forget, pad_id=tok.pad_token_id)
    assert before["es"].mean().item() == 1.0  # memorised: there is something to forget
    start = {n: p.detach().cpu().clone() for n, p in original.named_parameters()}
    model, objective, result = _unlearn_steps(cfg, tiny_trained, data, tmp_path)
    trained = {id(p) for p in objective.trainable(model)}

    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert result.steps == len(rows) == 2
    fields = list(STEP_FIELDS)
    if objective.uses_retain:
        fields.append("retain_loss")
    if METHODS[cfg.name].forget == "weighted":
        fields += WEIGHT_FIELDS
    for row in rows:
        missing = [k for k in fields if k not in row]
        assert not missing, f"{cfg.name}: metrics.jsonl lacks {missing}"
        assert all(math.isfinite(row[k]) for k in fields), row

    nll = (before["mean_nll"].mean().item(), _forget_nll(model, data))
    assert nll[1] > NLL_RISE * nll[0], f"{cfg.name}: forget NLL {nll[0]:.4f} → {nll[1]:.4f}"
    if cfg.name == "rmu":
        probe = Objective(cfg, seed=0)  # the same control vector, on the original model
        probe.prepare(original, forget, pad_id=tok.pad_token_id)
        d0, d1 = _rmu_distance(original, probe, data), _rmu_distance(model, objective, data)
        assert d1 < RMU * d0, f"rmu: distance to the control {d0:.4f} → {d1:.4f}"
    elif cfg.name in SLOW_TO_FORGET:
        gamma = Objective(cfg).gamma
        mirror, _, _ = _unlearn_steps(
            dataclasses.replace(cfg, gamma=-gamma), tiny_trained, data, None
        )
        ratio = nll[1] / _forget_nll(mirror, data)
        assert ratio > MIRROR, f"{cfg.name}: ascent/mirror forget NLL {ratio:.4f}"
    else:
        es = extraction_scores(model, forget, pad_id=tok.pad_token_id)["es"].mean().item()
        assert es < before["es"].mean().item(), f"{cfg.name}: forget ES did not drop"

    changed = {n: not torch.equal(start[n], p.detach().cpu()) for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        if id(p) in trained:
            assert changed[n], f"{cfg.name}: trainable parameter {n} did not change"
        else:
            assert not changed[n], f"{cfg.name}: frozen parameter {n} changed"
    if cfg.name == "rmu":
        layer = objective.params["layer"]
        keep = set(range(max(0, layer - 2), layer + 1))
        for n in start:
            m = re.search(r"layers\.(\d+)\.", n)
            assert changed[n] == (m is not None and int(m.group(1)) in keep), n
    else:
        assert trained == {id(p) for p in model.parameters()}


# ------------------------------------------------------------------ bad input


def test_unknown_method_lists_valid_names() -> None:
    with pytest.raises(InputError) as err:
        Objective(MethodConfig("gradient_ascent"))
    assert "gradient_ascent" in str(err.value)
    for name in METHODS:
        assert name in str(err.value)


@pytest.mark.parametrize(
    ("cfg", "pattern"),
    [
        (MethodConfig("simsat", params={"beta": -1}), "beta"),
        (MethodConfig("satimp", params={"beta1": -1}), "beta1"),
        (MethodConfig("npo", params={"beta": -1}), "beta"),
        (MethodConfig("npo", params={"beta": 0}), "beta"),
        (MethodConfig("simnpo", params={"beta": 0}), "beta"),
        (MethodConfig("npo_topk", params={"beta": 0}), "beta=0 must be > 0"),  # divides by β too
        (MethodConfig("topk", params={"frac": 1.5}), "frac"),
        (MethodConfig("random", params={"frac": 0}), "frac"),
        (MethodConfig("annotated", params={"rho": 2}), "rho"),
        (MethodConfig("satimp", params={"beta": 1}), "beta"),  # satimp has beta1/beta2
        (MethodConfig("ga", params={"typo": 1}), "typo"),
        (MethodConfig("satimp", normalize="sum"), "normalize"),
        (MethodConfig("gd", retain="mse"), "retain"),
        (MethodConfig("satimp", granularity="word"), "granularity"),
        (MethodConfig("topk", granularity="instance"), "instance"),
    ],
)
def test_bad_hyperparameter_raises_input_error(cfg: MethodConfig, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        Objective(cfg)


def test_softplus_helper_matches_torch() -> None:
    """The hand formulas above use softplus(x) = log(1 + e^x)."""
    for x in (-5.0, -0.1, 0.0, 2.0):
        assert softplus(x) == pytest.approx(F.softplus(torch.tensor(x)).item(), rel=1e-6)


# ------------------------------------------------------------------ mutation-testing additions


def test_resolved_records_every_setting() -> None:
    """`resolved()` is what config.yaml records: every setting under its own name. SatImp under
    the default protocol (tofu: SPEC §2's defaults) with explicit granularity, group size, tau,
    normalisation and one parameter: γ = 1, α = 0.1, retain 'nll' (METHODS), β1 = 5 (the
    criterion's default), β2 = 0.5 (the config's)."""
    cfg = MethodConfig(
        "satimp",
        params={"beta2": 0.5},
        granularity="group",
        group_size=2,
        tau=0.5,
        normalize="weights",
    )
    assert Objective(cfg).resolved() == {
        "name": "satimp",
        "gamma": 1.0,
        "alpha": 0.1,
        "retain": "nll",
        "params": {"beta1": 5.0, "beta2": 0.5},
        "granularity": "group",
        "group_size": 2,
        "tau": 0.5,
        "normalize": "weights",
    }


def test_finetune_objective_is_nll_times_the_loops_forget_scale(tiny_tok) -> None:
    """Fine-tuning loss = mean token NLL of the 'forget' slot, times the training loop's
    `scale['forget']['tokens']` when the batch carries one (its share of the optimizer step's
    token mean); no log fields. With scale 0.25 the loss is exactly a quarter of the plain
    NLL; the retain slot's scale (3.0) and other units (7.0) must not be read."""
    from satimp.models import build_model

    model = build_model("tiny", tiny_tok, seed=0)
    ex = _tok_examples(tiny_tok, ["How are you?", "Who?"], ["I am fine, thank you.", "Me."])
    batch = make_collate(tiny_tok.pad_token_id)([(i, e, None) for i, e in enumerate(ex)])
    with torch.no_grad():
        f = forward_logps(model, batch["forget"])
        nll = nll_loss(f.logps, f.mask)
        loss, logs = finetune_objective(model, batch)
        assert_close(loss, nll)
        assert logs == {}
        batch["scale"] = {"forget": {"tokens": 0.25, "rows": 7.0}, "retain": {"tokens": 3.0}}
        scaled, _ = finetune_objective(model, batch)
    assert_close(scaled, 0.25 * nll)


def test_rmu_forget_term_reads_the_output_of_layer_l(tiny_trained: Path, data) -> None:
    """RMU's forget term is γ · mean over attended forget tokens of ‖h_ℓ − c·u‖² / D, with h_ℓ
    the OUTPUT of block ℓ = hidden_states[ℓ + 1] (hidden_states[0] is the embeddings).
    Computed here from the model's own hidden states; the neighbouring hidden states give a
    different value, so reading the wrong one cannot pass."""
    tok, forget, retain = data
    model, _ = load_model(tiny_trained)
    objective = Objective(MethodConfig("rmu"))
    objective.prepare(model, forget, pad_id=tok.pad_token_id)
    layer = objective.params["layer"]
    batch = make_collate(tok.pad_token_id)([(i, forget[i], retain[i]) for i in (0, 1)])
    fb = batch["forget"]
    with torch.no_grad():
        term, logs = objective.parts(model, batch)[0]()
        out = model(
            input_ids=fb["input_ids"],
            attention_mask=fb["attention_mask"],
            output_hidden_states=True,
        )
    attended = fb["attention_mask"].bool()

    def distance(h: torch.Tensor) -> torch.Tensor:
        return (h.float() - objective.control).pow(2).mean(-1)[attended].mean()

    expected = objective.gamma * distance(out.hidden_states[layer + 1])
    assert_close(term, expected, rtol=1e-5, atol=1e-7)
    assert logs["forget_loss"] == pytest.approx(expected.item() / objective.gamma, rel=1e-5)
    for other in {layer, layer + 2, len(out.hidden_states) - 1} - {layer + 1}:
        if other < len(out.hidden_states):
            assert not torch.allclose(distance(out.hidden_states[other]), expected, rtol=1e-3)


# ------------------------------------------------------------------ mutation-testing additions (2)


def test_weighted_ga_loss_sequences_counts_rows_not_positions() -> None:
    """normalize='sequences' divides by the number of ROWS with a valid token, not columns:
    one row with 3 valid tokens (w = 1, log p = −1, −2, −3) and one all-masked row → N = 1,
    L = −6 (a count over the 3 columns would give −2)."""
    logps = torch.tensor([[-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0]])
    mask = torch.tensor([[T, T, T], [F_, F_, F_]])
    loss = weighted_ga_loss(logps, mask, mask.float(), normalize="sequences")
    assert_close(loss, torch.tensor(-6.0))


def test_weighted_ga_loss_small_and_nonpositive_denominators() -> None:
    """N is used as it is whenever N > 0, however small; N ≤ 0 gives 0.

    one valid token (N = 1 token): L = 2 · (−3) / 1 = −6;
    normalize='weights' with Σw = 0.5 (< 1, no clamp to 1): L = 0.5 · (−3) / 0.5 = −3;
    signed weights with Σw = 1 − 1 = 0 or 1 − 2 = −1 (N ≤ 0): L = 0, not Σ w log p / 1e−12
    (nor the bare sum 1·(−1) − 1·(−2) = 1)."""
    logps = torch.tensor([[-3.0, -7.0]])
    one = torch.tensor([[T, F_]])
    assert_close(weighted_ga_loss(logps, one, torch.tensor([[2.0, 0.0]])), torch.tensor(-6.0))
    half = weighted_ga_loss(logps, one, torch.tensor([[0.5, 0.0]]), normalize="weights")
    assert_close(half, torch.tensor(-3.0))
    logps, both = torch.tensor([[-1.0, -2.0]]), torch.tensor([[T, T]])
    for w in ([1.0, -1.0], [1.0, -2.0]):
        loss = weighted_ga_loss(logps, both, torch.tensor([w]), normalize="weights")
        assert loss.item() == 0.0


def test_nll_and_kl_of_a_single_valid_position() -> None:
    """One valid position: the mean over N = 1 is the value itself (no clamp of N to more).
    NLL of log p = −2 (−9 masked) = 2; KL of the two-token example's token 0 alone =
    0.75 log 1.5 + 0.25 log 0.5."""
    assert_close(nll_loss(torch.tensor([[-2.0, -9.0]]), torch.tensor([[T, F_]])), torch.tensor(2.0))
    logits = torch.tensor([[[0.0, 0.0], [5.0, -5.0]]])
    ref = torch.tensor([[[math.log(3), 0.0], [-5.0, 5.0]]])
    kl0 = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert_close(kl_loss(logits, ref, torch.tensor([[T, F_]])), torch.tensor(kl0))


def _layers_model(n: int):
    """`rmu_layer` reads only config.num_hidden_layers."""
    from types import SimpleNamespace

    return SimpleNamespace(config=SimpleNamespace(num_hidden_layers=n))


@pytest.mark.parametrize(
    ("n", "layer"),
    # default ℓ = max(0, min(7, n // 2 − 1))
    [(1, 0), (2, 0), (3, 0), (4, 1), (5, 1), (6, 2), (7, 2), (16, 7), (18, 7), (32, 7)],
)
def test_rmu_default_layer(n: int, layer: int) -> None:
    got = Objective(MethodConfig("rmu")).rmu_layer(_layers_model(n))
    assert got == layer and isinstance(got, int)


def test_rmu_explicit_layer_and_its_range() -> None:
    """An explicit `layer` wins over the default (1 for 4 layers); it must lie in [0, n)."""
    assert Objective(MethodConfig("rmu", params={"layer": 3})).rmu_layer(_layers_model(4)) == 3
    assert Objective(MethodConfig("rmu", params={"layer": 0})).rmu_layer(_layers_model(4)) == 0
    for bad in (4, -1):
        objective = Objective(MethodConfig("rmu", params={"layer": bad}))
        with pytest.raises(InputError, match=f"^rmu layer={bad} out of range for a 4-layer model$"):
            objective.rmu_layer(_layers_model(4))


def test_rmu_trains_layers_l_minus_2_to_l_only() -> None:
    """RMU under `rmu_params='layers'` (tofu) trains blocks ℓ−2..ℓ: ℓ = 4 of 6 → blocks 2, 3, 4
    (not 0..4, not 1..4); ℓ = 1 → blocks 0, 1. Everything else is frozen."""

    class Blocks(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList(torch.nn.Linear(1, 1) for _ in range(6))
            self.head = torch.nn.Linear(1, 1)

    for layer, blocks in ((4, {2, 3, 4}), (1, {0, 1})):
        model = Blocks()
        objective = Objective(MethodConfig("rmu", params={"layer": layer}))
        trained = {id(p) for p in objective.trainable(model)}
        for name, p in model.named_parameters():
            on = name.startswith("layers.") and int(name.split(".")[1]) in blocks
            assert (id(p) in trained) == on == p.requires_grad, (layer, name)


def _hand_examples() -> tuple[list[Encoded], list[Encoded]]:
    """Hand-picked token ids: two forget and two retain examples of different lengths,
    prompts labelled −100, key-fact flags on some forget answer tokens."""

    def ex(ids: list[int], prompt: int, keys: list[bool] | None = None) -> Encoded:
        return Encoded(ids, [IGNORE] * prompt + ids[prompt:], keys)

    forget = [
        ex([90, 91, 92, 93], 2, [F_, F_, T, F_]),
        ex([5, 17, 29, 41, 53, 65, 77], 3, [F_, F_, F_, T, F_, T, T]),
    ]
    retain = [ex([101, 102, 103, 104, 105], 2), ex([201, 202, 203, 204, 205, 206, 207, 208], 4)]
    return forget, retain


def _hand_batch(tok, scale: dict | None = None) -> dict:
    """`_hand_examples` as one batch (index [1, 0]: forget example 1 first, the shorter one
    padded), with the training loop's `scale` when given."""
    forget, retain = _hand_examples()
    batch = make_collate(tok.pad_token_id)([(1, forget[1], retain[0]), (0, forget[0], retain[1])])
    if scale is not None:
        batch["scale"] = scale
    return batch


# the training loop's factors per part and unit (`train.batch_scale`), all different
SCALE = {
    "forget": {"tokens": 0.5, "rows": 0.75, "seqs": 1.25, "attn": 1.5, "sum": 2.0},
    "retain": {"tokens": 0.25, "rows": 3.5, "seqs": 4.5, "attn": 5.5, "sum": 3.0},
}


@pytest.mark.parametrize(
    ("cfg", "norm"),
    [
        (MethodConfig("simimp", params={"beta": 1}), "tokens"),
        (MethodConfig("simimp", params={"beta": 1}, normalize="weights"), "weights"),
        (MethodConfig("simimp", params={"beta": 1}, granularity="instance"), "sequences"),
        (MethodConfig("simimp", params={"beta": 1}, granularity="batch"), "sequences"),
    ],
    ids=["token-tokens", "token-weights", "instance", "batch"],
)
def test_forget_term_normalisation(cfg: MethodConfig, norm: str, tiny_tok) -> None:
    """Token-weighted forget term = γ · L(w) · scale['forget'][unit]: divided by the valid
    tokens (normalize='tokens'), by Σw ('weights'), or by the sequences at instance and batch
    granularity (whatever `normalize` says), unit 'tokens' or 'seqs' accordingly. The
    expected normalisation differs from the others on this ragged batch (6 answer tokens,
    2 rows, Σw ≈ 6·(1 − p) at token level), so the wrong one cannot pass. Log fields: the
    forget loss and the weight statistics."""
    from satimp.models import build_model

    model = build_model("tiny", tiny_tok, seed=0)
    objective = Objective(cfg)
    batch = _hand_batch(tiny_tok, SCALE)
    with torch.no_grad():
        term, logs = objective.parts(model, batch)[0]()
        f = forward_logps(model, batch["forget"])
    w = objective.weights(f.logps, f.mask, step=0, key_mask=None)
    losses = {
        n: weighted_ga_loss(f.logps, f.mask, w, normalize=n)
        for n in ("tokens", "weights", "sequences")
    }
    for other in set(losses) - {norm}:  # the wrong normalisation cannot pass
        assert abs(losses[other] - losses[norm]) > 1e-4 * abs(losses[norm])
    unit = "seqs" if norm == "sequences" else "tokens"
    assert objective.forget_unit == unit
    expected = objective.gamma * losses[norm] * SCALE["forget"][unit]
    assert_close(term, expected, rtol=1e-5, atol=0.0)
    assert logs["forget_loss"] == pytest.approx(losses[norm].item(), rel=1e-5)
    valid = w[f.mask]
    assert logs["weight_mean"] == pytest.approx(valid.mean().item(), rel=1e-5)
    assert logs["weight_min"] == pytest.approx(valid.min().item(), rel=1e-5)


def test_gd_terms_are_token_means_times_the_token_scales(tiny_tok) -> None:
    """gd (γ = α = 1, w = 1, not a hard-sampling sum): forget term = mean token log-prob ×
    scale['forget']['tokens'] (0.5), retain term = mean retain NLL × scale['retain']['tokens']
    (0.25) — not divided by it, not the 'sum' factor, not another part's. Weight statistics
    are taken over the valid tokens only: mean = min = max = 1."""
    from satimp.models import build_model

    model = build_model("tiny", tiny_tok, seed=0)
    objective = Objective(MethodConfig("gd"))
    assert not objective.hard_sum
    batch = _hand_batch(tiny_tok, SCALE)
    with torch.no_grad():
        (forget_term, flogs), (retain_term, rlogs) = (
            part() for part in objective.parts(model, batch)
        )
        f = forward_logps(model, batch["forget"])
        r = forward_logps(model, batch["retain"])
    forget_mean = (f.logps * f.mask).sum() / f.mask.sum()
    retain_nll = nll_loss(r.logps, r.mask)
    assert_close(forget_term, 0.5 * forget_mean, rtol=1e-5, atol=0.0)
    assert_close(retain_term, 0.25 * retain_nll, rtol=1e-5, atol=0.0)
    assert rlogs == {"retain_loss": pytest.approx(retain_nll.item(), rel=1e-5)}
    assert flogs["weight_mean"] == flogs["weight_min"] == flogs["weight_max"] == 1.0


def test_hard_sampling_sum_reduction_sums_both_terms(tiny_tok) -> None:
    """topk under `hard_reduction='sum'` (the authors' gd_ hard sampling): forget term =
    γ · Σ_k w_k log p_k (no division) × scale['forget']['sum'] (2), retain term =
    α · Σ_k −log p_k over the retain tokens (a sum, positive) × scale['retain']['sum'] (3)."""
    from satimp.models import build_model

    model = build_model("tiny", tiny_tok, seed=0)
    protocol = dataclasses.replace(PROTOCOLS["tofu"], hard_reduction="sum")
    objective = Objective(MethodConfig("topk"), protocol=protocol)
    assert objective.hard_sum and objective.forget_unit == "sum"
    batch = _hand_batch(tiny_tok, SCALE)
    with torch.no_grad():
        (forget_term, flogs), (retain_term, rlogs) = (
            part() for part in objective.parts(model, batch)
        )
        f = forward_logps(model, batch["forget"])
        r = forward_logps(model, batch["retain"])
    w = objective.weights(f.logps, f.mask, step=0, key_mask=None)
    assert 0 < w.sum() < f.mask.sum()  # a real selection: neither nothing nor everything
    forget_sum = (w * f.logps * f.mask).sum()
    retain_sum = -(r.logps * r.mask).sum()
    assert retain_sum > 0
    assert_close(forget_term, objective.gamma * forget_sum * 2.0, rtol=1e-5, atol=0.0)
    assert_close(retain_term, objective.alpha * retain_sum * 3.0, rtol=1e-5, atol=0.0)
    assert flogs["forget_loss"] == pytest.approx(forget_sum.item(), rel=1e-5)
    assert rlogs["retain_loss"] == pytest.approx(retain_sum.item(), rel=1e-5)


def test_annotated_forget_term_reads_the_shifted_key_mask(tiny_tok) -> None:
    """annotated (ρ = 0.3): w = 1 − ρ = 0.7 on the answer tokens the batch's key_mask flags,
    ρ = 0.3 on the others; the key mask [B, T] is aligned with the labels and shifted by one
    like the log-probs ([B, T−1])."""
    from satimp.models import build_model

    model = build_model("tiny", tiny_tok, seed=0)
    objective = Objective(MethodConfig("annotated", alpha=0))
    batch = _hand_batch(tiny_tok)
    with torch.no_grad():
        term, _ = objective.parts(model, batch)[0]()
        f = forward_logps(model, batch["forget"])
    keys = batch["forget"]["key_mask"][:, 1:]
    w = torch.where(f.mask, torch.where(keys, 0.7, 0.3), 0.0)
    assert (keys & f.mask).any() and (~keys & f.mask).any()
    expected = (w * f.logps * f.mask).sum() / f.mask.sum()
    assert_close(term, expected, rtol=1e-5, atol=0.0)


@pytest.mark.parametrize("name", ["random", "npo_random"])
def test_random_picks_follow_the_step(name: str, tiny_tok) -> None:
    """Random hard sampling draws fresh tokens every step, reproducibly: the forget term at
    step s is computed with `weights(..., step=s)`, and steps 0 and 5 pick differently. NPO's
    reference comes from prepare() on the model before it moved (noise added after)."""
    from satimp.models import build_model

    model = build_model("tiny", tiny_tok, seed=0)
    objective = Objective(MethodConfig(name, alpha=0))
    batch = _hand_batch(tiny_tok)
    if name == "npo_random":
        objective.prepare(model, _hand_examples()[0], pad_id=tiny_tok.pad_token_id)
        with torch.no_grad():
            g = torch.Generator().manual_seed(0)
            for p in model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    with torch.no_grad():
        f = forward_logps(model, batch["forget"])
        weights = []
        for step in (0, 5):
            term, _ = objective.parts(model, batch, step=step)[0]()
            w = objective.weights(f.logps, f.mask, step=step, key_mask=None)
            if name == "random":
                expected = weighted_ga_loss(f.logps, f.mask, w)
            else:
                ref = objective._batch_ref_logps(batch["index"], f.logps)
                seq, ref_seq = (w * f.logps * f.mask).sum(-1), (w * ref * f.mask).sum(-1)
                assert not torch.allclose(seq, ref_seq)
                expected = objective.gamma * npo_loss(seq, ref_seq, beta=0.1)
            assert_close(term, expected, rtol=1e-5, atol=0.0)
            weights.append(w)
    assert not torch.equal(weights[0], weights[1])


def test_npo_before_prepare_raises() -> None:
    objective = Objective(MethodConfig("npo"))
    with pytest.raises(
        RuntimeError, match=r"^Objective\.prepare\(\) must run before training with NPO$"
    ):
        objective._batch_ref_logps(torch.tensor([0]), torch.zeros(1, 3))


def test_npo_reference_keeps_float32_against_a_low_precision_policy() -> None:
    """The reference log-probs are padded into float32 whatever the policy's dtype (bf16 here
    would round −1.2345678 to −1.234375): rows in batch order, zeros after each example."""
    objective = Objective(MethodConfig("npo"))
    objective.ref_logps = [torch.tensor([0.0, -1.2345678]), torch.tensor([-0.1234567, -2.0, -3.0])]
    out = objective._batch_ref_logps(torch.tensor([1, 0]), torch.zeros(2, 4, dtype=torch.bfloat16))
    assert out.dtype == torch.float32
    expected = torch.tensor([[-0.1234567, -2.0, -3.0, 0.0], [0.0, -1.2345678, 0.0, 0.0]])
    assert torch.equal(out, expected)


def test_rmu_terms_read_layer_l_and_the_attention_scales(tiny_tok) -> None:
    """RMU on the tiny model (2 layers → ℓ = 0, h_ℓ = hidden_states[1]), the policy moved by
    noise after prepare() froze the reference: forget term = γ · mean over attended tokens of
    ‖h_ℓ − c·u‖²/D × scale['forget']['attn'] (1.5); retain term = α · mean over attended
    retain tokens of ‖h_ℓ − h_ℓ^ref‖²/D × scale['retain']['attn'] (5.5), logged as
    retain_loss. Other hidden states give other retain values."""
    from satimp.models import build_model

    model = build_model("tiny", tiny_tok, seed=0)
    objective = Objective(MethodConfig("rmu"))
    batch = _hand_batch(tiny_tok, SCALE)
    objective.prepare(model, [], pad_id=tiny_tok.pad_token_id)
    layer = objective.params["layer"]
    assert layer == 0 and objective.uses_retain
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
        (forget_term, flogs), (retain_term, rlogs) = (
            part() for part in objective.parts(model, batch)
        )

        def hidden(m, part: str):
            b = batch[part]
            out = m(
                input_ids=b["input_ids"],
                attention_mask=b["attention_mask"],
                output_hidden_states=True,
            )
            return out.hidden_states, b["attention_mask"].bool()

        hf, fmask = hidden(model, "forget")
        hr, rmask = hidden(model, "retain")
        href, _ = hidden(objective.ref_model, "retain")
    forget = (hf[layer + 1] - objective.control).pow(2).mean(-1)[fmask].mean()
    retain = [(h - h0).pow(2).mean(-1)[rmask].mean() for h, h0 in zip(hr, href, strict=True)]
    assert_close(forget_term, objective.gamma * forget * 1.5, rtol=1e-5, atol=0.0)
    assert flogs["forget_loss"] == pytest.approx(forget.item(), rel=1e-5)
    assert_close(retain_term, objective.alpha * retain[layer + 1] * 5.5, rtol=1e-5, atol=0.0)
    assert rlogs == {"retain_loss": pytest.approx(retain[layer + 1].item(), rel=1e-5)}
    for i, other in enumerate(retain):
        if i != layer + 1:
            assert not torch.allclose(other, retain[layer + 1], rtol=1e-3)


def test_unknown_parameter_message_lists_the_valid_ones() -> None:
    """The whole message: the valid names comma-separated, or 'none' for a method without
    hyperparameters (GA)."""
    for cfg, message in (
        (
            MethodConfig("ga", params={"typo": 1}),
            "method 'ga' has no parameter 'typo'; valid: none",
        ),
        (
            MethodConfig("satimp", params={"typo": 1}),
            "method 'satimp' has no parameter 'typo'; valid: beta1, beta2",
        ),
    ):
        with pytest.raises(InputError) as err:
            resolve_params(cfg)
        assert str(err.value) == message
