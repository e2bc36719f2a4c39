"""Encoding QA pairs exactly as SPEC §4, collation with padding, and length-aware batching.

prompt  = chat_template([{"role": "user", "content": question}], add_generation_prompt=True)
answer  = tokenizer(answer, add_special_tokens=False).input_ids + [eos_token_id]
input   = prompt_ids + answer_ids            (never tokenised as one string: no boundary merges)
labels  = [-100] * len(prompt_ids) + answer_ids
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    """One encoded example: token ids and labels (−100 on the prompt), same length."""

    input_ids: list[int]
    labels: list[int]
    key_mask: list[bool] | None = None  # answer tokens that overlap a key fact (`keywords`)

    def __len__(self) -> int:
        return len(self.input_ids)


def prompt_ids(tokenizer, question: str, *, system: str = "") -> list[int]:
    """Token ids of the chat-formatted prompt (generation prompt included), after a system
    message when `system` is given (open-unlearning's template_args)."""
    messages = [{"role": "system", "content": system}] if system else []
    text = tokenizer.apply_chat_template(
        [*messages, {"role": "user", "content": question}],
        add_generation_prompt=True,
        tokenize=False,
    )
    return tokenizer(text, add_special_tokens=False).input_ids


def answer_ids(tokenizer, answer: str) -> list[int]:
    """Token ids of the answer followed by EOS."""
    return tokenizer(answer, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]


def key_token_flags(tokenizer, answer: str, keywords: Sequence[str]) -> list[bool]:
    """Per answer token (EOS included, last): does it overlap a keyword's character span?"""
    enc = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)
    spans = []
    for kw in keywords:
        start = answer.find(kw)
        while kw and start >= 0:
            spans.append((start, start + len(kw)))
            start = answer.find(kw, start + 1)
    flags = [any(s < e1 and s1 < e for s1, e1 in spans) for s, e in enc["offset_mapping"]]
    return flags + [False]


def chat_qa_ids(
    tokenizer, question: str, answer: str, *, system: str = ""
) -> tuple[list[int], int]:
    """open-unlearning's encoding (`preprocess_chat_instance`): the whole conversation, answer
    included, rendered by the chat template and tokenised as one string, then EOS unless the
    last token is EOS already; the answer tokens are those past the prompt's token count, so
    the template's end-of-turn text (ChatML's `<|im_end|>\n`) is scored with the answer, and
    a prompt ending in a space loses it to the answer's first word as in their code.
    A template that does not render the assistant's turn after the prompt (satimp's fallbacks
    for base Llama and phi) gives prompt text + answer as one string: their
    `apply_chat_template: False` path with the same tags.

    Returns (token ids, number of prompt tokens ≤ len − 1)."""
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": question})
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    messages.append({"role": "assistant", "content": answer})
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    if not text.startswith(prompt + answer):
        text = prompt + answer
    ids = tokenizer(text, add_special_tokens=False).input_ids
    if not ids or ids[-1] != tokenizer.eos_token_id:
        ids = ids + [tokenizer.eos_token_id]
    n_prompt = len(tokenizer(prompt, add_special_tokens=False).input_ids)
    return ids, min(n_prompt, len(ids) - 1)


def encode_qa(
    tokenizer,
    question: str,
    answer: str,
    *,
    max_length: int = 512,
    keywords: Sequence[str] | None = None,
    system: str = "",
    answer_tokens: str = "separate",
) -> Encoded:
    """Encode one QA pair (SPEC §4). Truncation keeps the whole prompt and cuts the answer
    (its EOS first), as TOFU's evaluation truncation does.

    With `keywords`, `key_mask` flags the answer tokens overlapping a key fact (for the
    `annotated` criterion and the retain-model check of memorised facts). answer_tokens
    'separate': the answer tokenised alone + EOS (SPEC §4); 'chat': `chat_qa_ids`
    (open-unlearning; no key mask).
    """
    if answer_tokens == "chat":
        if keywords is not None:
            raise ValueError("encode_qa: keywords need answer_tokens='separate'")
        ids, n = chat_qa_ids(tokenizer, question, answer, system=system)
        p, a = ids[:n], ids[n:]
    elif answer_tokens == "separate":
        p, a = prompt_ids(tokenizer, question, system=system), answer_ids(tokenizer, answer)
    else:
        raise ValueError(f"answer_tokens={answer_tokens!r}; valid: separate, chat")
    a = a[: max(1, max_length - len(p))]
    keys = None
    if keywords is not None:
        keys = [False] * len(p) + key_token_flags(tokenizer, answer, keywords)[: len(a)]
    return Encoded(input_ids=p + a, labels=[IGNORE] * len(p) + a, key_mask=keys)


def encode_records(
    tokenizer, records: Sequence[dict], *, max_length: int, system: str = ""
) -> list[Encoded]:
    """Encode QA records (key-fact masks included when the records carry `keywords`)."""
    return [
        encode_qa(
            tokenizer,
            r["question"],
            r["answer"],
            max_length=max_length,
            keywords=r.get("keywords"),
            system=system,
        )
        for r in records
    ]


