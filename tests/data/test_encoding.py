"""Tests for QA encoding, collation and length-aware batching (satimp.data.encoding, SPEC §4)."""

import copy
import random

import pytest
import torch

from satimp.data.encoding import (
    IGNORE,
    Encoded,
    answer_ids,
    chat_qa_ids,
    collate,
    encode_qa,
    encode_text,
    iter_batches,
    key_token_flags,
    length_grouped_batches,
    prompt_ids,
)
from satimp.data.synth import synth_records
from satimp.models import CHAT_TEMPLATE, CHAT_TEMPLATES, FALLBACK_TEMPLATES, train_tokenizer


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return synth_records(authors=10, qa_per_author=4, seed=0)["full"]


@pytest.fixture(scope="module")
def tok(records: list[dict]):
    """A byte-level BPE tokenizer (vocab 400) trained on the synthetic QA text."""
    texts = [t for r in records for t in (r["question"], r["answer"])]
    return train_tokenizer(texts, vocab_size=400)


def chat_prompt(tok, question: str) -> str:
    return tok.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
    )


# ---------------------------------------------------------------- encode_qa


def test_prompt_is_the_tokenised_chat_template(tok, records: list[dict]) -> None:
    q = records[0]["question"]
    text = chat_prompt(tok, q)
    assert text == f"<s><|user|>{q}<|assistant|>"  # the presets' CHAT_TEMPLATE
    ids = prompt_ids(tok, q)
    assert ids == tok(text, add_special_tokens=False).input_ids
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.convert_tokens_to_ids("<|assistant|>")


def test_answer_is_separately_tokenised_plus_eos(tok, records: list[dict]) -> None:
    a = records[0]["answer"]
    assert answer_ids(tok, a) == tok(a, add_special_tokens=False).input_ids + [tok.eos_token_id]


@pytest.mark.parametrize("i", [0, 5, 17])
def test_encode_qa_concatenates_prompt_and_answer(tok, records: list[dict], i: int) -> None:
    q, a = records[i]["question"], records[i]["answer"]
    p = tok(chat_prompt(tok, q), add_special_tokens=False).input_ids
    ans = tok(a, add_special_tokens=False).input_ids + [tok.eos_token_id]
    enc = encode_qa(tok, q, a)
    assert enc.input_ids == p + ans
    assert enc.labels == [IGNORE] * len(p) + ans
    assert len(enc) == len(enc.labels) == len(p) + len(ans)
    assert enc.key_mask is None
    assert tok.decode(enc.input_ids[len(p) :], skip_special_tokens=True) == a


def test_no_merges_across_the_prompt_answer_boundary(tok) -> None:
    """With a template ending in a space ("Answer: "), tokenising prompt + answer as one string
    merges the space into the answer's first word ("Ġis"); encode_qa must not: its answer tokens
    are the separately tokenised answer whatever the prompt."""
    tok = copy.deepcopy(tok)  # the module fixture keeps its own template
    tok.chat_template = FALLBACK_TEMPLATES["phi"]
    assert "Ġis" in tok.get_vocab()
    q, a = "Where was she born?", "is the city of Tarsk."
    p = prompt_ids(tok, q)
    assert tok.convert_ids_to_tokens(p[-1]) == "Ġ"
    joint = tok(chat_prompt(tok, q) + a, add_special_tokens=False).input_ids
    enc = encode_qa(tok, q, a)
    assert enc.input_ids[:-1] != joint  # the one-string encoding shifts the boundary
    assert "Ġis" in tok.convert_ids_to_tokens(joint)
    answer_part = enc.input_ids[len(p) :]
    assert answer_part == tok(a, add_special_tokens=False).input_ids + [tok.eos_token_id]
    assert [x for x in enc.labels if x != IGNORE] == answer_part


@pytest.mark.parametrize("template", [CHAT_TEMPLATE, *FALLBACK_TEMPLATES.values()])
def test_answer_tokens_do_not_depend_on_the_prompt(tok, template: str) -> None:
    tok = copy.deepcopy(tok)  # the module fixture keeps its own template
    tok.chat_template = template
    a = "is the city of Tarsk."
    expected = tok(a, add_special_tokens=False).input_ids + [tok.eos_token_id]
    for q in ["Where?", "Where was she born? ", "x" * 40]:
        enc = encode_qa(tok, q, a)
        n_prompt = sum(label == IGNORE for label in enc.labels)
        assert enc.input_ids[n_prompt:] == expected


