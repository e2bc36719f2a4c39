"""Tests for satimp.evaluate on the tiny memorising model of conftest: one-pass ES against
greedy generation, the EOS exclusion, a short unlearning run, and evaluate_tofu's outputs."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
import transformers
from torch.testing import assert_close

from satimp import metrics as M
from satimp.config import MethodConfig, TrainConfig
from satimp.data.encoding import IGNORE, Encoded, collate, encode_qa, encode_records, prompt_ids
from satimp.data.tofu import load_split
from satimp.evaluation import tofu as tofu_evaluation
from satimp.evaluation.generation import (
    extraction_strength_by_generation,
    generate,
    greedy_decode,
    plain_greedy,
)
from satimp.evaluation.scoring import extraction_scores, prompt_groups
from satimp.evaluation.tofu import evaluate_tofu, score_split
from satimp.experiment import unlearn
from satimp.logprobs import forward_logps
from satimp.models import build_model, load_model
from satimp.protocol import PROTOCOLS
from test_protocol import literal_greedy


@pytest.fixture(scope="module")
def trained(tiny_trained: Path):
    """(model, tokenizer) of the tiny fine-tuned model, in eval mode; tests here never train it."""
    model, tok = load_model(tiny_trained)
    return model.eval(), tok


@pytest.fixture(scope="module")
def forget_items(trained, bench_dir: Path) -> list[Encoded]:
    """The forget split's answers (4, trained on), its paraphrased answers (4, never seen),
    and the trained answers with their last key fact swapped for another item's (4: a
    memorised template around one wrong fact): ES = 1, ES = 0 and values in between."""
    _, tok = trained
    records = load_split(bench_dir, "forget10_perturbed")
    edited = []
    for i, r in enumerate(records):
        other = records[(i + 1) % len(records)]["keywords"][-1]
        edited.append(r["answer"].replace(r["keywords"][-1], other))
    return [
        *(
            encode_qa(tok, r["question"], r[field])
            for field in ("answer", "paraphrased_answer")
            for r in records
        ),
        *(encode_qa(tok, r["question"], a) for r, a in zip(records, edited, strict=True)),
    ]


def _literal_correct(model, e: Encoded) -> torch.Tensor:
    """Per answer token (final EOS excluded), is the teacher-forced argmax the label?

    One unpadded forward pass; the logits at position t predict token t + 1.
    """
    start = next(i for i, lab in enumerate(e.labels) if lab != IGNORE)
    ids = torch.tensor([e.input_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]  # [T, V]
    answer = ids[0, start:-1]  # drop the EOS
    return logits[start - 1 : len(e) - 2].argmax(-1) == answer


def test_one_pass_es_equals_generation_es(trained, forget_items) -> None:
    """ES from one teacher-forced pass (batched, padded) equals ES from greedy decoding from
    true prefixes, item by item, exactly; the items cover ES = 0, ES = 1 and in between.
    EM equals a literal per-token argmax count, and ES the literal 1 − k*/|y|."""
    model, tok = trained
    fast = extraction_scores(model, forget_items, pad_id=tok.pad_token_id, batch_size=3)
    slow = extraction_strength_by_generation(model, forget_items, eos_id=tok.eos_token_id)
    assert fast["es"].tolist() == slow.tolist()

    n_answers = len(forget_items) // 3
    es = fast["es"]
    assert (es[:n_answers] == 1).any(), f"no trained forget answer fully reproduced: {es}"
    assert (es == 0).any(), f"no item with ES = 0: {es}"
    assert ((es > 0) & (es < 1)).any(), f"no item with 0 < ES < 1: {es}"

    for i, e in enumerate(forget_items):
        correct = _literal_correct(model, e)
        n = correct.numel()
        wrong = (~correct).nonzero().flatten().tolist()
        k_star = 1 + wrong[-1] if wrong else 0  # 1 + index of the last wrong token
        assert fast["es"][i].item() == pytest.approx(1 - k_star / n, abs=1e-7)
        assert fast["em"][i].item() == pytest.approx(correct.float().mean().item(), abs=1e-7)
        if es[i] == 0:
            assert not correct[-1], "ES = 0 must mean the last answer token is wrong"
        if es[i] == 1:
            assert correct.all()


def _literal_logps(model, e: Encoded) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probs, argmax-correct) of each scored label of one example, from one unpadded
    forward pass over all positions."""
    ids, labels = torch.tensor([e.input_ids]), torch.tensor(e.labels[1:])
    logits = model(input_ids=ids).logits[0, :-1]
    scored = labels != IGNORE
    logp = logits.log_softmax(-1)[scored].gather(-1, labels[scored, None])[:, 0]
    return logp, logits[scored].argmax(-1) == labels[scored]


