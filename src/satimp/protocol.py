"""Protocols (SPEC §6): whose published numbers a run is comparable with.

TOFU's repository, open-unlearning and the SatImp authors' code compute "the same" metrics and
train "the same" methods under different conventions. A protocol is one named set of switch
values (`PROTOCOLS`, one row per protocol, like `objectives.METHODS`); every switch can also be
set on its own (`protocol.es_no_match=zero`), and the resolved values are written into every
run's config.yaml, summary.json and report. Code reads the switch it needs
(`protocol.eos_in_prob`), never the protocol's name.

Sources read for each cell (docs/protocols.md): TOFU `locuslab/tofu` bdc209e,
open-unlearning `locuslab/open-unlearning` d3d7cf9, the authors' `tmlr-group/SatImp` 51314c0.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

from satimp.config import opt
from satimp.errors import InputError
from satimp.runs import write_json

OFFICIAL_ES_PROMPT = "### Question: {question}\n ### Answer: "  # eval_es.py, trailing space


@dataclass(frozen=True)
class Protocol:
    """The resolved switches of one protocol (every field has a value)."""

    name: str
    system_prompt: str  # '' = no system message
    es_prompt: str  # 'chat' | 'qa'
    es_no_match: str  # 'zero' | 'inverse_length'
    retain_es: str  # 'retain_perturbed' | 'retain_head'
    retain_holdout: int  # first N of retainXX held out of the retain loss (0: none)
    ds_size: int  # evaluate the first N items of each split (0: all)
    eval_max_length: int  # teacher-forced evaluation sequences are cut to this many tokens
    generation: str  # 'total' (budget counts the prompt) | 'new' (budget = new tokens)
    gen_tokens: int  # the generation budget
    tr_mean: str  # 'geometric' | 'arithmetic' mean of the perturbed answers' probabilities
    tr_eps: float  # ε added to the denominators of R, 1/R and the normalised probability
    eos_in_prob: bool  # probability / truth ratio average the NLL over the EOS too
    answer_tokens: str  # 'separate' (answer alone + EOS) | 'chat' (as the template renders it)
    method_defaults: str  # a key of METHOD_DEFAULTS
    hard_reduction: str  # 'mean' | 'sum' (hard-sampling forget and retain losses)
    bottomk: str  # 'highest' (Algorithm 1: the s highest-p tokens) | 'complement'
    kl: str  # 'answer' (answer tokens) | 'all' (batchmean over every position)
    rmu_control: str  # 'unit' (c·u/‖u‖) | 'raw' (c·u, u ~ U[0,1)^D)
    rmu_params: str  # 'layers' (ℓ−2..ℓ) | 'all'


# What each switch may be, and what it means (docs/protocols.md's table states the same).
SWITCHES: dict[str, tuple[tuple | type, str]] = {
    "system_prompt": (str, "system message before every question ('' = none)"),
    "es_prompt": (("chat", "qa"), "ES prompt: the chat prompt, or `### Question: q\\n ### Answer: a`"),
    "es_no_match": (("zero", "inverse_length"), "ES when not even the last token is reproduced: 0 or 1/|y|"),
    "retain_es": (("retain_perturbed", "retain_head"), "retain ES items: retain_perturbed or retainXX[:holdout]"),
    "retain_holdout": (int, "first N retainXX items kept out of the retain loss (0: none)"),
    "ds_size": (int, "evaluate the first N items of each split (0: all)"),
    "eval_max_length": (int, "teacher-forced evaluation sequences cut at N tokens"),
    "generation": (("total", "new"), "generation budget counts the prompt ('total') or not ('new')"),
    "gen_tokens": (int, "generation budget in tokens"),
    "tr_mean": (("geometric", "arithmetic"), "mean of the perturbed answers' probabilities in R"),
    "tr_eps": (float, "ε in R = P̄_pert/(P_base+ε), min(R, 1/(R+ε)), p/(p+Σp_k+ε) (0: none)"),
    "eos_in_prob": (bool, "probability and truth ratio include the EOS token"),
    "answer_tokens": (("separate", "chat"), "scored answer tokens: alone + EOS, or as the chat template renders the turn (+ EOS)"),
    "method_defaults": (("spec", "open-unlearning", "satimp-official"), "method hyperparameter defaults"),
    "hard_reduction": (("mean", "sum"), "hard-sampling losses: token mean or plain sum"),
    "bottomk": (("highest", "complement"), "BottomK takes the s highest-p tokens, or all but TopK's"),
    "kl": (("answer", "all"), "KL retain loss over answer tokens, or batchmean over all positions"),
    "rmu_control": (("unit", "raw"), "RMU control vector c·u/‖u‖ or c·u with u ~ U[0,1)"),
    "rmu_params": (("layers", "all"), "RMU trains layers ℓ−2..ℓ or every parameter"),
}  # fmt: skip

PROTOCOLS: dict[str, Protocol] = {
    # TOFU's repository (TOFU has no ES: the ES conventions here are SPEC §5's).
    "tofu": Protocol(
        name="tofu", system_prompt="", es_prompt="chat", es_no_match="zero",
        retain_es="retain_perturbed", retain_holdout=0, ds_size=300, eval_max_length=200,
        generation="total", gen_tokens=200, tr_mean="geometric", tr_eps=0.0, eos_in_prob=True,
        answer_tokens="separate", method_defaults="spec", hard_reduction="mean",
        bottomk="highest", kl="all", rmu_control="unit", rmu_params="layers",
    ),
    # open-unlearning at d3d7cf9, its Instruct-model template_args (system prompt).
    "open-unlearning": Protocol(
        name="open-unlearning", system_prompt="You are a helpful assistant.", es_prompt="chat",
        es_no_match="inverse_length", retain_es="retain_perturbed", retain_holdout=0, ds_size=0,
        eval_max_length=512, generation="new", gen_tokens=200, tr_mean="geometric",
        tr_eps=1e-10, eos_in_prob=True, answer_tokens="chat", method_defaults="open-unlearning",
        hard_reduction="mean", bottomk="highest", kl="all", rmu_control="unit", rmu_params="all",
    ),
    # The authors' code (tmlr-group/SatImp): TOFU's evaluation, eval_es.py's ES.
    "satimp-official": Protocol(
        name="satimp-official", system_prompt="", es_prompt="qa", es_no_match="zero",
        retain_es="retain_head", retain_holdout=400, ds_size=300, eval_max_length=200,
        generation="total", gen_tokens=200, tr_mean="arithmetic", tr_eps=0.0, eos_in_prob=True,
        answer_tokens="separate", method_defaults="satimp-official", hard_reduction="sum",
        bottomk="complement", kl="all", rmu_control="raw", rmu_params="all",
    ),
}  # fmt: skip

# Per protocol family: method → overrides of objectives.METHODS' defaults (γ, α, retain loss
# and hyperparameters). Methods a source does not implement keep SPEC §2's.
METHOD_DEFAULTS: dict[str, dict[str, dict]] = {
    "spec": {},
    "open-unlearning": {  # configs/trainer/*.yaml
        "npo": {"params": {"beta": 0.1}},
        "simnpo": {"gamma": 0.125, "alpha": 1.0, "params": {"beta": 4.5, "delta": 0.0}},
        "wga": {"params": {"beta": 1.0}},
        # SatImp.yaml (its README and class defaults say γ = 1, α = 0.1; the yaml wins at run time)
        "satimp": {"gamma": 0.1, "alpha": 1.0, "params": {"beta1": 5.0, "beta2": 1.0}},
        "rmu": {"alpha": 1.0, "params": {"steering": 2.0, "layer": 7}},
    },
    "satimp-official": {  # config/forget_*.yaml and the loss code's fallbacks
        "npo": {"gamma": 0.1375, "alpha": 1.0, "params": {"beta": 2.5}},
        "simnpo": {"gamma": 0.1375, "alpha": 1.0, "params": {"beta": 2.5, "delta": 0.0}},
        # README's recommended `forget_loss=satimp`: forget term only (satimp_gd adds 0.1·NLL)
        "satimp": {"alpha": 0.0, "retain": "none", "params": {"beta1": 5.0, "beta2": 0.1}},
        "topk": {"params": {"frac": 0.15}},
        "bottomk": {"params": {"frac": 0.5}},
        "random": {"params": {"frac": 0.2}},
        # 'rmu_': hidden_states[7] (block 6's output), c = 6.5, no retain term
        "rmu": {"alpha": 0.0, "params": {"steering": 6.5, "layer": 6}},
    },
}


@dataclass
class ProtocolConfig:
    """`protocol:` in YAML: a name, or a mapping {name, and any switch to set on its own}.

    Every switch left at None takes the named protocol's value (see `PROTOCOLS`)."""

    name: str = opt("tofu", "tofu, open-unlearning or satimp-official (SPEC §6)")
    system_prompt: str | None = opt(None, SWITCHES["system_prompt"][1])
    es_prompt: str | None = opt(None, SWITCHES["es_prompt"][1])
    es_no_match: str | None = opt(None, SWITCHES["es_no_match"][1])
    retain_es: str | None = opt(None, SWITCHES["retain_es"][1])
    retain_holdout: int | None = opt(None, SWITCHES["retain_holdout"][1])
    ds_size: int | None = opt(None, SWITCHES["ds_size"][1])
    eval_max_length: int | None = opt(None, SWITCHES["eval_max_length"][1])
    generation: str | None = opt(None, SWITCHES["generation"][1])
    gen_tokens: int | None = opt(None, SWITCHES["gen_tokens"][1])
    tr_mean: str | None = opt(None, SWITCHES["tr_mean"][1])
    tr_eps: float | None = opt(None, SWITCHES["tr_eps"][1])
    eos_in_prob: bool | None = opt(None, SWITCHES["eos_in_prob"][1])
    answer_tokens: str | None = opt(None, SWITCHES["answer_tokens"][1])
    method_defaults: str | None = opt(None, SWITCHES["method_defaults"][1])
    hard_reduction: str | None = opt(None, SWITCHES["hard_reduction"][1])
    bottomk: str | None = opt(None, SWITCHES["bottomk"][1])
    kl: str | None = opt(None, SWITCHES["kl"][1])
    rmu_control: str | None = opt(None, SWITCHES["rmu_control"][1])
    rmu_params: str | None = opt(None, SWITCHES["rmu_params"][1])

    def resolve(self) -> Protocol:
        """The named protocol with this config's explicit switches applied, validated."""
        if self.name not in PROTOCOLS:
            raise InputError(
                f"unknown protocol {self.name!r}; valid protocols: {', '.join(PROTOCOLS)}"
            )
        given = {k: v for k, v in dataclasses.asdict(self).items() if k != "name" and v is not None}
        for key, value in given.items():
            valid, _ = SWITCHES[key]
            if isinstance(valid, tuple) and value not in valid:
                raise InputError(f"protocol.{key}={value!r}; valid: {', '.join(valid)}")
            if valid in (int, float) and value < 0:
                raise InputError(f"protocol.{key}={value} must be ≥ 0")
        proto = dataclasses.replace(PROTOCOLS[self.name], **given)
        if proto.gen_tokens < 1 or proto.eval_max_length < 8:
            raise InputError("protocol: gen_tokens must be ≥ 1 and eval_max_length ≥ 8")
        return proto

    def validate(self) -> None:
        self.resolve()