def test_truncation_keeps_the_prompt_and_cuts_the_answer(tok, records: list[dict]) -> None:
    q, a = records[3]["question"], records[3]["answer"]
    full = encode_qa(tok, q, a)
    p = prompt_ids(tok, q)
    cut = encode_qa(tok, q, a, max_length=len(p) + 3)
    assert len(cut) == len(p) + 3
    assert cut.input_ids == full.input_ids[: len(p) + 3]
    assert cut.labels[: len(p)] == [IGNORE] * len(p)
    # a prompt longer than max_length is kept whole, with one answer token to learn
    tiny = encode_qa(tok, q, a, max_length=2, keywords=records[3]["keywords"])
    assert tiny.input_ids == full.input_ids[: len(p) + 1]
    assert len(tiny.key_mask) == len(tiny)


def test_chat_answer_tokens_are_the_templates_rendering(tok) -> None:
    """answer_tokens='chat' (open-unlearning): the conversation tokenised as one string, the
    answer tokens past the prompt's count, EOS appended unless already last. ChatML scores
    `<|im_end|>\n` with the answer; a template whose turn ends in the EOS text gets no second
    EOS; the presets' template (special-token boundary, no suffix) gives SPEC §4's tokens."""
    q, a, system = "Where was she born?", "is the city of Tarsk.", "Be brief."
    eos = tok.eos_token_id
    assert encode_qa(tok, q, a, answer_tokens="chat", system=system) == encode_qa(
        tok, q, a, system=system
    )
    chatml = copy.deepcopy(tok)
    chatml.chat_template = CHAT_TEMPLATES["chatml"]
    enc = encode_qa(chatml, q, a, answer_tokens="chat", system=system)
    p = prompt_ids(chatml, q, system=system)
    whole = chatml(
        f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n"
        f"<|im_start|>assistant\n{a}<|im_end|>\n",
        add_special_tokens=False,
    ).input_ids
    assert enc.input_ids == whole + [eos] and enc.input_ids[: len(p)] == p
    assert enc.labels == [IGNORE] * len(p) + whole[len(p) :] + [eos]
    scored = chatml.decode([x for x in enc.labels if x != IGNORE])
    assert scored == a + "<|im_end|>\n</s>"
    ends_in_eos = copy.deepcopy(tok)
    ends_in_eos.chat_template = CHAT_TEMPLATE.replace(
        "{{ m['content'] }}", "{{ m['content'] }}</s>"
    )
    ids, n = chat_qa_ids(ends_in_eos, q, a)
    assert ids.count(eos) == 2 and ids[-1] == eos  # the user turn's and the answer's, no third
    assert ends_in_eos.decode(ids[n:]) == a + "</s>"
    with pytest.raises(ValueError, match="answer_tokens='bogus'"):
        encode_qa(tok, q, a, answer_tokens="bogus")


def test_chat_answer_tokens_keep_open_unlearnings_boundary_merge(tok) -> None:
    """A prompt ending in a space ("Answer: "): one-string tokenisation merges the space into
    the answer's first word; 'chat' keeps that (the prompt part of the input is then the joint
    string's tokens), 'separate' does not."""
    phi = copy.deepcopy(tok)
    phi.chat_template = FALLBACK_TEMPLATES["phi"]
    q, a = "Where was she born?", "is the city of Tarsk."
    joint = phi(chat_prompt(phi, q) + a, add_special_tokens=False).input_ids + [phi.eos_token_id]
    enc = encode_qa(phi, q, a, answer_tokens="chat")
    assert enc.input_ids == joint
    n = len(prompt_ids(phi, q))
    assert enc.labels == [IGNORE] * n + joint[n:]
    assert "Ġis" in phi.convert_ids_to_tokens(enc.input_ids)
    assert enc.input_ids != encode_qa(phi, q, a).input_ids