LOGITS_TO_KEEP = int(transformers.__version__.split(".")[0]) >= 5


def _record_shapes(module) -> list[torch.Size]:
    """A list that records the input shape of each call of `module` (remove the hook with
    `module._forward_hooks.clear()`)."""
    seen: list[torch.Size] = []
    module.register_forward_hook(lambda _m, args, _out: seen.append(args[0].shape))
    return seen


def test_forward_logps_on_the_answer_span_equals_full_logits(trained, forget_items) -> None:
    """`forward_logps` runs the output layer only from the batch's first scored position to
    its last; per-token log-probs, argmax hits and gradients equal those of the full logits
    (one unpadded example at a time), and the head really saw fewer positions."""
    model, tok = trained
    items = [forget_items[0], forget_items[5], forget_items[10]]
    batch = collate(items, tok.pad_token_id)
    seen = _record_shapes(model.get_output_embeddings())
    try:
        with torch.enable_grad():
            r = forward_logps(model, batch)
            r.logps.sum().backward()
            fast = [p.grad.clone() for p in model.parameters()]
            model.zero_grad()
            for e in items:
                _literal_logps(model, e)[0].sum().backward()
            slow = [p.grad.clone() for p in model.parameters()]
    finally:
        model.zero_grad(set_to_none=True)
        model.get_output_embeddings()._forward_hooks.clear()
    # the prompt's logits were skipped: under transformers 5 (the tested high end) always;
    # the low end's 4.x forward may lack `logits_to_keep` and run the whole head (same values)
    assert seen[0][1] < batch["input_ids"].size(1) - 1 or not LOGITS_TO_KEEP
    for row, e in enumerate(items):
        logp, correct = _literal_logps(model, e)
        assert_close(r.logps[row][r.mask[row]], logp.detach(), atol=1e-5, rtol=0)
        assert r.correct[row][r.mask[row]].tolist() == correct.tolist()
        assert int(r.mask[row].sum()) == sum(y != IGNORE for y in e.labels[1:])
    for f, s_ in zip(fast, slow, strict=True):
        assert_close(f, s_, atol=1e-6 * max(1.0, s_.abs().max().item()), rtol=1e-4)


def test_shared_prompt_scores_equal_one_example_at_a_time(trained, forget_items) -> None:
    """Examples sharing a prompt (three answers per question here, plus a group of two, one
    of nine one-token answers and a lone one) scored with each prompt run once give the same
    ES and EM as one example at a time, and probabilities and NLL to float rounding; the
    model sees fewer tokens than one pass per example."""
    model, tok = trained
    q = prompt_ids(tok, "Who wrote the book?")
    singles = [Encoded(q + [t], [IGNORE] * len(q) + [t]) for t in range(5, 14)]
    pair = [encode_qa(tok, "Where was she born?", a) for a in ("In Paris.", "Nowhere at all.")]
    lone = encode_qa(tok, "What is her name?", "Her name is Ann.")
    items = [*forget_items, *pair, lone, *singles]
    assert prompt_groups(items) is not None and len(prompt_groups(items)) == 4 + 1 + 1 + 1
    seen = _record_shapes(model.get_input_embeddings())
    try:
        shared = extraction_scores(model, items, pad_id=tok.pad_token_id, batch_size=5)
        n_shared = sum(x.numel() for x in seen)
        seen.clear()
        plain = extraction_scores(
            model, items, pad_id=tok.pad_token_id, batch_size=5, share_prompts=False
        )
    finally:
        model.get_input_embeddings()._forward_hooks.clear()
    assert 0 < n_shared < sum(x.numel() for x in seen)
    assert shared["es"].tolist() == plain["es"].tolist()
    assert shared["em"].tolist() == plain["em"].tolist()
    assert_close(shared["mean_nll"], plain["mean_nll"], atol=1e-5, rtol=0)
    assert_close(shared["sum_logp"], plain["sum_logp"], atol=1e-4, rtol=0)
    assert_close(shared["prob"], plain["prob"], atol=1e-6, rtol=0)
    for i, e in enumerate(items):  # and each against its own unpadded pass
        logp, _ = _literal_logps(model, e)
        assert shared["sum_logp"][i].item() == pytest.approx(logp.sum().item(), abs=1e-4)


