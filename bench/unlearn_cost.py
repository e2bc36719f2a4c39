"""Unlearning cost on the default model: step time of each criterion vs GA, peak memory of
NPO (precomputed reference) vs GA, and of NPO with a live reference model for comparison.

    python bench/unlearn_cost.py            # prints a Markdown table

Step time: all methods in one process, round-robin over 3 rounds, median of the per-step
times of each method (after 2 warm-up steps), batch 16 forget + 16 retain examples.
Peak memory: each method in a fresh subprocess, peak RSS after 6 steps minus the RSS right
after the model is loaded (what the method itself adds).
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import default_setup, machine  # noqa: E402

TIMED = ["ga", "wga", "simsat", "simimp", "satimp", "topk", "bottomk", "random", "annotated"]
MEMORY = ["ga", "npo", "npo_live", "satimp"]


def _setup(method: str):
    import torch

    from satimp.config import MethodConfig
    from satimp.data.tofu import load_split
    from satimp.experiment import encode_records
    from satimp.models import load_model
    from satimp.objectives import Objective
    from satimp.train import make_collate

    cfg, data, paths, _ = default_setup(log=lambda *a: None)
    model, tok = load_model(paths["original"])
    base_rss = _rss_mb()
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

    return step, base_rss


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
    return kb / 1024


def memory_child(method: str) -> None:
    step, base = _setup(method)
    for i in range(6):
        step(i)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"method": method, "base_mb": base, "peak_mb": peak, "added_mb": peak - base}))


def main() -> None:
    print(f"machine: {machine()}")
    default_setup()
    steps = {m: _setup(m)[0] for m in TIMED}
    times: dict[str, list[float]] = {m: [] for m in TIMED}
    for m in TIMED:
        steps[m](0), steps[m](1)  # warm-up
    for r in range(3):
        for m in TIMED:
            times[m] += [steps[m](10 * r + i) for i in range(5)]
    ga = statistics.median(times["ga"])
    print("\n| method | step time (ms) | × GA |\n|---|---|---|")
    for m in TIMED:
        med = statistics.median(times[m])
        print(f"| {m} | {med * 1000:.1f} | {med / ga:.3f} |")
    rows = []
    for m in MEMORY:
        out = subprocess.run([sys.executable, __file__, "--memory", m], capture_output=True,
                             text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    ga_peak = next(r["peak_mb"] for r in rows if r["method"] == "ga")
    print("\n| method | peak RSS (MB) | added over loaded model (MB) | peak × GA |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['peak_mb']:.0f} | {r['added_mb']:.0f} | {r['peak_mb'] / ga_peak:.3f} |")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--memory":
        memory_child(sys.argv[2])
    else:
        main()
