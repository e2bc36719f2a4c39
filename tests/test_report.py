"""The report's figures read: labels apart and off the reference stars, one style per method
in every figure, whole-epoch ticks, seeded runs as mean ± 95 % interval.

Everything is measured on the renderer of the figure the report saves (window extents in
pixels), not on the data, so a label that prints over another one fails here."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from matplotlib.colors import to_hex

from satimp import report
from satimp.objectives import METHODS


def row(method: str, forget: float, retain: float) -> dict:
    return {"method": method, "status": "ok", "forget_es": forget, "retain_es": retain}


def seeded(method: str, forget: float, retain: float, ci: float) -> dict:
    return {"method": method, "status": "ok", "n_seeds": 3, "forget_es_mean": forget,
            "forget_es_ci95": ci, "retain_es_mean": retain, "retain_es_ci95": ci}  # fmt: skip


# The case: five methods that barely unlearn, within 0.02 of each other and of the
# original model's star, and the rest spread out.
CROWDED = [
    row("original", 0.95, 0.90),
    row("retain", 0.30, 0.92),
    row("simnpo", 0.94, 0.895),
    row("simsat", 0.955, 0.885),
    row("simimp", 0.945, 0.905),
    row("bottomk", 0.96, 0.90),
    row("random", 0.935, 0.89),
    row("npo", 0.15, 0.55),
    row("ga", 0.02, 0.05),
    row("satimp", 0.20, 0.80),
]
# every method of the table, spread out, and two user variants
SPREAD = [row("original", 0.95, 0.90), row("retain", 0.30, 0.92)] + [
    row(m, 0.05 + 0.8 * (i % 5) / 4, 0.1 + 0.7 * (i // 5) / 3)
    for i, m in enumerate([*METHODS, "satimp-b1=3", "satimp-group"])
]


def label_boxes(fig) -> tuple[dict, list]:
    """The labels' and the reference stars' boxes in pixels, as the renderer draws them."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    labels = {t.get_text(): t.get_window_extent(renderer) for t in ax.texts}
    stars = [line.get_window_extent(renderer) for line in ax.lines if line.get_marker() == "*"]
    return labels, stars


@pytest.mark.parametrize(
    "rows",
    [
        CROWDED,
        [seeded(r["method"], r["forget_es"], r["retain_es"], 0.01) for r in CROWDED],
        SPREAD,
    ],
    ids=["crowded", "crowded-seeded", "spread"],
)
def test_labels_overlap_neither_each_other_nor_a_reference_star(rows) -> None:
    fig = report.tradeoff_figure(rows)
    labels, stars = label_boxes(fig)
    assert sorted(labels) == sorted(r["method"] for r in rows)
    assert len(stars) == 2  # original and retain
    clash = [
        (a, b) for (a, x), (b, y) in itertools.combinations(labels.items(), 2) if x.overlaps(y)
    ]
    assert not clash, f"labels print over each other: {clash}"
    on_star = [a for a, x in labels.items() if any(x.overlaps(s) for s in stars)]
    assert not on_star, f"labels print over a reference star: {on_star}"
    frame = fig.axes[0].get_window_extent()
    outside = [a for a, x in labels.items() if not (frame.x0 <= x.x0 and x.x1 <= frame.x1)]
    assert not outside, f"labels outside the axes: {outside}"


def tradeoff_styles(fig, rows) -> dict:
    """(colour, marker) of each method's point, from the drawn errorbar containers."""
    containers = fig.axes[0].containers
    assert len(containers) == len(rows)
    return {
        r["method"]: (to_hex(c.lines[0].get_markerfacecolor()), c.lines[0].get_marker())
        for r, c in zip(rows, containers, strict=True)
    }


def curve_styles(fig) -> dict:
    return {
        line.get_label(): (to_hex(line.get_color()), line.get_marker())
        for line in fig.axes[0].get_lines()
    }


def drawn_styles(fig) -> dict:
    """(colour, marker) of each line a figure's first axes tagged with a method's name."""
    lines = [x for x in fig.axes[0].get_lines() if x.get_gid()]
    return {x.get_gid(): (to_hex(x.get_color()), x.get_marker()) for x in lines}


def curves_for(labels, epochs: int = 3) -> dict:
    return {m: [{"epoch": e, "forget_es": 1 - e / 5, "retain_es": 0.9} for e in range(1, epochs + 1)]
            for m in labels}  # fmt: skip


def test_no_two_methods_share_a_style() -> None:
    methods = [r for r in SPREAD if r["method"] not in report.REFERENCES]
    styles = tradeoff_styles(report.tradeoff_figure(methods), methods)
    shared = {s: [m for m in styles if styles[m] == s] for s in styles.values()}
    shared = {s: ms for s, ms in shared.items() if len(ms) > 1}
    assert not shared, f"methods drawn alike: {shared}"
    # the table itself: every method has an entry, and none is a reference star's
    assert set(METHODS) <= set(report.STYLES)
    table = list(report.STYLES.values()) + [report.REFERENCE_STYLE]
    assert len(set(table)) == len(table)


