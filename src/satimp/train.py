"""The one training loop, on `accelerate`, shared by fine-tuning and unlearning.

forward → loss → backward → clip → step → schedule → log, top to bottom. Fine-tuning passes
`finetune_objective`; unlearning passes an `Objective`. Each optimizer step sees one batch of
`forget` examples (the training set when fine-tuning), each paired with a random `retain`
example when the objective uses one; an objective's forget and retain terms are each
forwarded and backpropagated in turn (`loss_parts`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from satimp import tracking
from satimp.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from satimp.config import TrainConfig
from satimp.data.encoding import IGNORE, Encoded, collate, length_grouped_batches
from satimp.distributed import resolve_precision, set_deterministic, use_cpu
from satimp.errors import InputError


class Diverged(RuntimeError):
    """A non-finite loss or gradient: the step is not applied and the run stops."""

    def __init__(self, step: int, what: str):
        super().__init__(f"diverged at step {step}: {what}")
        self.step = step


def lr_factor(step: int, *, warmup: int, total: int, schedule: str) -> float:
    """Multiplier of the peak lr at `step`: linear warm-up over `warmup` steps, then linear
    decay to 0 at `total` ('linear') or flat ('constant')."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    return max(0.0, (total - step) / max(1, total - warmup))


class PairedDataset(Dataset):
    """Item i = (forget example i, a retain partner drawn per epoch), for one epoch's order.

    pairing 'random': forget example i's partner is the epoch's i-th uniform draw. 'length':
    the same draws, sorted by length and dealt to the epoch's batches in the order of their
    forget rows' lengths (the shortest partners to the batch of the shortest forget rows), so
    each step's retain rows have similar lengths and pad little; every draw is still used
    once per epoch, only the step it lands in depends on its length (as for the forget rows,
    which `length_grouped_batches` groups)."""

    def __init__(
        self,
        forget: Sequence[Encoded],
        retain: Sequence[Encoded] | None,
        seed: int,
        pairing: str = "random",
    ):
        self.forget, self.retain, self.seed, self.pairing = forget, retain, seed, pairing
        self.partners: list[int] = []
        self.set_epoch(0)

    def set_epoch(self, epoch: int, batches: list[list[int]] | None = None) -> None:
        """Draw the partners of `epoch`; 'length' pairing deals them to `batches` (the
        epoch's batches of forget indices)."""
        if not self.retain:
            return
        rng = random.Random(self.seed * 7919 + epoch)
        self.partners = [rng.randrange(len(self.retain)) for _ in self.forget]
        if self.pairing == "length" and batches:
            drawn = iter(sorted(self.partners, key=lambda j: (len(self.retain[j]), j)))
            by_length = sorted(
                batches, key=lambda b: (sum(len(self.forget[i]) for i in b) / len(b), b)
            )
            for b in by_length:
                for i in b:
                    self.partners[i] = next(drawn)

    def __len__(self) -> int:
        return len(self.forget)

    def __getitem__(self, i: int) -> tuple[int, Encoded, Encoded | None]:
        return i, self.forget[i], self.retain[self.partners[i]] if self.retain else None


def make_collate(pad_id: int) -> Callable:
    def collate_pairs(items: list[tuple[int, Encoded, Encoded | None]]) -> dict:
        batch = {
            "index": torch.tensor([i for i, _, _ in items]),
            "forget": collate([f for _, f, _ in items], pad_id),
        }
        if items[0][2] is not None:
            batch["retain"] = collate([r for _, _, r in items], pad_id)
        return batch

    return collate_pairs


UNITS = ("tokens", "rows", "seqs", "attn")  # what a loss term averages over (or "sum")


def _counts(e: Encoded) -> dict[str, int]:
    """Per example: scored label tokens (after the shift), 1 row, 1 if any token is scored,
    attended tokens — the denominators of the loss terms."""
    tokens = sum(lab != IGNORE for lab in e.labels[1:])
    return {"tokens": tokens, "rows": 1, "seqs": int(tokens > 0), "attn": len(e)}


