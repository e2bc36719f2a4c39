"""Causal language models: load any by hub id or local path, or build a tiny Llama from scratch.

The built-in presets train a byte-level BPE tokenizer on the benchmark's own text (with the
`tokenizers` library) and give it a chat template, so a saved model directory reproduces the
prompt format in any Hugging Face tool (SPEC §4).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from satimp.errors import InputError
from satimp.hf_compat import add_legacy_fields

# Chat templates for models that ship none (SPEC §4). Our own presets use CHAT_TEMPLATE.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
FALLBACK_TEMPLATES = {
    "llama": "{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}",
    "phi": "{% for m in messages %}Question: {{ m['content'] }}\nAnswer: {% endfor %}",
}
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<|user|>", "<|assistant|>"]


@dataclass(frozen=True)
class Preset:
    """A small Llama architecture trained from scratch."""

    vocab_size: int
    hidden_size: int
    layers: int
    heads: int
    intermediate_size: int
    max_positions: int = 512


PRESETS = {
    "tiny": Preset(vocab_size=512, hidden_size=64, layers=2, heads=4, intermediate_size=128),
    "small": Preset(vocab_size=2048, hidden_size=256, layers=4, heads=4, intermediate_size=688),
    "medium": Preset(
        vocab_size=8192,
        hidden_size=1024,
        layers=12,
        heads=16,
        intermediate_size=2816,
        max_positions=1024,
    ),
}


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """A byte-level BPE tokenizer trained on `texts`, with special tokens and the chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(preset: str | Preset, tokenizer, *, seed: int = 0):
    """A randomly initialised LlamaForCausalLM sized by `preset`, matched to `tokenizer`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    p = get_preset(preset) if isinstance(preset, str) else preset
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=p.hidden_size,
        num_hidden_layers=p.layers,
        num_attention_heads=p.heads,
        num_key_value_heads=p.heads,
        intermediate_size=p.intermediate_size,
        max_position_embeddings=p.max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise InputError(f"unknown model preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def ensure_chat_template(tokenizer, model_type: str = "") -> None:
    """Give a tokenizer without a chat template the one its model family uses (SPEC §4)."""
    if getattr(tokenizer, "chat_template", None):
        return
    family = next((k for k in FALLBACK_TEMPLATES if k in model_type.lower()), "llama")
    tokenizer.chat_template = FALLBACK_TEMPLATES[family]


def load_model(name_or_path: str | Path, *, trust_remote_code: bool = False, dtype=None):
    """(model, tokenizer) from a local directory or a hub id; safetensors weights only.

    A directory holding LoRA adapters only (`adapter_config.json`, no `config.json`) loads its
    base model (`base_model_name_or_path`) with the adapters on top (a `peft` model). The
    tokenizer gets a pad token (EOS when it has none) and a chat template when missing.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(name_or_path)
    adapter = path / "adapter_config.json"
    base = None
    if path.is_dir() and adapter.is_file() and not (path / "config.json").is_file():
        base = json.loads(adapter.read_text()).get("base_model_name_or_path")
        if not base:
            raise InputError(f"{adapter}: no base_model_name_or_path")
    elif path.exists() and not (path / "config.json").is_file():
        raise InputError(f"{path}: not a model directory (no config.json)")
    if not path.exists() and "/" not in str(name_or_path):
        raise InputError(f"{name_or_path}: no such model directory, and not a hub id")
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(name_or_path), trust_remote_code=trust_remote_code
        )
        model = AutoModelForCausalLM.from_pretrained(
            str(base or name_or_path),
            trust_remote_code=trust_remote_code,
            use_safetensors=True,
            **({"dtype": dtype} if dtype is not None else {}),
        )
        if base is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(path))
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load model {name_or_path!s}: {e}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    ensure_chat_template(tokenizer, model.config.model_type)
    return model, tokenizer


def add_lora(model, cfg):
    """Wrap `model` with LoRA adapters (`cfg`: satimp.config.LoraConfig); only they train."""
    from peft import LoraConfig, get_peft_model

    peft_cfg = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.targets),
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, peft_cfg)
    except ValueError as e:  # e.g. no module matches the targets
        raise InputError(f"lora: {e}") from None


def is_lora(model) -> bool:
    return hasattr(model, "peft_config")


def save_model(
    model, tokenizer, out_dir: str | Path, *, lora_save: str = "merged", state_dict=None
) -> None:
    """save_pretrained of model (safetensors) and tokenizer (with its chat template), readable
    by transformers 4.45 as well as 5.x (`satimp.hf_compat`).

    A LoRA model is saved merged (adapters folded into the weights: a plain model) or, with
    lora_save='adapter', as its adapters alone (`load_model` puts them back on the base).
    `state_dict`: the full weights gathered after sharded training (FSDP, ZeRO-3).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if is_lora(model) and lora_save == "merged":
        model = model.merge_and_unload()
    extra = {"state_dict": state_dict} if state_dict is not None else {}
    model.save_pretrained(out_dir, safe_serialization=True, **extra)
    tokenizer.save_pretrained(out_dir)
    # the folder must also open in transformers 4.45 (open-unlearning, older evaluators)
    add_legacy_fields(out_dir, tokenizer)
