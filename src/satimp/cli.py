"""The `satimp` command. Thin: parses arguments, calls the pipelines, prints results.

Bad input (a file, a record, a config key or value) prints one `satimp: error: …` line and
exits with code 2 before anything is written.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import sys
import time
from pathlib import Path

from satimp.attack import attack_saved
from satimp.cli_flags import (
    ATTACK_FIELDS,
    COMMAND_DEFAULTS,
    FORMAT_PROTOCOL_HELP,
    METHOD_PARAM_FLAGS,
    MODEL_HELP,
    PROTOCOL_HELP,
    RESUME_HELP,
    TRAIN_FLAGS,
    add_attack_flags,
    add_train_flags,
)
from satimp.config import (
    MethodConfig,
    TrainConfig,
    from_dict,
    load_config,
    merge,
    parse_overrides,
    read_yaml,
)
from satimp.data.card import export_folder, write_card
from satimp.data.synth import FILE_FORMATS, synth_tofu
from satimp.data.synth_muse import synth_muse
from satimp.data.synth_wmdp import synth_wmdp
from satimp.distributed import check_launch, is_main, process_setup
from satimp.errors import InputError
from satimp.evaluation.attacks import ATTACKS, AttackConfig
from satimp.experiment import OUTPUT_FORMATS, evaluate_saved, finetune, unlearn
from satimp.hf_compat import quiet_libraries
from satimp.models import finetune_defaults
from satimp.objectives import Objective
from satimp.protocol import ProtocolConfig
from satimp.runs import check_out
from satimp.study.config import RunConfig, study_config
from satimp.study.frontier import run_frontier
from satimp.study.run import default_out, run
from satimp.train import Diverged


def _yaml_section(args, section: str) -> dict:
    """The `section:` mapping of the --config file ({} without a file or an empty section)."""

    data = read_yaml(args.config).get(section) if args.config else None
    if data is not None and not isinstance(data, dict):
        raise InputError(f"{args.config}: `{section}:` must be a mapping, got {data!r}")
    return data or {}


def _train_config(args, section: str = "train"):

    data = _yaml_section(args, section)
    overrides = parse_overrides(args.overrides)
    unknown = sorted(set(overrides) - set(args.sections))
    if unknown:  # a typo such as `trian.lr=1` must not be dropped silently
        raise InputError(
            f"unknown config key {unknown[0]!s} in the overrides; valid keys at the "
            f"top level for `satimp {args.command}`: {', '.join(args.sections)}"
        )
    data = merge(data, overrides.get(section, {}))
    names = [name for name, _ in TRAIN_FLAGS.values()]
    names += ["gradient_checkpointing", "eval_every_epoch", "deterministic"]
    flags = {name: getattr(args, f"train_{name}") for name in names}
    lora = {k: getattr(args, f"lora_{k}") for k in ("r", "alpha", "targets", "save")}
    flags["lora"] = {k: v for k, v in lora.items() if v is not None} or None
    data = merge(data, {k: v for k, v in flags.items() if v is not None})
    every = data.get("save_every")
    deprecated = isinstance(every, int) and every > 0 and "checkpoints" not in data
    if deprecated:  # the old spelling of --checkpoints N
        data["checkpoints"] = data.pop("save_every")
    data = merge(_command_defaults(args), data)
    cfg = from_dict(TrainConfig, data, prefix=f"{section}.")
    cfg.validate()
    if deprecated:
        print("satimp: warning: --save-every is deprecated; use --checkpoints N", file=sys.stderr)
    return cfg


def _command_defaults(args) -> dict:
    """The TrainConfig defaults of this command (COMMAND_DEFAULTS), and for `finetune` the
    model's: a preset's from-scratch recipe (`models.finetune_defaults`), which the --config
    file, the overrides and the flags override."""
    defaults = dict(COMMAND_DEFAULTS.get(args.command, {}))
    if args.command == "finetune":
        defaults |= finetune_defaults(args.model)
    return defaults


def _recipe_line(cfg: TrainConfig, model: str) -> str:
    """The resolved recipe `finetune` prints before it starts, and whose defaults it took."""
    warmup = f"{cfg.warmup_epochs:g} epochs"
    if cfg.warmup_steps is not None:
        warmup = f"{cfg.warmup_steps} steps"
    source = f"preset {model}'s from-scratch" if finetune_defaults(model) else "the pretrained"
    return (
        f"recipe: lr {cfg.lr:g}, {cfg.epochs} epochs, warm-up {warmup}, batch {cfg.batch_size}, "
        f"{cfg.schedule} schedule (defaults: {source} recipe; flags and config values win)"
    )


def _check_resumable(cfg, resume: bool) -> None:
    if resume and not cfg.checkpoint_epochs():
        raise InputError(
            "--resume needs checkpoints, and train.checkpoints is 'none' (the default of "
            "`satimp unlearn`): give the --checkpoints of the interrupted run"
        )


def cmd_data_synth(args) -> None:
    if args.benchmark not in ("tofu", "muse", "wmdp"):
        raise InputError(f"--benchmark {args.benchmark!r}; valid: tofu, muse, wmdp")
    out = check_out(Path(args.out), args.overwrite)
    fmt = args.file_format
    if args.benchmark == "muse":
        counts = synth_muse(out, people=args.people, seed=args.seed, file_format=fmt)
    elif args.benchmark == "wmdp":
        counts = synth_wmdp(out, agents=args.agents, seed=args.seed, file_format=fmt)
    else:
        counts = synth_tofu(
            out,
            authors=args.authors,
            qa_per_author=args.qa_per_author,
            seed=args.seed,
            real_world=args.real_world,
            real_world_sizes=tuple(args.real_world_sizes) if args.real_world_sizes else None,
            held_out_values=args.held_out_values,
            file_format=fmt,
        )
    write_card(out, counts, overwrite=True)  # check_out let only an empty folder or --overwrite
    for split, n in counts.items():
        print(f"{split:<28} {n:>6}")
    print(f"wrote {len(counts)} {args.benchmark} splits and README.md to {args.out}")


def cmd_data_export(args) -> None:
    configs = export_folder(Path(args.data), overwrite=args.overwrite)
    splits = sum(len(c["data_files"]) for c in configs)
    print(f"wrote {args.data}/README.md: {len(configs)} configs, {splits} splits")


def cmd_finetune(args) -> None:

    cfg = _train_config(args)
    protocol = _protocol(args)
    _check_resumable(cfg, args.resume)
    out = check_out(Path(args.out), args.overwrite, args.resume)
    print(_recipe_line(cfg, args.model))
    print(f"prompt format: protocol {protocol.name}, system prompt {protocol.system_prompt!r}")
    t0 = time.time()
    result = finetune(
        args.model,
        args.data,
        args.split,
        cfg,
        out,
        trust_remote_code=args.trust_remote_code,
        resume=args.resume,
        protocol=protocol,
    )
    print(
        f"fine-tuned {args.model} on {'+'.join(args.split)}: {result.steps} steps, "
        f"final loss {result.last.get('loss', float('nan')):.4f}, {time.time() - t0:.1f}s → {out}"
    )


def _method_config(args):

    data = _yaml_section(args, "method")
    data = merge(data, parse_overrides(args.overrides).get("method", {}))
    names = [f[2:].replace("-", "_") for f in METHOD_PARAM_FLAGS]
    params = {k: getattr(args, f"m_{k}") for k in names}
    flags = {
        "name": args.method,
        "gamma": args.gamma,
        "alpha": args.alpha,
        "retain": args.retain_loss,
        "granularity": args.granularity,
        "group_size": args.group_size,
        "tau": args.tau,
        "normalize": args.normalize,
        "params": {k: v for k, v in params.items() if v is not None},
    }
    data = merge(data, {k: v for k, v in flags.items() if v is not None and v != {}})
    return from_dict(MethodConfig, data, prefix="method.")


def _protocol(args):
    """The resolved protocol of `finetune` and `unlearn`: the YAML's `protocol:` (a name or a
    mapping), `protocol.switch=value` overrides, then --protocol NAME."""

    data = read_yaml(args.config).get("protocol") if args.config else None
    data = {"name": data} if isinstance(data, str) else data or {}
    data = merge(data, parse_overrides(args.overrides).get("protocol", {}))
    if args.protocol:
        data["name"] = args.protocol
    return from_dict(ProtocolConfig, data, prefix="protocol.").resolve()


def cmd_unlearn(args) -> None:

    cfg = _train_config(args)
    method = _method_config(args)
    protocol = _protocol(args)
    Objective(method, protocol=protocol)  # validates names and hyperparameters before any work
    _check_resumable(cfg, args.resume)
    out = check_out(Path(args.out), args.overwrite, args.resume)
    t0 = time.time()
    result = unlearn(
        args.model,
        args.data,
        args.forget,
        args.retain,
        method,
        cfg,
        out,
        trust_remote_code=args.trust_remote_code,
        resume=args.resume,
        protocol=protocol,
    )
    last = result.epochs[-1] if result.epochs else result.last
    shown = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k.endswith(("_es", "loss")))
    print(
        f"unlearned {'+'.join(args.forget)} with {method.name}: {result.steps} steps, {shown}, "
        f"{time.time() - t0:.1f}s → {out}"
    )


def cmd_eval(args) -> None:

    cfg, bench = _run_config(args)
    evaluate_saved(
        args.model,
        args.data,
        bench,
        args.out,
        retain_model=args.retain_model,
        retain_stats=args.retain_stats,
        lm_eval_tasks=args.lm_eval_tasks if args.lm_eval else None,
        batch_size=args.batch_size,
        generation_batch_size=cfg.eval.generation_batch_size,
        es_mode=args.es_mode,
        precision=cfg.eval.precision,
        overwrite=args.overwrite,
        trust_remote_code=args.trust_remote_code,
        generations=cfg.eval.generations,
        strict_format=args.strict_format,
        output_format=args.output_format,
    )


def cmd_attack(args) -> None:

    _, bench = _run_config(args)
    cfg = AttackConfig(
        attacks=[x.strip() for x in args.attacks.split(",") if x.strip()],
        **{name: getattr(args, name) for name in ATTACK_FIELDS},
    )
    attack_saved(
        args.model,
        args.data,
        bench,
        args.out,
        cfg,
        retain_model=args.retain_model,
        original_model=args.original_model,
        mia=args.mia,
        overwrite=args.overwrite,
        trust_remote_code=args.trust_remote_code,
    )


def _run_config(args):
    """The RunConfig of `run`, `study` and `eval` (YAML file, key=value overrides, flags),
    validated: (config, its benchmark)."""

    overrides = list(args.overrides)
    config = args.config
    if config and "=" in config and not Path(config).exists():
        config, overrides = None, [config, *overrides]  # `satimp run key=value` without a file
    if getattr(args, "report_to", None):  # run/study: the unlearning runs' tracker
        overrides.append(f"unlearn.report_to={args.report_to}")
    cfg = load_config(RunConfig, config, overrides)
    flags = {
        "benchmark": getattr(args, "benchmark", None),
        "forget": getattr(args, "forget_split", None),
    }
    cfg = dataclasses.replace(cfg, **{k: v for k, v in flags.items() if v is not None})
    if getattr(args, "protocol", None):  # switches set in the config stay set
        cfg = dataclasses.replace(
            cfg, protocol=dataclasses.replace(cfg.protocol, name=args.protocol)
        )
    if getattr(args, "seeds", None) is not None:
        if args.seeds < 1:
            raise InputError(f"--seeds {args.seeds}: at least 1")
        cfg = dataclasses.replace(cfg, seeds=list(range(args.seeds)))
    if getattr(args, "eval_precision", None) is not None:
        cfg = dataclasses.replace(
            cfg, eval=dataclasses.replace(cfg.eval, precision=args.eval_precision)
        )
    for name in ("max_new_tokens", "generation_batch_size", "generations"):  # `satimp eval`
        if getattr(args, name, None) is not None:
            cfg = dataclasses.replace(
                cfg, eval=dataclasses.replace(cfg.eval, **{name: getattr(args, name)})
            )
    if getattr(args, "study", None):
        cfg = study_config(args.study, cfg)
    return cfg, cfg.validate()


def cmd_run(args) -> None:

    cfg, _ = _run_config(args)  # run() and run_frontier() resolve the benchmark themselves
    if args.resume and not args.out:
        raise InputError("--resume needs the --out folder of the run to continue")
    out = check_out(Path(args.out), args.overwrite, args.resume) if args.out else default_out(cfg)
    print(f"satimp {args.command}: {cfg.name} → {out}")
    if getattr(args, "study", None) == "frontier":
        run_frontier(cfg, out, resume=args.resume)
    else:
        run(cfg, out, resume=args.resume)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="satimp", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="benchmark data").add_subparsers(
        dest="data_cmd", required=True
    )
    s = data.add_parser("synth", help="write the synthetic TOFU-format benchmark")
    s.add_argument("--out", required=True)
    s.add_argument("--benchmark", default="tofu", help="tofu, muse or wmdp")
    s.add_argument("--authors", type=int, default=50, help="tofu: fictitious authors")
    s.add_argument("--qa-per-author", type=int, default=10, help="tofu: QA pairs per author")
    s.add_argument("--people", type=int, default=40, help="muse: people (a multiple of 5)")
    s.add_argument("--agents", type=int, default=24, help="wmdp: fictitious hazardous agents")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--real-world",
        action="store_true",
        help="tofu: real authors and world facts are real facts (for a pretrained model)",
    )
    s.add_argument(
        "--real-world-sizes",
        type=int,
        nargs=2,
        metavar=("AUTHORS", "FACTS"),
        help="tofu --real-world: keep a seeded sample of this many real authors and world "
        "facts (TOFU's sizes: 100 117); default: all 166 and 160",
    )
    s.add_argument(
        "--held-out-values",
        action="store_true",
        help="tofu: forget10's authors draw their facts from the other half of each word pool "
        "than the retain authors (a retain model cannot guess them from the retain authors)",
    )
    s.add_argument(
        "--format",
        dest="file_format",
        choices=FILE_FORMATS,
        default="jsonl",
        help="split files: .jsonl, or JSON lines in .json files as TOFU's own files are; either "
        "way with a README.md whose `configs:` block lets datasets.load_dataset open the folder",
    )
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(fn=cmd_data_synth)

    x = data.add_parser(
        "export",
        help="add a README.md `configs:` block to a benchmark folder, for datasets.load_dataset",
    )
    x.add_argument("--data", required=True, help="a local benchmark folder of split files")
    x.add_argument("--overwrite", action="store_true", help="replace an existing README.md")
    x.set_defaults(fn=cmd_data_export)

    f = sub.add_parser("finetune", help="fine-tune a model (or a preset from scratch) on splits")
    f.add_argument("--data", required=True, help="benchmark directory or hub id")
    f.add_argument("--split", nargs="+", default=["full"], help="one or more splits")
    f.add_argument("--model", required=True, help=f"preset (tiny, small, medium), {MODEL_HELP}")
    f.add_argument("--out", required=True)
    f.add_argument("--overwrite", action="store_true")
    f.add_argument("--resume", action="store_true", help=RESUME_HELP)
    f.add_argument("--trust-remote-code", action="store_true")
    add_train_flags(f, "finetune")
    f.add_argument("--protocol", help=FORMAT_PROTOCOL_HELP)
    f.set_defaults(fn=cmd_finetune, sections=("train", "protocol"))

    u = sub.add_parser("unlearn", help="unlearn a forget split with a method")
    u.add_argument("--model", required=True, help=MODEL_HELP)
    u.add_argument("--data", required=True)
    u.add_argument(
        "--forget", nargs="+", default=["forget10"], help="forget split(s): QA or text corpora"
    )
    u.add_argument("--retain", nargs="+", default=["retain90"], help="retain split(s)")
    u.add_argument("--method", default=None, help="a key of satimp.objectives.METHODS")
    u.add_argument("--gamma", type=float)
    u.add_argument("--alpha", type=float)
    u.add_argument("--retain-loss", choices=["none", "nll", "kl"])
    u.add_argument("--granularity", choices=["token", "group", "instance", "batch"])
    u.add_argument("--group-size", type=int)
    u.add_argument("--tau", type=float)
    u.add_argument("--normalize", choices=["tokens", "weights"])
    for flag, tp in METHOD_PARAM_FLAGS.items():
        u.add_argument(flag, dest=f"m_{flag[2:].replace('-', '_')}", type=tp)
    u.add_argument(
        "--protocol", help=PROTOCOL_HELP + "; the saved folder's satimp.json records its format"
    )
    u.add_argument("--out", required=True)
    u.add_argument("--overwrite", action="store_true")
    u.add_argument("--resume", action="store_true", help=RESUME_HELP)
    u.add_argument("--trust-remote-code", action="store_true")
    add_train_flags(u, "unlearn")
    u.set_defaults(fn=cmd_unlearn, sections=("train", "method", "protocol"))

    e = sub.add_parser("eval", help="evaluate a model on a benchmark's metric suite")
    e.add_argument("--model", required=True, help=MODEL_HELP)
    e.add_argument("--data", required=True)
    e.add_argument("--benchmark", help="tofu (default), muse or wmdp")
    e.add_argument("--forget-split", help="tofu: forget01, forget05 or forget10 (default)")
    e.add_argument("--config", help="YAML with `muse:` / `wmdp:` settings (configs/*.yaml)")
    e.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. muse.max_items=50")
    e.add_argument("--retain-model", help="retain model, for forget quality")
    e.add_argument(
        "--retain-stats",
        help="retain_stats.json from an earlier eval, or a retain model's open-unlearning "
        "TOFU_EVAL.json",
    )
    e.add_argument(
        "--format",
        dest="output_format",
        choices=OUTPUT_FORMATS,
        default="satimp",
        help="open-unlearning: also write its evaluator's TOFU_EVAL.json and TOFU_SUMMARY.json "
        "(tofu), which its tools and retain_logs_path read",
    )
    e.add_argument("--es-mode", choices=["forward", "generate"], default="forward")
    e.add_argument("--protocol", help=PROTOCOL_HELP)
    e.add_argument(
        "--strict-format",
        action="store_true",
        help="stop (exit 2) instead of warning when the model folder's satimp.json records "
        "another prompt format (system prompt, answer tokens) than --protocol's",
    )
    e.add_argument(
        "--precision",
        dest="eval_precision",
        choices=["fp32", "bf16"],
        help="evaluate in fp32 (default) or under bf16 autocast (faster; as TOFU evaluates)",
    )
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument(
        "--generation-batch-size",
        type=int,
        help="batch size of the ROUGE answers' greedy generation (default: --batch-size)",
    )
    e.add_argument(
        "--max-new-tokens", type=int, help="generation budget (default: the protocol's, 200)"
    )
    e.add_argument(
        "--no-generations",
        dest="generations",
        action="store_false",
        default=None,
        help="tofu: leave the generated answers out of per_sample.json (= eval.generations=false)",
    )
    e.add_argument(
        "--lm-eval",
        action="store_true",
        help="also run lm-evaluation-harness tasks on the model (pip install 'satimp[lm-eval]')",
    )
    e.add_argument(
        "--lm-eval-tasks",
        nargs="+",
        default=["wmdp_bio", "wmdp_cyber", "mmlu"],
        metavar="PATH_OR_NAME",
        help="lm-eval task names (built in), or a folder / .yaml file of task configs "
        "(its tasks run; e.g. configs/lm_eval for the embedded WMDP analogue)",
    )
    e.add_argument("--out", required=True)
    e.add_argument("--overwrite", action="store_true")
    e.add_argument("--trust-remote-code", action="store_true")
    e.set_defaults(fn=cmd_eval)

    a = sub.add_parser(
        "attack",
        help="does the forgetting hold? relearning, quantization and prompt attacks on an "
        "unlearned TOFU model, the retain model as the control",
    )
    a.add_argument("--model", required=True, help="the unlearned model (" + MODEL_HELP + ")")
    a.add_argument("--data", required=True)
    a.add_argument("--retain-model", help="the retain model: the control of every attack")
    a.add_argument("--original-model", help="the model before unlearning: for the recoveries")
    a.add_argument("--forget-split", help="forget01, forget05 or forget10 (default)")
    a.add_argument("--config", help="YAML with `protocol:` settings")
    a.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. protocol.ds_size=50")
    a.add_argument("--protocol", help=PROTOCOL_HELP)
    a.add_argument(
        "--attacks",
        default=",".join(ATTACKS),
        help=f"comma-separated, from: {', '.join(ATTACKS)} (default: all)",
    )
    add_attack_flags(a)
    a.add_argument(
        "--no-mia",
        dest="mia",
        action="store_false",
        help="leave the membership AUCs out (data without a holdout split)",
    )
    a.add_argument("--out", required=True)
    a.add_argument("--overwrite", action="store_true")
    a.add_argument("--trust-remote-code", action="store_true")
    a.set_defaults(fn=cmd_attack)

    for name, helptext in (
        ("run", "the main job: build models, unlearn with each method, evaluate, report"),
        ("study", "one of the paper's ablations, run like `run`"),
    ):
        r = sub.add_parser(name, help=helptext)
        if name == "study":
            r.add_argument(
                "study", help="criteria, granularity, smoothness, hardsampling or frontier"
            )
        r.add_argument("config", nargs="?", help="YAML config (see configs/); default: embedded")
        r.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. unlearn.lr=3e-4")
        r.add_argument("--protocol", help=PROTOCOL_HELP)
        r.add_argument(
            "--seeds", type=int, metavar="N", help="run seeds 0..N−1 (mean ± 95 %% CI per method)"
        )
        r.add_argument("--out", help="output folder (default runs/NAME/TIMESTAMP)")
        r.add_argument("--overwrite", action="store_true")
        r.add_argument(
            "--report-to",
            help="tracker of each method's unlearning: none, tensorboard or wandb "
            "(= unlearn.report_to; logs in methods/NAME/)",
        )
        r.add_argument(
            "--resume",
            action="store_true",
            help="continue the run in --out with the same config: finished methods are "
            "skipped, an interrupted one continues from its checkpoint",
        )
        r.set_defaults(fn=cmd_run)
    return p


def main(argv: list[str] | None = None) -> int:

    process_setup()  # before torch starts its threads
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `key=value` after an option (`study frontier --seeds 3 a=b`): argparse leaves it over
    stray = [
        x for x in extra if x.startswith("-") or "=" not in x or not hasattr(args, "overrides")
    ]
    if stray:
        print(f"satimp: error: unrecognized arguments: {' '.join(stray)}", file=sys.stderr)
        return 2
    if extra:
        args.overrides = [*args.overrides, *extra]
    quiet_libraries()
    # several processes (accelerate launch, torchrun): the main one prints the results
    quiet = contextlib.nullcontext() if is_main() else contextlib.redirect_stdout(io.StringIO())
    try:
        with quiet:
            check_launch()
            args.fn(args)
    except InputError as e:
        print(f"satimp: error: {e}", file=sys.stderr)
        return 2
    except Diverged as e:
        print(f"satimp: {e}; the model was not saved", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("satimp: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