def batch_scale(local: list[dict], total: dict, world: int) -> dict[str, float]:
    """Factors that turn a micro-batch's mean over `unit` into its exact share of the global
    batch's mean: local count × world / global count (DDP averages gradients over `world`
    processes; micro-batch gradients are summed). One process, one micro-batch: all 1.
    A plain sum over the global batch is the sum of the micro-batch sums: "sum" → world
    (0 for the empty share that only keeps a process in step)."""
    scale = {u: (sum(c[u] for c in local) * world / total[u]) if total[u] else 0.0 for u in UNITS}
    return scale | {"sum": float(world) if local else 0.0}


def _shares(batch: list[int], rank: int, world: int, accum: int) -> list[list[int]]:
    """This process's micro-batches of one optimizer step: the global batch (sorted by length)
    dealt round-robin to the processes, each share cut into `accum` consecutive micro-batches
    (possibly empty when the batch is short)."""
    share = batch[rank::world]
    size = math.ceil(len(share) / accum) if share else 0
    return [share[i * size : (i + 1) * size] for i in range(accum)]


class LineProgress:
    """Training progress for a log file, where a tqdm bar would be one endless line: a line
    on stderr (`desc: step 64/256 (25 %), loss 0.412, 3.41 s/step, ~10.9 min left`) at most
    every `every` seconds. Has the three methods of tqdm that `train` calls."""

    def __init__(self, total: int, initial: int, desc: str, every: float = 60.0, clock=time.time):
        self.total, self.n, self.desc, self.every, self.clock = total, initial, desc, every, clock
        self.start_n, self.start = initial, clock()
        self.last, self.postfix = self.start, ""

    def set_postfix(self, **kw) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in kw.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last < self.every or self.n <= self.start_n:
            return
        self.last = now
        per_step = (now - self.start) / (self.n - self.start_n)
        left = (self.total - self.n) * per_step / 60
        parts = [f"step {self.n}/{self.total} ({100 * self.n / max(self.total, 1):.0f} %)"]
        parts += [self.postfix] if self.postfix else []
        parts += [f"{per_step:.2f} s/step", f"~{left:.1f} min left"]
        print(f"{self.desc}: " + ", ".join(parts), file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def progress_bar(total: int, initial: int, desc: str, *, enabled: bool = True):
    """A tqdm bar on a terminal, `LineProgress` lines otherwise (nohup, a log file, a
    worker process), nothing where not `enabled` (DDP's other processes)."""
    if enabled and not sys.stderr.isatty():
        return LineProgress(total, initial, desc)
    return tqdm(total=total, initial=initial, desc=desc, leave=False, disable=not enabled)


@dataclass
class TrainResult:
    steps: int
    seconds: float
    last: dict = field(default_factory=dict)
    epochs: list[dict] = field(default_factory=list)
    # sharded training (FSDP, DeepSpeed ZeRO-3): the full weights, gathered for saving
    state_dict: dict | None = None


def train(
    model,
    loss_fn: Callable,
    forget: Sequence[Encoded],
    cfg: TrainConfig,
    *,
    pad_id: int,
    retain: Sequence[Encoded] | None = None,
    params: list[torch.nn.Parameter] | None = None,
    out_dir: str | Path | None = None,
    on_epoch_end: Callable[[object, int], dict] | None = None,
    desc: str = "train",
    checkpoints: bool = False,
    resume: bool = False,
) -> TrainResult:
    """Optimise `model` with `loss_fn(model, batch, step=…) -> (loss, logs)`.

    AdamW on `params` (default: all trainable), warm-up then linear decay (SPEC §3), gradient
    clipping. `cfg.batch_size` is the global batch: with several processes (DDP) each takes
    its share, cut into `cfg.grad_accum` micro-batches. Every micro-batch carries
    `batch["scale"]` (see `batch_scale`) so that the summed gradients equal those of the
    whole batch in one pass, whatever the number of processes and micro-batches (exact for
    losses averaged over tokens or sequences). Writes one JSON line per logged step (and per
    epoch-end evaluation) to `out_dir/metrics.jsonl`.

    checkpoints: save `out_dir/checkpoints/step-N/` as `cfg.checkpoints` says (at every epoch
    end for 'epoch', also every N steps for N, never for 'none'); False writes none whatever
    the config (cached model builds). resume: continue from the latest complete checkpoint
    there (the data order, retain pairing and random criteria are functions of seed, epoch and
    step, so the result equals an uninterrupted run's).
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedType, set_seed

    cfg.validate()
    if cfg.deterministic:
        set_deterministic()
    set_seed(cfg.seed)
    # Subnormal floats are ~100× slower on x86 CPUs. A reweighted loss puts them in the backward
    # pass: SatImp's p^5 weights on tokens with p ≈ 1e-5 made its SmolLM2 backward 6× slower
    # (bench/throughput.py). Flushing them to zero changes nothing above 1.2e-38 (fp32's
    # smallest normal); on CUDA this call does nothing. The flag is per thread and torch's
    # worker threads copy it when they start, so the CLI sets it before any tensor work too.
    torch.set_flush_denormal(True)
    # mixed precision is our own autocast: accelerate's state (one per process) would fix the
    # precision of the first run for every later one in the same process
    accelerator = _accelerator(Accelerator, cfg.device, **tracking.accelerator_kwargs(cfg, out_dir))
    tracking.start(accelerator, cfg, out_dir)  # --report-to tensorboard / wandb
    rank, world = accelerator.process_index, accelerator.num_processes
    sharded = accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    steps_per_epoch = math.ceil(len(forget) / cfg.batch_size)
    total = cfg.max_steps or steps_per_epoch * cfg.epochs  # WMDP's recipe counts steps
    epochs = math.ceil(total / steps_per_epoch)
    warmup = (
        cfg.warmup_steps
        if cfg.warmup_steps is not None
        else round(cfg.warmup_epochs * steps_per_epoch)
    )
    params = params if params is not None else [p for p in model.parameters() if p.requires_grad]
    # the fused kernel: one pass over each tensor instead of ~10 elementwise ops (CPU: 0.17 s
    # against 0.85 s per step on SmolLM2's 135 M parameters, one thread; bench/throughput.py)
    fused = accelerator.device.type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, warmup=warmup, total=total, schedule=cfg.schedule)
    )
    # the scheduler stays ours: accelerate would step it once per process (our batch is global)
    model, optimizer = accelerator.prepare(model, optimizer)
    dataset = PairedDataset(forget, retain, cfg.seed, cfg.retain_pairing)
    collate_pairs = make_collate(pad_id)
    lengths = [len(e) for e in forget]
    forget_counts = [_counts(e) for e in forget]
    retain_counts = [_counts(e) for e in retain] if retain else []
    ckpt_dir = Path(out_dir) / "checkpoints" if out_dir else None
    result, step, start = TrainResult(0, 0.0), 0, time.time()
    first_epoch, skip, log_lines = 0, 0, 0
    latest = latest_checkpoint(ckpt_dir) if resume and ckpt_dir else None
    if latest is not None:
        state = load_checkpoint(latest, accelerator.unwrap_model(model), optimizer, scheduler)
        step, first_epoch, skip = state["step"], state["epoch"], state["batches_done"]
        result.last, result.epochs, log_lines = state["last"], state["epochs"], state["log_lines"]
    log = _MetricsLog(
        out_dir if accelerator.is_main_process else None, keep_lines=log_lines, tracker=accelerator
    )

    def save(epoch: int, batches_done: int) -> None:
        # sharded engines keep no whole model or optimizer in one process: no resumable
        # checkpoints there (DDP and one process have them)
        if not (checkpoints and ckpt_dir and accelerator.is_main_process) or sharded:
            return
        if batches_done == 0 and not cfg.checkpoint_epochs():  # checkpoints: none
            return
        state = {
            "step": step,
            "epoch": epoch,
            "batches_done": batches_done,
            "last": result.last,
            "epochs": result.epochs,
            "log_lines": log.lines,
        }
        save_checkpoint(
            ckpt_dir,
            accelerator.unwrap_model(model),
            optimizer,
            scheduler,
            state,
            keep=cfg.keep_checkpoints,
        )
        _fault_injection(step, ckpt_dir)

    def micro_batches(batch: list[int]):
        """This process's micro-batches of one optimizer step, each carrying its `scale`."""
        items = [dataset[i] for i in batch]
        totals = {
            "forget": _sum_counts([forget_counts[i] for i, _, _ in items]),
            "retain": _sum_counts([retain_counts[dataset.partners[i]] for i, _, _ in items])
            if retain
            else None,
        }
        for share in _shares(list(range(len(batch))), rank, world, cfg.grad_accum):
            # an empty share still runs (on the batch's first item, weighted 0): under DDP
            # every process must take part in every gradient exchange
            mine = [items[j] for j in share] or items[:1]
            mb = collate_pairs(mine)
            mb["scale"] = {
                part: batch_scale(
                    [counts[i if part == "forget" else dataset.partners[i]] for i, _, _ in mine]
                    if share
                    else [],
                    totals[part],
                    world,
                )
                for part, counts in (("forget", forget_counts), ("retain", retain_counts))
                if totals[part] is not None
            }
            yield {k: _to(v, accelerator.device) for k, v in mb.items()}

    bf16 = resolve_precision(cfg.precision, cfg.device) == "bf16"
    autocast = torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=bf16)
    bar = progress_bar(total, step, desc, enabled=accelerator.is_main_process)
    model.train()
    with compiled(accelerator.unwrap_model(model), cfg.compile):
        for epoch in range(first_epoch, epochs):
            order = length_grouped_batches(lengths, cfg.batch_size, seed=cfg.seed * 1009 + epoch)
            dataset.set_epoch(epoch, order)
            done_before = skip if epoch == first_epoch else 0  # batches a checkpoint covered
            for i, batch in enumerate(order[done_before:], done_before + 1):
                micros = list(micro_batches(batch))
                step_loss, logs = 0.0, {}
                for m, mb in enumerate(micros):
                    parts = loss_parts(loss_fn, model, mb, step)
                    for k, part in enumerate(parts):
                        # the gradient exchange: once, after the last micro-batch's last term
                        sync = m == len(micros) - 1 and k == len(parts) - 1
                        with contextlib.nullcontext() if sync else accelerator.no_sync(model):
                            with autocast:
                                loss, more = part()
                            _check_finite(accelerator, loss, step)
                            accelerator.backward(loss)
                        step_loss += loss.item() / world
                        logs |= more
                grad_norm = _clip(accelerator, params, cfg.max_grad_norm)
                if not math.isfinite(grad_norm):
                    raise Diverged(step + 1, f"gradient norm is {grad_norm}")
                lr = scheduler.get_last_lr()[0]  # the rate this step applies (log it, not the next)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                row = {
                    "step": step,
                    "epoch": round(step / steps_per_epoch, 4),
                    "loss": _sum_over_processes(accelerator, step_loss),
                    "lr": lr,
                    "grad_norm": grad_norm,
                    **logs,
                }
                if step % cfg.log_every == 0 or step == total:
                    log.write(row, "train")
                result.last = row
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.3f}")
                if step == total:  # max_steps reached inside an epoch
                    break
                every = cfg.checkpoint_every()
                if every and step % every == 0 and i < len(order):
                    save(epoch, i)
            if on_epoch_end is not None:
                model.eval()
                ev = {
                    "epoch": epoch + 1,
                    "step": step,
                    **_eager_call(on_epoch_end, accelerator.unwrap_model(model), epoch + 1),
                }
                model.train()
                log.write(ev, "epoch")
                result.epochs.append(ev)
            save(epoch + 1, 0)
    bar.close()
    accelerator.end_training()  # closes the tracker's run (a no-op without one)
    result.steps, result.seconds = step, time.time() - start
    if sharded:  # a collective: every process takes part, the main one saves
        result.state_dict = accelerator.get_state_dict(model)
    return result


