"""Tests for satimp.train: the schedule by hand, and the loop on a tiny model (a few steps)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from satimp.config import TrainConfig
from satimp.data.encoding import Encoded, encode_records
from satimp.data.tofu import load_split
from satimp.models import build_model
from satimp.objectives import finetune_objective
from satimp.train import PairedDataset, lr_factor, train


def test_lr_factor_linear_by_hand() -> None:
    """warmup = 2, total = 10: warm-up (step+1)/2 → 0.5, 1.0; then (10 − step)/(10 − 2):
    step 2 → 8/8 = 1, step 6 → 4/8 = 0.5, step 9 → 1/8, step 10 → 0 (and never negative)."""
    f = [lr_factor(s, warmup=2, total=10, schedule="linear") for s in range(12)]
    assert f == pytest.approx([0.5, 1.0, 1.0, 7 / 8, 6 / 8, 5 / 8, 0.5, 3 / 8, 2 / 8, 1 / 8, 0, 0])


def test_lr_factor_constant_and_no_warmup() -> None:
    """constant: warm-up then 1 forever. warmup = 0, linear: (total − step)/total from step 0."""
    f = [lr_factor(s, warmup=3, total=10, schedule="constant") for s in range(6)]
    assert f == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0, 1.0, 1.0])
    f = [lr_factor(s, warmup=0, total=4, schedule="linear") for s in range(5)]
    assert f == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    assert lr_factor(0, warmup=0, total=5, schedule="constant") == 1.0


@pytest.fixture(scope="module")
def full_examples(bench_dir: Path, tiny_tok):
    return encode_records(tiny_tok, load_split(bench_dir, "full"), max_length=128)


def _run(tok, examples, out_dir: Path, **cfg) -> tuple[object, list[dict]]:
    """Fine-tune a fresh tiny model (seed 0); returns (model, metrics.jsonl rows)."""
    model = build_model("tiny", tok, seed=0)
    result = train(
        model,
        finetune_objective,
        examples,
        TrainConfig(**{"device": "cpu", **cfg}),
        pad_id=tok.pad_token_id,
        out_dir=out_dir,
    )
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    assert result.steps == len(rows)
    return model, rows


def test_finetune_lowers_the_loss(tiny_tok, full_examples, tmp_path: Path) -> None:
    """12 steps at lr 3e-3 on 16 examples: the mean of the last 3 step losses is below the
    first step's loss; metrics.jsonl has one line per optimizer step, numbered 1..n."""
    _, rows = _run(
        tiny_tok, full_examples[:16], tmp_path, epochs=3, batch_size=4, lr=3e-3, warmup_epochs=0.5
    )
    assert [r["step"] for r in rows] == list(range(1, 13))
    for r in rows:
        assert {"step", "epoch", "loss", "lr", "grad_norm"} <= set(r)
    last = sum(r["loss"] for r in rows[-3:]) / 3
    assert last < rows[0]["loss"]


def test_logged_lr_is_the_lr_of_that_step(tiny_tok, full_examples, tmp_path: Path) -> None:
    """Row for (1-based) step s logs lr · lr_factor(s − 1): the rate that step applied.

    8 examples, batch 2 → 4 steps/epoch, 2 epochs → total 8, warm-up 1 epoch = 4 steps:
    factors 1/4, 2/4, 3/4, 1, then (8 − s)/4 for s = 4..7 → 1, 3/4, 2/4, 1/4.
    """
    _, rows = _run(tiny_tok, full_examples[:8], tmp_path, epochs=2, batch_size=2, lr=1e-3)
    expected = [1e-3 * lr_factor(s, warmup=4, total=8, schedule="linear") for s in range(8)]
    assert [r["lr"] for r in rows] == pytest.approx(expected)
    assert expected == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 7.5e-4, 5e-4, 2.5e-4])


