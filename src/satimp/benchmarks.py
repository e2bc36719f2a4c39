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
from typing import ClassVar

from satimp import metrics as M
from satimp.config import TrainConfig
from satimp.data.muse import MuseConfig, load_muse
from satimp.data.records import has_split, load_texts
from satimp.data.tofu import load_split, retain_split_for
from satimp.data.wmdp import WmdpConfig, load_mcq
from satimp.errors import InputError
from satimp.evaluation.mia import holdout_split_for
from satimp.evaluation.muse import evaluate_muse
from satimp.evaluation.open_unlearning import retain_stats_from_logs
from satimp.evaluation.probes import LastEpochEvaluation, Probe
from satimp.evaluation.tofu import (
    SET_SPLITS,
    evaluate_tofu,
    retain_es_split,
    tofu_es_probe,
    tofu_worst_items,
)
from satimp.evaluation.wmdp import evaluate_wmdp
from satimp.evaluation.worst import WorstItems
from satimp.protocol import Protocol, retain_training_ref
from satimp.protocol import resolve as resolve_protocol
from satimp.runs import write_json


@dataclass
class Benchmark:
    """Base: subclasses fill in the splits and the evaluation."""

    name: str = "tofu"
    columns: tuple[str, ...] = ()
    base_splits: list = field(default_factory=list)  # a preset base's pre-training splits
    min_chars: int = 1  # corpus texts shorter than this are skipped
    protocol: Protocol = field(default_factory=lambda: resolve_protocol("tofu"))

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

    def worst_items(self, per_sample: dict, data, n: int = 10) -> list[WorstItems]:
        """The items to read first (worst_items.md): [] where the benchmark has none."""
        return []

    def epoch_eval(
        self, data, *, max_length: int, batch_size: int, stats: dict | None, out_dir=None
    ):
        """This benchmark's per-epoch probe (see `epoch_probe`); None: unlearning's
        `data_probe`, forget/retain ES of the unlearning data.
        Where the reported epoch is selected (`select`), each epoch's per-sample results go
        to `out_dir/epochs/N/per_sample.json`, so the report's per-sample file describes the
        selected model (`epoch_per_sample`)."""
        return None

    def select(self, epochs: list[dict]) -> dict | None:
        """The epoch row whose model is reported (None: the final model)."""
        return None

    # The keys of the per-epoch probe when the full evaluation computes them the same way
    # (so the last epoch can take them from it instead of probing twice); None: it does not.
    probe_keys: ClassVar[tuple[str, ...] | None] = None
    # Whether the evaluation puts QA pairs in the protocol's prompt format (system prompt,
    # answer tokens), so that a model trained under another format is scored on a prompt it
    # never saw (`experiment.check_prompt_format`); plain-text corpora are not.
    prompted: ClassVar[bool] = False

    @staticmethod
    def epoch_per_sample(out_dir, epoch: int) -> Path:
        return Path(out_dir) / "epochs" / str(epoch) / "per_sample.json"

    def validate(self) -> None:
        pass


PRIVLEAK_AUC = "mia_min_k_auc"  # the attack TOFU's privleak reads (open-unlearning's choice)
NO_LEAK_AUC = 0.5  # open-unlearning's ref_value: the AUC of an attack that cannot tell


