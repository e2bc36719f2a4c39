"""The three benchmarks behind one interface, so `run`, `study` and `eval` treat them alike.

A `Benchmark` says which splits train the original and retain models, which splits are
unlearned, how a model is evaluated, which numbers of the retain model later evaluations are
relative to (TOFU's truth ratios for forget quality, MUSE's Min-K% AUC for PrivLeak), what to
log after each unlearning epoch, and which columns its report shows.

- `tofu`: QA pairs; forget ES/EM, retain ES, forget quality, model utility (SPEC §5).
- `muse`: raw text; VerbMem, KnowMem forget/retain, PrivLeak, forget/retain ES.
- `wmdp`: raw text corpora; multiple-choice accuracy on the hazardous sets and on MMLU-style
  general knowledge, forget/retain ES.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from satimp import metrics as M
from satimp.data.muse import MuseConfig
from satimp.data.wmdp import WmdpConfig
from satimp.errors import InputError


@dataclass
class Benchmark:
    """Base: subclasses fill in the splits and the evaluation."""

    name: str = "tofu"
    columns: tuple[str, ...] = ()
    base_splits: list = field(default_factory=list)  # a preset base's pre-training splits
    min_chars: int = 1  # corpus texts shorter than this are skipped

    def train_splits(self) -> tuple[list[str], list[str]]:
        """(original model's splits, retain model's splits)."""
        raise NotImplementedError

    def unlearn_splits(self) -> tuple[list[str] | str, list[str] | str]:
        """(forget, retain) splits of unlearning."""
        raise NotImplementedError

    def evaluate(self, model, tokenizer, data, *, batch_size: int, **kw) -> tuple[dict, dict]:
        raise NotImplementedError

    def check_data(self, data) -> None:
        """Read and check every record of every split `evaluate` reads (InputError naming the
        file, record and field), so that a command can stop before it writes anything."""
        raise NotImplementedError

    def retain_stats(self, summary: dict, per_sample: dict) -> dict:
        """What later evaluations need from the retain model ({} when nothing)."""
        return {}

    def check_stats(self, stats: dict, where: str) -> None:
        """Raise InputError when `stats` (read from `where`) cannot serve this benchmark."""

    def apply_stats(self, summary: dict, per_sample: dict, stats: dict | None) -> dict:
        """Fill the metrics relative to the retain model (None without its stats)."""
        return summary

    def epoch_eval(self, data, *, max_length: int, batch_size: int, stats: dict | None):
        """What unlearning logs after each epoch; None: forget/retain ES of the unlearning data."""
        return None

    def select(self, epochs: list[dict]) -> dict | None:
        """The epoch row whose model is reported (None: the final model)."""
        return None

    def validate(self) -> None:
        pass


@dataclass
class Tofu(Benchmark):
    forget: str = "forget10"

    def __post_init__(self):
        self.columns = ("forget_es", "forget_em", "retain_es", "forget_quality", "model_utility")
        self.base_splits = ["world_facts", "real_authors"]

    @property
    def retain_split(self) -> str:
        from satimp.experiment import retain_split_for

        return retain_split_for(self.forget)

    def train_splits(self):
        return ["full"], [self.retain_split]

    def unlearn_splits(self):
        return self.forget, self.retain_split

    def evaluate(self, model, tokenizer, data, *, batch_size: int, **kw):
        from satimp.evaluate import evaluate_tofu

        return evaluate_tofu(model, tokenizer, data, self.forget, batch_size=batch_size, **kw)

    def check_data(self, data) -> None:
        from satimp.data.tofu import load_split
        from satimp.evaluate import SET_SPLITS

        for split in (f"{self.forget}_perturbed", *SET_SPLITS.values()):
            load_split(data, split)

    def retain_stats(self, summary, per_sample):
        split = f"{self.forget}_perturbed"
        return {"split": split, "truth_ratio": per_sample[split]["truth_ratio"]}

    def check_stats(self, stats: dict, where: str) -> None:
        split = f"{self.forget}_perturbed"
        if stats.get("split") not in (None, split):
            raise InputError(f"{where}: stats are for {stats['split']!r}, not {split!r}")
        values = stats.get("truth_ratio")
        if not (
            isinstance(values, list) and values and all(isinstance(v, (int, float)) for v in values)
        ):
            raise InputError(f"{where}: 'truth_ratio' must be a non-empty list of numbers")

    def apply_stats(self, summary, per_sample, stats):
        if stats:
            summary["forget_quality"] = M.forget_quality(
                per_sample[f"{self.forget}_perturbed"]["truth_ratio"], stats["truth_ratio"]
            )
        return summary

    def validate(self) -> None:
        self.retain_split  # noqa: B018  (raises InputError for a malformed name)


@dataclass
class Muse(Benchmark):
    cfg: MuseConfig = field(default_factory=MuseConfig)

    def __post_init__(self):
        self.name = "muse"
        self.columns = (
            "forget_es",
            "retain_es",
            "verbmem_forget",
            "knowmem_forget",
            "knowmem_retain",
            "privleak",
        )
        self.base_splits = ["raw/base"]

    def train_splits(self):
        return list(self.cfg.original_train), list(self.cfg.retain_train)

    def unlearn_splits(self):
        return self.cfg.forget, self.cfg.retain

    def evaluate(self, model, tokenizer, data, *, batch_size: int, **kw):
        from satimp.evaluate import evaluate_muse

        return evaluate_muse(model, tokenizer, data, self.cfg, batch_size=batch_size)

    def check_data(self, data) -> None:
        from satimp.data.muse import load_muse
        from satimp.data.records import load_texts

        c = self.cfg
        for ref in (c.verbmem, c.knowmem_forget, c.knowmem_retain, c.icl_forget, c.icl_retain):
            load_muse(data, ref)
        for ref in (c.privleak_forget, c.privleak_holdout, c.privleak_retain):
            load_texts(data, ref)

    def retain_stats(self, summary, per_sample):
        return {"privleak_auc": summary["privleak_auc"]}

    def check_stats(self, stats: dict, where: str) -> None:
        auc = stats.get("privleak_auc")
        if not (isinstance(auc, (int, float)) and not isinstance(auc, bool) and auc > 0):
            raise InputError(f"{where}: 'privleak_auc' must be a positive number")

    def apply_stats(self, summary, per_sample, stats):
        if stats:
            summary["privleak"] = M.priv_leak(summary["privleak_auc"], stats["privleak_auc"])
        return summary

    def epoch_eval(self, data, *, max_length, batch_size, stats):
        """Every epoch: the full MUSE evaluation when the reported epoch is selected by it,
        else forget ES (VerbMem ground truths) and retain ES only."""
        from satimp.evaluate import evaluate_muse

        full = self.cfg.select != "last"

        def muse(model, tokenizer, epoch) -> dict:
            summary, _ = evaluate_muse(
                model, tokenizer, data, self.cfg, batch_size=batch_size, full=full
            )
            return self.apply_stats(summary, {}, stats) if full else summary

        return muse

    def select(self, epochs):
        if self.cfg.select == "privleak" and epochs:
            # ties (PrivLeak saturates while the attack's AUC stays 1) go to the latest epoch,
            # the one that has unlearned the most
            scored = [e for e in epochs if e.get("privleak") is not None]
            return min(scored, key=lambda e: (abs(e["privleak"]), -e["epoch"])) if scored else None
        return None

    def validate(self) -> None:
        self.cfg.validate()


@dataclass
class Wmdp(Benchmark):
    cfg: WmdpConfig = field(default_factory=WmdpConfig)

    def __post_init__(self):
        self.name = "wmdp"
        self.columns = ("forget_es", "retain_es", "wmdp_acc", "mmlu_acc")
        self.base_splits = ["base/train"]
        self.min_chars = self.cfg.min_chars

    def train_splits(self):
        return list(self.cfg.original_train), list(self.cfg.retain_train)

    def unlearn_splits(self):
        return list(self.cfg.forget), list(self.cfg.retain)

    def evaluate(self, model, tokenizer, data, *, batch_size: int, **kw):
        from satimp.evaluate import evaluate_wmdp

        return evaluate_wmdp(model, tokenizer, data, self.cfg, batch_size=batch_size)

    def check_data(self, data) -> None:
        from satimp.data.records import load_texts
        from satimp.data.wmdp import load_mcq

        for ref in (*self.cfg.sets, *self.cfg.utility):
            load_mcq(data, ref)
        for ref in (*self.cfg.forget, *self.cfg.retain):
            load_texts(data, ref, min_chars=self.cfg.min_chars)

    def validate(self) -> None:
        self.cfg.validate()


BENCHMARKS: dict[str, Callable[..., Benchmark]] = {
    "tofu": lambda cfg: Tofu(forget=cfg.forget),
    "muse": lambda cfg: Muse(cfg=cfg.muse),
    "wmdp": lambda cfg: Wmdp(cfg=cfg.wmdp),
}


def get_benchmark(cfg) -> Benchmark:
    """The benchmark of a RunConfig-like object (fields benchmark, forget, muse, wmdp)."""
    if cfg.benchmark not in BENCHMARKS:
        raise InputError(
            f"unknown benchmark {cfg.benchmark!r}; valid benchmarks: {', '.join(BENCHMARKS)}"
        )
    bench = BENCHMARKS[cfg.benchmark](cfg)
    bench.validate()
    return bench


# ---------------------------------------------------------------- retain statistics


def save_retain_stats(path: str | Path, bench: Benchmark, stats: dict, **extra) -> None:
    """retain_stats.json: the retain model's numbers later evaluations are relative to."""
    from satimp.experiment import write_json

    write_json(path, {"benchmark": bench.name, **extra, **stats})


def load_retain_stats(path: str | Path, bench: Benchmark) -> dict:
    """Read retain_stats.json written by `save_retain_stats` for the same benchmark."""
    path = Path(path)
    try:
        stats = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a retain-stats file ({e})") from None
    if not isinstance(stats, dict):
        raise InputError(f"{path}: not a retain-stats file (expected a JSON object)")
    made_for = stats.get("benchmark", "tofu")  # files from before MUSE/WMDP carry no name
    if made_for != bench.name:
        raise InputError(f"{path}: stats are for benchmark {made_for!r}, not {bench.name!r}")
    bench.check_stats(stats, str(path))
    return stats
