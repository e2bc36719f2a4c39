"""Protocols (SPEC §6): each switch changes exactly what it names, and under every protocol the
fast evaluation equals a literal, item-by-item reference written here from the definitions
(one unpadded forward pass per sequence, the sources' own ES loops, rouge_score, scipy)."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import pytest
import scipy.stats
import torch
from rouge_score import rouge_scorer

from satimp import metrics as M
from satimp.config import MethodConfig, from_dict
from satimp.data.encoding import IGNORE
from satimp.data.tofu import load_split
from satimp.errors import InputError
from satimp.evaluation.scoring import extraction_scores
from satimp.evaluation.tofu import evaluate_tofu
from satimp.models import CHAT_TEMPLATES, build_model, load_model
from satimp.objectives import Objective, kl_loss
from satimp.protocol import (
    OFFICIAL_ES_PROMPT,
    PROTOCOLS,
    SWITCHES,
    Protocol,
    ProtocolConfig,
    as_dict,
    retain_training_ref,
)

GEN = 48  # a small generation budget keeps the literal (unbatched) generation fast


def _proto(name: str = "tofu", **switches) -> Protocol:
    return dataclasses.replace(PROTOCOLS[name], **({"gen_tokens": GEN} | switches))


@pytest.fixture(scope="module")
def trained(tiny_trained: Path):
    model, tok = load_model(tiny_trained)
    return model.eval(), tok


@pytest.fixture(scope="module")
def untrained(tiny_tok):
    """A random tiny model: ES = 0 on most items, so the no-match convention shows."""
    return build_model("tiny", tiny_tok, seed=3).eval(), tiny_tok


# ------------------------------------------------------------------ the literal reference


def _chat_ids(tok, question: str, system: str) -> list[int]:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question}
    ]
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tok(text, add_special_tokens=False).input_ids


@torch.no_grad()
def _score(model, ids: list[int], start: int) -> tuple[list[float], list[bool]]:
    """Per label token ids[start:], its NLL and whether the argmax predicted it."""
    logits = model(input_ids=torch.tensor([ids])).logits[0]
    logp = logits.double().log_softmax(-1)
    nll = [-logp[t - 1, ids[t]].item() for t in range(start, len(ids))]
    hit = [logits[t - 1].argmax().item() == ids[t] for t in range(start, len(ids))]
    return nll, hit


def _qa(model, tok, P: Protocol, question: str, answer: str):
    """(NLL per answer token, hits per answer token, number of tokens ES and EM count) of one
    chat-encoded pair (answer_tokens 'chat': open-unlearning's one-string rendering, template
    end-of-turn text included), cut to eval_max_length as TOFU's evaluation cuts it. ES and EM leave
    out the last label — the EOS, or, in an answer the cut shortened, its last kept token
    (open-unlearning drops the last label whatever it is)."""
    prompt = _chat_ids(tok, question, P.system_prompt)
    if P.answer_tokens == "chat":  # open-unlearning: the rendered conversation, one string
        messages = [{"role": "system", "content": P.system_prompt}] if P.system_prompt else []
        messages += [{"role": "user", "content": question}]
        messages += [{"role": "assistant", "content": answer}]
        text = tok.apply_chat_template(messages, tokenize=False)
        whole = tok(text, add_special_tokens=False).input_ids
        whole += [tok.eos_token_id] if whole[-1] != tok.eos_token_id else []
    else:
        whole = prompt + tok(answer, add_special_tokens=False).input_ids + [tok.eos_token_id]
    ids = whole[: max(P.eval_max_length, len(prompt) + 1)]
    nll, hit = _score(model, ids, len(prompt))
    return nll, hit, len(nll) - 1


def _es_definition(hit: list[bool], no_match: str) -> float:
    """Wang et al.: k* = min{k : the suffix from k is reproduced} (k = n always is); ES =
    1 − k*/n. open-unlearning's loop instead stops at k = n − 1 when nothing matches."""
    n = len(hit)
    if n == 0:
        return 0.0
    if no_match == "inverse_length":
        k = 0
        for k in range(n):  # noqa: B007  (k survives the loop, as in their code)
            if all(hit[k:]):
                break
        return 1 - k / n
    k_star = next(k for k in range(n + 1) if all(hit[k:]))
    return 1 - k_star / n


