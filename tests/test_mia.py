"""satimp.evaluation.mia: the batched attack pass against a literal item-by-item computation,
GradNorm against a hand-run backward pass, and the attacks on the memorising tiny model."""

from __future__ import annotations

import math
import zlib

import pytest
import torch

from satimp.data.tofu import load_split
from satimp.evaluation.mia import grad_norm_scores, holdout_split_for, mia, pass_scores, qa_examples
from satimp.models import load_model
from satimp.protocol import PROTOCOLS


@pytest.fixture(scope="module")
def model_and_data(tiny_trained, bench_dir):
    model, tok = load_model(tiny_trained)
    model.eval()
    records = load_split(bench_dir, "forget10_perturbed")
    members = [{"question": r["question"], "answer": r["answer"]} for r in records]
    unseen = [{"question": r["question"], "answer": r["paraphrased_answer"]} for r in records]
    return model, tok, members, unseen


def _literal(model, tok, example) -> dict[str, float]:
    """One item, from the definitions: log-probs of the answer tokens from a plain forward pass,
    the mean NLL over all of them, Min-K% / Min-K%++ (k = 0.4) over all but the last (EOS)."""
    ids = torch.tensor([example.input_ids])
    with torch.no_grad():
        logp = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)  # [T−1, V]
    labels = example.labels[1:]
    pos = [t for t, y in enumerate(labels) if y != -100]
    lps = [logp[t, labels[t]].item() for t in pos]
    nll = -sum(lps) / len(lps)
    z = []
    for t in pos[:-1]:
        p = logp[t].exp()
        mu = (p * logp[t]).sum().item()
        var = (p * logp[t] ** 2).sum().item() - mu * mu
        z.append((logp[t, labels[t]].item() - mu) / math.sqrt(max(var, 1e-6)))
    m = max(1, int(len(z) * 0.4))
    text = tok.decode([labels[t] for t in pos], skip_special_tokens=True)
    return {
        "loss": -nll,
        "zlib": -nll / len(zlib.compress(text.encode("utf-8"))),
        "min_k": sum(sorted(lps[:-1])[:m]) / m,
        "min_k_pp": sum(sorted(z)[:m]) / m,
    }


@pytest.mark.parametrize("protocol", ["tofu", "open-unlearning"])
def test_the_batched_pass_equals_a_literal_item_by_item_computation(model_and_data, protocol):
    model, tok, members, unseen = model_and_data
    examples = qa_examples(tok, members + unseen, PROTOCOLS[protocol])
    fast = pass_scores(model, tok, examples, batch_size=3)
    for i, ex in enumerate(examples):
        for name, value in _literal(model, tok, ex).items():
            assert fast[name][i] == pytest.approx(value, rel=1e-4, abs=1e-5), (name, i)


def test_reference_is_the_references_nll_minus_the_targets(model_and_data, tiny_trained):
    """With the model itself as the reference every score is 0; with a fresh copy whose weights
    are scaled, NLL_ref − NLL from two LOSS passes."""
    model, tok, members, _ = model_and_data
    examples = qa_examples(tok, members, PROTOCOLS["tofu"])
    same = pass_scores(model, tok, examples, ref_model=model)["reference"]
    assert same == pytest.approx([0.0] * len(examples), abs=1e-6)
    other, _ = load_model(tiny_trained)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(0.9)
    ref = pass_scores(model, tok, examples, ref_model=other)["reference"]
    target = pass_scores(model, tok, examples)["loss"]
    alone = pass_scores(other, tok, examples)["loss"]
    assert ref == pytest.approx([t - a for t, a in zip(target, alone, strict=True)], abs=1e-5)


def test_grad_norm_equals_a_hand_run_backward_pass(model_and_data):
    """Per item: the mean NLL of the answer tokens without the EOS, backward, each parameter's
    gradient 2-norm, their mean, negated. The model's gradients are left cleared."""
    model, tok, members, _ = model_and_data
    examples = qa_examples(tok, members[:2], PROTOCOLS["tofu"])
    fast = grad_norm_scores(model, tok, examples)
    for i, ex in enumerate(examples):
        model.zero_grad(set_to_none=True)
        logp = model(input_ids=torch.tensor([ex.input_ids])).logits[0, :-1].log_softmax(-1)
        labels = ex.labels[1:]
        pos = [t for t, y in enumerate(labels) if y != -100][:-1]
        (-torch.stack([logp[t, labels[t]] for t in pos]).mean()).backward()
        norms = [p.grad.norm() for p in model.parameters() if p.grad is not None]
        assert fast[i] == pytest.approx(-torch.stack(norms).mean().item(), rel=1e-4)
    model.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in model.parameters())
    grad_norm_scores(model, tok, examples)
    assert all(p.grad is None for p in model.parameters())


def test_the_attacks_tell_memorised_answers_from_unseen_ones(model_and_data):
    """The tiny model reproduces its training answers and not their paraphrases: every attack
    ranks each memorised answer above each unseen one (AUC 1); swapping the roles gives 0."""
    model, tok, members, unseen = model_and_data
    summary, per_sample = mia(model, tok, members, unseen, gradnorm=True)
    attacks = ("loss", "zlib", "min_k", "min_k_pp", "gradnorm")
    assert {f"mia_{a}_auc" for a in attacks} == set(summary)
    for a in ("loss", "min_k"):
        assert summary[f"mia_{a}_auc"] == pytest.approx(1.0), a
    assert len(per_sample["members"]["loss"]) == len(members)
    swapped, _ = mia(model, tok, unseen, members)
    assert swapped["mia_loss_auc"] == pytest.approx(1.0 - summary["mia_loss_auc"])


def test_holdout_split_names() -> None:
    assert [holdout_split_for(f) for f in ("forget01", "forget05", "forget10")] == [
        "holdout01",
        "holdout05",
        "holdout10",
    ]
