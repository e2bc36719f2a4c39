"""Tests for typed configuration (satimp.config): YAML + `a.b=value`, unknown keys, ranges."""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from satimp.config import (
    MethodConfig,
    TrainConfig,
    from_dict,
    load_config,
    merge,
    parse_overrides,
    read_yaml,
    to_dict,
)
from satimp.errors import InputError


@dataclass
class RunConfig:
    """A nested config as a pipeline would hold it: `train:` and `method:` sections."""

    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "recipe"})
    method: MethodConfig = field(default_factory=MethodConfig, metadata={"help": "method"})
    name: str = field(default="run", metadata={"help": "run name"})
    splits: list = field(default_factory=lambda: ["full"], metadata={"help": "splits"})

    def validate(self) -> None:
        self.train.validate()


def _fields(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def test_every_field_has_a_default_and_help() -> None:
    for cls in (TrainConfig, MethodConfig):
        cfg = cls()
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help"
            assert hasattr(cfg, f.name)
    assert TrainConfig().validate() is None


def test_mutable_defaults_are_not_shared() -> None:
    a, b = MethodConfig(), MethodConfig()
    a.params["beta1"] = 5
    assert b.params == {}


# ---------------------------------------------------------------- unknown keys


def test_unknown_key_lists_the_valid_ones() -> None:
    with pytest.raises(InputError) as info:
        from_dict(TrainConfig, {"lr": 1e-3, "learning_rate": 1e-3})
    msg = str(info.value)
    assert "learning_rate" in msg
    assert all(name in msg for name in _fields(TrainConfig))


def test_unknown_nested_key_is_named_with_its_section() -> None:
    with pytest.raises(InputError) as info:
        from_dict(RunConfig, {"train": {"foo": 1}})
    msg = str(info.value)
    assert "train.foo" in msg and "valid keys under train" in msg
    assert all(name in msg for name in _fields(TrainConfig))


def test_unknown_top_level_key() -> None:
    with pytest.raises(InputError, match=r"unknown config key trian.*train, method, name"):
        from_dict(RunConfig, {"trian": {"lr": 1}})


def test_method_params_is_a_free_mapping() -> None:
    cfg = from_dict(RunConfig, {"method": {"name": "npo", "params": {"beta": 0.2, "anything": 1}}})
    assert cfg.method.params == {"beta": 0.2, "anything": 1}
    assert cfg.train == TrainConfig()
    with pytest.raises(InputError, match="method.params: expected a mapping"):
        from_dict(RunConfig, {"method": {"params": [1, 2]}})


def test_a_section_must_be_a_mapping() -> None:
    with pytest.raises(InputError, match="train: expected a mapping"):
        from_dict(RunConfig, {"train": 5})
    assert from_dict(RunConfig, None) == RunConfig()


# ---------------------------------------------------------------- type conversion


def test_strings_are_converted_to_the_field_type() -> None:
    cfg = from_dict(
        TrainConfig,
        {
            "epochs": "3",
            "lr": "3e-4",
            "weight_decay": "0.01",
            "warmup_epochs": 0,
            "eval_every_epoch": "false",
        },
    )
    assert cfg.epochs == 3 and isinstance(cfg.epochs, int)
    assert cfg.lr == 3e-4 and isinstance(cfg.lr, float)
    assert cfg.weight_decay == 0.01
    assert cfg.warmup_epochs == 0.0 and isinstance(cfg.warmup_epochs, float)
    assert cfg.eval_every_epoch is False


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("true", True),
        ("False", False),
        ("yes", True),
        ("no", False),
        ("1", True),
        ("0", False),
        (True, True),
        (False, False),
        (1, True),
        (0, False),
    ],
)
def test_bools(raw: object, expected: bool) -> None:
    assert from_dict(TrainConfig, {"eval_every_epoch": raw}).eval_every_epoch is expected


def test_integral_floats_are_ints() -> None:
    assert from_dict(TrainConfig, {"epochs": 4.0}).epochs == 4


@pytest.mark.parametrize(
    "key, raw",
    [
        ("epochs", "three"),
        ("epochs", 2.5),
        ("epochs", True),
        ("epochs", None),
        ("lr", "fast"),
        ("lr", [1e-3]),
        ("lr", False),
        ("eval_every_epoch", "maybe"),
        ("eval_every_epoch", 2),
        ("schedule", None),
    ],
)
def test_unconvertible_values_name_the_key(key: str, raw: object) -> None:
    with pytest.raises(InputError, match=rf"^train\.{key}: cannot read"):
        from_dict(TrainConfig, {key: raw}, prefix="train.")


@pytest.mark.parametrize("raw", [None, "none", "None", "null"])
def test_optional_fields_take_none(raw: object) -> None:
    cfg = from_dict(MethodConfig, {"tau": raw, "gamma": raw, "retain": None})
    assert cfg.tau is None and cfg.gamma is None and cfg.retain is None


def test_the_word_none_is_a_value_of_optional_string_fields() -> None:
    """`retain: none` is 'no retain loss' (None: the method's default), and `models.retain:
    none` is 'no retain model' (None: build one): the word must reach the config."""
    from satimp.objectives import Objective
    from satimp.study.config import RunConfig as StudyConfig

    method = load_config(MethodConfig, None, ["name=gd", "retain=none"])
    assert method.retain == "none" and not Objective(method).uses_retain
    assert Objective(load_config(MethodConfig, None, ["name=gd"])).uses_retain
    run = load_config(StudyConfig, None, ["models.retain=none"])
    assert run.models.retain == "none"


