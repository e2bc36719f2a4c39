"""Reports of a run: a text table, results.csv / results.json, report.md and PNG plots.

Rows are plain dicts: method, status, forget_es, forget_em, retain_es, forget_quality,
model_utility, seconds (and any further summary metrics). The reference rows are named
`original` and `retain`.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

import yaml

from satimp.runs import write_atomic, write_json
from satimp.stats import ci95

METRIC_COLUMNS = ("forget_es", "forget_em", "retain_es", "forget_quality", "model_utility")
HEADERS = {
    "method": "method",
    "status": "status",
    "forget_es": "forget ES ↓",
    "forget_em": "forget EM ↓",
    "retain_es": "retain ES ↑",
    "forget_quality": "FQ ↑",
    "model_utility": "MU ↑",
    "verbmem_forget": "VerbMem ↓",
    "knowmem_forget": "KnowMem forget ↓",
    "knowmem_retain": "KnowMem retain ↑",
    "privleak": "PrivLeak →0",
    "wmdp_acc": "WMDP acc ↓",
    "mmlu_acc": "MMLU acc ↑",
    "seconds": "time (s)",
}
REFERENCES = ("original", "retain", "base")


def _fmt(value, key: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if key == "seconds":
        return f"{value:.0f}"
    if key == "forget_quality":
        return f"{value:.3g}"
    if key == "privleak":
        return f"{value:.1f}"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _columns(metrics: Sequence[str]) -> tuple[str, ...]:
    return ("method", "status", *metrics, "seconds")


# ---------------------------------------------------------------- seeds


def _cell(row: dict, key: str) -> str:
    """A table cell: the value, or `mean ± ci95` in an aggregate row."""
    if "n_seeds" not in row or key in ("method", "status"):
        return _fmt(row.get(key), key)
    mean, ci = row.get(f"{key}_mean"), row.get(f"{key}_ci95")
    if key == "seconds" or ci is None:
        return _fmt(mean, key)
    return f"{_fmt(mean, key)} ± {_fmt(ci, key)}"


def format_table(
    rows: Sequence[dict], *, markdown: bool = False, columns: Sequence[str] = METRIC_COLUMNS
) -> str:
    """The results table (references first), as aligned text or as Markdown; `columns` are
    the benchmark's metric columns (TOFU's by default). Aggregate rows (with `n_seeds`)
    print `mean ± ci95`."""
    cols = _columns(columns)
    cells = [[HEADERS.get(c, c) for c in cols]]
    cells += [[_cell(r, c) for c in cols] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in cells]
        lines.insert(1, "|" + "|".join("---" for _ in cols) + "|")
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def results_csv(rows: Sequence[dict], columns: Sequence[str] = METRIC_COLUMNS) -> str:
    cols = _columns(columns)
    keys = list(cols) + sorted({k for r in rows for k in r} - set(cols))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


# ---------------------------------------------------------------- plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _point(r: dict, key: str) -> tuple[float | None, float]:
    """(value, error bar) of a plotted metric: an aggregate row's mean ± ci95, else the value."""
    if "n_seeds" in r:
        return r.get(f"{key}_mean"), r.get(f"{key}_ci95") or 0.0
    return r.get(key), 0.0