@dataclass
class Tofu(Benchmark):
    forget: str = "forget10"

    probe_keys = ("forget_es", "forget_em", "retain_es", "retain_em")  # forward ES only
    prompted = True

    def __post_init__(self):
        self.columns = ("forget_es", "forget_em", "retain_es", "forget_quality", "model_utility")
        self.base_splits = ["world_facts", "real_authors"]

    @property
    def retain_split(self) -> str:
        return retain_split_for(self.forget)

    def train_splits(self):
        return ["full"], [self.retain_split]

    def unlearn_splits(self):
        """(forget, retain): the retain loss reads retainXX without the protocol's hold-out."""
        return self.forget, retain_training_ref(self.protocol, self.retain_split)

    def evaluate(self, model, tokenizer, data, *, batch_size: int, **kw):
        return evaluate_tofu(
            model, tokenizer, data, self.forget, protocol=self.protocol, batch_size=batch_size, **kw
        )

    def epoch_eval(self, data, *, max_length, batch_size, stats, out_dir=None):
        """Forget and retain ES/EM, on the items and under the conventions of the final
        evaluation (`tofu_es_probe`)."""
        return tofu_es_probe(data, self.forget, protocol=self.protocol, batch_size=batch_size)

    def check_data(self, data) -> None:
        head = retain_es_split(self.protocol, self.forget)  # retainXX[:400] under retain_head
        holdout = holdout_split_for(self.forget)  # membership inference's non-members
        for split in (
            f"{self.forget}_perturbed",
            *SET_SPLITS.values(),
            *([head] if head else []),
            *([holdout] if has_split(data, holdout) else []),
        ):
            load_split(data, split)

    def retain_stats(self, summary, per_sample):
        """The retain model's forget truth ratios (forget quality) and, with a holdout split,
        its Min-K% AUC (privleak)."""
        split = f"{self.forget}_perturbed"
        stats = {"split": split, "truth_ratio": per_sample[split]["truth_ratio"]}
        if PRIVLEAK_AUC in summary:
            stats[PRIVLEAK_AUC] = summary[PRIVLEAK_AUC]
        return stats

    def check_stats(self, stats: dict, where: str) -> None:
        split = f"{self.forget}_perturbed"
        if stats.get("split") not in (None, split):
            raise InputError(f"{where}: stats are for {stats['split']!r}, not {split!r}")
        values = stats.get("truth_ratio")
        if not (
            isinstance(values, list) and values and all(isinstance(v, (int, float)) for v in values)
        ):
            raise InputError(f"{where}: 'truth_ratio' must be a non-empty list of numbers")
        auc = stats.get(PRIVLEAK_AUC)
        if auc is not None and not (
            isinstance(auc, (int, float)) and not isinstance(auc, bool) and 0 <= auc <= 1
        ):
            raise InputError(f"{where}: {PRIVLEAK_AUC!r} must be a number in [0, 1]")

    def worst_items(self, per_sample, data, n=10):
        """The forget items still reproduced and the retain items lost (`tofu_worst_items`)."""
        return tofu_worst_items(per_sample, data, self.forget, protocol=self.protocol, n=n)

    def apply_stats(self, summary, per_sample, stats):
        """forget_quality (None without the retain model's stats) and, after membership
        inference, privleak: open-unlearning's relative Min-K% AUC (`metrics.priv_leak_mia`)
        against the retain model's AUC, or against 0.5 (an attack that cannot tell, what
        open-unlearning falls back to) without it; `privleak_ref_auc` says which."""
        if stats:
            summary["forget_quality"] = M.forget_quality(
                per_sample[f"{self.forget}_perturbed"]["truth_ratio"], stats["truth_ratio"]
            )
        if PRIVLEAK_AUC in summary:
            ref = (stats or {}).get(PRIVLEAK_AUC)
            ref = NO_LEAK_AUC if ref is None else ref
            summary["privleak"] = M.priv_leak_mia(summary[PRIVLEAK_AUC], ref)
            summary["privleak_ref_auc"] = ref
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
        return evaluate_muse(model, tokenizer, data, self.cfg, batch_size=batch_size)

    def check_data(self, data) -> None:
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

    def epoch_eval(self, data, *, max_length, batch_size, stats, out_dir=None):
        """Every epoch: the full MUSE evaluation when the reported epoch is selected by it
        (its per-sample results saved, see `Benchmark.epoch_eval`), else forget ES (VerbMem
        ground truths) and retain ES only."""
        full = self.cfg.select != "last"

        def muse(model, tokenizer, epoch) -> dict:
            summary, per_sample = evaluate_muse(
                model, tokenizer, data, self.cfg, batch_size=batch_size, full=full
            )
            if full and out_dir is not None:
                write_json(self.epoch_per_sample(out_dir, epoch), per_sample)
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
        return evaluate_wmdp(model, tokenizer, data, self.cfg, batch_size=batch_size)

    def check_data(self, data) -> None:
        for ref in (*self.cfg.sets, *self.cfg.utility):
            load_mcq(data, ref)
        for ref in (*self.cfg.forget, *self.cfg.retain):
            load_texts(data, ref, min_chars=self.cfg.min_chars)

    def validate(self) -> None:
        self.cfg.validate()


