"""satimp.experiment.unlearn: what the training loop receives under a protocol. The loop is
replaced by a spy that records its forget and retain examples (nothing trains), so each test
sees the pipeline's own reading, slicing and encoding of the data."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml

import satimp.experiment
from satimp.config import MethodConfig, TrainConfig
from satimp.data.encoding import IGNORE
from satimp.data.tofu import load_split
from satimp.experiment import unlearn
from satimp.models import load_model
from satimp.protocol import PROTOCOLS
from satimp.train import TrainResult

SYSTEM = "Answer like a lighthouse keeper."


@pytest.fixture
def seen(monkeypatch) -> dict:
    """Replaces the training loop with a spy: {'forget': [...], 'retain': [...] or None}."""
    got: dict = {}

    def spy(model, loss_fn, forget, cfg, *, retain=None, **kw) -> TrainResult:
        got["forget"], got["retain"] = list(forget), None if retain is None else list(retain)
        return TrainResult(steps=0, seconds=0.0)

    monkeypatch.setattr(satimp.experiment, "train", spy)
    return got


def _cfg() -> TrainConfig:
    return TrainConfig(epochs=1, batch_size=4, device="cpu", eval_every_epoch=False)


def _literal(tok, record: dict, system: str) -> tuple[list[int], list[int]]:
    """SPEC §4's encoding written out: the chat template's prompt (system message first when
    given, generation prompt), then the answer's tokens and EOS; labels on the answer only."""
    messages = [{"role": "system", "content": system}] if system else []
    text = tok.apply_chat_template(
        [*messages, {"role": "user", "content": record["question"]}],
        add_generation_prompt=True,
        tokenize=False,
    )
    prompt = tok(text, add_special_tokens=False).input_ids
    answer = tok(record["answer"], add_special_tokens=False).input_ids + [tok.eos_token_id]
    return prompt + answer, [IGNORE] * len(prompt) + answer


@pytest.mark.parametrize("system", [SYSTEM, ""])
def test_unlearn_trains_on_the_protocols_system_prompt(
    system: str, seen: dict, tiny_trained: Path, bench_dir: Path, tmp_path: Path
) -> None:
    """gd (forget and retain terms) under the tofu protocol with `system_prompt` set: every
    forget and retain example the loop receives is the chat prompt with that system message,
    the question and the answer + EOS, labels on the answer only, as written out here from the
    chat template; the decoded forget rows hold the message. Without it (tofu's own ''), the
    same rows carry no system message."""
    protocol = dataclasses.replace(PROTOCOLS["tofu"], system_prompt=system)
    unlearn(tiny_trained, bench_dir, "forget10", "retain90", MethodConfig("gd"), _cfg(),
            tmp_path / "u", protocol=protocol)  # fmt: skip
    _, tok = load_model(tiny_trained)
    for part, split in (("forget", "forget10"), ("retain", "retain90")):
        decoded = [tok.decode(e.input_ids) for e in seen[part]]
        assert all((SYSTEM in text) == bool(system) for text in decoded), (part, decoded[0])
        records = load_split(bench_dir, split)
        got = [(e.input_ids, e.labels) for e in seen[part]]
        assert got == [_literal(tok, r, system) for r in records], part


def test_lone_unlearn_keeps_the_retain_hold_out_out_of_training(
    seen: dict, tiny_trained: Path, bench_dir: Path, tmp_path: Path
) -> None:
    """satimp-official holds out retainXX[:400] (its retain ES items) from the retain loss: a
    lone `unlearn` with retain90 of 404 rows (numbered in their questions) trains on rows
    400–403 only, and config.yaml records the split as `retain90[400:]`."""
    data = tmp_path / "data"
    shutil.copytree(bench_dir, data)
    base = load_split(bench_dir, "retain90")
    rows = [
        {**base[i % len(base)], "question": f"#{i} " + base[i % len(base)]["question"]}
        for i in range(404)
    ]
    (data / "retain90.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "u"
    unlearn(tiny_trained, data, "forget10", "retain90", MethodConfig("gd"), _cfg(), out,
            protocol="satimp-official")  # fmt: skip
    _, tok = load_model(tiny_trained)
    assert len(seen["retain"]) == 4, f"{len(seen['retain'])} retain rows, not retain90[400:]'s 4"
    assert [e.input_ids for e in seen["retain"]] == [_literal(tok, r, "")[0] for r in rows[400:]]
    assert len(seen["forget"]) == len(load_split(bench_dir, "forget10"))
    assert yaml.safe_load((out / "config.yaml").read_text())["retain"] == ["retain90[400:]"]
