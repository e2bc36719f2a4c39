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
REFERENCES = ("original", "retain")


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


def format_table(
    rows: Sequence[dict], *, markdown: bool = False, columns: Sequence[str] = METRIC_COLUMNS
) -> str:
    """The results table (references first), as aligned text or as Markdown; `columns` are
    the benchmark's metric columns (TOFU's by default)."""
    cols = _columns(columns)
    cells = [[HEADERS.get(c, c) for c in cols]]
    cells += [[_fmt(r.get(c), c) for c in cols] for r in rows]
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


def plot_tradeoff(rows: Sequence[dict], path: Path) -> None:
    """Forget ES (lower is better) against retain ES (higher is better), one point per method."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for r in rows:
        if r.get("forget_es") is None or r.get("retain_es") is None:
            continue
        ref = r["method"] in REFERENCES
        ax.scatter(
            r["forget_es"],
            r["retain_es"],
            marker="*" if ref else "o",
            s=160 if ref else 50,
            color="black" if ref else None,
            zorder=3,
        )
        ax.annotate(
            r["method"],
            (r["forget_es"], r["retain_es"]),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=8,
        )
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
    rows = [r for r in rows if r.get("forget_es") is not None]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(rows) + 2), 4))
    ax.bar(x - 0.2, [r["forget_es"] for r in rows], 0.4, label="forget ES ↓")
    ax.bar(x + 0.2, [r["retain_es"] for r in rows], 0.4, label="retain ES ↑")
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
    from satimp.experiment import write_atomic, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", list(rows))
    write_atomic(out / "results.csv", results_csv(rows, columns))
    plots = {
        "tradeoff.png": "Trade-off: forget ES vs retain ES",
        "ablation.png": "Forget and retain ES per method",
    }
    plot_tradeoff(rows, out / "tradeoff.png")
    plot_bars(rows, out / "ablation.png")
    if curves:
        plot_es_curves(curves, out / "es_per_epoch.png")
        plots["es_per_epoch.png"] = "ES after each epoch"
    if weights:
        plot_weights(weights, out / "weights_vs_likelihood.png")
        plots["weights_vs_likelihood.png"] = "Token weight vs token likelihood (observation ii)"
    md = [f"# {title}", "", format_table(rows, markdown=True, columns=columns), ""]
    md += [f"- {n}" for n in notes] + ([""] if notes else [])
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