def test_prompt_groups_by_hand() -> None:
    """Groups follow the tokens before the first label, in order of first appearance; an
    example without a prompt (or without a label) turns sharing off."""
    a = Encoded([1, 2, 3, 4], [IGNORE, IGNORE, 3, 4])
    b = Encoded([1, 2, 5], [IGNORE, IGNORE, 5])
    c = Encoded([1, 9, 3], [IGNORE, 9, 3])  # same start, shorter prompt
    d = Encoded([1, 2, 7, 8, 9], [IGNORE, IGNORE, 7, 8, 9])
    assert prompt_groups([a, b, c, d]) == [[0, 1, 3], [2]]
    assert prompt_groups([a, Encoded([4, 5], [4, 5])]) is None
    assert prompt_groups([a, Encoded([4, 5], [IGNORE, IGNORE])]) is None


def test_greedy_decode_equals_generate_row_by_row(trained, bench_dir: Path) -> None:
    """The batched decoder that drops finished rows gives, for every row of a left-padded
    batch, the tokens of an unpadded `model.generate` of that prompt alone — rows stopping
    at EOS, at their own budget (3, 0, 40 …) and rows running on after others stopped."""
    model, tok = trained
    questions = [r["question"] for r in load_split(bench_dir, "retain_perturbed")][:6]
    questions += ["Who", "Tell me everything about the history of the world, please."]
    prompts = [prompt_ids(tok, q) for q in questions]
    limits = [(40, 3, 0, 40, 1, 12, 25)[i % 7] for i in range(len(prompts))]
    batch = collate([Encoded(p, [IGNORE] * len(p)) for p in prompts], tok.pad_token_id, left=True)
    assert len({len(p) for p in prompts}) > 1  # the batch really is padded
    rows = greedy_decode(
        model, batch["input_ids"], batch["attention_mask"], limits, eos_id=tok.eos_token_id
    )
    want = [
        literal_greedy(model, tok, p, n) if n else [] for p, n in zip(prompts, limits, strict=True)
    ]
    assert rows == want
    assert [len(r) for r in rows][1:3] == [min(3, len(want[1])), 0]
    ends = [r[-1] == tok.eos_token_id for r in rows if r]
    assert any(ends) and not all(len(r) == n for r, n in zip(rows, limits, strict=True))
    # through `generate` (batch 3: several batches, length-grouped) the same texts
    texts = generate(model, tok, prompts, batch_size=3, max_new_tokens=40)
    assert texts == [
        tok.decode(literal_greedy(model, tok, p, 40), skip_special_tokens=True) for p in prompts
    ]


def test_a_generation_config_with_logits_processors_keeps_hf_generate(trained) -> None:
    """A repetition penalty (or any logits processor) in the model's generation config makes
    greedy decoding more than an argmax: `generate` then uses `model.generate`, which
    applies it, and its text differs from the plain argmax decoder's where the penalty
    bites."""
    model, tok = trained
    assert plain_greedy(model)
    prompt = prompt_ids(tok, "Tell me everything about the history of the world, please.")
    plain = generate(model, tok, [prompt], max_new_tokens=40)
    saved = model.generation_config.repetition_penalty
    try:
        model.generation_config.repetition_penalty = 5.0
        assert not plain_greedy(model)
        penalised = generate(model, tok, [prompt], max_new_tokens=40)
        out = literal_greedy(model, tok, prompt, 40)  # model.generate applies the penalty
    finally:
        model.generation_config.repetition_penalty = saved
    assert penalised == [tok.decode(out, skip_special_tokens=True)]
    assert penalised != plain