def test_key_token_flags_mark_exactly_the_keyword_tokens(tok, records: list[dict]) -> None:
    """Decoding the flagged tokens gives back the keyword; no other token overlaps it."""
    checked = 0
    for r in records:
        a, keywords = r["answer"], r["keywords"]
        if not keywords or sum(a.count(k) for k in keywords) != 1 or len(keywords) != 1:
            continue
        ids = tok(a, add_special_tokens=False).input_ids
        flags = key_token_flags(tok, a, keywords)
        assert len(flags) == len(ids) + 1 and flags[-1] is False  # EOS never flagged
        flagged = [t for t, f in zip(ids, flags[:-1], strict=True) if f]
        assert tok.decode(flagged).strip() == keywords[0]
        unflagged_text = "".join(
            tok.decode([t]) for t, f in zip(ids, flags[:-1], strict=True) if not f
        )
        assert keywords[0] not in unflagged_text
        checked += 1
    assert checked >= 5


def test_key_token_flags_several_keywords_and_repeats(tok) -> None:
    a = "Tarsk and Morvik; Tarsk again."
    ids = tok(a, add_special_tokens=False).input_ids
    flags = key_token_flags(tok, a, ["Tarsk", "Morvik", "", "absent"])
    text = "".join(tok.decode([t]) if f else "_" for t, f in zip(ids, flags[:-1], strict=True))
    assert text.replace("_", " ").split() == ["Tarsk", "Morvik", "Tarsk"]
    assert key_token_flags(tok, a, []) == [False] * (len(ids) + 1)


def test_encode_qa_key_mask_is_false_on_the_prompt(tok, records: list[dict]) -> None:
    r = records[0]
    enc = encode_qa(tok, r["question"], r["answer"], keywords=r["keywords"])
    n_prompt = len(prompt_ids(tok, r["question"]))
    assert len(enc.key_mask) == len(enc)
    assert not any(enc.key_mask[:n_prompt])
    assert enc.key_mask[n_prompt:] == key_token_flags(tok, r["answer"], r["keywords"])
    assert any(enc.key_mask)


# ---------------------------------------------------------------- collate


def _ex(n: int, start: int = 10, prompt: int = 1, keys: bool = False) -> Encoded:
    ids = list(range(start, start + n))
    labels = [IGNORE] * prompt + ids[prompt:]
    return Encoded(ids, labels, [i % 2 == 1 for i in range(n)] if keys else None)


def test_collate_right_padding() -> None:
    batch = collate([_ex(3), _ex(5, start=20, prompt=2)], pad_id=0)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    torch.testing.assert_close(
        batch["input_ids"], torch.tensor([[10, 11, 12, 0, 0], [20, 21, 22, 23, 24]])
    )
    torch.testing.assert_close(
        batch["attention_mask"], torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    )
    torch.testing.assert_close(
        batch["labels"],
        torch.tensor([[IGNORE, 11, 12, IGNORE, IGNORE], [IGNORE, IGNORE, 22, 23, 24]]),
    )
    assert batch["input_ids"].dtype == batch["labels"].dtype == torch.long


def test_collate_left_padding() -> None:
    batch = collate([_ex(3), _ex(5, start=20)], pad_id=7, left=True)
    torch.testing.assert_close(
        batch["input_ids"], torch.tensor([[7, 7, 10, 11, 12], [20, 21, 22, 23, 24]])
    )
    torch.testing.assert_close(
        batch["attention_mask"], torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    )
    torch.testing.assert_close(batch["labels"][0], torch.tensor([IGNORE, IGNORE, IGNORE, 11, 12]))


def test_collate_key_mask_only_when_every_example_has_one() -> None:
    batch = collate([_ex(3, keys=True), _ex(4, keys=True)], pad_id=0)
    torch.testing.assert_close(
        batch["key_mask"], torch.tensor([[False, True, False, False], [False, True, False, True]])
    )
    assert batch["key_mask"].dtype == torch.bool
    assert "key_mask" not in collate([_ex(3, keys=True), _ex(4)], pad_id=0)
    left = collate([_ex(3, keys=True), _ex(4, keys=True)], pad_id=0, left=True)
    torch.testing.assert_close(left["key_mask"][0], torch.tensor([False, False, True, False]))