@pytest.mark.parametrize("accum", [2, 4])
def test_grad_accum_gives_the_same_steps_losses_and_weights(
    tiny_tok, full_examples, tmp_path: Path, accum: int
) -> None:
    """batch 4 as `accum` micro-batches vs one batch of 4, on 10 examples: ceil(10/4) = 3
    optimizer steps either way (the last, partial batch of 2 included: with accum 4 two of its
    micro-batches are empty and weigh 0). Each micro-batch loss is scaled to its token share,
    so the summed gradient is the whole batch's: the logged losses and pre-clip gradient norms
    (which a wrong scale would change by its factor, something AdamW's update would hide) and
    the final weights agree. Tolerance: the same sums in another order, in float32 — measured
    here ≤ 9e-8 relative on losses and norms and ≤ 2e-7 absolute on weights; asserted at 1e-5
    relative (losses, norms) and 1e-6 absolute + 1e-5 relative (weights), while a wrong share
    (each micro-batch as its own mean) doubles the loss and norm."""
    model_plain, plain = _run(
        tiny_tok, full_examples[:10], tmp_path / "plain", epochs=1, batch_size=4, lr=1e-3
    )
    model_acc, acc = _run(
        tiny_tok,
        full_examples[:10],
        tmp_path / "accum",
        epochs=1,
        batch_size=4,
        grad_accum=accum,
        lr=1e-3,
    )
    assert [r["step"] for r in plain] == [r["step"] for r in acc] == [1, 2, 3]
    for a, b in zip(plain, acc, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5)
    start = dict(build_model("tiny", tiny_tok, seed=0).named_parameters())
    pa, pb = dict(model_plain.named_parameters()), dict(model_acc.named_parameters())
    assert max((pa[n] - start[n]).abs().max().item() for n in pa) > 1e-4  # it trained
    for n in pa:
        torch.testing.assert_close(pb[n], pa[n], rtol=1e-5, atol=1e-6)


def test_each_part_is_backpropagated_before_the_next_runs(tiny_tok, full_examples) -> None:
    """A loss function with `parts` (as an Objective has): the loop runs each part's forward
    pass after the previous part's backward pass (one graph alive at a time), sums the parts'
    values into the logged loss and merges their log fields."""
    events: list[str] = []

    class TwoParts:
        def parts(self, model, batch, step=0):
            return [self._part(model, batch, "a", 1.0), self._part(model, batch, "b", 0.5)]

        def _part(self, model, batch, name, factor):
            def run():
                events.append(f"forward {name}")
                loss, _ = finetune_objective(model, batch)
                loss = factor * loss
                loss.register_hook(lambda g: events.append(f"backward {name}"))
                return loss, {f"loss_{name}": loss.item()}

            return run

        def __call__(self, model, batch, step=0):
            raise AssertionError("the loop must take the parts")

    model = build_model("tiny", tiny_tok, seed=0)
    cfg = TrainConfig(epochs=1, batch_size=4, lr=1e-3, warmup_epochs=0, device="cpu")
    result = train(model, TwoParts(), full_examples[:8], cfg, pad_id=tiny_tok.pad_token_id)
    assert result.steps == 2
    assert events == ["forward a", "backward a", "forward b", "backward b"] * 2
    last = result.last
    assert last["loss"] == pytest.approx(last["loss_a"] + last["loss_b"], rel=1e-6)
    assert last["loss_b"] == pytest.approx(0.5 * last["loss_a"], rel=1e-6)


def test_length_pairing_deals_the_random_draws_to_the_steps_by_length() -> None:
    """retain_pairing 'length' uses the epoch's same random draws as 'random' (the same
    multiset), sorted by length and dealt to the batches in the order of their forget rows'
    mean length: by hand, batches of mean forget length 6, 3.5 and 8.5 take the shortest two
    draws ([2, 4]), the next two ([0, 3]) and the longest two ([1, 5])."""
    forget = [Encoded([1] * n, [1] * n) for n in (5, 9, 3, 7, 4, 8)]
    retain = [Encoded([1] * (j + 2), [1] * (j + 2)) for j in range(28)]  # length grows with j
    batches = [[0, 3], [2, 4], [1, 5]]
    plain = PairedDataset(forget, retain, seed=3)
    plain.set_epoch(2, batches)
    grouped = PairedDataset(forget, retain, seed=3, pairing="length")
    grouped.set_epoch(2, batches)
    assert len(set(plain.partners)) > 1  # draws of different lengths, to sort
    drawn = sorted(plain.partners)  # = sorted by length here
    assert [grouped.partners[i] for i in (2, 4, 0, 3, 1, 5)] == drawn
    grouped.set_epoch(3, batches)
    plain.set_epoch(3, batches)
    assert sorted(grouped.partners) == sorted(plain.partners)  # each epoch its own draws


