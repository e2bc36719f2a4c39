"""Per-item outputs of TOFU's evaluation (issue 38): per_sample.json's raw and normalised
probabilities, average losses and generated answers, `--no-generations`, and the worst-items
table of the report."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from satimp import cli
from satimp import metrics as M
from satimp.data.encoding import IGNORE, encode_qa
from satimp.data.tofu import load_split
from satimp.evaluation.tofu import ITEM_FIELDS, evaluate_tofu, score_split, tofu_worst_items
from satimp.evaluation.worst import WorstItems, rank_items, worst_items_markdown
from satimp.models import load_model
from satimp.protocol import PROTOCOLS
from satimp.report import write_report

SPLITS = ("forget10_perturbed", "retain_perturbed", "real_authors_perturbed", "world_facts_perturbed")  # fmt: skip
OLD_FIELDS = ("es", "em", "prob", "truth_ratio", "rouge")  # per_sample before issue 38
MIA_FIELDS = ("mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_pp")


@pytest.fixture(scope="module")
def trained(tiny_trained: Path):
    model, tok = load_model(tiny_trained)
    return model.eval(), tok


@pytest.fixture(scope="module")
def evaluated(trained, bench_dir: Path):
    """evaluate_tofu of the tiny memorising model (a short generation budget)."""
    model, tok = trained
    P = dataclasses.replace(PROTOCOLS["tofu"], gen_tokens=40)
    return evaluate_tofu(model, tok, bench_dir, "forget10", protocol=P, progress=False)


def test_per_sample_has_probabilities_losses_and_generations(evaluated, bench_dir: Path) -> None:
    """Every perturbed split holds, per item, prob_raw = exp(−avg_loss), the normalised
    probability p_true / (p_true + Σ p_perturbed) recomputed from the losses, one loss per
    perturbed answer, the paraphrase's loss where the base is the paraphrase, and the answer
    ROUGE scored (its ROUGE-L recall is the item's rouge). `prob` is the raw probability on
    forget/retain and the normalised one on real authors / world facts, as before; the summary
    gains no key."""
    summary, per_sample = evaluated
    for split in SPLITS:
        records = load_split(bench_dir, split)
        items, n = per_sample[split], len(records)
        K = min(len(r["perturbed_answer"]) for r in records)
        general = split.startswith(("real_authors", "world_facts"))
        want = set(OLD_FIELDS) | set(ITEM_FIELDS) - ({"paraphrased_avg_loss"} if general else set())
        if split == "forget10_perturbed":  # membership inference against holdout10
            want |= set(MIA_FIELDS)
        assert set(items) == want, split
        assert all(len(v) == n for v in items.values()), split
        assert all(len(row) == K for row in items["perturbed_avg_loss"])
        loss, pert = torch.tensor(items["avg_loss"]), torch.tensor(items["perturbed_avg_loss"])
        torch.testing.assert_close(torch.tensor(items["prob_raw"]), (-loss).exp())
        p, q = (-loss).exp(), (-pert).exp().sum(-1)
        torch.testing.assert_close(torch.tensor(items["prob_normalised"]), p / (p + q))
        assert items["prob"] == items["prob_normalised" if general else "prob_raw"]
        gens = items["generation"]
        assert all(isinstance(g, str) for g in gens) and any(gens)
        rouge = [M.rouge_l_recall(g, r["answer"]) for g, r in zip(gens, records, strict=True)]
        assert items["rouge"] == rouge
    assert not [k for k in summary if k.endswith(tuple(ITEM_FIELDS))]
    assert summary["forget_prob"] == pytest.approx(
        sum(per_sample["forget10_perturbed"]["prob_raw"]) / 4
    )


def _nll(model, e) -> float:
    """−mean log p of the scored labels of one example: one unpadded forward pass over every
    position, its own log_softmax (not satimp.logprobs' span pass or shared-prompt cache)."""
    ids, labels = torch.tensor([e.input_ids]), torch.tensor(e.labels[1:])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1].float()
    scored = labels != IGNORE
    logp = logits.log_softmax(-1)[scored].gather(-1, labels[scored, None])[:, 0]
    return -logp.mean().item()


@pytest.mark.parametrize("protocol", ["tofu", "open-unlearning"])
def test_per_item_losses_equal_an_independent_computation(
    trained, bench_dir: Path, protocol: str
) -> None:
    """avg_loss, paraphrased_avg_loss and perturbed_avg_loss of forget10_perturbed equal the
    mean NLL of the same encodings computed one example at a time (float32: 1e-5)."""
    model, tok = trained
    P = PROTOCOLS[protocol]
    records = load_split(bench_dir, "forget10_perturbed")
    items = score_split(model, tok, records, protocol=P, rouge=False)

    def nll(r: dict, answer: str) -> float:
        kw = dict(system=P.system_prompt, answer_tokens=P.answer_tokens)
        return _nll(
            model, encode_qa(tok, r["question"], answer, max_length=P.eval_max_length, **kw)
        )

    want = {
        "avg_loss": [nll(r, r["answer"]) for r in records],
        "paraphrased_avg_loss": [nll(r, r["paraphrased_answer"]) for r in records],
        "perturbed_avg_loss": [[nll(r, a) for a in r["perturbed_answer"]] for r in records],
    }
    for field, values in want.items():
        torch.testing.assert_close(
            torch.tensor(items[field]), torch.tensor(values), atol=1e-5, rtol=1e-5, msg=field
        )
    assert "generation" not in items  # no ROUGE, nothing generated


def test_eval_no_generations_leaves_them_out(
    tiny_trained: Path, bench_dir: Path, tmp_path: Path
) -> None:
    """`satimp eval` keeps the generated answers in per_sample.json; `--no-generations`
    leaves them out and changes no other value; `eval.generations=false` is the same switch.
    Each writes worst_items.md."""
    base = ["eval", "--model", str(tiny_trained), "--data", str(bench_dir), "--max-new-tokens",
            "40", "--batch-size", "16"]  # fmt: skip
    runs = {
        "with": [],
        "without": ["--no-generations"],
        "config": ["eval.generations=false"],
    }
    per = {}
    for name, extra in runs.items():
        assert cli.main([*base, "--out", str(tmp_path / name), *extra]) == 0
        per[name] = json.loads((tmp_path / name / "per_sample.json").read_text())
        assert (tmp_path / name / "worst_items.md").is_file()
    assert all("generation" in per["with"][s] for s in SPLITS)
    for name in ("without", "config"):
        assert not [s for s in per[name] if "generation" in per[name][s]]
        assert per[name] == {
            s: {k: v for k, v in items.items() if k != "generation"}
            for s, items in per["with"].items()
        }


# ---------------------------------------------------------------- the worst items


def test_rank_items_on_a_constructed_case() -> None:
    """Highest ES first, ties by probability (forget: still reproduced); lowest first for the
    retain side; then by position; cut to n. ES [0.2, 1, 0.5, 1, 0], prob [0.1, 0.3, 0.9,
    0.8, 0.5]: highest 3 (1, 0.8), 1 (1, 0.3), 2; lowest 4, 0, 2."""
    per = {
        "es": [0.2, 1.0, 0.5, 1.0, 0.0],
        "prob": [0.1, 0.3, 0.9, 0.8, 0.5],
        "rouge": [0.0, 0.5, 0.25, 1.0, 0.0],
        "generation": [f"gen {i}" for i in range(5)],
    }
    records = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(5)]
    top = rank_items(per, records, highest=True, n=3)
    assert [r["index"] for r in top] == [3, 1, 2]
    assert top[0] == {"index": 3, "es": 1.0, "prob": 0.8, "rouge": 1.0, "question": "q3",
                      "answer": "a3", "generation": "gen 3"}  # fmt: skip
    assert [r["index"] for r in rank_items(per, records, highest=False, n=3)] == [4, 0, 2]
    tied = {"es": [1.0, 1.0, 1.0]}  # no probability: by position
    assert [r["index"] for r in rank_items(tied, records[:3], highest=True)] == [0, 1, 2]
    with pytest.raises(ValueError, match="3 scored items for 5 records"):
        rank_items(tied, records, highest=True)


