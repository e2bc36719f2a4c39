"""LoRA through peft: unlearning trains only the adapters; adapters saved alone load back on
their base; the merged model scores as base + adapters. Also gradient checkpointing and bf16."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from safetensors.torch import load_file

from satimp.config import LoraConfig, MethodConfig, TrainConfig
from satimp.data.encoding import encode_records
from satimp.data.tofu import load_split
from satimp.evaluate import extraction_scores
from satimp.experiment import unlearn
from satimp.models import add_lora, is_lora, load_model, save_model
from satimp.objectives import Objective

CFG = TrainConfig(epochs=2, lr=5e-3, batch_size=4, warmup_epochs=0, eval_every_epoch=False)


def _unlearn(tiny_trained, bench_dir, out, cfg=CFG, method="gd") -> Path:
    unlearn(tiny_trained, bench_dir, "forget10", "retain90", MethodConfig(name=method), cfg, out)
    return out


def test_lora_unlearning_changes_only_the_adapters(tiny_trained, bench_dir, tmp_path) -> None:
    cfg = dataclasses.replace(CFG, lora=LoraConfig(r=4, alpha=8, save="adapter"))
    out = _unlearn(tiny_trained, bench_dir, tmp_path / "lora", cfg)
    assert (out / "adapter_config.json").is_file() and not (out / "config.json").exists()
    assert all("lora_" in k for k in load_file(out / "adapter_model.safetensors"))
    model, tok = load_model(out)  # the adapters on their base (tiny_trained)
    assert is_lora(model)
    trained = {k: v for k, v in model.named_parameters() if "lora_B" in k}
    assert trained and any(v.abs().max() > 0 for v in trained.values())  # B starts at 0
    base = load_file(Path(tiny_trained) / "model.safetensors")
    unloaded = model.unload().state_dict()  # the base weights, adapters removed unmerged
    for name, value in base.items():
        torch.testing.assert_close(unloaded[name], value, rtol=0, atol=0)

    model, tok = load_model(out)
    save_model(model, tok, tmp_path / "merged")  # default: adapters folded in
    merged, _ = load_model(tmp_path / "merged")
    assert not is_lora(merged)
    examples = encode_records(tok, load_split(bench_dir, "forget10"), max_length=128)
    a = extraction_scores(model, examples, pad_id=tok.pad_token_id)
    b = extraction_scores(merged, examples, pad_id=tok.pad_token_id)
    torch.testing.assert_close(a["mean_nll"], b["mean_nll"], rtol=1e-5, atol=1e-5)
    assert torch.equal(a["es"], b["es"])


def test_rmu_with_lora_trains_the_adapters_of_its_layers(tiny_trained, bench_dir) -> None:
    model, tok = load_model(tiny_trained)
    model = add_lora(model, LoraConfig(r=2))
    objective = Objective(MethodConfig(name="rmu", params={"layer": 1}))
    examples = encode_records(tok, load_split(bench_dir, "forget10"), max_length=64)
    objective.prepare(model, examples, pad_id=tok.pad_token_id)
    names = {n for n, p in model.named_parameters() if p.requires_grad} & {
        n for n, p in model.named_parameters() if any(p is q for q in objective.trainable(model))
    }
    assert names and all("lora_" in n for n in names)
    assert {n.split("layers.")[1].split(".")[0] for n in names} == {"0", "1"}


def test_gradient_checkpointing_gives_the_same_weights(tiny_trained, bench_dir, tmp_path) -> None:
    plain = _unlearn(tiny_trained, bench_dir, tmp_path / "plain")
    ckpt = _unlearn(
        tiny_trained,
        bench_dir,
        tmp_path / "ckpt",
        dataclasses.replace(CFG, gradient_checkpointing=True),
    )
    a, b = load_file(plain / "model.safetensors"), load_file(ckpt / "model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_bf16_mixed_precision_trains(tiny_trained, bench_dir, tmp_path) -> None:
    out = _unlearn(
        tiny_trained, bench_dir, tmp_path / "bf16", dataclasses.replace(CFG, precision="bf16")
    )
    start = load_file(Path(tiny_trained) / "model.safetensors")
    end = load_file(out / "model.safetensors")
    assert end["model.embed_tokens.weight"].dtype == torch.float32  # weights stay fp32
    assert max((end[k] - start[k]).abs().max().item() for k in start) > 1e-4