def resolve(value: ProtocolConfig | Protocol | str | None) -> Protocol:
    """A Protocol from a config, a name or None (the default, `tofu`)."""
    if isinstance(value, Protocol):
        return value
    if value is None or isinstance(value, str):
        return ProtocolConfig(name=value or "tofu").resolve()
    return value.resolve()


def as_dict(protocol: Protocol) -> dict:
    """The resolved switches, for config.yaml, summary.json and the report."""
    return dataclasses.asdict(protocol)


def method_overrides(protocol: Protocol, method: str) -> dict:
    """This protocol's defaults for `method` ({} where SPEC §2's hold)."""
    return METHOD_DEFAULTS[protocol.method_defaults].get(method, {})


_RETAIN = re.compile(r"^retain\d+$")


def retain_training_ref(protocol: Protocol, ref: str) -> str:
    """The retain split the retain loss reads: TOFU's `retainXX` without its first
    `retain_holdout` items (`retainXX[400:]` under satimp-official, whose retain ES uses
    `retainXX[:400]`); any other split unchanged."""
    if protocol.retain_holdout and _RETAIN.match(ref):
        return f"{ref}[{protocol.retain_holdout}:]"
    return ref


# ---------------------------------------------------------------- the prompt format a model knows

# The switches that change how a QA pair is put to the model: the system message before the
# question and which answer tokens are scored (the chat template itself travels with the
# tokenizer in the model folder). A model trained under one value and evaluated under another
# is scored on a prompt it never saw (the tiny preset, trained without a system prompt: forget
# ES 1.00 without one, 0.13 with open-unlearning's; docs/usage.md).
FORMAT_SWITCHES = ("system_prompt", "answer_tokens")
FORMAT_FILE = "satimp.json"  # beside config.json in every model folder satimp trains


