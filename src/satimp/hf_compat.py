"""Saved model folders that older transformers releases read too (4.45, which open-unlearning
and many evaluators pin), not only the release that wrote them; and `quiet_libraries`, the
CLI's silencing of the Hugging Face libraries' own progress bars.

transformers 5 writes three things 4.45 cannot use:

- `tokenizer_config.json` names the class `TokenizersBackend` (5.x's name for a tokenizer
  backed by `tokenizer.json`); 4.45 knows it as `PreTrainedTokenizerFast`, which 5.x keeps as
  an alias of the same class;
- the chat template lives only in `chat_template.jinja`; 4.45 reads the `chat_template` key of
  `tokenizer_config.json` (5.x prefers the `.jinja` file when both exist: they are equal);
- `config.json` holds `dtype` and the RoPE settings in `rope_parameters`; 4.45 reads
  `torch_dtype`, `rope_theta`, `partial_rotary_factor` and `rope_scaling` (5.x turns those
  back into `rope_parameters`, so the extra keys load to the same config).

`add_legacy_fields` adds the older names beside the newer ones; nothing is removed, and a
folder written by 4.x passes through unchanged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# 5.x class name → the name both 4.45 and 5.x resolve to the same tokenizer
LEGACY_TOKENIZER_CLASSES = {"TokenizersBackend": "PreTrainedTokenizerFast"}
# RoPE settings 4.45 reads at the top level of config.json (5.x: inside rope_parameters)
TOP_LEVEL_ROPE_KEYS = ("rope_theta", "partial_rotary_factor")


def transformers_major() -> int:
    """The installed transformers' major version: 4 at the supported low end, 5 at the high."""
    import transformers

    return int(transformers.__version__.split(".")[0])


def dtype_kwarg(dtype) -> dict:
    """The keyword `from_pretrained` / `from_config` take the weights' dtype by: `dtype` in
    transformers 5, `torch_dtype` in 4.x (there `dtype` reaches the model's __init__ and
    fails)."""
    return {"dtype" if transformers_major() >= 5 else "torch_dtype": dtype}


def legacy_config(config: dict) -> dict:
    """config.json's mapping with the keys 4.45 reads added (a copy).

    dtype → torch_dtype; a flat `rope_parameters` {rope_type, rope_theta, …} → `rope_theta`
    (and `partial_rotary_factor`) at the top level, and `rope_scaling` = the remaining
    parameters for a scaled RoPE type (None for 'default', as 4.45 writes it). Per-layer-type
    (nested) RoPE parameters belong to models 4.45 does not know; they are left alone.
    """
    out = dict(config)
    if "dtype" in out and "torch_dtype" not in out:
        out["torch_dtype"] = out["dtype"]
    rope = out.get("rope_parameters")
    if isinstance(rope, dict) and "rope_type" in rope:
        for key in TOP_LEVEL_ROPE_KEYS:
            if key in rope and key not in out:
                out[key] = rope[key]
        if "rope_scaling" not in out:
            scaled = {k: v for k, v in rope.items() if k not in TOP_LEVEL_ROPE_KEYS}
            out["rope_scaling"] = None if rope["rope_type"] == "default" else scaled
    return out


def legacy_tokenizer_config(
    tok_config: dict, chat_template: str | dict | None, *, clean_up_spaces: bool
) -> dict:
    """tokenizer_config.json's mapping with the class name, chat template and decoding switch
    4.45 reads (a copy).

    A dict of named templates goes in 4.45's list form [{name, template}]. The space clean-up
    switch is written out because 4.45's default (True: "a ." → "a.") differs from 5.x's.
    """
    out = dict(tok_config)
    cls = out.get("tokenizer_class")
    out["tokenizer_class"] = LEGACY_TOKENIZER_CLASSES.get(cls, cls)
    if chat_template is not None and "chat_template" not in out:
        if isinstance(chat_template, dict):
            chat_template = [{"name": k, "template": v} for k, v in chat_template.items()]
        out["chat_template"] = chat_template
    out.setdefault("clean_up_tokenization_spaces", clean_up_spaces)
    return out


def add_legacy_fields(out_dir: str | Path, tokenizer) -> None:
    """Rewrite a saved folder's config.json and tokenizer_config.json (where present) with
    `legacy_config` / `legacy_tokenizer_config`; each file is replaced atomically."""
    out_dir = Path(out_dir)
    config = out_dir / "config.json"
    if config.is_file():
        _write_json(config, legacy_config(json.loads(config.read_text())))
    tok_config = out_dir / "tokenizer_config.json"
    if tok_config.is_file():
        _write_json(
            tok_config,
            legacy_tokenizer_config(
                json.loads(tok_config.read_text()),
                getattr(tokenizer, "chat_template", None),
                clean_up_spaces=bool(getattr(tokenizer, "clean_up_tokenization_spaces", False)),
            ),
        )


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def quiet_libraries() -> None:
    """The CLI's output is satimp's own progress bars and stage lines: silence the hub's and
    transformers' progress bars and warnings."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass
