"""scripts/observations.py: the verdicts on the paper's observations (i)–(iii), on run folders
built here with known statistics — one where the observations hold, one where they fail, one
where the seeds cannot tell — and `verdict` itself by hand."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import scipy.stats

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "observations.py"
SEEDS = [0, 1, 2]


def _load():
    spec = importlib.util.spec_from_file_location("observations", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_verdict_by_hand() -> None:
    """a − b = [0.10, 0.11, 0.09]: mean 0.1, s = 0.01, t = 0.1/(0.01/√3) = 17.32 with 2
    degrees of freedom → p = 0.0033 < 0.05; half-width t(0.975, 2)·s/√3 = 4.3027·0.00577 =
    0.0248. Higher is better: a is significantly above b → holds; swapped → does not hold;
    lower is better (higher=False) → does not hold. a − b = [0.1, −0.05, 0.02] (t = 0.54,
    p = 0.64) → not distinguishable; one seed → no test → not distinguishable."""
    verdict = _load().verdict
    a, b = [0.30, 0.32, 0.35], [0.20, 0.21, 0.26]
    p = 2 * scipy.stats.t.sf(0.1 / (0.01 / 3**0.5), 2)
    assert p == pytest.approx(0.003317, abs=1e-6)
    evidence = f"difference +0.100 ± 0.025, paired p = {p:.3g}"
    assert verdict(a, b) == ("holds", evidence)
    assert verdict(b, a) == ("does not hold", evidence.replace("+0.100", "-0.100"))
    assert verdict(a, b, higher=False) == ("does not hold", evidence)
    assert verdict(b, a, higher=False)[0] == "holds"
    v, e = verdict([0.3, 0.2, 0.32], [0.2, 0.25, 0.3])
    assert v == "not distinguishable" and e.endswith("paired p = 0.644")
    assert verdict([0.3], [0.2]) == ("not distinguishable", "difference +0.100")


# ---------------------------------------------------------------- run folders


def _front(root: Path, hv: dict[str, list[float]], corr: dict[str, list[float]]) -> Path:
    """A `study frontier` folder: frontier.json's per-seed hypervolumes, and per seed a
    metrics.jsonl per method at two learning rates whose step rows average to corr[m][seed]
    (lr 1e-4: corr ± 0.1, lr 2e-4: corr; epoch rows carry no weight_corr)."""
    methods = {m: {"hv_es": {"per_seed": v}} for m, v in hv.items()}
    root.mkdir()
    (root / "frontier.json").write_text(json.dumps({"seeds": SEEDS, "methods": methods}))
    for m, values in corr.items():
        for seed, c in zip(SEEDS, values, strict=True):
            for lr, rows in (("1e-4", [c - 0.1, c + 0.1]), ("2e-4", [c])):
                d = root / f"seed-{seed}" / f"lr-{lr}" / "methods" / m
                d.mkdir(parents=True)
                lines = [{"step": i + 1, "loss": 1.0, "weight_corr": x} for i, x in enumerate(rows)]
                lines.append({"epoch": 1, "step": 2, "forget_es": 0.5})
                (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return root


def _study(root: Path, forget_es: dict[str, list[float]]) -> Path:
    """A `study granularity --seeds 3` folder: results.json with per-seed rows and the
    aggregate rows (n_seeds) that per_seed must skip."""
    rows = [{"method": m, "seed": s, "status": "ok", "forget_es": v}
            for m, values in forget_es.items() for s, v in zip(SEEDS, values, strict=True)]  # fmt: skip
    rows += [{"method": m, "n_seeds": 3, "forget_es_mean": 9.0} for m in forget_es]
    root.mkdir()
    (root / "results.json").write_text(json.dumps(rows))
    return root


def _table(module, monkeypatch, capsys, *dirs: Path) -> dict[tuple[str, str], tuple[str, str]]:
    """Run the script's main on `dirs`: {(observation, comparison): (verdict, evidence)}."""
    monkeypatch.setattr(sys, "argv", ["observations.py", *map(str, dirs)])
    module.main()
    out = {}
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("| ("):
            observation, comparison, verdict, evidence = line.strip("| ").split(" | ")
            out[(observation, comparison)] = (verdict, evidence)
    return out


SAT_IMP = ("(i) saturation > importance", "HV simsat vs simimp")
COMB = ("(i) combination > saturation", "HV satimp vs simsat")
CORR_SAT = ("(ii) weight vs likelihood, simsat > 0", "weight_corr")
CORR_IMP = ("(ii) weight vs likelihood, simimp < 0", "weight_corr")
CORR_BOTH = ("(ii) weight vs likelihood, satimp (either)", "weight_corr")
GRAN = ("(iii) satimp-token vs satimp-instance", "forget ES")
GRAN_SIM = ("(iii) simsat-token vs simsat-instance", "forget ES")