def test_length_pairing_pads_less_and_sees_the_same_retain_rows(tiny_tok, full_examples) -> None:
    """One unlearning-shaped epoch (forget + retain batches) under each pairing: the same
    retain rows over the epoch, the same forget batches, fewer padded retain positions."""
    forget, retain = full_examples[:24], full_examples[24:60]

    def epoch(pairing: str) -> tuple[list, list, int]:
        seen_f, seen_r, padded = [], [], 0

        def loss_fn(model, batch, step=0):
            nonlocal padded
            r = batch["retain"]
            seen_f.append(sorted(batch["forget"]["input_ids"].tolist()))
            seen_r.extend(
                ids[m.bool()].tolist()
                for ids, m in zip(r["input_ids"], r["attention_mask"], strict=True)
            )
            padded += int((r["attention_mask"] == 0).sum())
            return finetune_objective(model, batch)

        cfg = TrainConfig(
            epochs=1, batch_size=4, lr=1e-4, warmup_epochs=0, device="cpu", retain_pairing=pairing
        )
        model = build_model("tiny", tiny_tok, seed=0)
        train(model, loss_fn, forget, cfg, pad_id=tiny_tok.pad_token_id, retain=retain)
        return seen_f, sorted(seen_r), padded

    f_random, r_random, pad_random = epoch("random")
    f_length, r_length, pad_length = epoch("length")
    assert f_length == f_random and r_length == r_random
    assert pad_length < pad_random, (pad_length, pad_random)


def test_retain_pairing_in_records_and_validation() -> None:
    """The default pairing is left out of a run's record and a model's cache key (earlier
    versions' runs resume and their models are found); 'length' is in both; a bad value is
    one InputError naming the field."""
    from satimp.errors import InputError
    from satimp.experiment import recipe_key, train_record

    assert "retain_pairing" not in train_record(TrainConfig())
    grouped = TrainConfig(retain_pairing="length")
    assert train_record(grouped)["retain_pairing"] == "length"
    assert recipe_key(grouped) != recipe_key(TrainConfig())
    with pytest.raises(InputError, match=r"unlearn\.retain_pairing='sorted'"):
        TrainConfig(retain_pairing="sorted").validate("unlearn")


def test_same_seed_gives_identical_weights(tiny_tok, full_examples, tmp_path: Path) -> None:
    """Two runs with the same seed end bit-identical; another data-order seed does not."""
    cfg = dict(epochs=2, batch_size=4, lr=1e-3)
    a, _ = _run(tiny_tok, full_examples[:8], tmp_path / "a", **cfg)
    b, _ = _run(tiny_tok, full_examples[:8], tmp_path / "b", **cfg)
    c, _ = _run(tiny_tok, full_examples[:8], tmp_path / "c", seed=1, **cfg)
    pa, pb, pc = (dict(m.named_parameters()) for m in (a, b, c))
    assert all(torch.equal(pa[n], pb[n]) for n in pa)
    assert not all(torch.equal(pa[n], pc[n]) for n in pa)


