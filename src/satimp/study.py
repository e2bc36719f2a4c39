"""The main job: data → base/original/retain models (cached) → unlearn with each method →
evaluate → report. `satimp run` runs the configured methods; `satimp study NAME` runs one of
the paper's ablations (criteria, granularity, smoothness, hardsampling) the same way.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from satimp.config import MethodConfig, TrainConfig, from_dict, opt, to_dict
from satimp.errors import InputError
from satimp.experiment import (
    ModelsConfig,
    build_models,
    data_fingerprint,
    encode_records,
    retain_split_for,
    unlearn,
    write_json,
)
from satimp.objectives import Objective
from satimp.train import Diverged

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

    authors: int = opt(50, "fictitious authors")
    qa_per_author: int = opt(10, "QA pairs per author")
    seed: int = opt(0, "generator seed")


@dataclass
class EvalConfig:
    """Evaluation settings (SPEC §5)."""

    batch_size: int = opt(32, "evaluation batch size")
    max_new_tokens: int = opt(200, "ROUGE generation length limit")
    es_mode: str = opt("forward", "'forward' (one pass) or 'generate' (slow reference)")


@dataclass
class RunConfig:
    """One study: which data, which models, which methods, how to train and evaluate."""

    name: str = opt("tofu-embedded", "run name (report title, default output folder)")
    data: str = opt("synthetic", "'synthetic' (embedded benchmark), a directory or a hub id")
    synth: SynthConfig = opt(SynthConfig(), "embedded benchmark settings")
    forget: str = opt("forget10", "forget split (forget01, forget05, forget10)")
    models: ModelsConfig = opt(ModelsConfig(), "base/original/retain models")
    unlearn: TrainConfig = opt(
        TrainConfig(epochs=5, lr=2e-4, batch_size=16, warmup_epochs=1),
        "unlearning recipe (SPEC §3 for 7B models; the embedded default is tuned for `small`)",
    )
    methods: list = opt(
        list(DEFAULT_METHODS), "methods: names, or mappings of MethodConfig fields plus a `label`"
    )
    eval: EvalConfig = opt(EvalConfig(), "evaluation settings")
    cache_dir: str = opt(".cache/satimp", "where built data and models are cached")
    save_models: bool = opt(False, "keep each unlearned model's weights in the run folder")
    trust_remote_code: bool = opt(False, "allow hub models' own code (off by default)")

    def validate(self) -> None:
        self.unlearn.validate()
        for _, method in self.variants():
            Objective(method)  # names and hyperparameters, before any work
        if self.eval.es_mode not in ("forward", "generate"):
            raise InputError(f"eval.es_mode={self.eval.es_mode!r}; valid: forward, generate")

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
    if name not in STUDIES:
        raise InputError(f"unknown study {name!r}; valid studies: {', '.join(STUDIES)}")
    title, methods = STUDIES[name]
    return dataclasses.replace(base, name=f"{base.name}-{name}", methods=list(methods))


# ---------------------------------------------------------------- running


def prepare_data(cfg: RunConfig, log=print) -> Path | str:
    """The benchmark location. The embedded synthetic data is regenerated every run (0.3 s,
    byte-identical for the same settings and generator), so a changed generator can never be
    hidden behind stale files; the model cache keys on the content."""
    if cfg.data != "synthetic":
        return cfg.data
    from satimp.data.synth import synth_tofu

    s = cfg.synth
    path = Path(cfg.cache_dir) / f"data-synth-{s.authors}x{s.qa_per_author}-seed{s.seed}"
    synth_tofu(path, authors=s.authors, qa_per_author=s.qa_per_author, seed=s.seed)
    log(f"  synthetic benchmark: {path}")
    return path


def weight_curves(model_dir: Path, data, forget: str, *, max_tokens: int = 3000) -> dict:
    """Token likelihoods of the forget set under `model_dir` and the weights each criterion
    gives them (observation ii): {criterion: {"p": [...], "w": [...]}}."""
    from satimp.data.encoding import iter_batches
    from satimp.data.tofu import load_split
    from satimp.logprobs import forward_logps
    from satimp.models import load_model
    from satimp.weighting import token_weights

    model, tok = load_model(model_dir)
    model.eval()
    examples = encode_records(tok, load_split(data, forget), max_length=512)
    out = {c: {"p": [], "w": []} for c in ("simsat", "simimp", "satimp")}
    with torch.no_grad():
        for _, batch in iter_batches(examples, 32, tok.pad_token_id):
            r = forward_logps(model, batch)
            for c in out:
                w = token_weights(c, r.logps, r.mask)
                out[c]["p"] += r.logps[r.mask].exp().tolist()
                out[c]["w"] += w[r.mask].tolist()
    return {c: {k: v[:max_tokens] for k, v in d.items()} for c, d in out.items()}


def _row(method: str, status: str, summary: dict | None, seconds: float) -> dict:
    summary = summary or {}
    keep = ("forget_es", "forget_em", "retain_es", "forget_quality", "model_utility")
    row = {
        "method": method,
        "status": status,
        **{k: summary.get(k) for k in keep},
        "seconds": round(seconds, 2),
    }
    row.update({k: v for k, v in summary.items() if k not in row})
    return row


def reference_rows(cfg: RunConfig, data, paths: dict, out: Path, log=print) -> tuple[list, list]:
    """Evaluate the original and retain models: (rows, the retain model's forget truth ratios).

    The retain model's truth ratios are saved as `retain_stats.json` (for `eval --retain-stats`).
    """
    from satimp.evaluate import evaluate_tofu
    from satimp.metrics import forget_quality
    from satimp.models import load_model

    rows, retain_tr = [], None
    split = f"{cfg.forget}_perturbed"
    for name in ("retain", "original"):
        t0 = time.time()
        model, tok = load_model(paths[name])
        summary, per_sample = evaluate_tofu(
            model, tok, data, cfg.forget, retain_truth_ratios=retain_tr, **_eval_kw(cfg)
        )
        if name == "retain":
            retain_tr = per_sample[split]["truth_ratio"]
            summary["forget_quality"] = forget_quality(retain_tr, retain_tr)  # = 1 by definition
            write_json(out / "retain_stats.json", {"split": split, "truth_ratio": retain_tr})
        rows.append(_row(name, "reference", summary, time.time() - t0))
        log(
            f"  {name:<9} forget ES {summary['forget_es']:.3f}  retain ES {summary['retain_es']:.3f}"
        )
    return rows[::-1], retain_tr  # original first


def method_row(
    cfg: RunConfig,
    label: str,
    method: MethodConfig,
    data,
    model_dir: Path,
    out: Path,
    retain_tr,
    *,
    resume: bool = False,
) -> tuple[dict, list[dict]]:
    """Unlearn with one method and evaluate it: (result row, per-epoch ES curve). A failure
    becomes a `failed: …` row with the traceback in `methods/LABEL/error.txt`.

    A finished method leaves `methods/LABEL/row.json` (and no checkpoints); with `resume`
    that row is reused, and an unfinished method continues from its latest checkpoint.
    """
    from satimp.evaluate import evaluate_tofu
    from satimp.models import load_model

    t0 = time.time()
    run_dir = out / "methods" / label
    done = run_dir / "row.json"
    if resume and done.is_file():
        saved = json.loads(done.read_text())
        return saved["row"], saved["curve"]
    try:
        result = unlearn(
            model_dir,
            data,
            cfg.forget,
            retain_split_for(cfg.forget),
            method,
            cfg.unlearn,
            run_dir,
            trust_remote_code=cfg.trust_remote_code,
            eval_batch_size=cfg.eval.batch_size,
            resume=resume,
        )
        model, tok = load_model(run_dir)
        summary, per_sample = evaluate_tofu(
            model, tok, data, cfg.forget, retain_truth_ratios=retain_tr, **_eval_kw(cfg)
        )
        write_json(run_dir / "summary.json", summary)
        write_json(run_dir / "per_sample.json", per_sample)
        if not cfg.save_models:
            for f in run_dir.glob("*.safetensors"):
                f.unlink()
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # row.json now stands for it
        row = _row(label, "ok", summary, time.time() - t0)
        write_json(done, {"row": row, "curve": result.epochs})
        return row, result.epochs
    except Exception as e:  # one method's failure must not sink the study
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "error.txt").write_text(traceback.format_exc())
        status = str(e) if isinstance(e, Diverged) else f"failed: {type(e).__name__}: {e}"
        return _row(label, status[:200], None, time.time() - t0), []


def run(
    cfg: RunConfig,
    out_dir: str | Path,
    *,
    log=print,
    title: str | None = None,
    resume: bool = False,
) -> list[dict]:
    """Run the whole study; returns the result rows (references first). A method that fails
    is reported in its row and the others still run. `resume` skips finished methods and
    continues an interrupted one from its checkpoint."""
    from satimp.report import format_table, write_report

    t_start = time.time()
    cfg.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log(f"[1/4] data ({cfg.data})")
    data = prepare_data(cfg, log)
    log("[2/4] base, original and retain models (cached)")
    paths = build_models(data, cfg.forget, cfg.models, Path(cfg.cache_dir) / "models", log=log)
    log("[3/4] reference rows: original and retain models")
    rows, retain_tr = reference_rows(cfg, data, paths, out, log)
    variants = cfg.variants()
    log(f"[4/4] unlearning {cfg.forget} with {len(variants)} methods")
    curves = {}
    for i, (label, method) in enumerate(variants, 1):
        row, curves[label] = method_row(
            cfg, label, method, data, paths["original"], out, retain_tr, resume=resume
        )
        rows.append(row)
        log(
            f"  [{i}/{len(variants)}] {label:<16} {row['status']:<8} forget ES "
            f"{_num(row['forget_es'])}  retain ES {_num(row['retain_es'])}  ({row['seconds']:.0f}s)"
        )
    weights = None
    try:
        weights = weight_curves(paths["original"], data, cfg.forget)
    except Exception as e:  # the plot is a nicety; the table is the result
        log(f"  (weight plot skipped: {e})")
    config = {
        **to_dict(cfg),
        "data_fingerprint": data_fingerprint(data),
        "models_built": {k: str(v) for k, v in paths.items()},
    }
    report = write_report(
        out,
        rows,
        config=config,
        title=title or cfg.name,
        curves=curves,
        weights=weights,
        notes=[f"total time {time.time() - t_start:.0f}s"],
    )
    print(format_table(rows))
    log(f"report: {report}  (total {time.time() - t_start:.0f}s)")
    return rows


def _eval_kw(cfg: RunConfig) -> dict:
    return dict(
        batch_size=cfg.eval.batch_size,
        max_new_tokens=cfg.eval.max_new_tokens,
        es_mode=cfg.eval.es_mode,
    )


def _num(v) -> str:
    return "  –  " if v is None else f"{v:.3f}"


def default_out(cfg: RunConfig) -> Path:
    return Path("runs") / cfg.name / time.strftime("%Y%m%d-%H%M%S")
