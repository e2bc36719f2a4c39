"""Reports of a run: a text table, results.csv / results.json, report.md and PNG plots.

Rows are plain dicts: method, status, forget_es, forget_em, retain_es, forget_quality,
model_utility, seconds (and any further summary metrics). The reference rows are named
`original` and `retain`.
"""

from __future__ import annotations

import csv
import io
import math
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

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


class Style(NamedTuple):
    """How a method is drawn in every figure: a colour and a marker."""

    color: str
    marker: str


# One style per method, the same in every figure of every report. Colours are all distinct;
# the marker says which tokens the method weights: o every token, s a soft p-weighting,
# D SatImp, ^ the lowest-p tokens, v the highest-p ones, X random tokens, P key facts, p RMU.
STYLES: dict[str, Style] = {
    "ga": Style("#1f77b4", "o"),
    "gd": Style("#17becf", "o"),
    "npo": Style("#ff7f0e", "o"),
    "npo_topk": Style("#a65200", "^"),
    "npo_bottomk": Style("#e6ab02", "v"),
    "npo_random": Style("#8c564b", "X"),
    "simnpo": Style("#e377c2", "o"),
    "wga": Style("#bcbd22", "s"),
    "simsat": Style("#2ca02c", "s"),
    "simimp": Style("#9467bd", "s"),
    "satimp": Style("#d62728", "D"),
    "topk": Style("#1b9e77", "^"),
    "bottomk": Style("#6a51a3", "v"),
    "random": Style("#7f7f7f", "X"),
    "annotated": Style("#c51b7d", "P"),
    "rmu": Style("#08306b", "p"),
}
REFERENCE_STYLE = Style("#000000", "*")  # original, retain, base: black stars
_OTHER_COLOR = "#555555"  # the base colour of a label that starts with no method's name
_VARIANT_MARKERS = "osD^vXPph<>d"


def _shade(color: str, f: float) -> str:
    """`color` mixed with white (f > 0) or with black (f < 0) by |f|."""
    rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    to = 255 if f > 0 else 0
    return "#" + "".join(f"{round(c + (to - c) * abs(f)):02x}" for c in rgb)


def method_styles(labels: Iterable[str]) -> dict[str, Style]:
    """Each label's style: the table's for a method or a reference; for any other label
    (`satimp-b1=3`) a variant of the longest method name it starts with: that method's colour,
    plain, darker or lighter, with another marker — from a hash of the label on, the first
    combination that no table entry and no other label here has. The same labels give the
    same styles, in every figure."""
    labels = sorted(set(labels))
    out = {x: REFERENCE_STYLE for x in labels if x in REFERENCES}
    out |= {x: STYLES[x] for x in labels if x in STYLES}
    used = set(STYLES.values()) | {REFERENCE_STYLE}
    for label in (x for x in labels if x not in out):
        base = max((m for m in STYLES if label.startswith(m)), key=len, default=None)
        color = STYLES[base].color if base else _OTHER_COLOR
        combos = [Style(_shade(color, f) if f else color, m)
                  for f in (0.0, -0.35, 0.45) for m in _VARIANT_MARKERS]  # fmt: skip
        start = zlib.crc32(label.encode()) % len(combos)
        ring = combos[start:] + combos[:start]
        out[label] = next((s for s in ring if s not in used), ring[0])
        used.add(out[label])
    return out


def _figure(*axes: int, size: tuple[float, float]):
    """A figure of its own (no pyplot state to leak), at the resolution it is saved at, so
    that what a test measures on its canvas is what the PNG shows."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=120)
    FigureCanvasAgg(fig)  # a renderer to measure text with, as in the saved PNG
    return fig, fig.subplots(*axes)


def save_figure(fig, path: Path) -> None:
    """Write a figure built by one of the `*_figure` functions as a PNG."""
    fig.savefig(path, dpi="figure")


def _point(r: dict, key: str) -> tuple[float | None, float]:
    """(value, error bar) of a plotted metric: an aggregate row's mean ± ci95, else the value."""
    if "n_seeds" in r:
        return r.get(f"{key}_mean"), r.get(f"{key}_ci95") or 0.0
    return r.get(key), 0.0