def _es_official(model, tok, question: str, answer: str) -> tuple[float, float]:
    """eval_es.py: prefix and prefix+answer tokenised as strings; the answer tokens are those
    past the prefix's token count; matches counted back from the end until the first miss."""
    prefix = OFFICIAL_ES_PROMPT.format(question=question)
    whole = tok(prefix + answer).input_ids
    n_prefix = len(tok(prefix).input_ids)
    _, hit = _score(model, whole, n_prefix)
    run = 0
    for h in reversed(hit):
        if not h:
            break
        run += 1
    return run / len(hit), sum(hit) / len(hit)


@torch.no_grad()
def literal_greedy(model, tok, prompt: list[int], budget: int) -> list[int]:
    """One unpadded prompt through Hugging Face's `generate`: new tokens, EOS kept."""
    out = model.generate(
        input_ids=torch.tensor([prompt]),
        max_new_tokens=budget,
        do_sample=False,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )[0, len(prompt) :].tolist()
    return out[: out.index(tok.eos_token_id) + 1] if tok.eos_token_id in out else out


def _generate(model, tok, P: Protocol, question: str) -> str:
    prompt = _chat_ids(tok, question, P.system_prompt)
    budget = P.gen_tokens if P.generation == "new" else P.gen_tokens - len(prompt)
    if budget <= 0:
        return ""
    return tok.decode(literal_greedy(model, tok, prompt, budget), skip_special_tokens=True).strip()


_ROUGE = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def literal_split(model, tok, P: Protocol, records: list[dict], *, general: bool) -> dict:
    out = {k: [] for k in ("es", "em", "prob", "truth_ratio", "rouge")}
    base_key = "answer" if general else "paraphrased_answer"
    for r in records:
        nll, hit, n_text = _qa(model, tok, P, r["question"], r["answer"])
        if P.es_prompt == "qa":
            es, em = _es_official(model, tok, r["question"], r["answer"])
        else:
            es = _es_definition(hit[:n_text], P.es_no_match)
            em = sum(hit[:n_text]) / n_text if n_text else 0.0  # nothing left to score

        def mean_nll(answer: str, question: str = r["question"]) -> float:
            v, _, k = _qa(model, tok, P, question, answer)
            v = v if P.eos_in_prob else v[:k]
            return sum(v) / len(v)

        ans = mean_nll(r["answer"])
        base = ans if general else mean_nll(r[base_key])
        pert = [mean_nll(a) for a in r["perturbed_answer"]]
        if P.tr_mean == "geometric":
            wrong = math.exp(-sum(pert) / len(pert))
        else:
            wrong = sum(math.exp(-x) for x in pert) / len(pert)
        ratio = wrong / (math.exp(-base) + P.tr_eps)
        if general:
            p = math.exp(-ans)
            prob = p / (p + sum(math.exp(-x) for x in pert) + P.tr_eps)
        else:
            prob = math.exp(-ans)
        gen = _generate(model, tok, P, r["question"])
        rouge = _ROUGE.score(r["answer"], gen)["rougeL"].recall
        for k, v in zip(out, (es, em, prob, ratio, rouge), strict=True):
            out[k].append(v)
    return out