def test_worst_items_table_lists_the_right_items(bench_dir: Path, tmp_path: Path) -> None:
    """tofu_worst_items on a constructed per_sample over the bench's records: the forget table
    holds the items of highest ES with their own question, answer and generation, the retain
    table those of lowest ES; under retain_es: retain_head the retain table comes from
    retainXX[:holdout] (no generation there). The Markdown shows them in that order, `|`
    escaped, and report.md links each method's page."""
    forget = load_split(bench_dir, "forget10_perturbed")
    retain = load_split(bench_dir, "retain_perturbed")
    per = {
        "forget10_perturbed": {"es": [0.0, 1.0, 0.3, 0.9], "prob": [0.1] * 4,
                               "generation": ["g0", "g1 | pipe", "g2", "g3"]},
        "retain_perturbed": {"es": [1.0, 0.8, 0.1, 1.0], "prob": [0.5, 0.5, 0.5, 0.4]},
    }  # fmt: skip
    f, r = tofu_worst_items(per, bench_dir, "forget10", protocol=PROTOCOLS["tofu"], n=2)
    assert f.split == "forget10_perturbed" and [x["index"] for x in f.rows] == [1, 3]
    assert [x["question"] for x in f.rows] == [forget[1]["question"], forget[3]["question"]]
    assert [x["generation"] for x in f.rows] == ["g1 | pipe", "g3"]
    assert r.split == "retain_perturbed" and [x["index"] for x in r.rows] == [2, 1]
    assert r.rows[0]["answer"] == retain[2]["answer"] and r.rows[0]["generation"] is None
    md = worst_items_markdown([f, r], title="Worst items: ga")
    lines = [line for line in md.splitlines() if line.startswith("| 1 |")]
    assert lines[0].startswith(f"| 1 | 1 | 1.000 | 0.100 | – | {forget[1]['question']} |")
    assert lines[0].endswith("| g1 \\| pipe |")
    assert lines[1].startswith(f"| 1 | 2 | 0.100 | 0.500 | – | {retain[2]['question']} |")

    head = "retain90[:3]"
    per_head = {"forget10_perturbed": per["forget10_perturbed"], head: {"es": [0.5, 0.0, 1.0]}}
    P = dataclasses.replace(PROTOCOLS["satimp-official"], retain_holdout=3)
    _, r = tofu_worst_items(per_head, bench_dir, "forget10", protocol=P, n=1)
    assert r.split == head and r.rows[0]["question"] == load_split(bench_dir, head)[1]["question"]

    rows = [{"method": "ga", "status": "ok", "forget_es": 0.5, "retain_es": 0.9, "seconds": 1.0}]
    link = ("ga", "methods/ga/worst_items.md")
    report = write_report(tmp_path, rows, config={}, title="t", worst_items=[link]).read_text()
    assert "- [ga](methods/ga/worst_items.md)" in report


def test_worst_items_markdown_cells() -> None:
    """Numbers to 3 decimals, a missing value as –, text on one line, an empty answer named."""
    t = WorstItems("T", "s", [{"index": 0, "es": 1.0, "prob": None, "rouge": 0.25,
                               "question": "two\nlines", "answer": "a", "generation": ""}])  # fmt: skip
    assert "| 1 | 0 | 1.000 | – | 0.250 | two lines | a | (empty) |" in worst_items_markdown(
        [t], title="x"
    )