def prompt_format(protocol: Protocol) -> dict:
    """{switch: value} of `FORMAT_SWITCHES` under `protocol`."""
    return {k: getattr(protocol, k) for k in FORMAT_SWITCHES}


def save_format(folder: str | Path, protocol: Protocol) -> None:
    """Record in `folder`/satimp.json the protocol a model was trained under and its prompt
    format, so that `satimp eval` can tell a mismatch (`format_mismatch`)."""
    write_json(Path(folder) / FORMAT_FILE, {"protocol": protocol.name, **prompt_format(protocol)})


def read_format(model_src: str | Path) -> dict | None:
    """The record `save_format` wrote in a model folder; None where there is none (a hub id,
    a .gguf file, a folder satimp did not train). A malformed record is an InputError."""
    path = Path(model_src) / FORMAT_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except ValueError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(record, dict) or not all(k in record for k in FORMAT_SWITCHES):
        raise InputError(f"{path}: expected an object with {', '.join(FORMAT_SWITCHES)}")
    return record


def format_mismatch(record: dict, protocol: Protocol) -> str | None:
    """One line naming both protocols and the switches whose values differ between the
    training record and `protocol`; None when the prompt formats agree."""
    now = prompt_format(protocol)
    diff = [k for k in FORMAT_SWITCHES if record[k] != now[k]]
    if not diff:
        return None
    was = ", ".join(f"{k}={record[k]!r}" for k in diff)
    new = ", ".join(f"{k}={now[k]!r}" for k in diff)
    return (
        f"the model was trained under protocol {record.get('protocol', '?')!s}'s prompt format "
        f"({was}), this evaluation uses protocol {protocol.name}'s ({new})"
    )