def literal_tofu(model, tok, data: Path, P: Protocol, retain_ratios=None) -> tuple[dict, dict]:
    splits = {
        "forget": "forget10_perturbed",
        "retain": "retain_perturbed",
        "real_authors": "real_authors_perturbed",
        "world_facts": "world_facts_perturbed",
    }
    per, summary = {}, {}
    for name, split in splits.items():
        records = load_split(data, split)
        records = records[: P.ds_size] if P.ds_size else records
        items = literal_split(
            model, tok, P, records, general=name in ("real_authors", "world_facts")
        )
        per[split] = items
        for metric, values in items.items():
            if metric == "truth_ratio":
                per_item = [
                    min(r, 1 / (r + P.tr_eps)) if name == "forget" else max(0, 1 - r)
                    for r in values
                ]
                summary[f"{name}_truth_ratio"] = sum(per_item) / len(per_item)
            elif name in ("forget", "retain") or metric in ("prob", "rouge"):
                summary[f"{name}_{metric}"] = sum(values) / len(values)
    if P.retain_es == "retain_head":
        records = load_split(data, "retain90")[: P.retain_holdout]
        scores = []
        for r in records:
            if P.es_prompt == "qa":
                scores.append(_es_official(model, tok, r["question"], r["answer"]))
            else:
                _, hit, n = _qa(model, tok, P, r["question"], r["answer"])
                scores.append((_es_definition(hit[:n], P.es_no_match), sum(hit[:n]) / n))
        summary["retain_es"] = sum(s[0] for s in scores) / len(scores)
        summary["retain_em"] = sum(s[1] for s in scores) / len(scores)
    utility = [
        summary[f"{s}_{m}"]
        for s in ("retain", "real_authors", "world_facts")
        for m in ("prob", "rouge", "truth_ratio")
    ]
    summary["model_utility"] = float(scipy.stats.hmean(utility)) if min(utility) > 0 else 0.0
    if retain_ratios is not None:
        forget = per["forget10_perturbed"]["truth_ratio"]
        summary["forget_quality"] = float(scipy.stats.ks_2samp(forget, retain_ratios).pvalue)
    return summary, per


def _close(a: float, b: float, what: str) -> None:
    # per-item values come from float32 forward passes (batched and padded on the fast path,
    # one sequence at a time here): NLLs agree to ~1e-6, so probabilities and ratios to ~1e-5
    # relative; ES, EM and ROUGE are ratios of counts and agree exactly
    assert a == pytest.approx(b, rel=1e-4, abs=1e-6), what


VARIANTS = {
    **{name: {} for name in PROTOCOLS},
    "tofu+eos-out+inverse+ds2": {"eos_in_prob": False, "es_no_match": "inverse_length", "ds_size": 2},
    "tofu+short-eval+system": {"eval_max_length": 30, "system_prompt": "Answer briefly."},
}  # fmt: skip


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("which", ["trained", "untrained"])
def test_fast_evaluation_equals_literal_reference(
    variant: str, which: str, request, bench_dir: Path
) -> None:
    model, tok = request.getfixturevalue(which)
    base = variant.split("+")[0]
    P = _proto(base, **VARIANTS[variant])
    if P.retain_es == "retain_head":  # the tiny benchmark's retain90 has 36 items
        P = dataclasses.replace(P, retain_holdout=8)
    retain_ratios = [0.5, 1.0, 2.0, 4.0]
    fast, fast_per = evaluate_tofu(
        model, tok, bench_dir, "forget10", protocol=P, retain_truth_ratios=retain_ratios,
        progress=False,
    )  # fmt: skip
    slow, slow_per = literal_tofu(model, tok, bench_dir, P, retain_ratios)
    for split, items in slow_per.items():
        for metric, values in items.items():
            got = fast_per[split][metric]
            assert len(got) == len(values), (split, metric)
            for i, (a, b) in enumerate(zip(got, values, strict=True)):
                if metric in ("es", "em", "rouge"):
                    assert a == pytest.approx(b, abs=1e-6), (split, metric, i)
                else:
                    _close(a, b, f"{split} {metric} item {i}")
    for key, value in slow.items():
        _close(fast[key], value, key)


