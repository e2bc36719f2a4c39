"""Saved model folders carry what transformers 4.45 reads (checked here on the files; the load
in a real 4.45 environment is `bench/old_transformers.py`, see docs/integrations.md), and the added keys
leave transformers 5.x's reading of the folder unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import transformers
from transformers import AutoConfig, AutoTokenizer, LlamaConfig

from satimp.hf_compat import legacy_config, legacy_tokenizer_config
from satimp.models import build_model, save_model

# transformers 4.45.1's LlamaConfig.__init__ parameters (inspect.signature in a 4.45 venv):
# every one must be in config.json, or 4.45 falls back to its default, which may differ
LLAMA_445_KEYS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "hidden_act", "max_position_embeddings",
    "initializer_range", "rms_norm_eps", "use_cache", "pad_token_id", "bos_token_id",
    "eos_token_id", "pretraining_tp", "tie_word_embeddings", "rope_theta", "rope_scaling",
    "attention_bias", "attention_dropout", "mlp_bias", "head_dim", "torch_dtype",
)  # fmt: skip
# What transformers 5 writes (chat_template.jinja, no torch_dtype): at the low end of the
# supported range (bench/transformers_low.py) the folder is 4.x's own, nothing to add.
WRITES_5X = pytest.mark.skipif(
    int(transformers.__version__.split(".")[0]) < 5, reason="checks transformers 5's files"
)
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 16,
}


@pytest.fixture(scope="module")
def saved(tiny_tok, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("saved")
    save_model(build_model("tiny", tiny_tok, seed=0), tiny_tok, out)
    return out


@WRITES_5X
def test_saved_folder_has_the_files_445_reads(saved: Path, tiny_tok) -> None:
    tok_config = json.loads((saved / "tokenizer_config.json").read_text())
    # 4.45 resolves this name (TokenizersBackend, 5.x's own, raises "does not exist")
    assert tok_config["tokenizer_class"] == "PreTrainedTokenizerFast"
    # 4.45 reads the template from here only; 5.x from the .jinja file; both the same
    assert tok_config["chat_template"] == (saved / "chat_template.jinja").read_text()
    assert tok_config["chat_template"] == tiny_tok.chat_template
    assert tok_config["clean_up_tokenization_spaces"] is False  # 4.45's default is True
    assert (saved / "tokenizer.json").is_file() and (saved / "model.safetensors").is_file()
    config = json.loads((saved / "config.json").read_text())
    missing = [k for k in LLAMA_445_KEYS if k not in config]
    assert not missing, missing
    assert config["torch_dtype"] == config["dtype"] == "float32"
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"] == 10000.0
    assert config["rope_scaling"] is None  # default RoPE, as 4.45 writes it


@WRITES_5X
def test_added_keys_do_not_change_how_5x_reads_the_folder(saved: Path, tiny_tok, tmp_path) -> None:
    build_model("tiny", tiny_tok, seed=0).save_pretrained(tmp_path)  # 5.x's own file
    assert "torch_dtype" not in json.loads((tmp_path / "config.json").read_text())
    got, want = AutoConfig.from_pretrained(saved), AutoConfig.from_pretrained(tmp_path)
    assert {**got.to_dict(), "_name_or_path": ""} == {**want.to_dict(), "_name_or_path": ""}
    tok = AutoTokenizer.from_pretrained(saved)
    assert type(tok) is type(tiny_tok) and tok.chat_template == tiny_tok.chat_template
    text = "Who wrote it?  Ana ."
    assert tok(text).input_ids == tiny_tok(text).input_ids
    assert tok.decode(tok(text).input_ids) == tiny_tok.decode(tiny_tok(text).input_ids)


def test_legacy_config_rope_and_dtype() -> None:
    new = {"dtype": "bfloat16", "rope_parameters": dict(LLAMA3_ROPE), "model_type": "llama"}
    old = legacy_config(new)
    assert old["torch_dtype"] == "bfloat16" and old["rope_theta"] == 500000.0
    assert old["rope_scaling"] == {k: v for k, v in LLAMA3_ROPE.items() if k != "rope_theta"}
    assert new == {"dtype": "bfloat16", "rope_parameters": LLAMA3_ROPE, "model_type": "llama"}
    # 5.x turns rope_theta + rope_scaling back into the same rope_parameters
    base = dict(vocab_size=32, hidden_size=16, num_attention_heads=2, num_hidden_layers=1)
    a = LlamaConfig.from_dict({**base, **new}).to_dict()
    b = LlamaConfig.from_dict({**base, **old}).to_dict()
    assert a["rope_parameters"] == b["rope_parameters"] == LLAMA3_ROPE
    # a folder written by 4.x keeps its keys; nested per-layer RoPE (unknown to 4.45) is left
    written_by_4x = {"torch_dtype": "float16", "rope_theta": 1e6, "rope_scaling": None}
    assert legacy_config(written_by_4x) == written_by_4x
    nested = {"rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 1.0}}}
    assert legacy_config(nested) == nested


def test_legacy_tokenizer_config() -> None:
    got = legacy_tokenizer_config(
        {"tokenizer_class": "TokenizersBackend"},
        {"default": "A", "tool_use": "B"},
        clean_up_spaces=False,
    )
    assert got == {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": [
            {"name": "default", "template": "A"},
            {"name": "tool_use", "template": "B"},
        ],
        "clean_up_tokenization_spaces": False,
    }
    kept = {"tokenizer_class": "LlamaTokenizer", "chat_template": "X"}  # 4.45 maps it to *Fast
    assert legacy_tokenizer_config(kept, "Y", clean_up_spaces=True) == {
        **kept,
        "clean_up_tokenization_spaces": True,
    }