def encode_qa_string(tokenizer, prefix: str, answer: str, *, max_length: int = 512) -> Encoded:
    """The authors' ES encoding (SatImp `eval_es.py`): `prefix + answer` and `prefix` tokenised
    as strings with the tokenizer's special tokens (BOS), no EOS; the answer tokens are those
    of the whole string after the prefix's token count. (With a prefix ending in a space,
    tokenizers that merge the space into the next word make the prefix one token longer than
    the true boundary, so the first answer token is not scored — as in their code.)"""
    whole = tokenizer(prefix + answer).input_ids[:max_length]
    n = min(len(tokenizer(prefix).input_ids), len(whole) - 1)
    return Encoded(input_ids=whole, labels=[IGNORE] * n + whole[n:])


def encode_text(tokenizer, text: str, *, max_length: int = 512, eos: bool = True) -> list[Encoded]:
    """Raw text (MUSE, WMDP corpora) in chunks of `max_length` tokens, labels on every token.

    With `eos` the document ends with the EOS token, the document separator of language-model
    training, so a model learns where a text (an article, a QA line) stops.
    """
    ids = tokenizer(text, add_special_tokens=False).input_ids
    if eos and ids and tokenizer.eos_token_id is not None:
        ids = ids + [tokenizer.eos_token_id]
    chunks = [ids[i : i + max_length] for i in range(0, len(ids), max_length)]
    return [Encoded(input_ids=c, labels=list(c)) for c in chunks if len(c) > 1]


def encode_continuation(
    tokenizer, context: str, continuation: str, *, max_length: int = 512
) -> Encoded:
    """Plain text (no chat template): labels on the tokens of `continuation` given `context`.

    lm-evaluation-harness's convention (`LM._encode_pair`), step for step, so that scores
    equal the harness's item by item: trailing whitespace of the context moves to the
    continuation; whole = ids(context + continuation), context_ids = ids(context),
    continuation ids = whole[len(context_ids):] (the continuation is tokenised as in running
    text: a leading space stays attached to its word); the input is context_ids +
    continuation ids. Over-long inputs lose tokens from the left of the context, then from
    the end of the continuation. No special tokens and no EOS are added.
    """
    stripped = context.rstrip()
    context, continuation = stripped, context[len(stripped) :] + continuation
    ctx = tokenizer(context, add_special_tokens=False).input_ids
    whole = tokenizer(context + continuation, add_special_tokens=False).input_ids
    cont = whole[len(ctx) :][: max_length - 1]
    ctx = ctx[max(0, len(ctx) - (max_length - len(cont))) :]
    return Encoded(input_ids=ctx + cont, labels=[IGNORE] * len(ctx) + cont)


def split_text(text: str, frac: float = 0.4) -> tuple[str, str]:
    """(prompt, continuation) of `text` cut at a word boundary `frac` of the way through its
    words, with `text == prompt + " " + continuation` (MUSE's VerbMem probes; ES on corpora)."""
    words = text.split(" ")
    cut = min(max(1, round(len(words) * frac)), len(words) - 1)
    if cut < 1:
        return text, ""
    return " ".join(words[:cut]), " ".join(words[cut:])


def collate(examples: Sequence[Encoded], pad_id: int, *, left: bool = False) -> dict[str, Tensor]:
    """Pad a list of examples to one batch.

    Returns input_ids [B, T], attention_mask [B, T], labels [B, T] (−100 on padding), and
    key_mask [B, T] bool when every example carries one. Right padding for training and
    scoring; left padding for batched generation.
    """
    T = max(len(e) for e in examples)
    ids = torch.full((len(examples), T), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), T), IGNORE, dtype=torch.long)
    attn = torch.zeros((len(examples), T), dtype=torch.long)
    with_keys = all(e.key_mask is not None for e in examples)
    keys = torch.zeros((len(examples), T), dtype=torch.bool)
    for i, e in enumerate(examples):
        n = len(e)
        sl = slice(T - n, T) if left else slice(0, n)
        ids[i, sl] = torch.tensor(e.input_ids)
        labels[i, sl] = torch.tensor(e.labels)
        attn[i, sl] = 1
        if with_keys:
            keys[i, sl] = torch.tensor(e.key_mask)
    batch = {"input_ids": ids, "attention_mask": attn, "labels": labels}
    if with_keys:
        batch["key_mask"] = keys
    return batch


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, *, seed: int | None = None, mega: int = 16
) -> list[list[int]]:
    """Index batches of similar lengths, to waste little compute on padding.

    seed=None: sorted by length (evaluation; the caller restores dataset order).
    seed given: shuffle, then sort within windows of `mega` batches, then shuffle the batches —
    random order, little padding, and reproducible for a given seed.
    """
    idx = list(range(len(lengths)))
    if seed is None:
        idx.sort(key=lambda i: lengths[i])
        return [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
    rng = random.Random(seed)
    rng.shuffle(idx)
    window = batch_size * mega
    out: list[list[int]] = []
    for w in range(0, len(idx), window):
        chunk = sorted(idx[w : w + window], key=lambda i: lengths[i])
        out += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(out)
    return out


def iter_batches(
    examples: Sequence[Encoded], batch_size: int, pad_id: int, *, left: bool = False
) -> Iterator[tuple[list[int], dict[str, Tensor]]]:
    """(dataset indices, padded batch) pairs in length order, for evaluation."""
    for idx in length_grouped_batches([len(e) for e in examples], batch_size):
        yield idx, collate([examples[i] for i in idx], pad_id, left=left)