@contextlib.contextmanager
def compiled(model, backend: str):
    """Call `model` through `torch.compile(backend=…)` inside the block and eagerly again after
    it ('none': no change). In place (`nn.Module.compile`): the parameters, the state-dict keys
    and the forward's signature stay the model's own, so saving, checkpoints and
    `forward_kwargs` see the plain model."""
    if backend == "none":
        yield
        return
    model.compile(backend=backend)
    try:
        yield
    finally:
        model._compiled_call_impl = None  # nn.Module's slot for the compiled call: eager again


def _eager_call(fn: Callable, model, *args):
    """`fn(model, *args)` with `model` called eagerly (an evaluation between epochs generates
    and scores batches of other shapes: compiling each would cost more than it saves)."""
    saved = getattr(model, "_compiled_call_impl", None)
    if saved is None:  # not compiled
        return fn(model, *args)
    model._compiled_call_impl = None
    try:
        return fn(model, *args)
    finally:
        model._compiled_call_impl = saved


def loss_parts(loss_fn: Callable, model, batch: dict, step: int) -> list[Callable]:
    """The micro-batch's loss as thunks, each returning (term, log fields), that the loop
    backpropagates one after another: an objective's own `parts` (its forget and retain
    terms, so that one graph is alive at a time), else the whole `loss_fn` as one term."""
    parts = getattr(loss_fn, "parts", None)
    if parts is not None:
        return parts(model, batch, step=step)
    return [lambda: loss_fn(model, batch, step=step)]


