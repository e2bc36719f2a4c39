"""SmolLM2's prompt format, decided by measurement: its shipped ChatML template (which inserts
a default system prompt, "You are a helpful AI assistant named SmolLM, trained by Hugging
Face", into every conversation) against ChatML without it (`models.chat_template: chatml`).

    python bench/smollm2_prompt.py [--items N]

For each format: the base model's real-authors and world-facts scores (TOFU's normalised
probability, truth-ratio score, ROUGE-L recall of a greedy answer of ≤ 200 tokens), the
prompt length in tokens, and the evaluation time. Needs `pip install 'satimp[smollm2]'`.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402


def main() -> None:
    from satimp import metrics as M
    from satimp.data.encoding import prompt_ids
    from satimp.data.real_world import real_world_splits
    from satimp.evaluate import score_split
    from satimp.models import CHAT_TEMPLATES, load_model
    from satimp.protocol import PROTOCOLS

    n = int(sys.argv[sys.argv.index("--items") + 1]) if "--items" in sys.argv else None
    splits = real_world_splits()
    protocol = dataclasses.replace(PROTOCOLS["tofu"])
    print(f"machine: {machine()}")
    print(
        "\n| prompt | set | prob | truth-ratio score | ROUGE-L recall | prompt tokens | time (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        model, tok = load_model("smollm2-135m", cache_dir=Path(tmp))
        model.eval()
        shipped = tok.chat_template
        for name, template in (("shipped (default system prompt)", shipped),
                               ("chatml (none)", CHAT_TEMPLATES["chatml"])):  # fmt: skip
            tok.chat_template = template
            for split in ("real_authors", "world_facts"):
                records = splits[f"{split}_perturbed"][:n]
                t0 = time.time()
                s = score_split(
                    model, tok, records, protocol=protocol, base_key="answer", answer_prob=False
                )
                seconds = time.time() - t0
                length = sum(len(prompt_ids(tok, r["question"])) for r in records) / len(records)
                tr = M.truth_ratio_score(s["truth_ratio"], forget=False)
                print(
                    f"| {name} | {split} | {sum(s['prob']) / len(s['prob']):.3f} | {tr:.3f} | "
                    f"{sum(s['rouge']) / len(s['rouge']):.3f} | {length:.1f} | {seconds:.0f} |"
                )


if __name__ == "__main__":
    main()
