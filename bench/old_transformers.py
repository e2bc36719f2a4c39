"""Do satimp's saved model folders load in transformers 4.45 (open-unlearning's pin)?

    # 1. with satimp's own environment (transformers 5.x): write the folders and references
    PYTHONPATH=src python bench/old_transformers.py save /tmp/compat
    # 2. with a second environment holding the old release:
    #    python3 -m venv /tmp/venv445 && /tmp/venv445/bin/pip install torch transformers==4.45.1 safetensors
    /tmp/venv445/bin/python bench/old_transformers.py check /tmp/compat

`save` writes, through satimp's own code paths: a `tiny` preset fine-tuned by `satimp
finetune`, that model unlearned by `satimp unlearn` (GA, 1 epoch), a LoRA fine-tune saved
merged, and randomly initialised tiny Phi and Mistral models (the families of the paper's
Phi-1.5 and Zephyr configs) and a tiny Llama with Llama-3's scaled RoPE, saved by
`satimp.models.save_model`. For each folder it records
the chat-formatted prompt's token ids, the logits of that prompt and 8 greedy tokens.

`check` (which imports only transformers and torch, not satimp) loads each folder with
AutoTokenizer / AutoModelForCausalLM, applies the chat template, and compares the token ids
and the greedy tokens (exactly) and the logits (largest absolute difference).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

QUESTION = "Who wrote the novel about the lighthouse keeper?"
NEW_TOKENS = 8
# Llama-3's scaled RoPE (5.x: rope_parameters; 4.45: rope_theta + rope_scaling)
LLAMA3_ROPE = dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0)
LLAMA3_ROPE |= dict(high_freq_factor=4.0, original_max_position_embeddings=16)


def reference(folder: Path, model, tokenizer) -> dict:
    import torch

    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": QUESTION}], add_generation_prompt=True, tokenize=False
    )
    ids = tokenizer(text, add_special_tokens=False).input_ids
    with torch.no_grad():
        x = torch.tensor([ids])
        logits = model(input_ids=x).logits[0].float()
        out = model.generate(
            input_ids=x,
            attention_mask=torch.ones_like(x),
            max_new_tokens=NEW_TOKENS,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=None,  # always NEW_TOKENS tokens, so both sides compare all of them
        )
    return {
        "folder": str(folder),
        "prompt": text,
        "ids": ids,
        "logits": logits.tolist(),
        "generated": out[0, len(ids) :].tolist(),
    }


def save(root: Path) -> None:
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
        PhiConfig,
        PhiForCausalLM,
    )

    from satimp import cli
    from satimp.data.synth import synth_tofu
    from satimp.models import load_model, save_model

    data = root / "data"
    synth_tofu(data, authors=10, qa_per_author=4, seed=0)
    common = ["--data", str(data), "--batch-size", "8", "--lr", "3e-3", "--overwrite"]
    runs = {
        "finetuned": ["finetune", "--model", "tiny", "--split", "full", "--epochs", "3"],
        "lora-merged": ["finetune", "--model", "tiny", "--split", "full", "--epochs", "1"]
        + ["--lora-r", "4"],
    }
    for name, argv in runs.items():
        assert cli.main([*argv, *common, "--out", str(root / name)]) == 0, name
    unlearn = ["unlearn", "--model", str(root / "finetuned"), "--forget", "forget10"]
    unlearn += ["--method", "ga", "--epochs", "1", "--out", str(root / "unlearned")]
    assert cli.main([*unlearn, *common]) == 0
    _, tok = load_model(root / "finetuned")
    small = dict(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, intermediate_size=128)
    small |= dict(num_attention_heads=4, pad_token_id=tok.pad_token_id)
    for name, model in (
        ("phi", PhiForCausalLM(PhiConfig(**small, partial_rotary_factor=0.5))),
        ("mistral", MistralForCausalLM(MistralConfig(**small, num_key_value_heads=2))),
        ("llama3-rope", LlamaForCausalLM(LlamaConfig(**small, rope_parameters=LLAMA3_ROPE))),
    ):
        save_model(model, tok, root / name)
    refs = []
    for name in ("finetuned", "unlearned", "lora-merged", "phi", "mistral", "llama3-rope"):
        model, tok = load_model(root / name)
        refs.append(reference(root / name, model.eval(), tok))
    (root / "reference.json").write_text(json.dumps(refs))
    print(f"wrote {len(refs)} model folders and reference.json under {root}")


def check(root: Path) -> int:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    print(f"{'folder':<12} {'tokenizer class':<26} {'ids':>4} {'greedy':>7} {'max |Δlogit|':>13}")
    failed = 0
    for ref in json.loads((root / "reference.json").read_text()):
        folder = Path(ref["folder"])
        tok = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder).eval()
        got = reference(folder, model, tok)
        same_ids = got["prompt"] == ref["prompt"] and got["ids"] == ref["ids"]
        same_gen = got["generated"] == ref["generated"]
        diff = (torch.tensor(got["logits"]) - torch.tensor(ref["logits"])).abs().max().item()
        ok = same_ids and same_gen and diff < 1e-4
        failed += not ok
        print(
            f"{folder.name:<12} {type(tok).__name__:<26} {'same' if same_ids else 'DIFF':>4} "
            f"{'same' if same_gen else 'DIFF':>7} {diff:>13.2e}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("save", "check"):
        sys.exit(__doc__)
    where = Path(sys.argv[2])
    sys.exit(save(where) if sys.argv[1] == "save" else check(where))
