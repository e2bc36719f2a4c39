"""Unlearning cost on the default model: step time of each criterion vs GA, peak memory of
NPO (precomputed reference) vs GA, and of NPO with a live reference model for comparison.

    python bench/unlearn_cost.py                    # prints Markdown tables (`small`)
    python bench/unlearn_cost.py --preset medium    # peak memory only, on `medium`

`small` (3.7 M parameters) is the default model; on it a second model copy is 14 MB, lost in
the process's ~600 MB. `medium` (a 12-layer Llama, ~160 M parameters, built from scratch with
random weights and a tokenizer trained on the default benchmark: no download, no training)
makes a copy visible: 0.6 GB of fp32 weights.

Step time: all methods in one process, round-robin over 9 rotating rounds, median of the per-step
times of each method (after 2 warm-up steps), batch 16 forget + 16 retain examples.
Peak memory: each method in a fresh subprocess; the peak-RSS mark is reset (Linux
/proc/self/clear_refs) once the model is loaded and the objective prepared, then 6 steps run
and the peak (VmHWM) is read. Also reported: the state a method holds besides the model and
optimizer (NPO: reference log-probs of the forget set; `npo_live`: a second full model, as
the incumbent frameworks keep).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import default_setup, machine  # noqa: E402

TIMED = ["ga", "wga", "simsat", "simimp", "satimp", "topk", "bottomk", "random", "annotated"]
MEMORY = ["ga", "npo", "npo_live", "satimp"]


def _model(preset: str):
    """(model, tokenizer, data): the default original model (`small`), or a `medium` Llama
    with random weights and a tokenizer trained on the default benchmark."""
    if preset == "small":
        from satimp.models import load_model

        _, data, paths, _ = default_setup(log=lambda *a: None)
        return (*load_model(paths["original"]), data)
    from satimp.data.records import benchmark_texts
    from satimp.models import build_model, get_preset, train_tokenizer
    from satimp.study.config import RunConfig
    from satimp.study.run import prepare_data

    data = prepare_data(RunConfig(), log=lambda *a: None)
    tok = train_tokenizer(benchmark_texts(data), get_preset(preset).vocab_size)
    return build_model(preset, tok, seed=0), tok, data


def _setup(method: str, preset: str = "small"):
    import torch

    from satimp.config import MethodConfig
    from satimp.data.encoding import encode_records
    from satimp.data.tofu import load_split
    from satimp.objectives import Objective
    from satimp.train import make_collate

    model, tok, data = _model(preset)
    forget = encode_records(tok, load_split(data, "forget10"), max_length=512)[:16]
    retain = encode_records(tok, load_split(data, "retain90"), max_length=512)[:16]
    live = method == "npo_live"
    obj = Objective(MethodConfig(name="npo" if live else method, alpha=1.0, retain="nll"))
    obj.prepare(model, forget, pad_id=tok.pad_token_id)
    if live:  # the incumbents' way: a second full model, reference log-probs every step
        import copy

        ref = copy.deepcopy(model).eval().requires_grad_(False)
        from satimp.logprobs import forward_logps

        def live_ref(index, like):
            with torch.no_grad():
                r = forward_logps(ref, batch["forget"])
            return r.logps

        obj._batch_ref_logps = live_ref
    batch = make_collate(tok.pad_token_id)([(i, forget[i], retain[i]) for i in range(16)])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step(i: int) -> float:
        t0 = time.perf_counter()
        loss, _ = obj(model, batch, step=i)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    held = sum(t.numel() * t.element_size() for t in (obj.ref_logps or []))
    if live:
        held += sum(p.numel() * p.element_size() for p in ref.parameters())
    return step, held


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith(key + ":"))
    return kb / 1024


def memory_child(method: str, preset: str) -> None:
    step, held = _setup(method, preset)
    base = _status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS mark: measure the training steps only
    # AdamW allocates its state at the first step; by the second the peak is reached
    for i in range(6 if preset == "small" else 3):
        step(i)
    peak = _status_mb("VmHWM")
    print(json.dumps({"method": method, "base_mb": base, "peak_mb": peak, "held_mb": held / 2**20}))


def memory_table(preset: str) -> None:
    rows = []
    for m in MEMORY:
        out = subprocess.run(
            [sys.executable, __file__, "--memory", m, preset],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    ga_peak = next(r["peak_mb"] for r in rows if r["method"] == "ga")
    print(
        f"\n`{preset}` preset\n\n| method | RSS before steps (MB) | peak RSS during steps (MB) "
        "| peak × GA | state held besides model (MB) |\n|---|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r['method']} | {r['base_mb']:.0f} | {r['peak_mb']:.0f} | "
            f"{r['peak_mb'] / ga_peak:.3f} | {r['held_mb']:.3f} |"
        )


def main() -> None:
    print(f"machine: {machine()}")
    if sys.argv[1:3] == ["--preset", "medium"]:
        memory_table("medium")
        return
    default_setup()
    steps = {m: _setup(m)[0] for m in TIMED}
    times: dict[str, list[float]] = {m: [] for m in TIMED}
    for m in TIMED:
        steps[m](0), steps[m](1)  # warm-up
    for r in range(len(TIMED)):  # rotate the order each round: no method is always first
        for m in TIMED[r:] + TIMED[:r]:
            times[m] += [steps[m](10 * r + i) for i in range(3)]
    ga = statistics.median(times["ga"])
    print("\n| method | step time (ms) | × GA |\n|---|---|---|")
    for m in TIMED:
        med = statistics.median(times[m])
        print(f"| {m} | {med * 1000:.1f} | {med / ga:.3f} |")
    memory_table("small")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--memory":
        memory_child(sys.argv[2], sys.argv[3])
    else:
        main()