def _sum_counts(counts: list[dict]) -> dict[str, int]:
    return {u: sum(c[u] for c in counts) for u in UNITS}


def _to(v, device):
    if isinstance(v, dict):
        return {k: _to(x, device) for k, x in v.items()}
    return v.to(device) if isinstance(v, torch.Tensor) else v


def _check_finite(accelerator, loss: torch.Tensor, step: int) -> None:
    """Raise Diverged on a non-finite loss — in every process at once (one process stopping
    alone would leave the others waiting for its gradients)."""
    bad = torch.tensor(0.0 if torch.isfinite(loss) else 1.0, device=loss.device)
    if accelerator.num_processes > 1:
        bad = accelerator.reduce(bad, reduction="sum")
    if bad.item() > 0:
        raise Diverged(step + 1, f"loss is {loss.item()}")


def _sum_over_processes(accelerator, value: float) -> float:
    if accelerator.num_processes == 1:
        return value
    t = torch.tensor(value, dtype=torch.float64, device=accelerator.device)
    return accelerator.reduce(t, reduction="sum").item()


def _clip(accelerator, params: list, max_norm: float) -> float:
    """Clip gradients to `max_norm` (0 = only measure); returns the pre-clip total norm."""
    if max_norm > 0:
        return float(accelerator.clip_grad_norm_(params, max_norm))
    grads = [p.grad.norm() for p in params if p.grad is not None]
    return float(torch.stack(grads).norm()) if grads else 0.0