# The statistics by hand (t(0.975, 2) = 4.3027, 3 seeds, half-width 4.3027·s/√3):
# - STEP differences [0.10, 0.11, 0.09]: +0.100 ± 0.025, t = 17.3, p = 0.00332;
# - NOISE differences [0.1, −0.05, 0.02]: mean 0.0233, s = 0.0751 → ± 0.186, t = 0.54,
#   p = 0.644; [−0.02, 0.03, 0.01]: mean 0.0067, s = 0.0252 → ± 0.063, t = 0.46, p = 0.691;
# - token − instance [−0.3, −0.31, −0.3]: −0.303, s = 0.00577 → ± 0.014, t = −91, p = 0.00012;
# - correlations [0.5, 0.6, 0.55]: +0.550, s = 0.05 → ± 0.124 (interval excludes 0);
#   [0.1, 0.2, 0.3]: +0.200 ± 0.248; [0.5, −0.4, 0.1]: +0.067, s = 0.451 → ± 1.120.
BASE = [0.20, 0.21, 0.26]
UP = [x + d for x, d in zip(BASE, [0.10, 0.11, 0.09], strict=True)]  # [0.30, 0.32, 0.35]
UP2 = [x + d for x, d in zip(UP, [0.10, 0.11, 0.09], strict=True)]  # [0.40, 0.43, 0.44]
NOISY = [x + d for x, d in zip(BASE, [0.1, -0.05, 0.02], strict=True)]
CASES = {
    # simsat above simimp and satimp above simsat; correlations [.5, .6, .55] (mean .55,
    # s .05, ± 4.3027·.05/√3 = .124: the interval excludes 0) with the expected signs;
    # token and instance granularity 0.3 apart in forget ES on every seed.
    "hold": dict(
        hv={"simimp": BASE, "simsat": UP, "satimp": UP2},
        corr={"simsat": [0.5, 0.6, 0.55], "simimp": [-0.5, -0.6, -0.55], "satimp": [0.1, 0.2, 0.3]},
        es={"satimp-token": [0.2, 0.25, 0.3], "satimp-instance": [0.5, 0.56, 0.6],
            "simsat-token": UP2, "simsat-instance": UP},
        want={SAT_IMP: ("holds", "difference +0.100 ± 0.025, paired p = 0.00332"),
              COMB: ("holds", "difference +0.100 ± 0.025, paired p = 0.00332"),
              CORR_SAT: ("holds", "corr +0.550 ± 0.124"), CORR_IMP: ("holds", "corr -0.550 ± 0.124"),
              CORR_BOTH: ("—", "corr +0.200 ± 0.248"),
              GRAN: ("holds (they differ)", "difference -0.303 ± 0.014, paired p = 0.000121"),
              GRAN_SIM: ("holds (they differ)", "difference +0.100 ± 0.025, paired p = 0.00332")},
    ),
    # importance above saturation, saturation above the combination, on every seed
    "fail": dict(
        hv={"simimp": UP2, "simsat": UP, "satimp": BASE},
        corr={"simsat": [0.5, 0.6, 0.55]},
        es={"satimp-token": NOISY, "satimp-instance": BASE,
            "simsat-token": BASE, "simsat-instance": BASE},
        want={SAT_IMP: ("does not hold", "difference -0.100 ± 0.025, paired p = 0.00332"),
              COMB: ("does not hold", "difference -0.100 ± 0.025, paired p = 0.00332"),
              CORR_SAT: ("holds", "corr +0.550 ± 0.124"),
              GRAN: ("not distinguishable", "difference +0.023 ± 0.186, paired p = 0.644"),
              GRAN_SIM: ("not distinguishable", "difference +0.000 ± 0.000, paired p = 1")},
    ),
    # differences of both signs over the seeds; correlations of both signs
    "undecided": dict(
        hv={"simimp": BASE, "simsat": NOISY, "satimp": [x + d for x, d in zip(NOISY, [-0.02, 0.03, 0.01], strict=True)]},
        corr={"simsat": [0.5, -0.4, 0.1], "simimp": [-0.5, 0.4, -0.1]},
        es={"satimp-token": NOISY, "satimp-instance": BASE,
            "simsat-token": BASE, "simsat-instance": NOISY},
        want={SAT_IMP: ("not distinguishable", "difference +0.023 ± 0.186, paired p = 0.644"),
              COMB: ("not distinguishable", "difference +0.007 ± 0.063, paired p = 0.691"),
              CORR_SAT: ("not distinguishable", "corr +0.067 ± 1.120"),
              CORR_IMP: ("not distinguishable", "corr -0.067 ± 1.120"),
              GRAN: ("not distinguishable", "difference +0.023 ± 0.186, paired p = 0.644"),
              GRAN_SIM: ("not distinguishable", "difference -0.023 ± 0.186, paired p = 0.644")},
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_observations_table(case: str, tmp_path: Path, monkeypatch, capsys) -> None:
    """Each row of the table for a front and a granularity study built with the statistics
    of CASES[case] (differences, intervals and p-values as in test_verdict_by_hand). Rows of
    methods the front lacks (WGA) are left out; the weight correlation is each seed's mean
    over every step row of every lr."""
    c = CASES[case]
    front = _front(tmp_path / "front", c["hv"], c["corr"])
    study = _study(tmp_path / "granularity", c["es"])
    assert _table(_load(), monkeypatch, capsys, front, study) == c["want"]


def test_a_correlation_of_the_wrong_sign_does_not_hold(tmp_path, monkeypatch, capsys) -> None:
    """simsat's weight correlation significantly below 0 (−0.55 ± 0.124) and simimp's above
    (+0.55 ± 0.124): the opposite of (ii) on every seed."""
    corr = {"simsat": [-0.5, -0.6, -0.55], "simimp": [0.5, 0.6, 0.55]}
    front = _front(tmp_path / "front", {"simsat": BASE}, corr)
    table = _table(_load(), monkeypatch, capsys, front)
    assert table[CORR_SAT][0] == "does not hold"
    assert table[CORR_IMP][0] == "does not hold"