class _NanGrad(torch.autograd.Function):
    """Identity forward (a finite loss), NaN backward (a poisoned gradient)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


@pytest.mark.parametrize("where", ["loss", "grad"])
def test_non_finite_loss_or_gradient_stops_the_run(
    tiny_tok, full_examples, tmp_path, where
) -> None:
    """A NaN loss (or a NaN gradient from a finite loss) raises Diverged naming the step,
    before the optimizer applies anything: the weights stay those of the last good step."""
    from satimp.train import Diverged

    model = build_model("tiny", tiny_tok, seed=0)
    calls = []

    def poisoned(m, batch, *, step=0):
        loss, logs = finetune_objective(m, batch, step=step)
        calls.append(step)
        if step == 2:
            loss = loss * float("nan") if where == "loss" else _NanGrad.apply(loss)
        return loss, logs

    before = {}

    def snapshot(m, batch, *, step=0):
        if step == 2:
            before.update({k: v.detach().clone() for k, v in m.state_dict().items()})
        return poisoned(m, batch, step=step)

    cfg = TrainConfig(
        epochs=2, lr=1e-3, batch_size=4, warmup_epochs=0, eval_every_epoch=False, device="cpu"
    )
    with pytest.raises(
        Diverged, match=f"diverged at step 3: {'loss' if where == 'loss' else 'gradient'}"
    ):
        train(model, snapshot, full_examples, cfg, pad_id=tiny_tok.pad_token_id, out_dir=tmp_path)
    assert calls == [0, 1, 2]
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]


def test_deterministic_turns_on_deterministic_algorithms(
    tiny_tok, full_examples, tmp_path, monkeypatch
) -> None:
    """train.deterministic=True: after the run, torch refuses non-deterministic kernels and
    cuBLAS has a fixed workspace (conftest turned both on for the suite: undone here first)."""
    torch.use_deterministic_algorithms(False)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        _run(tiny_tok, full_examples[:4], tmp_path / "off", epochs=1, batch_size=4, lr=1e-3)
        assert not torch.are_deterministic_algorithms_enabled()
        _run(
            tiny_tok,
            full_examples[:4],
            tmp_path / "on",
            epochs=1,
            batch_size=4,
            lr=1e-3,
            deterministic=True,
        )
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(True)


def test_device_cpu_trains_on_the_cpu(tiny_tok, full_examples, tmp_path) -> None:
    model, _ = _run(tiny_tok, full_examples[:4], tmp_path, epochs=1, batch_size=4, lr=1e-3)
    assert {p.device.type for p in model.parameters()} == {"cpu"}


def test_training_flushes_subnormal_floats(tiny_tok, full_examples, tmp_path) -> None:
    """The loop turns on flush-to-zero: a subnormal float (here 1e-39 < fp32's smallest normal
    1.18e-38) reads as 0 in arithmetic afterwards, while normal floats are unchanged."""
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush subnormals")
    sub = torch.tensor([1e-39, 2e-38], dtype=torch.float32)
    assert (sub * 1.0)[0].item() > 0  # off: the subnormal survives
    _run(tiny_tok, full_examples[:4], tmp_path, epochs=1, batch_size=4, lr=1e-3)
    out = (sub * 1.0).tolist()
    assert out[0] == 0.0 and out[1] == pytest.approx(2e-38, rel=1e-6)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a CUDA device")
def test_device_cuda_without_a_gpu_is_refused() -> None:
    from satimp.errors import InputError

    with pytest.raises(InputError, match="train.device='cuda' but torch sees no CUDA device"):
        TrainConfig(device="cuda").validate()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_deterministic_cuda_runs_are_bit_identical(bench_dir, tmp_path, child_env) -> None:
    """On a GPU, with deterministic algorithms, two fine-tuning runs of the same seed end
    bit-identical. Each runs in its own process: accelerate holds one device per process, and
    this one's is the CPU (the rest of the suite)."""
    import subprocess
    import sys

    from safetensors.torch import load_file

    for name in ("a", "b"):
        argv = [
            sys.executable, "-m", "satimp.cli", "finetune", "--data", str(bench_dir),
            "--model", "tiny", "--split", "full", "--epochs", "2", "--batch-size", "8",
            "--lr", "3e-3", "--device", "cuda", "--deterministic", "--out", str(tmp_path / name),
        ]  # fmt: skip
        done = subprocess.run(argv, env=child_env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    a, b = (load_file(tmp_path / n / "model.safetensors") for n in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_line_progress_prints_at_most_every_interval(capsys) -> None:
    """Without a terminal, training progress is a stderr line at most every `every` seconds,
    with the rate and the time left computed from the steps since the start (resumed at 10)."""
    from satimp.train import LineProgress

    now = [100.0]
    bar = LineProgress(total=110, initial=10, desc="unlearn ga", every=60, clock=lambda: now[0])
    for _ in range(20):  # 2 s per step: a line after 30 steps (60 s), none before
        now[0] += 2.0
        bar.update(1)
        bar.set_postfix(loss="0.412")
    assert capsys.readouterr().err == ""
    for _ in range(10):
        now[0] += 2.0
        bar.set_postfix(loss="0.398")
        bar.update(1)
    # 30 steps in 60 s: 2.00 s/step; 70 steps left: 140 s = 2.3 min
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["unlearn ga: step 40/110 (36 %), loss 0.398, 2.00 s/step, ~2.3 min left"]
    now[0] += 59.0
    bar.update(1)
    bar.close()
    assert capsys.readouterr().err == ""


def test_compiled_training_matches_eager_and_leaves_the_model_eager(
    tiny_tok, full_examples, tmp_path: Path
) -> None:
    """`train.compile`: the steps run through torch.compile (backend aot_eager: dynamo's graph
    capture and AOT autograd, without inductor's C++ build) and give eager training's losses
    and weights to float rounding; the per-epoch probe and everything after training call the
    model eagerly, and its state-dict keys are its own."""
    from torch._dynamo.utils import counters

    from satimp.train import compiled

    def probe(model, epoch):
        seen.append(model._compiled_call_impl is None)
        return {"probe": 0.0}

    runs = {}
    for backend in ("none", "aot_eager"):
        seen: list[bool] = []
        model = build_model("tiny", tiny_tok, seed=0)
        keys = list(model.state_dict())
        counters.clear()
        train(
            model,
            finetune_objective,
            full_examples[:8],
            TrainConfig(
                device="cpu", epochs=2, batch_size=4, lr=3e-3, warmup_epochs=0, compile=backend
            ),
            pad_id=tiny_tok.pad_token_id,
            out_dir=tmp_path / backend,
            on_epoch_end=probe,
        )
        rows = (tmp_path / backend / "metrics.jsonl").read_text().splitlines()
        losses = [json.loads(r)["loss"] for r in rows if '"loss"' in r]
        runs[backend] = (losses, model.state_dict(), counters["stats"]["unique_graphs"])
        assert seen == [True, True]  # the probe ran on the eager model
        assert model._compiled_call_impl is None and list(model.state_dict()) == keys
    (eager, w_eager, none_graphs), (comp, w_comp, graphs) = runs["none"], runs["aot_eager"]
    assert none_graphs == 0 and graphs > 0  # dynamo traced the compiled run alone
    assert len(comp) == len(eager) == 4
    assert comp == pytest.approx(eager, rel=1e-5, abs=1e-6)
    for k in w_eager:
        assert torch.allclose(w_comp[k], w_eager[k], rtol=1e-4, atol=1e-6), k
    with compiled(model, "none"):  # 'none' leaves the call as it was
        assert model._compiled_call_impl is None


def test_compile_backend_must_be_known() -> None:
    from satimp.errors import InputError

    with pytest.raises(InputError, match="train.compile='inductr' is out of range"):
        TrainConfig(compile="inductr").validate()
    TrainConfig(compile="inductor").validate()


@pytest.mark.parametrize(
    "accum, sizes",
    [
        (2, [[2, 2], [2, 2], [1, 1]]),
        # the last batch of 2 in 4 micro-batches: two of one row, two empty ones that run on
        # the batch's first row weighted 0 (marked 0 here)
        (4, [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]]),
    ],
)
def test_each_optimizer_step_runs_grad_accum_micro_batches(
    tiny_tok, full_examples, accum: int, sizes: list[list[int]]
) -> None:
    """10 examples, batch 4, `accum` micro-batches: ceil(10/4) = 3 optimizer steps, each cut
    into `accum` consecutive micro-batches of ceil(rows/accum) rows (4 → 2 + 2 or 1+1+1+1,
    the last batch's 2 → 1 + 1 (+ 0 + 0)). Counted from the loss function's calls: per step
    the micro-batches, their rows and token scales (an empty share has scale 0), the rows of a
    step are its batch, each example once per epoch, and the scales of a step sum to 1 (the
    micro-batch means add up to the whole batch's mean)."""
    calls: list[tuple[int, list[int], float]] = []  # (step, dataset rows, token scale)

    def loss_fn(model, batch, step=0):
        calls.append((step, batch["index"].tolist(), batch["scale"]["forget"]["tokens"]))
        return finetune_objective(model, batch)

    model = build_model("tiny", tiny_tok, seed=0)
    cfg = TrainConfig(
        epochs=1, batch_size=4, grad_accum=accum, lr=1e-3, warmup_epochs=0, device="cpu"
    )
    result = train(model, loss_fn, full_examples[:10], cfg, pad_id=tiny_tok.pad_token_id)
    assert result.steps == 3
    per_step = [[c for c in calls if c[0] == s] for s in range(3)]
    assert [len(p) for p in per_step] == [accum] * 3, [len(p) for p in per_step]
    # the short batch may be any of the three steps (the batch order is shuffled)
    got = [[len(rows) if scale > 0 else 0 for _, rows, scale in p] for p in per_step]
    assert sorted(got, reverse=True) == sizes
    seen = []
    for p, want in zip(per_step, got, strict=True):
        rows = [r for (_, rows, scale) in p if scale > 0 for r in rows]
        assert len(rows) == len(set(rows)) == sum(want)  # no row twice within a step
        assert sum(scale for _, _, scale in p) == pytest.approx(1.0, abs=1e-12)
        seen += rows
    assert sorted(seen) == list(range(10))  # every example once in the epoch