def test_open_unlearning_scores_a_chatml_turn_end_like_the_literal_reference(
    trained, bench_dir: Path
) -> None:
    """Under a template with end-of-turn text (ChatML), the open-unlearning protocol scores
    `<|im_end|>\n` + EOS after each answer (answer_tokens='chat'), as the literal reference
    does; the per-item probabilities then differ from answer_tokens='separate'."""
    model, tok = trained
    tok = copy.deepcopy(tok)
    tok.chat_template = CHAT_TEMPLATES["chatml"]
    P = _proto("open-unlearning", ds_size=4)
    fast, fast_per = evaluate_tofu(model, tok, bench_dir, "forget10", protocol=P, progress=False)
    slow, slow_per = literal_tofu(model, tok, bench_dir, P)
    for split, items in slow_per.items():
        for metric, values in items.items():
            for i, (a, b) in enumerate(zip(fast_per[split][metric], values, strict=True)):
                _close(a, b, f"{split} {metric} item {i}")
    for key, value in slow.items():
        _close(fast[key], value, key)
    sep = dataclasses.replace(P, answer_tokens="separate")
    _, sep_per = evaluate_tofu(model, tok, bench_dir, "forget10", protocol=sep, rouge=False)
    a, b = fast_per["forget10_perturbed"]["prob"], sep_per["forget10_perturbed"]["prob"]
    assert all(x != pytest.approx(y, rel=1e-3) for x, y in zip(a, b, strict=True))


# ------------------------------------------------------------------ each switch alone

ES_KEYS = {"forget_es", "retain_es"}
EM_KEYS = {"forget_em", "retain_em"}
TR_KEYS = {f"{s}_truth_ratio" for s in ("forget", "retain", "real_authors", "world_facts")}
PROB_KEYS = {f"{s}_prob" for s in ("forget", "retain", "real_authors", "world_facts")}
ROUGE_KEYS = {f"{s}_rouge" for s in ("forget", "retain", "real_authors", "world_facts")}

SWITCH_EFFECTS = [  # (switch, value, model, the summary keys it may change, those it must)
    ("es_no_match", "inverse_length", "untrained", ES_KEYS, ES_KEYS),
    ("es_prompt", "qa", "trained", ES_KEYS | EM_KEYS, {"forget_es", "forget_em"}),
    ("retain_es", "retain_head", "untrained", {"retain_es", "retain_em"}, set()),
    # (a random model's R ≥ 1 scores max(0, 1 − R) = 0 either way outside the forget set)
    ("tr_mean", "arithmetic", "untrained", TR_KEYS | {"model_utility", "forget_quality"}, {"forget_truth_ratio"}),
    ("eos_in_prob", False, "trained", PROB_KEYS | TR_KEYS | {"model_utility", "forget_quality"}, PROB_KEYS),
    ("generation", "total", "trained", ROUGE_KEYS | {"model_utility"}, ROUGE_KEYS),
    # ε shifts every ratio by ~ε/P (P ~ 1e-3 on a random tiny model): visible at rel 1e-9
    ("tr_eps", 1e-10, "untrained", TR_KEYS | PROB_KEYS | {"model_utility", "forget_quality"}, {"forget_truth_ratio"}),
]  # fmt: skip


@pytest.mark.parametrize(("switch", "value", "which", "may", "must"), SWITCH_EFFECTS)
def test_each_switch_changes_exactly_what_it_names(
    switch, value, which, may, must, request, bench_dir: Path
) -> None:
    model, tok = request.getfixturevalue(which)
    # a budget that binds under 'total' (prompts are ~10–25 tokens) but not under 'new'
    base = _proto("tofu", generation="new", gen_tokens=28, retain_holdout=8)
    flipped = dataclasses.replace(base, **{switch: value})
    kw = dict(retain_truth_ratios=[0.5, 1.0, 2.0], progress=False)
    a, _ = evaluate_tofu(model, tok, bench_dir, "forget10", protocol=base, **kw)
    b, _ = evaluate_tofu(model, tok, bench_dir, "forget10", protocol=flipped, **kw)
    changed = {k for k in a if a[k] != pytest.approx(b[k], rel=1e-9, abs=1e-12)}
    assert changed <= may, f"{switch} also changed {changed - may}"
    assert must <= changed, f"{switch} left {must - changed} unchanged"