def _place_labels(ax, texts: list, markers: list, bars: list) -> None:
    """Move the labels apart, off every marker and error bar and inside the axes (adjustText:
    a pass that also untangles crossed leader lines, then one that settles what that left),
    move any label still on something to the nearest free spot around its point, and join
    each label that left its point to it by a leader line. Iteration caps, not time limits,
    end the passes, so the figure is the same on a fast or a busy machine."""
    from adjustText import adjust_text
    from matplotlib.patches import FancyArrowPatch

    renderer = ax.figure.canvas.get_renderer()
    to_data = ax.transData.inverted()
    marks = [m.get_window_extent(renderer).padded(3) for m in markers]
    blocked = marks + [b.transformed(ax.transData) for b in bars]  # display coordinates
    points = [t.get_position() for t in texts]
    xs, ys = zip(*points, strict=True)
    objects = [b.transformed(to_data) for b in blocked]  # adjustText takes data coordinates
    kw = dict(ax=ax, objects=objects, iter_lim=1000, expand=(1.15, 1.35), max_move=20,
              force_text=(0.3, 0.5), force_static=(0.3, 0.5))  # fmt: skip
    adjust_text(texts, **kw)
    adjust_text(texts, target_x=xs, target_y=ys, avoid_self=False, prevent_crossings=False, **kw)
    _settle(ax, texts, points, blocked)
    for text, (x, y) in zip(texts, points, strict=True):
        box, (px, py) = text.get_window_extent(renderer), ax.transData.transform((x, y))
        gap = math.hypot(max(box.x0 - px, 0, px - box.x1), max(box.y0 - py, 0, py - box.y1))
        if gap > 6:  # pixels: a label beside its point needs no line
            ax.add_patch(FancyArrowPatch(text.get_position(), (x, y), patchA=text, shrinkB=4,
                                         arrowstyle="-", color="0.45", lw=0.7))  # fmt: skip


def _settle(ax, texts: list, points: list, blocked: list) -> None:
    """Move each label that still overlaps another label, a marker or an error bar, or sticks
    out of the axes, to the nearest free spot on rings around its point (display pixels)."""
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)

    def free(i: int) -> bool:
        box = texts[i].get_window_extent(renderer).padded(1)
        others = [t.get_window_extent(renderer) for j, t in enumerate(texts) if j != i]
        inside = (
            frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
        )
        return inside and not any(box.overlaps(b) for b in others + blocked)

    for i, text in enumerate(texts):
        px, py = ax.transData.transform(points[i])
        spots = ((px + r * math.cos(a), py + r * math.sin(a))
                 for r in range(12, 400, 6) for a in (k * math.pi / 8 for k in range(16)))  # fmt: skip
        start = text.get_position()
        while not free(i) and (spot := next(spots, None)):
            text.set_position(ax.transData.inverted().transform(spot))
        if not free(i):  # no free spot near: adjustText's place is the better one
            text.set_position(start)


def tradeoff_figure(rows: Sequence[dict], styles: dict[str, Style] | None = None):
    """Forget ES (lower is better) against retain ES (higher is better), one point per method
    (with seeds: the mean, error bars the 95 % intervals); labels kept apart by leader lines."""
    from matplotlib.transforms import Bbox

    styles = styles or method_styles(r["method"] for r in rows)
    fig, ax = _figure(size=(6.4, 4.8))
    texts, markers, bars = [], [], []
    for r in rows:
        (x, dx), (y, dy) = _point(r, "forget_es"), _point(r, "retain_es")
        if x is None or y is None:
            continue
        s, ref = styles[r["method"]], r["method"] in REFERENCES
        drawn = ax.errorbar(x, y, xerr=dx or None, yerr=dy or None, fmt=s.marker, ms=13 if ref else 7,
                           color=s.color, mec="black", mew=0.5, capsize=3, zorder=4 if ref else 3)  # fmt: skip
        drawn.lines[0].set_gid(r["method"])
        markers.append(drawn.lines[0])
        bars += [Bbox([[x - dx, y], [x + dx, y]])] if dx else []
        bars += [Bbox([[x, y - dy], [x, y + dy]])] if dy else []
        texts.append(ax.text(x, y, r["method"], fontsize=8, zorder=5))
    ax.set_xlabel("forget ES (lower = more forgotten)")
    ax.set_ylabel("retain ES (higher = more kept)")
    ax.set_title("Unlearning trade-off: ideal is top-left")
    ax.grid(alpha=0.3)
    ax.margins(0.15)  # room for the labels beside the points at the edges
    fig.tight_layout()  # before placing: the labels are placed in the final axes
    if texts:
        _place_labels(ax, texts, markers, bars)
    return fig