def test_a_method_looks_the_same_in_every_figure() -> None:
    labels = ["ga", "random", "satimp", "simsat", "satimp-b1=3"]
    rows = [row(m, 0.1 + 0.2 * i, 0.5) for i, m in enumerate(labels)]
    in_tradeoff = tradeoff_styles(report.tradeoff_figure(rows), rows)
    in_curves = curve_styles(report.es_curves_figure(curves_for(labels)))
    assert in_curves == in_tradeoff
    # the table's style is what every figure draws
    assert in_tradeoff["satimp"] == tuple(report.STYLES["satimp"])
    by_gid = {}
    bars = report.bars_figure(rows)
    for p in bars.axes[0].patches:
        if p.get_gid():
            by_gid.setdefault(p.get_gid(), set()).add(to_hex(p.get_edgecolor()))
    assert by_gid == {m: {s[0]} for m, s in in_tradeoff.items()}
    assert drawn_styles(bars) == in_tradeoff
    summary = {"lrs": [1e-5], "methods": {m: {"points": [
        {"epoch": "final", "lr": 1e-5, "forget_es": 0.2, "retain_es": 0.5, "model_utility": 0.4}
    ]} for m in labels}}  # fmt: skip
    front = report.frontier_figure(summary)
    assert drawn_styles(front) == in_tradeoff
    weights = report.weights_figure({m: {"p": [0.5], "w": [1.0]} for m in ("simsat", "satimp")})
    dots = {
        c.get_gid(): to_hex(c.get_facecolor()[0], keep_alpha=False)
        for c in weights.axes[0].collections
    }
    assert dots == {m: in_tradeoff[m][0] for m in ("simsat", "satimp")}


def test_write_report_draws_each_label_alike_in_its_figures(tmp_path, monkeypatch) -> None:
    """write_report's figures share one style table, user variants included."""
    figures = {}
    monkeypatch.setattr(
        report, "save_figure", lambda fig, path: figures.update({Path(path).name: fig})
    )
    labels = ["satimp", "satimp-b1=1", "satimp-b1=3", "satimp-group", "mine"]
    rows = [row("original", 0.9, 0.9)] + [row(m, 0.1 + 0.15 * i, 0.5) for i, m in enumerate(labels)]
    report.write_report(tmp_path, rows, config={}, title="t", curves=curves_for(labels))
    assert set(figures) == {"tradeoff.png", "ablation.png", "es_per_epoch.png"}
    in_tradeoff = tradeoff_styles(figures["tradeoff.png"], rows)
    assert curve_styles(figures["es_per_epoch.png"]) == {m: in_tradeoff[m] for m in labels}


def test_user_labels_get_a_style_of_their_own_from_their_method() -> None:
    labels = ["satimp", "satimp-b1=1", "satimp-b1=3", "satimp-group", "npo_topk-x", "mine", "ours"]
    styles = report.method_styles(labels)
    assert styles == report.method_styles(reversed(labels))  # the order does not matter
    variants = [styles[x] for x in labels if x not in report.STYLES]
    assert len(set(variants)) == len(variants)
    assert not set(variants) & set(report.STYLES.values())
    # a variant keeps its method's colour or a shade of it: satimp's is red, not npo_topk's brown
    red = report.STYLES["satimp"].color
    for x in ("satimp-b1=1", "satimp-b1=3", "satimp-group"):
        r, g, b = (int(styles[x].color[i : i + 2], 16) for i in (1, 3, 5))
        assert r > g and r > b, (x, styles[x], red)
    # the longest method name a label starts with is its method: npo_topk, not npo
    assert styles["npo_topk-x"].color in {
        report.STYLES["npo_topk"].color,
        report._shade(report.STYLES["npo_topk"].color, -0.35),
        report._shade(report.STYLES["npo_topk"].color, 0.45),
    }


def test_epoch_ticks_are_whole_epochs() -> None:
    for epochs in (2, 3, 5):
        fig = report.es_curves_figure(curves_for(["ga", "satimp"], epochs))
        fig.canvas.draw()
        for ax in fig.axes:
            lo, hi = ax.get_xlim()
            ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
            assert ticks and all(float(t).is_integer() for t in ticks), (epochs, ticks)


def test_seeded_rows_draw_the_mean_and_the_95_interval() -> None:
    rows = [seeded("original", 0.9, 0.9, 0.0), seeded("satimp", 0.3, 0.7, 0.05)]
    ax = report.tradeoff_figure(rows).axes[0]
    line, _, bars = ax.containers[1].lines
    assert list(line.get_xydata()[0]) == pytest.approx([0.3, 0.7])
    spans = sorted(
        [float(v) for point in seg for v in point] for col in bars for seg in col.get_segments()
    )
    assert spans == [pytest.approx([0.25, 0.7, 0.35, 0.7]), pytest.approx([0.3, 0.65, 0.3, 0.75])]
    assert not ax.containers[0].has_xerr  # a reference without an interval: no bars


def test_write_report_writes_every_figure(tmp_path) -> None:
    weights = {"satimp": {"p": [0.1, 0.9], "w": [0.1, 1.0]}}
    md = report.write_report(
        tmp_path, CROWDED, config={"a": 1}, title="t", curves=curves_for(["ga"]), weights=weights
    )
    for name in ("tradeoff.png", "ablation.png", "es_per_epoch.png", "weights_vs_likelihood.png"):
        assert (tmp_path / name).stat().st_size > 1000
        assert f"]({name})" in md.read_text()


def test_settle_moves_labels_that_adjusttext_left_on_something() -> None:
    """The last resort after adjustText: labels stacked on one point and on a star's box move
    to free spots around their points."""
    fig, ax = report._figure(size=(4, 3))
    ax.set(xlim=(0, 1), ylim=(0, 1))
    star = ax.plot([0.5], [0.5], "*", ms=13)[0]
    texts = [ax.text(0.5, 0.5, name, ha="center", va="center") for name in ("aaa", "bbb", "ccc")]
    fig.canvas.draw()
    blocked = [star.get_window_extent(fig.canvas.get_renderer())]
    report._settle(ax, texts, [(0.5, 0.5)] * 3, blocked)
    labels, stars = label_boxes(fig)
    assert not [
        (a, b) for (a, x), (b, y) in itertools.combinations(labels.items(), 2) if x.overlaps(y)
    ]
    assert not [a for a, x in labels.items() if x.overlaps(stars[0])]