def test_retain_head_scores_the_held_out_items(trained, bench_dir: Path) -> None:
    """retain_es=retain_head: retain ES/EM over retain90[:N] (per_sample under that name),
    the other retain metrics still over retain_perturbed."""
    model, tok = trained
    P = _proto(retain_es="retain_head", retain_holdout=6)
    summary, per = evaluate_tofu(model, tok, bench_dir, "forget10", protocol=P, rouge=False)
    head = per["retain90[:6]"]
    assert len(head["es"]) == 6 and summary["retain_es"] == pytest.approx(sum(head["es"]) / 6)
    assert len(per["retain_perturbed"]["prob"]) == len(load_split(bench_dir, "retain_perturbed"))


def test_ds_size_takes_the_first_items(trained, bench_dir: Path) -> None:
    model, tok = trained
    _, per = evaluate_tofu(
        model, tok, bench_dir, "forget10", protocol=_proto(ds_size=3), rouge=False, progress=False
    )
    holdout = per.pop("holdout10")  # membership inference's non-members: cut the same way
    assert len(holdout["mia_loss"]) == 3 and len(per["forget10_perturbed"]["mia_loss"]) == 3
    assert all(len(v["truth_ratio"]) == 3 for v in per.values())
    _, full = evaluate_tofu(
        model, tok, bench_dir, "forget10", protocol=_proto(ds_size=0), rouge=False, progress=False
    )
    for split, items in per.items():
        assert items["prob"] == pytest.approx(full[split]["prob"][:3])


def test_system_prompt_reaches_training_and_evaluation_prompts(tiny_tok) -> None:
    from satimp.data.encoding import encode_qa, prompt_ids

    plain = prompt_ids(tiny_tok, "Who?")
    with_system = prompt_ids(tiny_tok, "Who?", system="Be brief.")
    assert tiny_tok.decode(with_system).startswith(tiny_tok.decode(plain)[:3])  # BOS first
    assert "Be brief." in tiny_tok.decode(with_system) and "Be brief." not in tiny_tok.decode(plain)
    e = encode_qa(tiny_tok, "Who?", "Me.", system="Be brief.")
    assert e.input_ids[: len(with_system)] == with_system
    assert [x for x in e.labels if x != IGNORE] == e.input_ids[len(with_system) :]


# ------------------------------------------------------------------ EOS by hand