def _fault_injection(step: int, where: Path) -> None:
    """Test hook: SATIMP_FAULT_KILL_AT_STEP=N kills this process (SIGKILL, as `kill -9`) right
    after the checkpoint of step N is written — the crash the resume tests recover from. With
    SATIMP_FAULT_KILL_IN=TEXT only a run whose checkpoint folder's path contains TEXT is killed
    (one method of `satimp run`)."""
    if os.environ.get("SATIMP_FAULT_KILL_AT_STEP") == str(step):
        if os.environ.get("SATIMP_FAULT_KILL_IN", "") in str(where):
            os.kill(os.getpid(), signal.SIGKILL)


def _accelerator(accelerator_cls, device: str, **kwargs):
    """The loop's Accelerator on `train.device` (`kwargs`: its trackers). accelerate keeps one
    device per process: a second run asking for another device than the first is refused,
    not silently moved."""
    try:
        accelerator = accelerator_cls(cpu=use_cpu(device), **kwargs)
    except ValueError as e:  # accelerate: "AcceleratorState has already been initialized"
        raise InputError(f"train.device={device!r}: {e}") from None
    if device != "auto" and accelerator.device.type != device:
        raise InputError(
            f"train.device={device!r}, but this process already trains on {accelerator.device}"
        )
    return accelerator


class _MetricsLog:
    """Appends JSON lines to metrics.jsonl (flushed per line, so a crash loses at most one).

    keep_lines: on resume, the lines the checkpoint had seen are kept and later ones (written
    after it, before the crash) dropped, so the log reads as one uninterrupted run.
    tracker: the Accelerator whose trackers (--report-to) get each row's numbers too.
    """

    def __init__(self, out_dir: str | Path | None, *, keep_lines: int = 0, tracker=None):
        self.path = Path(out_dir) / "metrics.jsonl" if out_dir else None
        self.tracker = tracker
        self.lines = keep_lines
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            old = self.path.read_text().splitlines(keepends=True) if self.path.exists() else []
            self.path.write_text("".join(old[:keep_lines]))

    def write(self, row: dict, kind: str = "train") -> None:
        """Append `row`; `kind` ('train' per step, 'epoch' per evaluation) prefixes the
        tracker's scalar names."""
        if self.path:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")
        if self.tracker is not None and self.tracker.trackers:
            self.tracker.log(tracking.scalars(row, kind), step=row["step"])
        self.lines += 1
