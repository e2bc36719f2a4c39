"""Building the default models: time (cold, and a cache hit) and what they memorised.

    python bench/models.py [--cold]

--cold builds into an empty temporary cache (the full cost); without it the project cache
is used (a hit when `make run` already built them). Reports: build time; the original
model's teacher-forced argmax accuracy on forget10 answers (target ≥ 0.95); the retain
model's accuracy on forget10's key-fact tokens (`keywords`; aim ≤ 0.3) and on all tokens.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402


def accuracy(model_dir, data, split: str) -> tuple[float, float]:
    """(argmax accuracy over answer tokens, over key-fact tokens); EOS excluded."""
    import torch

    from satimp.data.encoding import iter_batches
    from satimp.data.tofu import load_split
    from satimp.experiment import encode_records
    from satimp.logprobs import drop_last_answer_token, forward_logps
    from satimp.models import load_model

    model, tok = load_model(model_dir)
    model.eval()
    examples = encode_records(tok, load_split(data, split), max_length=512)
    right = total = kright = ktotal = 0
    with torch.no_grad():
        for _, batch in iter_batches(examples, 32, tok.pad_token_id):
            r = forward_logps(model, batch)
            mask = drop_last_answer_token(r.mask)
            keys = batch["key_mask"][:, 1:] & mask
            right += (r.correct & mask).sum().item()
            total += mask.sum().item()
            kright += (r.correct & keys).sum().item()
            ktotal += keys.sum().item()
    return right / total, kright / max(1, ktotal)


def main() -> None:
    from satimp.study import RunConfig, prepare_data, run_models

    cold = "--cold" in sys.argv
    cfg = RunConfig()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        if cold:
            cfg = dataclasses.replace(cfg, cache_dir=tmp)
        data = prepare_data(cfg, log=lambda *a: None)
        t0 = time.time()
        paths = run_models(cfg, data)
        build = time.time() - t0
        t0 = time.time()
        run_models(cfg, data, log=lambda *a: None)
        hit = time.time() - t0
        orig_acc, orig_key = accuracy(paths["original"], data, cfg.forget)
        ret_acc, ret_key = accuracy(paths["retain"], data, cfg.forget)
    print("\n| quantity | value |\n|---|---|")
    print(
        f"| build base + original + retain ({'cold' if cold else 'project cache'}) | {build:.1f} s |"
    )
    print(f"| cache hit | {hit:.2f} s |")
    print(f"| original: argmax accuracy on {cfg.forget} answers | {orig_acc:.3f} |")
    print(f"| original: accuracy on {cfg.forget} key-fact tokens | {orig_key:.3f} |")
    print(f"| retain: argmax accuracy on {cfg.forget} answers | {ret_acc:.3f} |")
    print(f"| retain: accuracy on {cfg.forget} key-fact tokens | {ret_key:.3f} |")


if __name__ == "__main__":
    main()