class _Bigram(torch.nn.Module):
    """logits[t] = table[token t]: a model whose probabilities are set by hand."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = torch.nn.Parameter(table)

    def forward(self, input_ids, attention_mask=None, **_):
        return type("Out", (), {"logits": self.table[input_ids], "hidden_states": None})()


def test_eos_in_probability_but_not_in_es_by_hand() -> None:
    """Vocabulary {0: pad, 1: prompt, 2: 'a', 3: EOS}. After the prompt token the model gives
    'a' probability 1/2 (argmax), after 'a' it gives EOS 1/4 and 'a' 1/2 (argmax 'a', so the
    EOS is mispredicted). Answer = ['a', EOS].
    - ES/EM over 'a' only: 1 and 1 (the EOS would make ES 0 and EM 1/2);
    - probability with the EOS: exp(−(ln 2 + ln 4)/2) = 1/√8; without: 1/2."""
    ln = math.log
    table = torch.full((4, 4), -30.0)
    table[1] = torch.tensor([-30.0, -30.0, ln(0.5), ln(0.5) - 1e-3]).log_softmax(-1)
    table[2] = torch.tensor([-30.0, ln(0.25), ln(0.5), ln(0.25)])
    model = _Bigram(table)
    from satimp.data.encoding import Encoded

    e = Encoded(input_ids=[1, 2, 3], labels=[IGNORE, 2, 3])
    with_eos = extraction_scores(model, [e], pad_id=0, eos_in_prob=True)
    without = extraction_scores(model, [e], pad_id=0, eos_in_prob=False)
    p_a = table[1].log_softmax(-1)[2].exp().item()
    p_eos = table[2].log_softmax(-1)[3].exp().item()
    assert with_eos["es"].item() == without["es"].item() == 1.0
    assert with_eos["em"].item() == without["em"].item() == 1.0
    assert with_eos["prob"].item() == pytest.approx(math.sqrt(p_a * p_eos), rel=1e-6)
    assert without["prob"].item() == pytest.approx(p_a, rel=1e-6)
    assert p_eos == pytest.approx(0.25, rel=1e-3) and p_a == pytest.approx(0.5, rel=1e-3)


def test_no_match_and_tr_mean_by_hand() -> None:
    correct = torch.tensor([[True, True, False], [True, False, True], [False, False, False]])
    mask = torch.ones_like(correct)
    zero = M.extraction_strength(correct, mask)
    inv = M.extraction_strength(correct, mask, no_match="inverse_length")
    # row 0: last token wrong → 0 | 1/3; row 1: k* = 2 → 1/3 both; row 2: nothing → 0 | 1/3
    torch.testing.assert_close(zero, torch.tensor([0.0, 1 / 3, 0.0]))
    torch.testing.assert_close(inv, torch.tensor([1 / 3, 1 / 3, 1 / 3]))
    base, pert = torch.tensor([1.0]), torch.tensor([[0.5, 2.0]])
    geo = M.truth_ratio(base, pert)
    ari = M.truth_ratio(base, pert, mean="arithmetic")
    assert geo.item() == pytest.approx(math.exp(1.0 - 1.25))
    assert ari.item() == pytest.approx((math.exp(-0.5) + math.exp(-2.0)) / 2 / math.exp(-1.0))


# ------------------------------------------------------------------ config and resolution


def test_protocol_config_names_switches_and_errors() -> None:
    assert ProtocolConfig().resolve() == PROTOCOLS["tofu"]
    p = from_dict(ProtocolConfig, {"name": "open-unlearning", "ds_size": 300}).resolve()
    assert p.ds_size == 300 and p.es_no_match == "inverse_length"
    with pytest.raises(InputError, match="unknown protocol 'tofo'; valid protocols: tofu"):
        ProtocolConfig(name="tofo").resolve()
    with pytest.raises(
        InputError, match=r"protocol.es_no_match='one'; valid: zero, inverse_length"
    ):
        ProtocolConfig(es_no_match="one").resolve()
    with pytest.raises(InputError, match="unknown config key protocol.bogus"):
        from_dict(ProtocolConfig, {"bogus": 1}, prefix="protocol.")
    assert set(SWITCHES) == {f.name for f in dataclasses.fields(Protocol)} - {"name"}


def test_run_config_takes_a_protocol_name_or_mapping() -> None:
    from satimp.config import load_config
    from satimp.study.config import RunConfig

    cfg = load_config(RunConfig, None, ["protocol=open-unlearning", "protocol.ds_size=7"])
    p = cfg.resolved_protocol()
    assert (p.name, p.ds_size, p.generation) == ("open-unlearning", 7, "new")
    cfg = load_config(RunConfig, None, ["protocol=tofu", "protocol.tr_eps=1e-10"])
    assert cfg.resolved_protocol().tr_eps == 1e-10
    with pytest.raises(InputError, match=r"protocol.tr_eps=-1.0 must be ≥ 0"):
        ProtocolConfig(tr_eps=-1.0).resolve()
    cfg = load_config(RunConfig, None, ["eval.max_new_tokens=50"])
    assert cfg.resolved_protocol().gen_tokens == 50


def test_retain_hold_out_slices_only_tofu_retain_splits() -> None:
    official = PROTOCOLS["satimp-official"]
    assert retain_training_ref(official, "retain90") == "retain90[400:]"
    assert retain_training_ref(official, "raw/retain1") == "raw/retain1"
    assert retain_training_ref(PROTOCOLS["tofu"], "retain90") == "retain90"


def test_protocol_switch_bounds() -> None:
    """0 is a meaning, not an error, for the counting switches (retain_holdout 0: nothing held
    out; ds_size 0: every item; tr_eps 0: no ε); the smallest budgets allowed are one
    generated token and 8 evaluated tokens, each checked on its own."""
    p = ProtocolConfig(name="satimp-official", retain_holdout=0, ds_size=0, tr_eps=0.0).resolve()
    assert (p.retain_holdout, p.ds_size, p.tr_eps) == (0, 0, 0.0)
    p = ProtocolConfig(gen_tokens=1, eval_max_length=8).resolve()
    assert (p.gen_tokens, p.eval_max_length) == (1, 8)
    for bad in ({"gen_tokens": 0}, {"eval_max_length": 7}):
        with pytest.raises(InputError, match="gen_tokens must be ≥ 1 and eval_max_length ≥ 8"):
            ProtocolConfig(**bad).resolve()


def test_unknown_protocol_lists_every_valid_name() -> None:
    with pytest.raises(
        InputError, match="valid protocols: tofu, open-unlearning, satimp-official$"
    ):
        ProtocolConfig(name="tofo").resolve()


def test_as_dict_holds_every_switch() -> None:
    """The record written into config.yaml, summary.json and the report: the name and every
    switch with the protocol's value."""
    record = as_dict(PROTOCOLS["satimp-official"])
    assert set(record) == {"name", *SWITCHES}
    assert (record["name"], record["retain_holdout"], record["bottomk"]) == (
        "satimp-official",
        400,
        "complement",
    )


