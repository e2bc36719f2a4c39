"""`satimp finetune`'s recipe per model (satimp.models.SCRATCH_RECIPES): a preset starts from
random weights and gets a from-scratch recipe by default, a pretrained model keeps
TrainConfig's; the user's flags and config values win over both; the resolved recipe is printed
before training and recorded in config.yaml."""

from __future__ import annotations

from pathlib import Path

import yaml

from satimp import cli
from satimp.config import TrainConfig
from satimp.evaluation.tofu import tofu_es_probe
from satimp.models import SCRATCH_RECIPES, load_model
from satimp.protocol import resolve


def _finetune(model: str | Path, data: Path, out: Path, *extra: str) -> list[str]:
    # --device cpu says where it trains, not how: a CUDA host would train on its GPU
    argv = ["finetune", "--model", str(model), "--data", str(data), "--split", "full"]
    return [*argv, "--out", str(out), "--device", "cpu", *extra]


def _train_record(out: Path) -> dict:
    return yaml.safe_load((out / "config.yaml").read_text())["train"]


def test_tiny_preset_memorises_its_training_split_with_no_recipe_flag(
    bench_dir: Path, tmp_path: Path, capsys
) -> None:
    """`finetune --model tiny --split full` and nothing else reproduces its training answers:
    forget10 (items of `full`) reaches ES ≥ 0.9 under the final evaluation's own ES. Under
    TrainConfig's defaults (lr 1e-5, 5 epochs, one warm-up epoch) the same command leaves
    ES at 0 (measured: final loss 6.2, about ln 512)."""
    out = tmp_path / "ft"
    assert cli.main(_finetune("tiny", bench_dir, out)) == 0
    model, tok = load_model(out)
    probe = tofu_es_probe(bench_dir, "forget10", protocol=resolve("tofu"), batch_size=32)
    assert probe(model, tok, 0)["forget_es"] >= 0.9
    r = SCRATCH_RECIPES["tiny"]
    printed = capsys.readouterr().out.splitlines()
    expected = (
        f"recipe: lr {r['lr']:g}, {r['epochs']} epochs, warm-up {r['warmup_epochs']:g} epochs"
    )
    assert printed[0].startswith(expected) and "preset tiny's from-scratch" in printed[0]
    assert _train_record(out) | r == _train_record(out)  # config.yaml holds the recipe


def test_flags_and_config_win_and_a_pretrained_model_keeps_the_pretrained_recipe(
    bench_dir: Path, tiny_trained: Path, tmp_path: Path, capsys
) -> None:
    """A flag (--epochs) and a --config value (train.lr) replace the preset's defaults, and
    the rest of its recipe (warm-up) stays; a model folder (pretrained) gets TrainConfig's lr
    and warm-up, and the printed line says which."""
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  lr: 1.0e-3\n")
    out = tmp_path / "preset"
    argv = _finetune("tiny", bench_dir, out, "--epochs", "1", "--config", str(config))
    assert cli.main(argv) == 0
    train = _train_record(out)
    warmup = SCRATCH_RECIPES["tiny"]["warmup_epochs"]
    assert (train["epochs"], train["lr"], train["warmup_epochs"]) == (1, 1e-3, warmup)
    assert train["batch_size"] == TrainConfig().batch_size
    capsys.readouterr()
    out = tmp_path / "pretrained"
    assert cli.main(_finetune(tiny_trained, bench_dir, out, "--epochs", "1")) == 0
    assert "(defaults: the pretrained recipe;" in capsys.readouterr().out
    train, default = _train_record(out), TrainConfig()
    assert (train["lr"], train["warmup_epochs"]) == (default.lr, default.warmup_epochs)