def test_optional_fields_convert_values() -> None:
    cfg = from_dict(MethodConfig, {"tau": "0.5", "gamma": 2, "retain": "kl"})
    assert cfg.tau == 0.5 and isinstance(cfg.gamma, float) and cfg.retain == "kl"
    with pytest.raises(InputError, match="method.tau: cannot read 'hot' as float"):
        from_dict(MethodConfig, {"tau": "hot"}, prefix="method.")


def test_list_fields_take_comma_separated_strings() -> None:
    assert from_dict(RunConfig, {"splits": "forget10,retain90"}).splits == ["forget10", "retain90"]
    assert from_dict(RunConfig, {"splits": ["full"]}).splits == ["full"]
    with pytest.raises(InputError, match="splits: expected a list"):
        from_dict(RunConfig, {"splits": 3})


# ---------------------------------------------------------------- overrides and YAML


def test_parse_overrides_nests_keys_and_reads_yaml_scalars() -> None:
    out = parse_overrides(
        [
            "train.lr=3e-4",
            "train.epochs=10",
            "train.eval_every_epoch=false",
            "method.tau=null",
            "method.params.beta1=5",
            "method.name = satimp",
            "name=",
            "splits=[forget10, retain90]",
            "method.params={beta2: 0.1}",
        ]
    )
    assert out == {
        "train": {"lr": "3e-4", "epochs": 10, "eval_every_epoch": False},
        "method": {"tau": None, "params": {"beta2": 0.1}, "name": "satimp"},
        "name": "",
        "splits": ["forget10", "retain90"],
    }
    cfg = from_dict(
        RunConfig, merge({}, parse_overrides(["train.lr=3e-4", "method.params.beta1=5"]))
    )
    assert cfg.train.lr == 3e-4 and cfg.method.params == {"beta1": 5}


@pytest.mark.parametrize("items", [["train.lr"], ["train.lr=1", "train.lr.x=2"]])
def test_bad_overrides(items: list[str]) -> None:
    with pytest.raises(InputError, match="override"):
        parse_overrides(items)


def test_merge_is_recursive_and_does_not_mutate() -> None:
    base = {"train": {"lr": 1, "epochs": 2}, "name": "a"}
    out = merge(base, {"train": {"lr": 3}, "method": {"name": "ga"}})
    assert out == {"train": {"lr": 3, "epochs": 2}, "name": "a", "method": {"name": "ga"}}
    assert base == {"train": {"lr": 1, "epochs": 2}, "name": "a"}


def test_load_config_merges_yaml_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        "train:\n  lr: 1.0e-3\n  epochs: 3\nmethod:\n  name: npo\n  params: {beta: 0.2}\n"
    )
    cfg = load_config(RunConfig, path, ["train.lr=2e-4", "method.params.gamma=1"])
    assert cfg.train.lr == 2e-4  # the override wins
    assert cfg.train.epochs == 3  # the file's other keys stay
    assert cfg.method.name == "npo" and cfg.method.params == {"beta": 0.2, "gamma": 1}
    assert load_config(RunConfig) == RunConfig()
    assert to_dict(cfg)["train"]["lr"] == 2e-4


def test_load_config_rejects_unknown_keys_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  foo: 1\n")
    with pytest.raises(InputError, match="train.foo"):
        load_config(RunConfig, path)


def test_load_config_validates(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"train\.lr=-1\.0"):
        load_config(RunConfig, None, ["train.lr=-1"])
    with pytest.raises(InputError, match=r"train\.grad_accum"):
        load_config(TrainConfig, None, ["batch_size=10", "grad_accum=3"])


@pytest.mark.parametrize(
    "text, match",
    [
        (None, "does not exist"),
        ("train: [unclosed", "not valid YAML"),
        ("- a\n- b\n", "mapping"),
    ],
)
def test_read_yaml_errors(tmp_path: Path, text: str | None, match: str) -> None:
    path = tmp_path / "c.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(InputError, match=match) as info:
        read_yaml(path)
    assert str(path) in str(info.value)


def test_empty_yaml_is_an_empty_mapping(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("")
    assert read_yaml(path) == {}


# ---------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    "key, value",
    [
        ("epochs", 0),
        ("lr", -1e-5),
        ("lr", 0.0),
        ("lr", float("nan")),
        ("batch_size", 0),
        ("grad_accum", 0),
        ("weight_decay", -0.1),
        ("warmup_epochs", -1.0),
        ("schedule", "cosine"),
        ("max_grad_norm", -1.0),
        ("precision", "fp8"),
        ("max_length", 4),
        ("log_every", 0),
    ],
)
def test_validate_rejects_out_of_range_values(key: str, value: object) -> None:
    cfg = dataclasses.replace(TrainConfig(), **{key: value})
    with pytest.raises(InputError) as info:
        cfg.validate()
    assert str(info.value).startswith(f"train.{key}=")


def test_batch_size_must_divide_by_grad_accum() -> None:
    with pytest.raises(InputError, match=r"^train\.grad_accum=3"):
        TrainConfig(batch_size=16, grad_accum=3).validate()
    TrainConfig(batch_size=16, grad_accum=4).validate()


def test_validate_messages_list_the_valid_choices() -> None:
    with pytest.raises(InputError, match="linear.*constant"):
        TrainConfig(schedule="cosine").validate()
    with pytest.raises(InputError, match="'fp32', 'bf16'.*or 'auto'"):
        TrainConfig(precision="fp16").validate()


@pytest.mark.parametrize(
    "key, value",
    [
        ("schedule", "constant"),
        ("precision", "bf16"),
        ("precision", "auto"),
        ("max_grad_norm", 0.0),
        ("warmup_epochs", 0.0),
        ("max_length", 8),
    ],
)
def test_validate_accepts_boundary_values(key: str, value: object) -> None:
    dataclasses.replace(TrainConfig(), **{key: value}).validate()