def test_extraction_scores_exclude_the_final_eos(trained, bench_dir: Path) -> None:
    """An answer the model reproduces, cut before its final '.': the EOS now sits where the
    model predicts '.', so it is wrong. ES/EM leave the EOS out: ES = EM = 1; had the EOS been
    counted, ES would be 0 and EM < 1. ES/EM equal the metric functions on the answer mask
    with the last answer token removed by hand; probability and mean NLL include the EOS
    (SPEC §5), or leave it out with eos_in_prob=False."""
    model, tok = trained
    pad = tok.pad_token_id
    example = None
    for r in load_split(bench_dir, "full"):
        full_ids = tok(r["answer"], add_special_tokens=False).input_ids
        cut_ids = tok(r["answer"][:-1], add_special_tokens=False).input_ids
        if r["answer"].endswith(".") and full_ids[: len(cut_ids)] == cut_ids:
            cand = encode_qa(tok, r["question"], r["answer"][:-1])
            if extraction_scores(model, [cand], pad_id=pad)["es"].item() == 1.0:
                example = cand
                break
    assert example is not None, "no memorised answer ending in a separately tokenised '.'"

    scores = extraction_scores(model, [example], pad_id=pad)
    batch = collate([example], pad)
    r = forward_logps(model, batch)
    eos_pos = len(example) - 2  # shifted coordinates: position t scores label t + 1
    assert r.mask[0, eos_pos] and batch["labels"][0, -1] == tok.eos_token_id
    assert not r.correct[0, eos_pos]  # the model wants '.', not EOS
    no_eos = r.mask.clone()
    no_eos[0, eos_pos] = False

    assert scores["es"].item() == 1.0 and scores["em"].item() == 1.0
    assert_close(scores["es"], M.extraction_strength(r.correct, no_eos).float())
    assert_close(scores["em"], M.exact_memorization(r.correct, no_eos).float())
    assert_close(scores["prob"], M.answer_prob(r.logps, r.mask))
    assert_close(scores["mean_nll"], M.mean_nll(r.logps, r.mask))
    without = extraction_scores(model, [example], pad_id=pad, eos_in_prob=False)
    assert_close(without["prob"], M.answer_prob(r.logps, no_eos))
    assert_close(without["mean_nll"], M.mean_nll(r.logps, no_eos))
    assert without["prob"].item() > scores["prob"].item()  # the mispredicted EOS costs
    assert M.extraction_strength(r.correct, r.mask).item() == 0.0  # with the EOS
    assert M.exact_memorization(r.correct, r.mask).item() < 1.0


STEP_FIELDS = (
    "loss",
    "forget_loss",
    "retain_loss",
    "lr",
    "grad_norm",
    "weight_mean",
    "weight_min",
    "weight_max",
    "weight_corr",
)


def test_unlearn_lowers_forget_likelihood_and_logs_every_field(
    tiny_trained: Path, bench_dir: Path, tmp_path: Path
) -> None:
    """SatImp, 2 epochs × 2 steps at lr 1e-3: the forget answers' mean NLL rises; metrics.jsonl
    has every per-step field on every step and forget/retain ES after every epoch."""
    model, tok = load_model(tiny_trained)
    forget = encode_records(tok, load_split(bench_dir, "forget10"), max_length=512)
    before = extraction_scores(model, forget, pad_id=tok.pad_token_id)["mean_nll"].mean()

    out = tmp_path / "run"
    result = unlearn(
        tiny_trained,
        bench_dir,
        "forget10",
        "retain90",
        MethodConfig("satimp"),
        TrainConfig(epochs=2, batch_size=2, lr=1e-3, device="cpu"),
        out,
    )
    unlearned, _ = load_model(out)
    after = extraction_scores(unlearned, forget, pad_id=tok.pad_token_id)["mean_nll"].mean()
    assert after > before

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    epochs = [r for r in rows if "forget_es" in r]
    assert len(steps) == result.steps == 4 and len(epochs) == 2
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    for r in steps:
        missing = [k for k in STEP_FIELDS if k not in r]
        assert not missing, f"step {r['step']} lacks {missing}"
        assert all(math.isfinite(r[k]) for k in STEP_FIELDS)
    for r in epochs:
        assert 0 <= r["forget_es"] <= 1 and 0 <= r["retain_es"] <= 1
    assert [r["epoch"] for r in epochs] == [1, 2]
    for name in ("config.yaml", "run_info.json", "model.safetensors"):
        assert (out / name).is_file()


