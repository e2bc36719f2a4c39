"""lm-evaluation-harness on a saved model (`satimp eval --lm-eval`), the optional extra
`satimp[lm-eval]`.

Tasks come by name (the harness's own, e.g. `wmdp_bio`, `mmlu`, which read the hub) or as a
path: a folder of task YAMLs, or one YAML file, handed to the harness as an `include_path`
(configs/lm_eval holds the embedded WMDP and MMLU analogues over local files). Everything is
resolved before the evaluation starts, so an unknown name stops the command before anything
is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from satimp.errors import InputError


def lm_eval_module():
    """The `lm_eval` package, or InputError naming the optional extra that provides it."""
    try:
        import lm_eval
    except ImportError:
        raise InputError(
            "--lm-eval needs the optional lm-evaluation-harness: pip install 'satimp[lm-eval]'"
        ) from None
    return lm_eval


@dataclass
class HarnessTasks:
    """Task names to run and the task manager that knows them (with the include paths)."""

    names: list[str]
    include_paths: list[str] = field(default_factory=list)
    manager: object = None


def _defined_in(manager, path: Path) -> list[str]:
    """Names of the tasks whose YAML is `path` (a file) or lies under it (a folder)."""
    path = path.resolve()
    found = []
    for name, entry in manager.task_index.items():  # groups and tags are not run on their own
        if entry.kind.name not in ("TASK", "PY_TASK") or entry.yaml_path is None:
            continue
        yaml_path = Path(entry.yaml_path).resolve()
        if yaml_path == path or path in yaml_path.parents:
            found.append(name)
    return sorted(found)


def _check_local_files(yaml_path) -> None:
    """InputError when a task over local files (`dataset_kwargs: data_files`) names a file
    that is not there, so that the command stops before the evaluation rather than after.
    Paths are relative to the working directory, as the harness reads them; globs and URLs
    are left to the harness."""
    try:  # the harness's own reader (resolves `include:`); without it, the harness checks
        from lm_eval.tasks._yaml_loader import load_yaml

        config = load_yaml(yaml_path, resolve_func=False)
    except (ImportError, OSError, ValueError):
        return
    files = (config.get("dataset_kwargs") or {}).get("data_files") or []
    files = files.values() if isinstance(files, dict) else [files]
    for item in files:
        for f in [item] if isinstance(item, str) else item:
            if not any(c in f for c in "*?[") and "://" not in f and not Path(f).is_file():
                raise InputError(
                    f"{yaml_path}: data file {f} not found (relative to the working "
                    f"directory {Path.cwd()})"
                )


def resolve_tasks(specs: Sequence[str]) -> HarnessTasks:
    """Each spec: an existing path (a folder of task YAMLs, or a .yaml file) → its folder
    becomes an include_path and its tasks run; otherwise a task name, built in or defined
    under a given path. Raises InputError for a path that defines no task or an unknown name.

    The harness's built-in index (~15,000 tasks) is only built when a name is not found
    under the given paths (it takes half a minute on a small machine).
    """
    lm_eval_module()
    from lm_eval.tasks import TaskManager

    paths = [Path(s) for s in specs if Path(s).exists()]
    names = [s for s in specs if not Path(s).exists()]
    for p in paths:
        if p.is_file() and p.suffix not in (".yaml", ".yml"):
            raise InputError(f"--lm-eval-tasks {p}: expected a folder or a .yaml task file")
    include = sorted({str((p if p.is_dir() else p.parent).resolve()) for p in paths})
    manager = TaskManager(include_path=include, include_defaults=False) if include else None
    found = []
    for p in paths:
        here = _defined_in(manager, p)
        if not here:
            raise InputError(f"--lm-eval-tasks {p}: defines no lm-eval task")
        found += [n for n in here if n not in found]
        for name in here:
            _check_local_files(manager.task_index[name].yaml_path)
    if names and (manager is None or any(n not in manager.all_tasks for n in names)):
        manager = TaskManager(include_path=include or None)
    unknown = [n for n in names if n not in manager.all_tasks] if names else []
    if unknown:
        raise InputError(
            f"--lm-eval-tasks: unknown lm-eval task {unknown[0]!r} (`lm-eval ls tasks` lists "
            "the harness's tasks; a path to a folder or .yaml file adds your own)"
        )
    return HarnessTasks(found + names, include, manager)


def run_lm_eval(
    model_dir, tasks: HarnessTasks, *, batch_size: int = 8, trust_remote_code: bool = False
) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    """Run the harness on a saved model: its `hf` backend, zero-shot, its own prompts and
    metrics. Returns ({task: {metric: value}}, {task: per-item rows}); a row holds the
    document index, the target, the log-likelihood of each choice (multiple choice) and the
    item's metrics."""
    import torch

    lm_eval = lm_eval_module()
    model_args = f"pretrained={model_dir},dtype=auto"
    if trust_remote_code:
        model_args += ",trust_remote_code=True"
    try:
        results = lm_eval.simple_evaluate(
            model="hf",
            model_args=model_args,
            tasks=list(tasks.names),
            batch_size=batch_size,
            device="cuda" if torch.cuda.is_available() else "cpu",  # the harness assumes cuda
            task_manager=tasks.manager,
            log_samples=True,
        )
    except FileNotFoundError as e:  # a task's data (or the model) is not where it says
        raise InputError(f"lm-eval: {e}") from None
    summary = {
        task: {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        for task, metrics in results["results"].items()
    }
    per_sample = {
        task: [_sample_row(s) for s in sorted(samples, key=lambda s: s["doc_id"])]
        for task, samples in results.get("samples", {}).items()
    }
    return summary, per_sample


def _sample_row(sample: dict) -> dict:
    row = {"doc_id": sample["doc_id"], "target": sample.get("target")}
    resps = sample.get("filtered_resps") or []
    if resps and all(isinstance(r, (list, tuple)) and len(r) == 2 for r in resps):
        row["loglik"] = [float(r[0]) for r in resps]  # (log-likelihood, is greedy) per choice
    for metric in sample.get("metrics", []):
        if isinstance(sample.get(metric), (int, float)):
            row[metric] = sample[metric]
    return row