# ------------------------------------------------------------------ method switches


@pytest.mark.parametrize(
    ("protocol", "method", "expected"),
    [
        ("tofu", "simnpo", (0.1375, 1.0, "nll", {"beta": 2.5, "delta": 0.0})),
        ("tofu", "simsat", (0.1, 1.0, "nll", {"beta": 5.0})),
        ("tofu", "wga", (1.0, 1.0, "nll", {"beta": 1.0})),
        ("tofu", "satimp", (1.0, 0.1, "nll", {"beta1": 5.0, "beta2": 0.1})),
        ("open-unlearning", "simnpo", (0.125, 1.0, "nll", {"beta": 4.5, "delta": 0.0})),
        ("open-unlearning", "satimp", (0.1, 1.0, "nll", {"beta1": 5.0, "beta2": 1.0})),
        ("satimp-official", "npo", (0.1375, 1.0, "nll", {"beta": 2.5})),
        ("satimp-official", "satimp", (1.0, 0.0, "none", {"beta1": 5.0, "beta2": 0.1})),
        ("satimp-official", "topk", (1.0, 1.0, "nll", {"frac": 0.15})),
    ],
)
def test_method_defaults_per_protocol(protocol: str, method: str, expected: tuple) -> None:
    o = Objective(MethodConfig(method), protocol=protocol)
    gamma, alpha, retain, params = expected
    r = o.resolved()
    assert (r["gamma"], r["alpha"], r["retain"]) == (gamma, alpha, retain)
    assert params.items() <= r["params"].items()
    # an explicit setting beats every protocol's default
    explicit = Objective(MethodConfig(method, gamma=2.0, params={}), protocol=protocol)
    assert explicit.gamma == 2.0