def plot_tradeoff(rows: Sequence[dict], path: Path) -> None:
    """Forget ES (lower is better) against retain ES (higher is better), one point per method
    (with seeds: the mean, error bars the 95 % intervals)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for r in rows:
        (x, dx), (y, dy) = _point(r, "forget_es"), _point(r, "retain_es")
        if x is None or y is None:
            continue
        ref = r["method"] in REFERENCES
        ax.errorbar(
            x,
            y,
            xerr=dx or None,
            yerr=dy or None,
            fmt="*" if ref else "o",
            ms=12 if ref else 6,
            color="black" if ref else None,
            capsize=3,
            zorder=3,
        )
        ax.annotate(r["method"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlabel("forget ES (lower = more forgotten)")
    ax.set_ylabel("retain ES (higher = more kept)")
    ax.set_title("Unlearning trade-off: ideal is top-left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_es_curves(curves: dict[str, list[dict]], path: Path) -> None:
    """Forget and retain ES after each epoch, one line per method."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    colors = plt.cm.tab20.colors  # more methods than the default 10-colour cycle
    for i, (name, points) in enumerate(curves.items()):
        if not points:
            continue
        style = dict(
            marker="os^Dv"[i % 5], ms=3, color=colors[(2 * i) % 20 + (i >= 10)], label=name
        )
        epochs = [p["epoch"] for p in points]
        axes[0].plot(epochs, [p["forget_es"] for p in points], **style)
        axes[1].plot(epochs, [p.get("retain_es", math.nan) for p in points], **style)
    for ax, title in zip(axes, ("forget ES ↓", "retain ES ↑"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_weights(weights: dict[str, dict[str, list[float]]], path: Path) -> None:
    """Token weight against token likelihood p on the forget set (the paper's observation ii).

    `weights`: {criterion: {"p": [...], "w": [...]}}; weights are scaled to max 1 per
    criterion so the shapes compare on one axis.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, d in weights.items():
        top = max(d["w"]) or 1.0
        ax.scatter(d["p"], [w / top for w in d["w"]], s=6, alpha=0.5, label=name)
    ax.set_xlabel("token likelihood p (original model, forget set)")
    ax.set_ylabel("token weight (scaled to max 1)")
    ax.set_title("Saturation weights low-p tokens low; importance the opposite")
    ax.legend(markerscale=3)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_bars(rows: Sequence[dict], path: Path) -> None:
    """Forget ES and retain ES per method as grouped bars (the ablation view)."""
    import numpy as np

    plt = _plt()
    rows = [r for r in rows if _point(r, "forget_es")[0] is not None]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(rows) + 2), 4))
    for shift, key, label in (
        (-0.2, "forget_es", "forget ES ↓"),
        (0.2, "retain_es", "retain ES ↑"),
    ):
        values, errs = zip(*(_point(r, key) for r in rows), strict=True) if rows else ((), ())
        ax.bar(x + shift, values, 0.4, yerr=errs, capsize=2, label=label)
    ax.set_xticks(x, [r["method"] for r in rows], rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------- the report


def write_report(
    out_dir: str | Path,
    rows: Sequence[dict],
    *,
    config: dict,
    title: str,
    curves: dict[str, list[dict]] | None = None,
    weights: dict[str, dict[str, list[float]]] | None = None,
    notes: Sequence[str] = (),
    columns: Sequence[str] = METRIC_COLUMNS,
) -> Path:
    """Write results.json, results.csv, the plots and report.md; returns report.md's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", list(rows))
    write_atomic(out / "results.csv", results_csv(rows, columns))
    shown = [r for r in rows if "n_seeds" in r] or list(rows)  # with seeds: the aggregates
    plots = {
        "tradeoff.png": "Trade-off: forget ES vs retain ES",
        "ablation.png": "Forget and retain ES per method",
    }
    plot_tradeoff(shown, out / "tradeoff.png")
    plot_bars(shown, out / "ablation.png")
    if curves:
        plot_es_curves(curves, out / "es_per_epoch.png")
        plots["es_per_epoch.png"] = "ES after each epoch"
    if weights:
        plot_weights(weights, out / "weights_vs_likelihood.png")
        plots["weights_vs_likelihood.png"] = "Token weight vs token likelihood (observation ii)"
    md = [f"# {title}", "", format_table(shown, markdown=True, columns=columns), ""]
    md += [f"- {n}" for n in notes] + ([""] if notes else [])
    if len(shown) < len(rows):
        per_seed = [r for r in rows if "n_seeds" not in r]
        md += [
            "## Per seed",
            "",
            format_table(per_seed, markdown=True, columns=("seed", *columns)),
            "",
        ]
    for name, caption in plots.items():
        md += [f"## {caption}", "", f"![{caption}]({name})", ""]
    md += [
        "## Configuration",
        "",
        "```yaml",
        yaml.safe_dump(config, sort_keys=False).rstrip(),
        "```",
        "",
    ]
    write_atomic(out / "report.md", "\n".join(md))
    return out / "report.md"


# ---------------------------------------------------------------- fronts


def plot_frontier(summary: dict, path: Path) -> None:
    """Per method, one curve over the learning rates: the final model's forget ES against
    retain ES (left) and model utility (right), mean over seeds with 95 % interval bars."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = plt.cm.tab20.colors
    for i, (method, d) in enumerate(summary["methods"].items()):
        finals = [p for p in d["points"] if p["epoch"] == "final"]
        color = colors[(2 * i) % 20 + (i >= 10)]
        for ax, key in zip(axes, ("retain_es", "model_utility"), strict=True):
            xs, ys, dxs, dys = [], [], [], []
            for lr in summary["lrs"]:
                at = [p for p in finals if p["lr"] == lr and p.get(key) is not None]
                if not at:
                    continue
                fx, fy = [p["forget_es"] for p in at], [p[key] for p in at]
                xs.append(sum(fx) / len(fx))
                ys.append(sum(fy) / len(fy))
                dxs.append(ci95(fx) or 0.0)
                dys.append(ci95(fy) or 0.0)
            if xs:
                ax.errorbar(xs, ys, xerr=dxs, yerr=dys, marker="os^Dv"[i % 5], ms=4,
                            capsize=2, color=color, label=method)  # fmt: skip
    for ax, ylabel in zip(axes, ("retain ES ↑", "model utility ↑"), strict=True):
        ax.set_xlabel("forget ES ↓")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].set_title("final models, one point per learning rate (mean ± 95 % CI)")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def frontier_markdown(summary: dict, *, title: str, columns: Sequence[str] = METRIC_COLUMNS) -> str:
    """frontier.md: hypervolume per method (mean ± ci95 over seeds) and the two rankings."""
    md = [
        f"# {title}",
        "",
        f"Learning rates {summary['lrs']}, seeds {summary['seeds']}; reference point (original "
        f"model's forget ES, 0); paired two-sided t-tests over seeds at α = {summary['alpha']}.",
        "",
        "![fronts](frontier.png)",
        "",
    ]
    for key, name in (("es", "forget ES ↓ / retain ES ↑ (every epoch)"),
                      ("mu", "forget ES ↓ / model utility ↑ (final models)")):  # fmt: skip
        md += [
            f"## Hypervolume, {name}",
            "",
            "| rank | method | HV (mean ± 95 % CI) | per seed | significantly above |",
            "|---|---|---|---|---|",
        ]
        for i, r in enumerate(summary["ranking"][key], 1):
            per = summary["methods"][r["method"]][f"hv_{key}"]["per_seed"]
            ci = f" ± {r['ci95']:.3f}" if r["ci95"] is not None else ""
            md.append(
                f"| {i} | {r['method']} | {r['mean']:.3f}{ci} | "
                f"{', '.join(f'{v:.3f}' for v in per)} | {', '.join(r['beats']) or '–'} |"
            )
        md.append("")
    at = summary.get("at_lr")
    if at:
        md += [
            f"## At the config's learning rate ({at['lr']:g}): mean ± 95 % CI over seeds",
            "",
            format_table(at["aggregate"], markdown=True, columns=columns),
            "",
        ]
    return "\n".join(md)