SUMMARY_KEYS = (
    "forget_es",
    "forget_em",
    "forget_prob",
    "forget_rouge",
    "forget_truth_ratio",
    "forget_quality",
    "retain_es",
    "retain_em",
    "retain_prob",
    "retain_rouge",
    "retain_truth_ratio",
    "real_authors_prob",
    "real_authors_rouge",
    "real_authors_truth_ratio",
    "world_facts_prob",
    "world_facts_rouge",
    "world_facts_truth_ratio",
    "model_utility",
)
UTILITY_KEYS = tuple(
    f"{s}_{m}"
    for s in ("retain", "real_authors", "world_facts")
    for m in ("prob", "rouge", "truth_ratio")
)
PER_SAMPLE_SPLITS = (
    "forget10_perturbed",
    "retain_perturbed",
    "real_authors_perturbed",
    "world_facts_perturbed",
)


def test_evaluate_tofu_outputs(trained, bench_dir: Path) -> None:
    """Every summary key; per-item values for every split and metric; forget quality = 1 when
    the 'retain model' truth ratios are the model's own; utility = harmonic mean of the 9."""
    model, tok = trained
    own = score_split(model, tok, load_split(bench_dir, "forget10_perturbed"), rouge=False)[
        "truth_ratio"
    ]
    summary, per_sample = evaluate_tofu(
        model,
        tok,
        bench_dir,
        "forget10",
        retain_truth_ratios=own,
        protocol=dataclasses.replace(PROTOCOLS["tofu"], gen_tokens=60),
        progress=False,
    )
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    assert not missing, f"summary lacks {missing}"
    assert all(math.isfinite(summary[k]) for k in SUMMARY_KEYS)
    assert summary["forget_quality"] == 1.0

    assert set(per_sample) == {*PER_SAMPLE_SPLITS, "holdout10"}
    for split in PER_SAMPLE_SPLITS:
        n = len(load_split(bench_dir, split))
        for metric in ("es", "em", "prob", "rouge", "truth_ratio"):
            assert len(per_sample[split][metric]) == n, (split, metric)
    # membership inference: forget10's items (trained on) against holdout10's (never seen)
    members, non_members = per_sample["forget10_perturbed"], per_sample["holdout10"]
    assert len(non_members["mia_loss"]) == len(load_split(bench_dir, "holdout10"))
    for attack in ("loss", "zlib", "min_k", "min_k_pp"):
        auc = M.auc_roc(members[f"mia_{attack}"], non_members[f"mia_{attack}"])
        assert summary[f"mia_{attack}_auc"] == pytest.approx(auc, abs=1e-12)
    assert summary["mia_loss_auc"] > 0.9  # a memorised forget set stands out from the holdout
    assert per_sample["forget10_perturbed"]["truth_ratio"] == pytest.approx(own)
    forget_es = per_sample["forget10_perturbed"]["es"]
    assert summary["forget_es"] == pytest.approx(sum(forget_es) / len(forget_es))
    assert summary["forget_es"] == 1.0  # the model reproduces every trained forget answer

    values = [summary[k] for k in UTILITY_KEYS]
    harmonic = 0.0 if min(values) == 0 else len(values) / sum(1 / v for v in values)
    assert summary["model_utility"] == pytest.approx(harmonic)


@pytest.fixture(scope="module")
def collapsed(tiny_tok):
    """A collapsed model: every logit 0, so every token has probability 1/V and every answer,
    true, paraphrased or perturbed, the same mean NLL ln V."""
    model = build_model("tiny", tiny_tok, seed=0).eval()
    with torch.no_grad():
        model.lm_head.weight.zero_()
    return model, tiny_tok


def test_tr_eps_reaches_the_probability_and_truth_ratio_of_a_collapsed_model(
    collapsed, bench_dir: Path
) -> None:
    """real_authors under tr_eps = p = 1/V, on the collapsed model (all probabilities p):
    normalised probability p/(p + K·p + ε) = 1/(K + 2) (K = 3 perturbed answers: 1/5, where
    ε = 0 gives 1/4) and truth ratio p/(p + ε) = 1/2 (ε = 0: 1). The forget set's answer
    probability is p itself (no ε there). Tolerance: the mean NLL of a float32 forward pass,
    ln V to ~1e-6 relative, moves these by ~1e-5; ε moves them by ≥ 0.05."""
    model, tok = collapsed
    V = model.config.vocab_size
    P = dataclasses.replace(PROTOCOLS["tofu"], tr_eps=1 / V)
    records = load_split(bench_dir, "real_authors_perturbed")
    K = min(len(r["perturbed_answer"]) for r in records)
    assert K == 3
    items = score_split(
        model, tok, records, protocol=P, base_key="answer", answer_prob=False, rouge=False
    )
    assert items["prob"] == pytest.approx([1 / (K + 2)] * len(records), abs=1e-4)
    assert items["truth_ratio"] == pytest.approx([0.5] * len(records), abs=1e-4)
    forget = score_split(model, tok, load_split(bench_dir, "forget10_perturbed"), protocol=P,
                         rouge=False)  # fmt: skip
    assert forget["prob"] == pytest.approx([1 / V] * 4, abs=1e-8)
    assert forget["truth_ratio"] == pytest.approx([0.5] * 4, abs=1e-4)


