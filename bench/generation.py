"""Greedy generation that drops finished rows against Hugging Face's `generate`.

    python bench/generation.py MODEL DATA [--sets forget10,retain,real_authors,world_facts]

`satimp.evaluation.generation.generate` decodes with `greedy_decode`, which removes a row from the batch
and its KV cache as soon as it emits EOS; `model.generate` keeps decoding every row of a
batch until the last one stops. For each TOFU question set of DATA (a benchmark folder),
this times both on MODEL's answers (batch 32, ≤ 200 new tokens, the run's chat template),
checks that the texts are identical, and reports the tokens each computed: the answers' own
tokens against the batch-padded tokens `generate` decodes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

SETS = {
    "forget10": "forget10_perturbed",
    "retain": "retain_perturbed",
    "real_authors": "real_authors_perturbed",
    "world_facts": "world_facts_perturbed",
}


def main() -> None:
    from satimp.data.encoding import prompt_ids
    from satimp.data.tofu import load_split
    from satimp.evaluation import generation as E
    from satimp.models import load_model

    if len(sys.argv) < 3:
        sys.exit(__doc__)
    model_dir, data = sys.argv[1], sys.argv[2]
    names = sys.argv[sys.argv.index("--sets") + 1].split(",") if "--sets" in sys.argv else SETS
    model, tok = load_model(model_dir)
    model.eval()
    print(f"machine: {machine()}\nmodel: {model_dir}\n")
    print("| set | questions | answer tokens | tokens decoded by generate | "
          "generate (s) | greedy_decode (s) | speed-up | same texts |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    totals = [0.0, 0.0]
    hf_plain = E.plain_greedy
    for name in names:
        records = load_split(data, SETS[name])
        prompts = [prompt_ids(tok, r["question"]) for r in records]
        E.plain_greedy = lambda m: False  # the Hugging Face loop, as before
        t0 = time.perf_counter()
        old = E.generate(model, tok, prompts, batch_size=32, max_new_tokens=200)
        t_old = time.perf_counter() - t0
        E.plain_greedy = hf_plain
        t0 = time.perf_counter()
        new = E.generate(model, tok, prompts, batch_size=32, max_new_tokens=200)
        t_new = time.perf_counter() - t0
        own, padded = decoded_tokens(model, tok, prompts)
        totals[0] += t_old
        totals[1] += t_new
        print(
            f"| {name} | {len(prompts)} | {own} | {padded} | {t_old:.1f} | {t_new:.1f} | "
            f"{t_old / t_new:.2f}× | {old == new} |"
        )
    print(f"| all | | | | {totals[0]:.1f} | {totals[1]:.1f} | {totals[0] / totals[1]:.2f}× | |")


def decoded_tokens(model, tok, prompts) -> tuple[int, int]:
    """(Σ answer lengths up to and with EOS, Σ batch rows × the batch's longest answer)."""
    from satimp.data.encoding import IGNORE, Encoded, iter_batches
    from satimp.evaluation.generation import greedy_decode

    encoded = [Encoded(p, [IGNORE] * len(p)) for p in prompts]
    own = padded = 0
    for idx, batch in iter_batches(encoded, 32, tok.pad_token_id, left=True):
        rows = greedy_decode(
            model, batch["input_ids"], batch["attention_mask"], [200] * len(idx),
            eos_id=tok.eos_token_id,
        )  # fmt: skip
        own += sum(len(r) for r in rows)
        padded += len(rows) * max(len(r) for r in rows)
    return own, padded


if __name__ == "__main__":
    main()
