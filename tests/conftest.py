"""Shared fixtures: a tiny synthetic TOFU benchmark, its tokenizer and a tiny memorising model.

All three are session-scoped and built once (≈ 15–30 s on 2 CPU cores in total):

- `bench_dir`: `synth_tofu` with 10 authors × 4 QA (full = 40 items, forget10 = 4 items).
- `tiny_tok`: a 512-token byte-level BPE trained on the benchmark's text.
- `tiny_trained`: the `tiny` preset fine-tuned on `full` with full-batch AdamW (60 steps,
  lr 1e-2). It reproduces every training answer (ES = 1 on the forget answers) but not the
  unseen paraphrased answers (ES = 0 or small), so ES tests see 0, 1 and values in between.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from satimp.config import TrainConfig
from satimp.data.encoding import encode_records
from satimp.data.records import benchmark_texts
from satimp.data.synth import synth_tofu
from satimp.data.tofu import load_split
from satimp.distributed import set_deterministic
from satimp.models import build_model, save_model, train_tokenizer
from satimp.objectives import finetune_objective
from satimp.train import train

# One intra-op thread: on 2 cores shared with other jobs, 2 OpenMP threads wait on each other
# at every op barrier (measured: a tiny-model step 0.11 s with 1 thread, 2.4 s with 2). It also
# fixes the float summation order of every in-process test whatever OMP_NUM_THREADS says;
# subprocesses get the same count through CHILD_ENV.
torch.set_num_threads(1)
# The suite compares reruns bit for bit: deterministic kernels only (a no-op for the CPU ops
# used here; on a CUDA host it makes an op without a deterministic kernel fail loudly).
set_deterministic()

# Environment of every `satimp` subprocess a test starts: the thread count of this process
# (reductions split over threads sum in another order), no hub, no tokenizer threads.
CHILD_ENV = {
    **os.environ,
    "OMP_NUM_THREADS": str(torch.get_num_threads()),
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}

BENCH_AUTHORS, BENCH_QA = 10, 4
# Full-batch (40 examples) training memorises `full` in far fewer optimizer steps than small
# batches: 60 steps give ES = 1 on every training answer, for several seeds.
# Every training run of the suite names its device: on a CUDA host `auto` would train on the GPU,
# where the bit-identity comparisons need other tolerances.
TINY_TRAIN = dict(
    epochs=60, lr=1e-2, batch_size=40, warmup_epochs=3, max_grad_norm=1.0, seed=0, device="cpu"
)


@pytest.fixture(scope="session")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local benchmark directory in TOFU's layout (one .jsonl per split)."""
    out = tmp_path_factory.mktemp("bench")
    synth_tofu(out, authors=BENCH_AUTHORS, qa_per_author=BENCH_QA, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_tok(bench_dir: Path):
    """A byte-level BPE tokenizer (vocab 512) with the chat template, trained on the benchmark."""
    return train_tokenizer(benchmark_texts(bench_dir), 512)


@pytest.fixture(scope="session")
def tiny_trained(bench_dir: Path, tiny_tok, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of the tiny preset fine-tuned on `full` (model + tokenizer, safetensors)."""
    model = build_model("tiny", tiny_tok, seed=0)
    examples = encode_records(tiny_tok, load_split(bench_dir, "full"), max_length=512)
    train(
        model,
        finetune_objective,
        examples,
        TrainConfig(**TINY_TRAIN),
        pad_id=tiny_tok.pad_token_id,
        desc="fixture",
    )
    out = tmp_path_factory.mktemp("tiny_trained")
    save_model(model, tiny_tok, out)
    return out


@pytest.fixture(scope="session")
def child_env() -> dict[str, str]:
    """CHILD_ENV, for tests that start `satimp` in a subprocess."""
    return dict(CHILD_ENV)