BENCHMARKS: dict[str, Callable[..., Benchmark]] = {
    "tofu": lambda cfg, p: Tofu(forget=cfg.forget, protocol=p),
    "muse": lambda cfg, p: Muse(cfg=cfg.muse, protocol=p),
    "wmdp": lambda cfg, p: Wmdp(cfg=cfg.wmdp, protocol=p),
}


def get_benchmark(cfg) -> Benchmark:
    """The benchmark of a RunConfig-like object (fields benchmark, forget, muse, wmdp and
    `resolved_protocol()`)."""
    if cfg.benchmark not in BENCHMARKS:
        raise InputError(
            f"unknown benchmark {cfg.benchmark!r}; valid benchmarks: {', '.join(BENCHMARKS)}"
        )
    bench = BENCHMARKS[cfg.benchmark](cfg, cfg.resolved_protocol())
    bench.validate()
    return bench


def epoch_probe(
    bench: Benchmark,
    data,
    *,
    train: TrainConfig,
    stats: dict | None,
    out_dir,
    batch_size: int,
    es_mode: str,
    evaluate_kw: dict,
) -> Probe | None:
    """The per-epoch probe of an unlearning run in `satimp run` / `study`: the one place that
    decides it. The benchmark's own probe (`Benchmark.epoch_eval`; None: unlearning's
    `data_probe`), and where the benchmark reports the final model and its full evaluation
    computes the probe's values on the same items (`Benchmark.probe_keys`, forward ES, a run
    of whole epochs), a `LastEpochEvaluation` whose last epoch runs that full evaluation
    (`bench.evaluate(model, tokenizer, data, **evaluate_kw)`) and keeps it."""
    probe = bench.epoch_eval(
        data, max_length=train.max_length, batch_size=batch_size, stats=stats, out_dir=out_dir
    )
    if probe is None or not bench.probe_keys or train.max_steps or es_mode != "forward":
        return probe
    return LastEpochEvaluation(
        probe,
        lambda model, tokenizer: bench.evaluate(model, tokenizer, data, **evaluate_kw),
        last_epoch=train.epochs,
        keys=bench.probe_keys,
    )


# ---------------------------------------------------------------- retain statistics


# Protocol switches that change the retain model's truth ratios: stats computed under other
# values cannot give a forget quality (the KS test would compare two conventions).
STATS_SWITCHES = (
    "system_prompt",
    "eos_in_prob",
    "answer_tokens",
    "tr_mean",
    "tr_eps",
    "ds_size",
    "eval_max_length",
)


def save_retain_stats(path: str | Path, bench: Benchmark, stats: dict, **extra) -> None:
    """retain_stats.json: the retain model's numbers later evaluations are relative to, and
    the protocol switches they were computed under."""
    switches = {k: getattr(bench.protocol, k) for k in STATS_SWITCHES}
    write_json(path, {"benchmark": bench.name, "protocol": switches, **extra, **stats})


def load_retain_stats(path: str | Path, bench: Benchmark) -> dict:
    """Read retain_stats.json written by `save_retain_stats` for the same benchmark, or a TOFU
    retain model's open-unlearning `TOFU_EVAL.json` (its `retain_logs_path`; no protocol
    switches recorded, so none checked)."""
    path = Path(path)
    try:
        stats = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a retain-stats file ({e})") from None
    if not isinstance(stats, dict):
        raise InputError(f"{path}: not a retain-stats file (expected a JSON object)")
    stats = retain_stats_from_logs(stats) or stats  # open-unlearning's TOFU_EVAL.json
    made_for = stats.get("benchmark", "tofu")  # files from before MUSE/WMDP carry no name
    if made_for != bench.name:
        raise InputError(f"{path}: stats are for benchmark {made_for!r}, not {bench.name!r}")
    for key, value in (stats.get("protocol") or {}).items():  # older files carry none
        if key in STATS_SWITCHES and getattr(bench.protocol, key) != value:
            raise InputError(
                f"{path}: computed with protocol.{key}={value!r}, this evaluation uses "
                f"{getattr(bench.protocol, key)!r}; recompute them with --retain-model"
            )
    bench.check_stats(stats, str(path))
    return stats