def test_hard_reduction_sum_is_the_token_sum() -> None:
    logps = torch.log(torch.tensor([[0.9, 0.2, 0.5, 0.7], [0.3, 0.6, 0.1, 0.0]]))
    logps[1, 3] = 0.0
    mask = torch.tensor([[True, True, True, True], [True, True, True, False]])
    for_mean = Objective(MethodConfig("topk", retain="none", alpha=0.0), protocol="tofu")
    for_sum = Objective(MethodConfig("topk", retain="none", alpha=0.0), protocol="satimp-official")
    assert not for_mean.hard_sum and for_sum.hard_sum
    w_mean = for_mean.weights(logps, mask, step=0, key_mask=None)
    w_sum = for_sum.weights(logps, mask, step=0, key_mask=None)
    from satimp.objectives import weighted_ga_loss

    mean = weighted_ga_loss(logps, mask, w_mean)
    total = weighted_ga_loss(logps, mask, w_sum, normalize="sum")
    # topk at frac 0.3 (tofu) vs 0.15 (official) picks 1 token per row either way here
    assert torch.equal(w_mean, w_sum)
    assert total.item() == pytest.approx(mean.item() * mask.sum().item())


def test_bottomk_complement_is_all_but_topk() -> None:
    logps = torch.log(torch.tensor([[0.9, 0.2, 0.5, 0.7, 0.4]]))
    mask = torch.ones_like(logps, dtype=torch.bool)
    cfg = MethodConfig("bottomk", params={"frac": 0.4})
    seed_form = Objective(cfg, protocol="tofu").weights(logps, mask, step=0, key_mask=None)
    complement = Objective(cfg, protocol="satimp-official").weights(
        logps, mask, step=0, key_mask=None
    )
    # s = 2: Algorithm 1 takes the 2 highest p (0.9, 0.7); the authors keep all but TopK's
    # 2 lowest (0.2, 0.4): 0.9, 0.5, 0.7
    assert seed_form.tolist() == [[1.0, 0.0, 0.0, 1.0, 0.0]]
    assert complement.tolist() == [[1.0, 0.0, 1.0, 1.0, 0.0]]


def test_random_soft_weights() -> None:
    from satimp.weighting import token_weights

    logps = torch.zeros(1, 10)
    mask = torch.ones(1, 10, dtype=torch.bool)
    hard = token_weights("random", logps, mask, frac=0.3, seed=1)
    soft = token_weights("random", logps, mask, frac=0.3, seed=1, soft_p=0.8)
    torch.testing.assert_close(soft, torch.where(hard.bool(), 0.8, 0.2).double().to(soft.dtype))


def test_kl_all_positions_vs_answer_tokens() -> None:
    g = torch.Generator().manual_seed(0)
    logits, ref = torch.randn(2, 3, 5, generator=g), torch.randn(2, 3, 5, generator=g)
    mask = torch.tensor([[False, True, True], [False, False, True]])
    kl = (ref.log_softmax(-1).exp() * (ref.log_softmax(-1) - logits.log_softmax(-1))).sum(-1)
    assert kl_loss(logits, ref, mask).item() == pytest.approx(kl[mask].mean().item(), rel=1e-6)
    everywhere = kl_loss(logits, ref, torch.ones_like(mask))
    assert everywhere.item() == pytest.approx(kl.mean().item(), rel=1e-6)


def test_rmu_control_and_parameters(tiny_trained: Path) -> None:
    from satimp.data.encoding import encode_qa

    model, tok = load_model(tiny_trained)
    ex = [encode_qa(tok, "q?", "a.")]
    unit = Objective(MethodConfig("rmu", params={"layer": 1}), protocol="tofu")
    unit.prepare(model, ex, pad_id=tok.pad_token_id)
    raw = Objective(MethodConfig("rmu", params={"layer": 1}), protocol="satimp-official")
    raw.prepare(model, ex, pad_id=tok.pad_token_id)
    assert unit.control.norm().item() == pytest.approx(6.5, rel=1e-6)
    assert raw.control.min() >= 0 and raw.control.norm().item() > 6.5 * 2  # U[0,1)^64 · 6.5
    n_all = sum(1 for p in model.parameters() if p.requires_grad)
    assert len(raw.trainable(model)) == n_all and raw.ref_model is None  # α = 0: no copy
    assert len(unit.trainable(model)) < n_all and unit.ref_model is not None