def test_tr_eps_reaches_the_forget_truth_ratio_score(bench_dir: Path, monkeypatch) -> None:
    """evaluate_tofu aggregates the forget set's ratios as mean(min(R, 1/(R + ε))) with the
    protocol's ε, the others as mean(max(0, 1 − R)) (no ε). Per-item scores stubbed with
    R = [2, 1/2, 2, 1/2] on every split, tr_eps = 1/2: forget min(2, 1/2.5) = 0.4 and
    min(1/2, 1/1) = 1/2 → 0.45 (ε = 0: 0.5); others (0 + 1/2)/2 = 0.25 either way."""
    ratios = [2.0, 0.5, 2.0, 0.5]

    def stub(model, tokenizer, records, **kw) -> dict:
        n = len(records)
        return {"es": [0.0] * n, "em": [0.0] * n, "prob": [0.5] * n,
                "truth_ratio": (ratios * n)[:n]}  # fmt: skip

    monkeypatch.setattr(tofu_evaluation, "score_split", stub)
    P = dataclasses.replace(PROTOCOLS["tofu"], tr_eps=0.5)
    summary, _ = evaluate_tofu(None, None, bench_dir, "forget10", protocol=P, rouge=False,
                               progress=False, membership=False)  # fmt: skip
    assert summary["forget_truth_ratio"] == pytest.approx(0.45, abs=1e-12)
    for name in ("retain", "real_authors", "world_facts"):
        n = len(load_split(bench_dir, f"{name}_perturbed"))
        want = sum(max(0.0, 1 - r) for r in (ratios * n)[:n]) / n
        assert summary[f"{name}_truth_ratio"] == pytest.approx(want, abs=1e-12)


def test_generation_batch_size_sets_the_rouge_batches_only(
    trained, bench_dir: Path, monkeypatch
) -> None:
    """`generation_batch_size` batches the ROUGE answers (rows per greedy_decode call ≤ it)
    and changes no number: greedy rows are independent."""
    import satimp.evaluation.generation as E

    model, tok = trained
    rows: list[int] = []
    real = E.greedy_decode
    monkeypatch.setattr(
        E,
        "greedy_decode",
        lambda m, ids, *a, **k: rows.append(ids.size(0)) or real(m, ids, *a, **k),
    )
    P = dataclasses.replace(PROTOCOLS["tofu"], gen_tokens=30)
    kw = dict(protocol=P, progress=False, batch_size=4)
    summary, per = evaluate_tofu(model, tok, bench_dir, "forget10", **kw)
    assert max(rows) == 4
    rows.clear()
    summary2, per2 = evaluate_tofu(model, tok, bench_dir, "forget10", generation_batch_size=2, **kw)
    assert max(rows) == 2 and len(rows) > 1
    assert per2 == per and summary2 == summary


def test_bf16_evaluation_is_active_and_close(trained, bench_dir: Path) -> None:
    """eval.precision=bf16 really runs under bf16 autocast (the numbers move by bf16 rounding)
    and stays close to fp32 (bf16 keeps ~3 significant digits)."""
    from satimp.evaluation.scoring import eval_precision

    model, tok = trained
    records = load_split(bench_dir, "forget10_perturbed")
    fp32 = score_split(model, tok, records, rouge=False)
    with eval_precision(model, "bf16"):
        assert torch.is_autocast_enabled("cpu")
        bf16 = score_split(model, tok, records, rouge=False)
    assert bf16["prob"] != fp32["prob"]
    assert bf16["prob"] == pytest.approx(fp32["prob"], abs=0.05)
    with eval_precision(model, "fp32"):
        assert not torch.is_autocast_enabled("cpu")