def es_curves_figure(curves: dict[str, list[dict]], styles: dict[str, Style] | None = None):
    """Forget and retain ES after each epoch, one line per method; whole-epoch ticks."""
    from matplotlib.ticker import MaxNLocator

    styles = styles or method_styles(curves)
    fig, axes = _figure(1, 2, size=(11.5, 4))
    for name, points in curves.items():
        if not points:
            continue
        s = styles[name]
        kw = dict(marker=s.marker, ms=4, color=s.color, label=name, gid=name)
        epochs = [p["epoch"] for p in points]
        axes[0].plot(epochs, [p["forget_es"] for p in points], **kw)
        axes[1].plot(epochs, [p.get("retain_es", math.nan) for p in points], **kw)
    for ax, title in zip(axes, ("forget ES ↓", "retain ES ↑"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))  # off the lines
    fig.tight_layout()
    return fig


def weights_figure(
    weights: dict[str, dict[str, list[float]]], styles: dict[str, Style] | None = None
):
    """Token weight against token likelihood p on the forget set (the paper's observation ii).

    `weights`: {criterion: {"p": [...], "w": [...]}}; weights are scaled to max 1 per
    criterion so the shapes compare on one axis. A criterion is drawn in its method's style.
    """
    styles = styles or method_styles(weights)
    fig, ax = _figure(size=(6, 4.5))
    for name, d in weights.items():
        top = max(d["w"], default=0.0) or 1.0
        s = styles[name]
        ax.scatter(d["p"], [w / top for w in d["w"]], s=6, alpha=0.5, color=s.color,
                   marker=s.marker, linewidths=0, label=name, gid=name)  # fmt: skip
    ax.set_xlabel("token likelihood p (original model, forget set)")
    ax.set_ylabel("token weight (scaled to max 1)")
    ax.set_title("Saturation weights low-p tokens low; importance the opposite")
    ax.legend(markerscale=3)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def bars_figure(rows: Sequence[dict], styles: dict[str, Style] | None = None):
    """Forget ES and retain ES per method as grouped bars (the ablation view): each method in
    its colour, forget ES filled, retain ES hatched, its marker above the pair."""
    import numpy as np
    from matplotlib.patches import Patch

    rows = [r for r in rows if _point(r, "forget_es")[0] is not None]
    styles = styles or method_styles(r["method"] for r in rows)
    fig, ax = _figure(size=(max(6, 0.7 * len(rows) + 2), 4))
    for i, r in enumerate(rows):
        s, top = styles[r["method"]], 0.0
        for shift, key, hatch in ((-0.2, "forget_es", None), (0.2, "retain_es", "////")):
            value, err = _point(r, key)
            if value is None:
                continue
            ax.bar(i + shift, value, 0.4, yerr=err or None, capsize=2, edgecolor=s.color, hatch=hatch,
                   color="white" if hatch else s.color, gid=r["method"])  # fmt: skip
            top = max(top, value + err)
        ax.plot(i, top + 0.05, s.marker, color=s.color, mec="black", mew=0.5, ms=6, gid=r["method"])
    ax.set_xticks(
        np.arange(len(rows)), [r["method"] for r in rows], rotation=45, ha="right", fontsize=8
    )
    ax.set_ylim(0, 1.15)
    # the legend above the axes, off the bars
    ax.legend(handles=[Patch(color="0.5", label="forget ES ↓ (filled)"),
                       Patch(facecolor="white", edgecolor="0.5", hatch="////",
                             label="retain ES ↑ (hatched)")],
              fontsize=8, ncol=2, loc="lower right", bbox_to_anchor=(1, 1))  # fmt: skip
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- robustness (attacks)

