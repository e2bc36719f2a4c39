"""bench/compare_open_unlearning.py: the config it writes for open-unlearning's evaluator
reaches every dataset its metrics read, and the comparison fails when one value is off."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cmp():
    spec = importlib.util.spec_from_file_location(
        "compare_open_unlearning", ROOT / "bench" / "compare_open_unlearning.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_ou(root: Path) -> Path:
    """A stand-in for open-unlearning's configs/eval/tofu_metrics: a metric reading one
    dataset, and one reading two through a nested pre_compute (like forget_quality)."""
    d = root / "configs" / "eval" / "tofu_metrics"
    d.mkdir(parents=True)
    (d / "A_Prob.yaml").write_text(
        "# @package eval.tofu.metrics.A_Prob\ndefaults:\n"
        "  - ../../data/datasets@datasets: TOFU_QA_a\n"
        "  - ../../collator@collators: Collator\nhandler: probability\n"
    )
    (d / "TR.yaml").write_text(
        "# @package eval.tofu.metrics.tr_lower\ndefaults:\n"
        "  - .@pre_compute.A_Prob: A_Prob\nhandler: truth_ratio\n"
    )
    (d / "FQ.yaml").write_text(
        "# @package eval.tofu.metrics.FQ\ndefaults:\n  - .@pre_compute.tr_lower: TR\n"
    )
    return root


def test_eval_config_points_every_dataset_at_the_local_files(cmp, tmp_path: Path) -> None:
    ou = _fake_ou(tmp_path / "ou")
    text = cmp.eval_yaml(ou, Path("/data"), ["A_Prob", "FQ"])
    assert text.startswith("# @package eval.tofu\n")
    cfg = yaml.safe_load(text)
    assert cfg["defaults"] == [{"tofu_metrics": ["A_Prob", "FQ"]}]
    local = {"path": "json", "data_files": "/data/${.name}.jsonl"}
    m = cfg["metrics"]
    assert m["A_Prob"]["datasets"]["TOFU_QA_a"]["args"]["hf_args"] == local
    nested = m["FQ"]["pre_compute"]["tr_lower"]["pre_compute"]["A_Prob"]["datasets"]
    assert nested["TOFU_QA_a"]["args"]["hf_args"] == local


def _outputs(rows: list[tuple], values: list[float]) -> tuple[dict, dict, dict]:
    """open-unlearning logs and satimp per_sample/summary holding the same numbers."""
    splits = {
        "{forget}": "forget10_perturbed",
        "retain_perturbed": "retain_perturbed",
        "real_authors_perturbed": "real_authors_perturbed",
        "world_facts_perturbed": "world_facts_perturbed",
    }
    ou, per = {}, {s: {} for s in splits.values()}
    for _, key, field, split, ours in rows:
        ou[key] = {"value_by_index": {str(i): {field: v} for i, v in enumerate(values)}}
        per[splits[split]][ours] = list(values)
    ou["forget_quality"] = {"agg_value": 0.25}
    ou["model_utility"] = {"agg_value": 0.5}
    return ou, per, {"forget_quality": 0.25, "model_utility": 0.5}


def test_compare_passes_equal_outputs_and_fails_one_bad_value(cmp) -> None:
    ou, per, summary = _outputs(cmp.ROWS, [0.1, 0.2, 0.3])
    lines, ok = cmp.compare(ou, per, summary)
    assert ok, "\n".join(lines)
    per["retain_perturbed"]["truth_ratio"][1] += 2e-4  # one item, twice the tolerance
    lines, ok = cmp.compare(ou, per, summary)
    assert not ok and any("retain truth ratio" in x and "FAIL" in x for x in lines)
    per["retain_perturbed"]["truth_ratio"][1] -= 2e-4
    summary["model_utility"] = 0.5 * (1 + 2e-5)
    assert not cmp.compare(ou, per, summary)[1]
    ou["forget_Q_A_ROUGE"]["value_by_index"].pop("2")  # an item missing on one side
    summary["model_utility"] = 0.5
    lines, ok = cmp.compare(ou, per, summary)
    assert not ok and any("item counts differ" in x for x in lines)


def test_main_reads_the_files(cmp, tmp_path: Path, capsys) -> None:
    ou, per, summary = _outputs(cmp.ROWS, [0.5, 1.0])
    (tmp_path / "TOFU_EVAL.json").write_text(json.dumps(ou))
    out = tmp_path / "satimp"
    out.mkdir()
    (out / "per_sample.json").write_text(json.dumps(per))
    (out / "summary.json").write_text(json.dumps(summary))
    assert cmp.main(["compare", str(tmp_path / "TOFU_EVAL.json"), str(out)]) == 0
    assert "PASS" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="per_sample.json not found"):
        cmp.main(["compare", str(tmp_path / "TOFU_EVAL.json"), str(tmp_path)])
