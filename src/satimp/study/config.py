"""What a study is: the configuration of `satimp run` / `satimp study` (RunConfig and its
parts) and the paper's named ablations.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from satimp.benchmarks import Benchmark, get_benchmark
from satimp.config import MethodConfig, ModelsConfig, TrainConfig, from_dict, opt
from satimp.data.muse import MuseConfig
from satimp.data.wmdp import WmdpConfig
from satimp.errors import InputError
from satimp.evaluation.attacks import AttackConfig
from satimp.models import gguf_source
from satimp.objectives import Objective
from satimp.protocol import Protocol, ProtocolConfig


def lr_grid(lr: float, n: int = 4) -> list[float]:
    """n learning rates lr·2^k, k = −⌈(n−1)/2⌉ … ⌊(n−1)/2⌋: a log grid in octaves that holds the
    config's lr, so the front's lr-slice is the run's table (4: lr × {1/4, 1/2, 1, 2})."""
    lo = -(n // 2)
    return [float(f"{lr * 2.0 ** (lo + i):.4g}") for i in range(n)]


@dataclass
class FrontierConfig:
    """`satimp study frontier`: which learning rates and seeds, on how many workers."""

    lrs: list = opt([], "unlearning learning rates; []: lr × {1/4, 1/2, 1, 2}")
    seeds: list = opt([0, 1, 2], "seeds (the run's `seeds`, when given, win)")
    workers: int = opt(2, "worker processes running (method, lr, seed) jobs in parallel")
    threads: int = opt(1, "torch threads per worker")
    alpha: float = opt(0.05, "significance level of the paired tests in the ranking")

    def learning_rates(self, lr: float) -> list[float]:
        """The grid's learning rates as floats (`lrs`, or `lr_grid(lr)` when empty); InputError
        unless every entry is a positive number (YAML 1.1 reads `2e-4`, no dot, as a string)."""
        try:
            lrs = [float(x) for x in self.lrs if not isinstance(x, bool)]
        except (TypeError, ValueError):
            lrs = []
        if len(lrs) != len(self.lrs) or any(not x > 0 for x in lrs):
            raise InputError(f"frontier.lrs={self.lrs!r}: positive numbers")
        return lrs or lr_grid(lr)


DEFAULT_METHODS = [
    "ga",
    "gd",
    "npo",
    "simnpo",
    "wga",
    "simsat",
    "simimp",
    "satimp",
    "topk",
    "bottomk",
    "random",
]


@dataclass
class SynthConfig:
    """The embedded synthetic benchmark (`satimp data synth`)."""

    authors: int = opt(50, "TOFU: fictitious authors")
    qa_per_author: int = opt(10, "TOFU: QA pairs per author")
    people: int = opt(40, "MUSE: fictitious people (a multiple of 5)")
    agents: int = opt(24, "WMDP: fictitious hazardous agents")
    seed: int = opt(0, "generator seed")
    real_world: bool | None = opt(
        None,
        "TOFU: real authors and world facts are real facts (satimp.data.real_world) rather than "
        "invented ones; None: real when the base model is pretrained (not a preset)",
    )
    real_world_sizes: list[int] | None = opt(
        None,
        "TOFU with real real-world sets: how many real authors and world facts to keep, a "
        "sample drawn with `seed` of the project's 166 and 160 (e.g. [100, 117], TOFU's sizes); "
        "None: all",
    )
    held_out_values: bool = opt(
        False,
        "TOFU: forget10's authors draw their facts from the other half of each word pool than "
        "the retain authors (satimp.data.synth.SPLIT_POOLS), so a retain model cannot have "
        "learnt a forget fact's words from the retain authors",
    )


@dataclass
class EvalConfig:
    """Evaluation settings (SPEC §5)."""

    batch_size: int = opt(32, "evaluation batch size")
    generation_batch_size: int | None = opt(
        None,
        "batch size of TOFU's ROUGE generation (None: batch_size). Greedy decoding drops a row "
        "at its EOS, so a larger batch wastes nothing past EOS; on a CPU a decoding step reads "
        "the weights once for all rows (SmolLM2 on 2 cores: 128 rows ~2x faster than 32)",
    )
    max_new_tokens: int | None = opt(
        None, "ROUGE generation budget (None: the protocol's gen_tokens, 200)"
    )
    es_mode: str = opt("forward", "'forward' (one pass) or 'generate' (slow reference)")
    generations: bool = opt(
        True,
        "keep each greedy answer that ROUGE scored in per_sample.json (`generation`); false "
        "leaves them out (ROUGE is computed all the same)",
    )
    precision: str = opt(
        "fp32",
        "'fp32', or 'bf16' (bf16 autocast: ~2× faster on CPUs with bf16 units and on GPUs, as "
        "TOFU evaluates; numbers move by bf16 rounding)",
    )


@dataclass
class RunConfig:
    """One study: which data, which models, which methods, how to train and evaluate."""

    name: str = opt("tofu-embedded", "run name (report title, default output folder)")
    benchmark: str = opt("tofu", "tofu, muse or wmdp")
    data: str = opt("synthetic", "'synthetic' (embedded benchmark), a directory or a hub id")
    synth: SynthConfig = opt(SynthConfig(), "embedded benchmark settings")
    forget: str = opt("forget10", "TOFU forget split (forget01, forget05, forget10)")
    muse: MuseConfig = opt(MuseConfig(), "MUSE splits and evaluation settings")
    wmdp: WmdpConfig = opt(WmdpConfig(), "WMDP questions, corpora and scoring")
    models: ModelsConfig = opt(ModelsConfig(), "base/original/retain models")
    unlearn: TrainConfig = opt(
        TrainConfig(epochs=5, lr=2e-4, batch_size=16, warmup_epochs=1),
        "unlearning recipe (SPEC §3 for 7B models; the embedded default is tuned for `small`)",
    )
    methods: list = opt(
        list(DEFAULT_METHODS), "methods: names, or mappings of MethodConfig fields plus a `label`"
    )
    eval: EvalConfig = opt(EvalConfig(), "evaluation settings")
    protocol: ProtocolConfig = opt(
        ProtocolConfig(),
        "whose conventions (SPEC §6): tofu, open-unlearning, satimp-official, or a mapping "
        "{name, switch: value}",
    )
    seeds: list = opt(
        [],
        "run every method once per seed (unlearning seed = s) and report mean ± 95 % CI; "
        "[]: one run with unlearn.seed",
    )
    frontier: FrontierConfig = opt(
        FrontierConfig(), "`satimp study frontier`: learning rates, seeds, workers"
    )
    seed_models: bool = opt(
        True,
        "with seeds: each seed also builds its own base/original/retain models (recipe seed = "
        "s), so the intervals include model-building variance",
    )
    workers: int = opt(
        1,
        "processes running the methods side by side, each with torch's thread count ÷ workers "
        "threads (1: one after another in this process)",
    )
    cache_dir: str = opt(".cache/satimp", "where built data and models are cached")
    save_models: bool = opt(False, "keep each unlearned model's weights in the run folder")
    attacks: AttackConfig = opt(
        AttackConfig(),
        "TOFU: relearning, quantization and prompt attacks on every unlearned model, the retain "
        "model as control (attacks.enabled=true; docs/robustness.md)",
    )
    trust_remote_code: bool = opt(False, "allow hub models' own code (off by default)")

    def for_seed(self, seed: int | None) -> RunConfig:
        """The single-seed config of one seed of a multi-seed run (itself for None)."""
        if seed is None:
            return self
        models = self.models
        if self.seed_models:
            models = dataclasses.replace(
                models,
                **{
                    k: dataclasses.replace(getattr(models, k), seed=seed)
                    for k in ("base_train", "original_train", "retain_train")
                },
            )
        unlearn = dataclasses.replace(self.unlearn, seed=seed)
        return dataclasses.replace(self, unlearn=unlearn, models=models, seeds=[])

    def resolved_protocol(self) -> Protocol:
        """The protocol's switches, with `eval.max_new_tokens` as its generation budget when
        set."""
        proto = self.protocol.resolve()
        if self.eval.max_new_tokens is not None:
            proto = dataclasses.replace(proto, gen_tokens=self.eval.max_new_tokens)
        return proto

    def validate(self) -> Benchmark:
        """Check every field before any work; returns the run's benchmark, resolved once here
        and passed down (the config itself is left as it is)."""
        bench = get_benchmark(self)
        if self.attacks.enabled:
            if bench.name != "tofu":
                raise InputError(f"attacks run on TOFU; benchmark {bench.name!r} not yet")
            try:
                self.attacks.validate()
            except ValueError as e:
                raise InputError(f"attacks: {e}") from None
        self.unlearn.validate("unlearn")
        for name in ("base_train", "original_train", "retain_train"):
            getattr(self.models, name).validate(f"models.{name}")
        for name in ("batch_size", "max_new_tokens", "generation_batch_size"):
            value = getattr(self.eval, name)
            if value is not None and value < 1:
                raise InputError(f"eval.{name}={value} must be ≥ 1")
        for _, method in self.variants():
            Objective(method, protocol=self.resolved_protocol())  # before any work
        for name in ("base", "original", "retain"):  # a named model's package, a .gguf file
            source = getattr(self.models, name)
            if source and source.lower() != "none":
                gguf_source(source)
        if self.eval.precision not in ("fp32", "bf16"):
            raise InputError(f"eval.precision={self.eval.precision!r}; valid: fp32, bf16")
        if self.eval.es_mode not in ("forward", "generate"):
            raise InputError(f"eval.es_mode={self.eval.es_mode!r}; valid: forward, generate")
        for name, seeds in (("seeds", self.seeds), ("frontier.seeds", self.frontier.seeds)):
            bad = [x for x in seeds if isinstance(x, bool) or not isinstance(x, int) or x < 0]
            if bad or len(set(seeds)) != len(seeds):
                raise InputError(f"{name}={seeds!r}: distinct integers ≥ 0")
        if self.workers < 1:
            raise InputError(f"workers={self.workers} must be ≥ 1")
        f = self.frontier
        if f.workers < 1 or f.threads < 1 or not 0 < f.alpha < 1 or not f.seeds:
            raise InputError("frontier: workers, threads ≥ 1, 0 < alpha < 1, seeds non-empty")
        f.learning_rates(self.unlearn.lr)
        return bench

    def variants(self) -> list[tuple[str, MethodConfig]]:
        """(label, MethodConfig) per entry of `methods`; labels are unique."""
        out = []
        for i, item in enumerate(self.methods):
            if isinstance(item, str):
                label, method = item, MethodConfig(name=item)
            elif isinstance(item, dict):
                item = dict(item)
                label = str(item.pop("label", item.get("name", "satimp")))
                method = from_dict(MethodConfig, item, prefix=f"methods[{i}].")
            else:
                raise InputError(f"methods[{i}]: expected a name or a mapping, got {item!r}")
            out.append((label, method))
        labels = [label for label, _ in out]
        dup = next((x for x in labels if labels.count(x) > 1), None)
        if dup:
            raise InputError(f"methods: label {dup!r} appears twice; give each a unique `label`")
        if not out:
            raise InputError("methods: the list is empty")
        return out


# ---------------------------------------------------------------- the paper's ablations


def _v(label: str, name: str, **kw) -> dict:
    return {"label": label, "name": name, **kw}


STUDIES: dict[str, tuple[str, list]] = {
    "criteria": (
        "Observation (i): saturation vs importance vs both",
        ["ga", "simsat", "simimp", "satimp"],
    ),
    "granularity": (
        "Observation (iii): weight granularity",
        [
            _v(f"{m}-{g}", m, granularity=g)
            for m in ("simsat", "satimp")
            for g in ("token", "group", "instance", "batch")
        ],
    ),
    "smoothness": (
        "Observation (iii): smoothness (β and τ)",
        [
            *[_v(f"satimp-b1={b}", "satimp", params={"beta1": b}) for b in (1, 3, 5, 8)],
            *[_v(f"satimp-tau={t}", "satimp", tau=t) for t in (0.3, 1.0, 3.0)],
        ],
    ),
    "hardsampling": (
        "Hard sampling (Algorithm 1) at several fractions",
        [
            _v(f"{m}-{f}", m, params={"frac": f})
            for m in ("topk", "bottomk", "random")
            for f in (0.1, 0.3, 0.5)
        ],
    ),
}


def study_config(name: str, base: RunConfig) -> RunConfig:
    if name == "frontier":  # the configured methods, over learning rates × seeds
        return dataclasses.replace(base, name=f"{base.name}-frontier")
    if name not in STUDIES:
        valid = ", ".join([*STUDIES, "frontier"])
        raise InputError(f"unknown study {name!r}; valid studies: {valid}")
    title, methods = STUDIES[name]
    return dataclasses.replace(base, name=f"{base.name}-{name}", methods=list(methods))