# ---------------------------------------------------------------- batching


def _padding(lengths: list[int], batches: list[list[int]]) -> int:
    return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)


def _skewed_lengths(n: int = 400) -> list[int]:
    rng = random.Random(1)
    return [int(rng.paretovariate(1.2) * 8) for _ in range(n)]


@pytest.mark.parametrize("seed", [None, 0, 3])
@pytest.mark.parametrize("n, batch_size", [(1, 4), (7, 3), (100, 8), (37, 37), (5, 10)])
def test_every_index_exactly_once(n: int, batch_size: int, seed: int | None) -> None:
    lengths = [random.Random(n).randint(1, 50) for _ in range(n)]
    batches = length_grouped_batches(lengths, batch_size, seed=seed, mega=2)
    assert sorted(i for b in batches for i in b) == list(range(n))
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert sum(len(b) < batch_size for b in batches) <= (n + batch_size * 2 - 1) // (batch_size * 2)


def test_unseeded_batches_are_sorted_by_length() -> None:
    lengths = _skewed_lengths(50)
    batches = length_grouped_batches(lengths, 4)
    flat = [i for b in batches for i in b]
    assert [lengths[i] for i in flat] == sorted(lengths)
    assert all(len(b) == 4 for b in batches[:-1])


def test_seeded_batches_are_reproducible_and_depend_on_the_seed() -> None:
    lengths = _skewed_lengths()
    a = length_grouped_batches(lengths, 8, seed=0)
    assert a == length_grouped_batches(lengths, 8, seed=0)
    assert a != length_grouped_batches(lengths, 8, seed=1)
    assert a != length_grouped_batches(lengths, 8)  # shuffled, not sorted


def test_length_grouping_pads_less_than_random_batches() -> None:
    lengths = _skewed_lengths()
    idx = list(range(len(lengths)))
    random.Random(0).shuffle(idx)
    plain = [idx[i : i + 8] for i in range(0, len(idx), 8)]
    grouped = length_grouped_batches(lengths, 8, seed=0)
    assert _padding(lengths, grouped) < 0.5 * _padding(lengths, plain)
    assert _padding(lengths, length_grouped_batches(lengths, 8)) <= _padding(lengths, grouped)


def test_iter_batches_covers_the_dataset_in_length_order() -> None:
    examples = [_ex(n, start=n * 10) for n in [5, 2, 9, 3, 3, 7]]
    seen = []
    for idx, batch in iter_batches(examples, 4, pad_id=0):
        assert batch["input_ids"].shape == (len(idx), max(len(examples[i]) for i in idx))
        for row, i in enumerate(idx):
            n = len(examples[i])
            assert batch["input_ids"][row, :n].tolist() == examples[i].input_ids
        seen += idx
    assert sorted(seen) == list(range(len(examples)))
    assert [len(examples[i]) for i in seen] == sorted(len(e) for e in examples)


# ---------------------------------------------------------------- encode_text


def test_encode_text_chunks_with_labels_on_every_token(tok, records: list[dict]) -> None:
    text = " ".join(r["answer"] for r in records[:6])
    ids = tok(text, add_special_tokens=False).input_ids
    chunks = encode_text(tok, text, max_length=16, eos=False)
    assert all(c.labels == c.input_ids for c in chunks)
    assert all(len(c) <= 16 for c in chunks)
    assert all(len(c) == 16 for c in chunks[:-1])
    flat = [t for c in chunks for t in c.input_ids]
    assert flat == ids[: len(flat)] and len(ids) - len(flat) <= 1  # a 1-token tail is dropped
    assert encode_text(tok, text, max_length=10_000, eos=False)[0].input_ids == ids
    # by default each document ends with EOS, the document separator
    assert encode_text(tok, text, max_length=10_000)[0].input_ids == ids + [tok.eos_token_id]


def test_encode_text_drops_chunks_too_short_to_predict(tok) -> None:
    assert encode_text(tok, "") == []
    one = tok("a", add_special_tokens=False).input_ids
    assert len(one) == 1 and encode_text(tok, "a", eos=False) == []
    assert encode_text(tok, "a")[0].input_ids == one + [tok.eos_token_id]
