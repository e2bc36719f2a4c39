"""--report-to: the TensorBoard event file read back holds exactly metrics.jsonl's numbers;
`run` logs each method's unlearning in its own folder; wandb works offline; an unknown or
missing tracker stops before anything is written."""

from __future__ import annotations

import dataclasses
import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from satimp import cli
from satimp.config import MethodConfig, TrainConfig
from satimp.study.config import RunConfig
from satimp.study.run import method_row


def _events(folder: Path) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} of every scalar in a TensorBoard log folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {t: {e.step: e.value for e in acc.Scalars(t)} for t in acc.Tags()["scalars"]}


def _rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def _assert_events_equal_rows(events: dict, rows: list[dict]) -> None:
    """Every number of every metrics.jsonl row is in the event file under train/ (a step's
    row) or epoch/ (an evaluation's row) at that step, as float32 — and nothing else is."""
    expected = {}
    for row in rows:
        kind = "train" if "loss" in row else "epoch"
        for k, v in row.items():
            if k != "step" and isinstance(v, (int, float)):
                expected.setdefault(f"{kind}/{k}", {})[row["step"]] = float(np.float32(v))
    assert events == expected


def test_tensorboard_holds_the_metrics_of_each_step_and_epoch(tiny_trained, bench_dir, tmp_path):
    out = tmp_path / "u"
    argv = [
        "unlearn", "--model", str(tiny_trained), "--data", str(bench_dir), "--method", "satimp",
        "--forget", "forget10", "--retain", "retain90", "--epochs", "2", "--batch-size", "2",
        "--lr", "1e-3", "--out", str(out), "--report-to", "tensorboard", "--eval-every-epoch",
    ]  # fmt: skip
    assert cli.main(argv) == 0
    events, rows = _events(out / "tensorboard"), _rows(out)
    _assert_events_equal_rows(events, rows)
    for tag in ("train/loss", "train/lr", "train/grad_norm", "train/forget_loss"):
        assert len(events[tag]) == 4, tag  # 4 forget items, batch 2, 2 epochs
    assert {"train/retain_loss", "train/weight_mean", "epoch/forget_es"} <= set(events)
    assert sorted(events["epoch/forget_es"]) == [2, 4]  # after each epoch, at its last step


def test_run_logs_each_method_in_its_folder(tiny_trained, bench_dir, tmp_path):
    cfg = RunConfig(
        unlearn=TrainConfig(epochs=1, lr=1e-3, batch_size=4, report_to="tensorboard"),
        eval=dataclasses.replace(RunConfig().eval, max_new_tokens=4),
    )
    row, curve = method_row(
        cfg, cfg.validate(), "ga", MethodConfig(name="ga"), bench_dir, tiny_trained, tmp_path, None
    )
    assert row["status"] == "ok" and curve
    run_dir = tmp_path / "methods" / "ga"
    _assert_events_equal_rows(_events(run_dir / "tensorboard"), _rows(run_dir))


def _wandb_records(path: Path) -> list:
    """The records of a W&B run log (`run-ID.wandb`), parsed with wandb's own protobuf
    `Record`. The file is a LevelDB-style log: a 7-byte header (':W&B', magic 0xBEE1, version
    0), then records in 32 KiB blocks, each chunk behind a 7-byte header (crc32c 4 bytes,
    length 2 bytes little-endian, type: 1 full, 2 first, 3 middle, 4 last); a block's last
    < 7 bytes are zero padding. (wandb's Python reader of this format, `sdk.internal.datastore`,
    is gone from recent versions: the reading is written out here.)"""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    out, i, buf = [], 7, b""
    while i + 7 <= len(data):
        if 32768 - i % 32768 < 7:  # block padding
            i += 32768 - i % 32768
            continue
        _, n, kind = struct.unpack("<IHB", data[i : i + 7])
        if kind == 0:  # the zeroed rest of the last block
            break
        chunk, i = data[i + 7 : i + 7 + n], i + 7 + n
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            out.append(record)
    return out


def _items(items) -> dict:
    return {it.key or "/".join(it.nested_key): json.loads(it.value_json) for it in items}


def test_wandb_offline_logs_the_metrics_of_each_step(bench_dir, tmp_path, monkeypatch):
    """An offline W&B run in OUT/wandb/ whose run log, read back record by record, holds
    metrics.jsonl's numbers: one history record per optimizer step (4 items, batch 2: steps 1
    and 2) with every number of that step's row as `train/NAME`, at that step, and the
    training config as the run's config."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")  # no network, no account
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "f"
    argv = [
        "finetune", "--model", "tiny", "--data", str(bench_dir), "--split", "forget10",
        "--epochs", "1", "--batch-size", "2", "--lr", "1e-3", "--device", "cpu",
        "--out", str(out), "--report-to", "wandb",
    ]  # fmt: skip
    assert cli.main(argv) == 0
    (log,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    records = _wandb_records(log)
    history = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            values = _items(r.history.item)
            history[r.history.step.num] = {
                k: v for k, v in values.items() if k.startswith("train/")
            }
    rows = _rows(out)
    assert [r["step"] for r in rows] == [1, 2]
    expected = {
        row["step"]: {f"train/{k}": v for k, v in row.items() if k != "step"} for row in rows
    }
    assert history.keys() == expected.keys()
    for step, want in expected.items():  # the same float64 numbers, through JSON both ways
        assert history[step] == pytest.approx(want, rel=1e-12, abs=0), step
    (config,) = [
        _items(r.config.update) for r in records if r.WhichOneof("record_type") == "config"
    ]
    assert (config["lr"], config["batch_size"], config["epochs"]) == (1e-3, 2, 1)


@pytest.mark.parametrize(
    "command, report_to, blocked, message",
    [
        ("finetune", "tensorboard", "tensorboard", "needs the tensorboard package: pip install"),
        ("unlearn", "wandb", "wandb", "needs the wandb package: pip install wandb"),
        ("run", "tensorboard", "tensorboard", "needs the tensorboard package"),
        ("finetune", "mlflow", None, "train.report_to='mlflow'; valid: none, tensorboard, wandb"),
    ],
)
def test_unknown_or_missing_tracker_stops_before_writing(
    tiny_trained, bench_dir, tmp_path, monkeypatch, capsys, command, report_to, blocked, message
) -> None:
    if blocked:
        monkeypatch.setitem(sys.modules, blocked, None)  # the package is not installed
    out = tmp_path / "out"
    argv = {
        "finetune": ["finetune", "--model", "tiny", "--data", str(bench_dir)],
        "unlearn": ["unlearn", "--model", str(tiny_trained), "--data", str(bench_dir)],
        "run": ["run", "models.base=tiny", f"cache_dir={tmp_path / 'cache'}"],
    }[command]
    assert cli.main([*argv, "--out", str(out), "--report-to", report_to]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "cache").exists()
