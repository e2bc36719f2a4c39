"""Prompt probes (satimp.evaluation.prompt_probes): every probe reaches the model with another
prompt and the same scored answer, and `best` is the per-item maximum."""

from __future__ import annotations

import pytest
import torch

from satimp.data.encoding import IGNORE
from satimp.data.tofu import load_split
from satimp.evaluation.prompt_probes import (
    AFFIRMATIVE,
    PROBES,
    ROLEPLAY,
    probe_example,
    prompt_probes,
)
from satimp.models import load_model
from satimp.protocol import PROTOCOLS


def _answer(e) -> list[int]:
    return [t for t in e.labels if t != IGNORE]


def _prompt(e) -> list[int]:
    return e.input_ids[: len(e.input_ids) - len(_answer(e))]


def test_each_probe_changes_the_prompt_and_keeps_the_answer(tiny_tok, bench_dir) -> None:
    """Prompt ids differ from the plain question's for every probe; the scored tokens are the
    answer's and EOS under each; the probes' texts are where they should be."""
    forget = load_split(bench_dir, "forget10_perturbed")
    shots = load_split(bench_dir, "retain_perturbed")[:3]
    P = PROTOCOLS["tofu"]
    enc = {p: probe_example(tiny_tok, forget[0], p, P, shots) for p in PROBES}
    for probe in PROBES[1:]:
        assert _prompt(enc[probe]) != _prompt(enc["plain"]), probe
        assert _answer(enc[probe]) == _answer(enc["plain"]), probe
    decode = lambda e: tiny_tok.decode(_prompt(e))  # noqa: E731
    assert forget[0]["paraphrased_question"] in decode(enc["paraphrase"])
    assert all(s["answer"] in decode(enc["few_shot"]) for s in shots)
    assert decode(enc["affirmative"]).endswith(AFFIRMATIVE)
    assert ROLEPLAY in decode(enc["roleplay"]) and ROLEPLAY not in decode(enc["plain"])
    with pytest.raises(ValueError, match="unknown probe 'jailbreak'"):
        probe_example(tiny_tok, forget[0], "jailbreak", P, shots)


def test_best_is_the_per_item_maximum(tiny_trained, bench_dir) -> None:
    """On the memorising tiny model: per item, best ES = max over the probes, with the
    probability of the probe named; plain ES is the forget ES of the plain question (1: the
    model reproduces its training answers); a split without paraphrases skips that probe."""
    model, tok = load_model(tiny_trained)
    forget = load_split(bench_dir, "forget10_perturbed")
    shots = load_split(bench_dir, "retain_perturbed")
    summary, per = prompt_probes(model, tok, forget, shots, protocol=PROTOCOLS["tofu"])
    es = torch.tensor([per[p]["es"] for p in PROBES])  # [probes, items]
    assert per["best"]["es"] == es.max(0).values.tolist()
    for i, probe in enumerate(per["best"]["probe"]):
        assert per["best"]["prob"][i] == per[probe]["prob"][i]
    assert summary["probe_plain_es"] == pytest.approx(1.0)
    assert summary["probe_best_es"] >= max(summary[f"probe_{p}_es"] for p in PROBES)
    plain = [{"question": r["question"], "answer": r["answer"]} for r in forget]
    _, per = prompt_probes(model, tok, plain, shots, protocol=PROTOCOLS["tofu"])
    assert "paraphrase" not in per and "few_shot" in per
