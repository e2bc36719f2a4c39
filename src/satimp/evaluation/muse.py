"""MUSE's evaluation (SPEC §5): VerbMem, KnowMem on forget and retain QA, PrivLeak's Min-K%
AUC, and forget / retain ES of the texts.
"""

from __future__ import annotations

from collections.abc import Sequence

from satimp import metrics as M
from satimp.data.encoding import (
    Encoded,
    encode_continuation,
)
from satimp.data.muse import load_muse
from satimp.data.records import load_texts
from satimp.evaluation.generation import generate
from satimp.evaluation.scoring import extraction_scores, first_n, text_probe_scores
from satimp.logprobs import (
    example_logps,
)
from satimp.stats import mean


def min_k_scores(
    model, tokenizer, texts: Sequence[str], *, k: float, max_length: int, batch_size: int = 32
) -> list[float]:
    """Min-K% membership score of each text's first `max_length` tokens (higher: member)."""
    examples = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False).input_ids[:max_length]
        examples.append(Encoded(ids, list(ids)))
    logps = example_logps(model, examples, pad_id=tokenizer.pad_token_id, batch_size=batch_size)
    return [M.min_k_percent(lp, k=k).item() for lp in logps]


def knowmem_prompt(shots: Sequence[dict], question: str) -> str:
    """MUSE's few-shot KnowMem prompt: 'Question: q\\nAnswer: a\\n\\n' per shot, then the question."""
    demos = "".join(f"Question: {s['question']}\nAnswer: {s['answer']}\n\n" for s in shots)
    return f"{demos}Question: {question}\nAnswer:"


def evaluate_muse(
    model,
    tokenizer,
    data,
    cfg,
    *,
    retain_auc: float | None = None,
    batch_size: int = 32,
    full: bool = True,
) -> tuple[dict, dict]:
    """MUSE's metrics (SPEC §5) of a model: (summary, per_sample). `cfg` is a
    `satimp.data.muse.MuseConfig`. `full=False` computes the two one-pass ES numbers only
    (what unlearning logs after each epoch).

    - verbmem_forget: ROUGE-L F1 of the greedy continuation (cfg.verbmem_new_tokens) of each
      VerbMem prompt against its ground truth; forget_es / forget_em: ES and EM of the ground
      truth given the prompt (one pass).
    - knowmem_forget / knowmem_retain: ROUGE-L F1 of the greedy answer (cfg.knowmem_new_tokens,
      cut at the first line break) to the few-shot prompt of `knowmem_prompt`.
    - privleak_auc: AUC of Min-K% (k = cfg.min_k) separating privleak forget (members) from
      holdout texts; privleak = (AUC − AUC_retain) / AUC_retain × 100 given the retain model's
      AUC (None without it).
    - retain_es / retain_em: ES and EM of the privleak retain texts (`text_probe_scores`).
    """
    n = cfg.max_items
    kw = dict(batch_size=batch_size)
    summary, per = {}, {}

    verb = first_n(load_muse(data, cfg.verbmem), n)
    teacher = extraction_scores(
        model,
        [
            encode_continuation(tokenizer, r["prompt"], " " + r["gt"], max_length=cfg.max_length)
            for r in verb
        ],
        pad_id=tokenizer.pad_token_id,
        drop_eos=False,
        **kw,
    )
    per[cfg.verbmem] = {"es": teacher["es"].tolist(), "em": teacher["em"].tolist()}
    summary["forget_es"] = mean(per[cfg.verbmem]["es"])
    summary["forget_em"] = mean(per[cfg.verbmem]["em"])
    if full:
        _muse_generation_and_privacy(model, tokenizer, data, cfg, verb, summary, per, kw)
        if retain_auc is not None:
            summary["privleak"] = M.priv_leak(summary["privleak_auc"], retain_auc)

    retain = text_probe_scores(
        model,
        tokenizer,
        first_n(load_texts(data, cfg.privleak_retain), n),
        max_length=cfg.max_length,
        **kw,
    )
    per[cfg.privleak_retain] = retain
    summary["retain_es"] = mean(retain["es"])
    summary["retain_em"] = mean(retain["em"])
    return summary, per


def _muse_generation_and_privacy(model, tokenizer, data, cfg, verb, summary, per, kw) -> None:
    """VerbMem, KnowMem and the Min-K% AUC of `evaluate_muse` (the parts that generate)."""
    n = cfg.max_items
    gens = generate(
        model,
        tokenizer,
        [tokenizer(r["prompt"], add_special_tokens=False).input_ids for r in verb],
        max_new_tokens=cfg.verbmem_new_tokens,
        **kw,
    )
    rouge = [M.rouge_l_f1(g, r["gt"]) for g, r in zip(gens, verb, strict=True)]
    per[cfg.verbmem] |= {"rouge": rouge, "generation": gens}
    summary["verbmem_forget"] = mean(rouge)
    for name, ref, icl in (
        ("forget", cfg.knowmem_forget, cfg.icl_forget),
        ("retain", cfg.knowmem_retain, cfg.icl_retain),
    ):
        qa = first_n(load_muse(data, ref), n)
        shots = first_n(load_muse(data, icl), cfg.icl_shots)
        prompts = [
            tokenizer(knowmem_prompt(shots, r["question"]), add_special_tokens=False).input_ids
            for r in qa
        ]
        answers = [
            g.strip().split("\n")[0].strip()
            for g in generate(
                model, tokenizer, prompts, max_new_tokens=cfg.knowmem_new_tokens, **kw
            )
        ]
        rouge = [M.rouge_l_f1(a, r["answer"]) for a, r in zip(answers, qa, strict=True)]
        per[ref] = {"rouge": rouge, "generation": answers}
        summary[f"knowmem_{name}"] = mean(rouge)

    mk = dict(k=cfg.min_k, max_length=cfg.max_length, **kw)
    members = min_k_scores(
        model, tokenizer, first_n(load_texts(data, cfg.privleak_forget), n), **mk
    )
    others = min_k_scores(
        model, tokenizer, first_n(load_texts(data, cfg.privleak_holdout), n), **mk
    )
    per[cfg.privleak_forget] = {"min_k": members}
    per[cfg.privleak_holdout] = {"min_k": others}
    summary["privleak_auc"] = M.auc_roc(members, others)
    summary["privleak"] = None
