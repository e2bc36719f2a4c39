"""LoRA through peft: unlearning trains only the adapters; adapters saved alone load back on
their base; the merged model scores as base + adapters. Also gradient checkpointing and bf16."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from safetensors.torch import load_file

from satimp import distributed
from satimp.config import LoraConfig, MethodConfig, TrainConfig
from satimp.data.encoding import encode_records
from satimp.data.tofu import load_split
from satimp.evaluation.scoring import extraction_scores
from satimp.experiment import unlearn
from satimp.models import add_lora, is_lora, load_model, save_model
from satimp.objectives import Objective

CFG = TrainConfig(
    epochs=2, lr=5e-3, batch_size=4, warmup_epochs=0, eval_every_epoch=False, device="cpu"
)


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


def test_merged_model_scores_as_base_plus_adapters(tiny_trained, bench_dir, tmp_path) -> None:
    """base + adapters (a peft model, scored before anything is merged) and the saved merged
    model (merge_and_unload, written, loaded back as a plain model) give the same per-item NLL
    and ES. Both are computed independently: the peft model is scored first, since
    merge_and_unload folds the adapters into that very model in place. The adapters matter
    (the base alone scores differently) and a merged model with one weight off by 3 % of its
    scale is caught, so the comparison can fail."""
    cfg = dataclasses.replace(CFG, lora=LoraConfig(r=4, alpha=8, save="adapter"))
    out = _unlearn(tiny_trained, bench_dir, tmp_path / "lora", cfg)
    model, tok = load_model(out)
    assert is_lora(model)
    examples = encode_records(tok, load_split(bench_dir, "forget10"), max_length=128)
    pad = tok.pad_token_id
    with_adapters = extraction_scores(model, examples, pad_id=pad)
    with model.disable_adapter():
        base_alone = extraction_scores(model, examples, pad_id=pad)

    save_model(model, tok, tmp_path / "merged")  # default: adapters folded in
    merged, _ = load_model(tmp_path / "merged")
    assert not is_lora(merged)
    folded = extraction_scores(merged, examples, pad_id=pad)
    # W + (α/r)·BA in fp32 against x·W + (α/r)·(x·A)·B: the same sums in another order,
    # ~1e-6 relative on NLLs of order 1; 1e-5 leaves a margin 1000× below the gaps below.
    tol = dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(folded["mean_nll"], with_adapters["mean_nll"], **tol)
    # ES counts argmax hits: equal too, unless a top-2 logit gap falls within that float noise
    # (then the summation order would decide), so it gets one item's worth of slack
    assert (folded["es"] - with_adapters["es"]).abs().gt(1e-6).sum() <= 1

    gap = (base_alone["mean_nll"] - with_adapters["mean_nll"]).abs().max().item()
    assert gap > 1e-2, gap  # the adapters changed the scores: equality above is informative
    weight = merged.model.layers[0].self_attn.q_proj.weight
    with torch.no_grad():
        signs = torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)).sign()
        weight.add_(0.03 * weight.abs().mean() * signs)
    off = extraction_scores(merged, examples, pad_id=pad)["mean_nll"]
    # the comparison above, at its own tolerance, catches a merge 3 % off in one matrix
    assert not torch.allclose(off, with_adapters["mean_nll"], **tol)


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


class _Spy:
    """Wraps `experiment.load_model` so the model unlearning trains is observed: it counts the
    forward calls of decoder layer 0's first MLP projection (inside the layer, so a
    checkpointed layer's recomputation in backward runs it again: transformers keeps the
    layer's own hooks outside the checkpoint, and torch stops recomputing once the last saved
    tensor is back, before the MLP's last projection) and records, at every loss term's
    computation, whether bf16 autocast is on (the loop's own autocast) and that projection's
    output dtype."""

    def __init__(self, monkeypatch) -> None:
        import satimp.experiment as experiment
        from satimp.objectives import Objective

        self.layer_calls, self.autocast, self.dtypes = 0, [], []
        real_load, real_parts = experiment.load_model, Objective.parts

        def load(*a, **kw):
            model, tok = real_load(*a, **kw)
            model.model.layers[0].mlp.gate_proj.register_forward_hook(self._hook)
            return model, tok

        def observed(part):
            def run():
                self.autocast.append(torch.is_autocast_enabled("cpu"))
                return part()

            return run

        def parts(objective, model, batch, **kw):  # the loop runs each term as it computes it
            return [observed(p) for p in real_parts(objective, model, batch, **kw)]

        monkeypatch.setattr(experiment, "load_model", load)
        monkeypatch.setattr(Objective, "parts", parts)

    def _hook(self, module, args, output) -> None:
        self.layer_calls += 1
        self.dtypes.append((output[0] if isinstance(output, tuple) else output).dtype)


def test_gradient_checkpointing_recomputes_and_gives_the_same_weights(
    tiny_trained, bench_dir, tmp_path, monkeypatch
) -> None:
    """GD, 2 epochs × 1 step (4 forget examples, batch 4), each step a forget and a retain
    forward pass: layer 0's gate_proj runs 2 × 2 = 4 times without checkpointing and 8 times with it
    (each pass recomputed in backward) — the option is really on. The weights are the same: the
    recomputation repeats the same fp32 ops in the same order (1e-6: float noise only)."""
    spy = _Spy(monkeypatch)
    plain = _unlearn(tiny_trained, bench_dir, tmp_path / "plain")
    assert spy.layer_calls == 4
    spy.layer_calls = 0
    ckpt = _unlearn(
        tiny_trained,
        bench_dir,
        tmp_path / "ckpt",
        dataclasses.replace(CFG, gradient_checkpointing=True),
    )
    assert spy.layer_calls == 8
    a, b = load_file(plain / "model.safetensors"), load_file(ckpt / "model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_bf16_mixed_precision_autocasts_and_stays_close_to_fp32(
    tiny_trained, bench_dir, tmp_path, monkeypatch
) -> None:
    """precision=bf16: every loss is computed under bf16 autocast (projections output bf16),
    the saved weights stay fp32, and they differ from fp32 training (bf16 matmuls keep 8 bits
    of mantissa) while going the same way: measured over the whole model, the distance from
    the fp32 result is 0.19 × the fp32 update's length (lr 5e-3, 2 steps); the bounds are
    1e-3 × (bf16 really ran) and 0.5 × (it trained in the same direction)."""
    spy = _Spy(monkeypatch)
    fp32 = _unlearn(tiny_trained, bench_dir, tmp_path / "fp32")
    assert spy.autocast and not any(spy.autocast) and set(spy.dtypes) == {torch.float32}
    spy.autocast, spy.dtypes = [], []
    bf16 = _unlearn(
        tiny_trained, bench_dir, tmp_path / "bf16", dataclasses.replace(CFG, precision="bf16")
    )
    assert spy.autocast and all(spy.autocast) and set(spy.dtypes) == {torch.bfloat16}
    start = load_file(Path(tiny_trained) / "model.safetensors")
    a, b = load_file(fp32 / "model.safetensors"), load_file(bf16 / "model.safetensors")
    assert b["model.embed_tokens.weight"].dtype == torch.float32  # weights stay fp32
    update = sum(((a[k] - start[k]) ** 2).sum().item() for k in a) ** 0.5
    apart = sum(((b[k] - a[k]) ** 2).sum().item() for k in a) ** 0.5
    assert update > 1e-1  # fp32 training moved the weights
    assert 1e-3 * update < apart < 0.5 * update, (apart, update)


def test_precision_auto_trains_under_bf16_where_the_cpu_has_bf16_units(
    tiny_trained, bench_dir, tmp_path, monkeypatch
) -> None:
    """precision=auto runs as bf16 autocast on a CPU with bf16 units (here: AMX tiles);
    that it resolves to fp32 without is test_distributed's."""
    spy = _Spy(monkeypatch)
    monkeypatch.setattr(distributed, "cpu_bf16_units", lambda: "amx")
    _unlearn(tiny_trained, bench_dir, tmp_path / "amx", dataclasses.replace(CFG, precision="auto"))
    assert spy.autocast and all(spy.autocast) and set(spy.dtypes) == {torch.bfloat16}