ATTACK_ORDER = ("none", "relearn_forget", "relearn_retain", "int8", "int4", "nf4", "probes")


def _attacked(rows: Sequence[dict]) -> list[dict]:
    """The method rows that carry attack columns: the seed aggregates where there are any,
    else the single runs."""
    rows = [r for r in rows if r.get("method") not in REFERENCES]
    agg = [r for r in rows if "n_seeds" in r and "atk_none_es_mean" in r]
    return agg or [r for r in rows if "n_seeds" not in r and "atk_none_es" in r]


def _cell_ci(r: dict, key: str, digits: int = 3) -> str:
    value, err = _point(r, key)
    if value is None:
        return "–"
    return f"{value:.{digits}f}" + (f" ± {err:.{digits}f}" if err else "")


def robustness_markdown(rows: Sequence[dict], control: dict[str, dict] | None = None) -> str:
    """Two tables: forget ES after each attack (its ES recovery beside it) per method, and
    the Min-K% AUC before and after the attacks that measure it; mean ± 95 % CI over seeds
    where the rows are seed aggregates. `control`: {attack: {"before", "after"}} of the retain
    model (mean over seeds), a last row."""
    rows = _attacked(rows)
    attacks = [
        a for a in ATTACK_ORDER if any(_point(r, f"atk_{a}_es")[0] is not None for r in rows)
    ]
    head = "| method | " + " | ".join(a if a != "none" else "no attack" for a in attacks) + " |"
    lines = ["Forget ES ↓ after each attack (recovery of ES towards the original model):", "",
             head, "|" + "---|" * (len(attacks) + 1)]  # fmt: skip
    for r in rows:
        cells = []
        for a in attacks:
            cell = _cell_ci(r, f"atk_{a}_es")
            rec = _point(r, f"atk_{a}_recovery_es")[0]
            cells.append(cell + (f" ({rec:+.2f})" if rec is not None else ""))
        lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
    if control:
        cells = [
            "–" if a == "none" or a not in control
            else f"{control[a]['before']['es']:.3f} → {control[a]['after']['es']:.3f}"
            for a in attacks
        ]  # fmt: skip
        lines.append("| retain (control) | " + " | ".join(cells) + " |")
    auc = [
        a for a in attacks if any(_point(r, f"atk_{a}_mia_min_k_auc")[0] is not None for r in rows)
    ]
    if auc:
        lines += ["", "Min-K% AUC, forget against holdout (0.5: indistinguishable):", "",
                  "| method | " + " | ".join(a if a != "none" else "no attack" for a in auc) + " |",
                  "|" + "---|" * (len(auc) + 1)]  # fmt: skip
        for r in rows:
            cells = [_cell_ci(r, f"atk_{a}_mia_min_k_auc") for a in auc]
            lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def robustness_figure(
    rows: Sequence[dict], control: dict | None = None, styles: dict[str, Style] | None = None
):
    """Per method (its colour), forget ES (left) and Min-K% AUC (right) with no attack and
    after each attack, as grouped bars with 95 % CI error bars where seeds give them; the
    retain model's values (`control`: {attack or "none": {metric: value}}) as a black bar
    across each group."""
    import numpy as np

    rows = _attacked(rows)
    styles = styles or method_styles(r["method"] for r in rows)
    fig, axes = _figure(1, 2, size=(12, 4))
    for ax, metric, title in (
        (axes[0], "es", "forget ES ↓"),
        (axes[1], "mia_min_k_auc", "Min-K% AUC"),
    ):
        attacks = [a for a in ATTACK_ORDER
                   if any(_point(r, f"atk_{a}_{metric}")[0] is not None for r in rows)]  # fmt: skip
        width = 0.8 / max(1, len(rows))
        for j, r in enumerate(rows):
            xs, ys, errs = [], [], []
            for i, a in enumerate(attacks):
                value, err = _point(r, f"atk_{a}_{metric}")
                if value is not None:
                    xs.append(i - 0.4 + width * (j + 0.5))
                    ys.append(value)
                    errs.append(err)
            s = styles[r["method"]]
            ax.bar(xs, ys, width, yerr=errs, capsize=2, color=s.color, label=r["method"],
                   gid=r["method"])  # fmt: skip
        for i, a in enumerate(attacks):
            value = (control or {}).get(a, {}).get(metric)
            if value is not None:
                ax.hlines(value, i - 0.45, i + 0.45, color="black", lw=1.5,
                          label="retain (control)" if i == 0 else None)  # fmt: skip
        ax.set_xticks(np.arange(len(attacks)), [a.replace("_", "\n") for a in attacks], fontsize=8)
        ax.set_title(title, fontsize=10, loc="right")
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3)
        if metric == "mia_min_k_auc":
            ax.axhline(0.5, color="black", lw=0.8, ls="--")
    axes[0].legend(fontsize=7, ncol=4, loc="lower left", bbox_to_anchor=(0, 1.08))
    fig.tight_layout()
    return fig


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
    worst_items: Sequence[tuple[str, str]] = (),
) -> Path:
    """Write results.json, results.csv, the plots and report.md; returns report.md's path.
    `worst_items`: (label, path relative to out_dir) of each method's worst_items.md, linked
    from report.md."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", list(rows))
    write_atomic(out / "results.csv", results_csv(rows, columns))
    shown = [r for r in rows if "n_seeds" in r] or list(rows)  # with seeds: the aggregates
    plots = {
        "tradeoff.png": "Trade-off: forget ES vs retain ES",
        "ablation.png": "Forget and retain ES per method",
    }
    # one style per label for every figure here, from every label any of them draws
    styles = method_styles([r["method"] for r in rows] + list(curves or {}) + list(weights or {}))
    save_figure(tradeoff_figure(shown, styles), out / "tradeoff.png")
    save_figure(bars_figure(shown, styles), out / "ablation.png")
    if curves:
        save_figure(es_curves_figure(curves, styles), out / "es_per_epoch.png")
        plots["es_per_epoch.png"] = "ES after each epoch"
    if weights:
        save_figure(weights_figure(weights, styles), out / "weights_vs_likelihood.png")
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
    if worst_items:
        md += ["## Worst items", "", "The forget items each model still reproduces and the "
               "retain items it lost, with the answers it generated:", ""]  # fmt: skip
        md += [f"- [{label}]({path})" for label, path in worst_items] + [""]
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


def frontier_figure(summary: dict, styles: dict[str, Style] | None = None):
    """Per method, one curve over the learning rates: the final model's forget ES against
    retain ES (left) and model utility (right), mean over seeds with 95 % interval bars."""
    styles = styles or method_styles(summary["methods"])
    fig, axes = _figure(1, 2, size=(12, 4.8))
    for method, d in summary["methods"].items():
        finals = [p for p in d["points"] if p["epoch"] == "final"]
        s = styles[method]
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
                drawn = ax.errorbar(xs, ys, xerr=dxs, yerr=dys, marker=s.marker, ms=5, capsize=2,
                                   color=s.color, mec="black", mew=0.4, label=method)  # fmt: skip
                drawn.lines[0].set_gid(method)
    for ax, ylabel in zip(axes, ("retain ES ↑", "model utility ↑"), strict=True):
        ax.set_xlabel("forget ES ↓")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].set_title("final models, one point per learning rate (mean ± 95 % CI)")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def plot_frontier(summary: dict, path: Path, styles: dict[str, Style] | None = None) -> None:
    save_figure(frontier_figure(summary, styles), path)


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
