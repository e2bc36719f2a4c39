"""The main job end to end on a tiny setting, the model cache, and a user-added method."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from satimp.config import ModelsConfig, TrainConfig, load_config, read_yaml
from satimp.errors import InputError
from satimp.hf_compat import transformers_major
from satimp.models import cached
from satimp.protocol import ProtocolConfig
from satimp.study.config import RunConfig, study_config
from satimp.study.run import run
from satimp.train import Diverged

TINY = TrainConfig(
    epochs=2, lr=3e-3, batch_size=16, warmup_epochs=0, eval_every_epoch=False, device="cpu"
)


def tiny_config(tmp_path, methods) -> RunConfig:
    return RunConfig(
        name="tiny-e2e",
        synth=dataclasses.replace(RunConfig().synth, authors=10, qa_per_author=4),
        models=ModelsConfig(base="tiny", base_train=TINY, original_train=TINY, retain_train=TINY),
        unlearn=TrainConfig(epochs=1, lr=1e-3, batch_size=4, warmup_epochs=0, device="cpu"),
        methods=methods,
        cache_dir=str(tmp_path / "cache"),
        # the protocol's budget counts the prompt (~15 tokens here): ~15 new tokens
        eval=dataclasses.replace(RunConfig().eval, max_new_tokens=30),
    )


def test_run_writes_every_report_file_and_reports_a_failed_method(tmp_path, monkeypatch):
    import satimp.study.run as study

    real = study.unlearn

    def flaky(model_dir, data, forget, retain, method, *a, **kw):
        if method.name == "gd":
            raise RuntimeError("injected failure")
        if method.name == "npo":
            raise Diverged(4, "loss is nan")
        return real(model_dir, data, forget, retain, method, *a, **kw)

    monkeypatch.setattr(study, "unlearn", flaky)
    out = tmp_path / "run"
    rows = run(tiny_config(tmp_path, ["ga", "gd", "npo", "satimp"]), out, log=lambda *a: None)
    for name in (
        "report.md",
        "results.csv",
        "results.json",
        "tradeoff.png",
        "ablation.png",
        "es_per_epoch.png",
        "weights_vs_likelihood.png",
        "retain_stats.json",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in results] == ["original", "retain", "ga", "gd", "npo", "satimp"]
    assert results == rows
    by_name = {r["method"]: r for r in results}
    assert by_name["gd"]["status"].startswith("failed: RuntimeError: injected failure")
    assert by_name["gd"]["forget_es"] is None
    assert by_name["npo"]["status"] == "diverged at step 4: loss is nan"
    for name in ("ga", "satimp"):
        r = by_name[name]
        assert r["status"] == "ok"
        for key in ("forget_es", "forget_em", "retain_es", "forget_quality", "model_utility"):
            assert isinstance(r[key], float) and 0 <= r[key] <= 1, (name, key)
        assert r["seconds"] > 0
    report = (out / "report.md").read_text()
    for name in by_name:
        assert f"| {name} |" in report
    assert "injected failure" in (out / "methods" / "gd" / "error.txt").read_text()
    for name in ("ga", "satimp"):  # each finished method's worst items, linked from the report
        page = (out / "methods" / name / "worst_items.md").read_text()
        assert "## Forget items the model still reproduces" in page
        assert f"- [{name}](methods/{name}/worst_items.md)" in report
        per_sample = json.loads((out / "methods" / name / "per_sample.json").read_text())
        assert "generation" in per_sample["forget10_perturbed"]
    assert "methods/gd/worst_items.md" not in report
    # --resume: finished methods are taken from their row.json, failed ones run again.
    calls = []
    monkeypatch.setattr(
        study, "unlearn", lambda *a, **kw: calls.append(a[4].name) or flaky(*a, **kw)
    )
    again = run(
        tiny_config(tmp_path, ["ga", "gd", "npo", "satimp"]), out, log=lambda *a: None, resume=True
    )
    assert calls == ["gd", "npo"]
    for old, new in zip(rows[2:], again[2:], strict=True):
        assert new == old or (new["method"] in ("gd", "npo") and new["status"] == old["status"])
    assert not list((out / "methods").glob("*/checkpoints"))  # finished methods keep none
    # A second run reuses the cached models: no new model folder appears.
    before = sorted(p.name for p in (tmp_path / "cache" / "models").iterdir())
    run(tiny_config(tmp_path, ["ga"]), tmp_path / "run2", log=lambda *a: None)
    assert sorted(p.name for p in (tmp_path / "cache" / "models").iterdir()) == before


def test_cache_key_changes_with_every_input(tmp_path):
    built = []

    def build(d):
        d.mkdir(parents=True)
        (d / "config.json").write_text("{}")
        built.append(d)

    key = {"data": "abc", "model": "tiny", "train": {"lr": 1e-3, "epochs": 2}}
    first = cached(tmp_path, key, build)
    assert cached(tmp_path, dict(key), build) == first and len(built) == 1
    variants = [
        {**key, "data": "abd"},
        {**key, "model": "small"},
        {**key, "train": {"lr": 2e-3, "epochs": 2}},
        {**key, "train": {"lr": 1e-3, "epochs": 3}},
    ]
    paths = {cached(tmp_path, k, build) for k in variants}
    assert len(paths) == 4 and first not in paths and len(built) == 5
    assert not list(tmp_path.glob("*.tmp*"))  # builds land atomically


def test_interrupted_build_is_not_a_cache_hit(tmp_path):
    def broken(d):
        d.mkdir(parents=True)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cached(tmp_path, {"k": 1}, broken)
    assert not [p for p in tmp_path.iterdir() if not p.name.count(".tmp")]


def test_run_config_validation_and_studies(tmp_path):
    cfg = load_config(RunConfig, None, ["unlearn.lr=3e-4", "models.original_train.epochs=7"])
    assert cfg.unlearn.lr == 3e-4
    assert cfg.models.original_train.epochs == 7
    assert cfg.models.original_train.lr == RunConfig().models.original_train.lr  # kept default
    with pytest.raises(InputError, match="valid keys"):
        load_config(RunConfig, None, ["unlearn.lrr=3"])
    with pytest.raises(InputError, match="valid methods"):
        load_config(RunConfig, None, ["methods=[ga,nope]"])
    with pytest.raises(InputError, match="twice"):
        load_config(RunConfig, None, ["methods=[ga,ga]"])
    with pytest.raises(InputError, match="workers=0 must be ≥ 1"):
        load_config(RunConfig, None, ["workers=0"]).validate()
    for name in ("criteria", "granularity", "smoothness", "hardsampling"):
        s = study_config(name, RunConfig())
        s.validate()
        assert len(s.variants()) >= 4
    with pytest.raises(InputError, match="valid studies"):
        study_config("nope", RunConfig())


def test_validation_returns_the_benchmark_and_leaves_the_config_as_it_is() -> None:
    """`validate` checks and resolves, it does not rewrite: YAML 1.1 reads `2e-4` (no dot) as
    a string, and the learning-rate grid converts it where it is used, not in the config."""
    cfg = load_config(RunConfig, None, ["frontier.lrs=[2e-4, 1.0e-3]", "forget=forget05"])
    assert cfg.frontier.lrs == ["2e-4", 1e-3]
    before = dataclasses.replace(cfg, frontier=dataclasses.replace(cfg.frontier))
    bench = cfg.validate()
    assert cfg == before and cfg.frontier.lrs == ["2e-4", 1e-3]
    assert (bench.name, bench.forget, bench.retain_split) == ("tofu", "forget05", "retain95")
    assert bench.protocol == cfg.resolved_protocol()
    assert cfg.frontier.learning_rates(cfg.unlearn.lr) == [2e-4, 1e-3]
    assert RunConfig().frontier.learning_rates(2e-4) == [5e-5, 1e-4, 2e-4, 4e-4]
    with pytest.raises(InputError, match="frontier.lrs"):
        load_config(RunConfig, None, ["frontier.lrs=[fast]"]).validate()


def test_a_user_criterion_is_one_function_and_two_registry_lines(monkeypatch):
    """The README's 'Add your own criterion' recipe, run as written."""
    from satimp import objectives, weighting
    from satimp.config import MethodConfig

    def entropy_weights(logps, mask, *, beta):
        p = logps.detach().exp()
        return torch.where(mask, (-(p * logps.detach())).clamp_min(0).pow(beta), 0.0)

    monkeypatch.setitem(
        weighting.CRITERIA,
        "entropy",
        weighting.CriterionSpec(entropy_weights, {"beta": 1.0}, "soft", "entropy"),
    )
    monkeypatch.setitem(objectives.METHODS, "entropy", objectives.MethodSpec("weighted", "entropy"))
    obj = objectives.Objective(MethodConfig(name="entropy", params={"beta": 2.0}))
    logps = torch.log(torch.tensor([[0.5, 0.25]]))
    w = obj.weights(logps, torch.ones(1, 2, dtype=torch.bool), step=0, key_mask=None)
    expected = torch.tensor(
        [[(0.5 * torch.log(torch.tensor(2.0))) ** 2, (0.25 * torch.log(torch.tensor(4.0))) ** 2]]
    )
    torch.testing.assert_close(w, expected)


def test_same_seed_and_config_give_identical_results(tmp_path):
    """Two runs of one config (models and reference evaluations cached after the first; every
    method unlearns and is evaluated again), the second with the methods in two worker
    processes: every field of results.json equal except the wall-clock `seconds`, rows in the
    config's order (the suite runs torch on one thread, as each of the two workers does)."""
    cfg = tiny_config(tmp_path, ["satimp", "random"])
    first = run(cfg, tmp_path / "a", log=lambda *a: None)
    lines: list[str] = []
    second = run(dataclasses.replace(cfg, workers=2), tmp_path / "b", log=lines.append)
    assert [r["method"] for r in second] == ["original", "retain", "satimp", "random"]
    assert sum(" ok " in line and "forget ES" in line for line in lines) == 2

    def strip(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    assert strip(first) == strip(second)
    assert strip(json.loads((tmp_path / "a" / "results.json").read_text())) == strip(second)


def test_pretrained_base_gets_its_template_and_a_reference_row(tmp_path, tiny_trained):
    """A pretrained (non-preset) base with `models.chat_template`: the base is saved once with
    that template, every model built from it carries it, and the run reports the base's own
    scores as a reference row beside the original and retain models."""
    from satimp.models import CHAT_TEMPLATES, load_model
    from satimp.study.run import prepare_data, reference_rows, run_models

    one = dataclasses.replace(TINY, epochs=1)
    cfg = dataclasses.replace(
        tiny_config(tmp_path, ["ga"]),
        models=ModelsConfig(
            base=str(tiny_trained), chat_template="chatml", original_train=one, retain_train=one
        ),
        synth=dataclasses.replace(RunConfig().synth, authors=10, qa_per_author=4, real_world=False),
    )
    data = prepare_data(cfg, log=lambda *a: None)
    paths = run_models(cfg, cfg.validate(), data, log=lambda *a: None)
    for name in ("base", "original", "retain"):
        _, tok = load_model(paths[name])
        assert tok.chat_template == CHAT_TEMPLATES["chatml"], name
    _, own = load_model(tiny_trained)
    assert own.chat_template != CHAT_TEMPLATES["chatml"]  # the source folder is untouched
    rows, _ = reference_rows(
        cfg, cfg.validate(), data, paths, tmp_path / "refs", log=lambda *a: None
    )
    assert [r["method"] for r in rows] == ["original", "retain", "base"]


def test_model_cache_keys_cover_what_each_build_reads(tmp_path, bench_dir, monkeypatch):
    """On a pretrained base a build's key holds the records of the splits it trains on and
    the recipe without its execution-only fields: editing an evaluation-only split or the
    logging keeps both models, editing retain90 rebuilds the retain model alone. On a preset
    base (its tokenizer learns every text of the folder) any edit rebuilds all three."""
    import shutil

    import satimp.experiment as ex
    from satimp.models import key_digest

    built: list[str] = []  # key digests in build order (base, original, retain)

    def fake_cached(root, key, build, **kw) -> Path:  # records the key, builds nothing
        built.append(key_digest(key))
        return Path(root) / built[-1]

    monkeypatch.setattr(ex, "cached", fake_cached)
    data = tmp_path / "data"
    shutil.copytree(bench_dir, data)

    def digests(models: ModelsConfig) -> list[str]:
        built.clear()
        ex.build_models(data, ["full"], ["retain90"], models, tmp_path / "cache", log=lambda *a: 0)
        return list(built)

    def edit(split: str) -> None:
        path = data / f"{split}.jsonl"
        first, *rest = path.read_text().splitlines()
        record = json.loads(first) | {"answer": "An edited answer."}
        path.write_text("\n".join([json.dumps(record), *rest]) + "\n")

    one = dataclasses.replace(TINY, epochs=1)
    pretrained = ModelsConfig(base="org/pretrained", original_train=one, retain_train=one)
    preset = ModelsConfig(base="tiny", base_train=one, original_train=one, retain_train=one)
    first, first_preset = digests(pretrained), digests(preset)
    assert len(first) == 2 and len(first_preset) == 3

    edit("world_facts")
    edit("forget10")  # a split of its own file; `full` holds its own copy of those items
    assert digests(pretrained) == first
    quiet = dataclasses.replace(one, log_every=50, save_every=3, keep_checkpoints=1)
    assert digests(dataclasses.replace(pretrained, original_train=quiet)) == first
    faster = dataclasses.replace(one, lr=2e-3)
    assert digests(dataclasses.replace(pretrained, original_train=faster))[0] != first[0]
    after_preset = digests(preset)
    assert len(after_preset) == 3 and not set(after_preset) & set(first_preset)

    edit("retain90")
    now = digests(pretrained)
    assert now[0] == first[0] and now[1] != first[1]
    assert ex.splits_fingerprint(data, ["retain90[0:5]"]) != ex.splits_fingerprint(
        data, ["retain90"]
    )


def test_reference_evaluations_are_cached_on_model_data_and_protocol(
    tmp_path, tiny_trained, monkeypatch
):
    """A reference model is evaluated once per (model content, data, protocol, evaluation
    settings): the same folder twice, and a second call, reuse the saved result and give the
    same rows; a changed protocol switch, a changed weight or changed evaluation settings
    evaluate afresh."""
    import shutil

    from safetensors.torch import load_file, save_file

    import satimp.study.run as S

    calls = []
    real = S.evaluate_model

    def counting(cfg, bench, model_dir, data, stats):
        calls.append(Path(model_dir).name)
        return real(cfg, bench, model_dir, data, stats)

    monkeypatch.setattr(S, "evaluate_model", counting)
    quiet = lambda *a: None  # noqa: E731
    cfg = tiny_config(tmp_path, ["ga"])
    data = S.prepare_data(cfg, log=quiet)
    other = tmp_path / "other"
    shutil.copytree(tiny_trained, other)
    paths = {"original": tiny_trained, "retain": other}  # equal content: one evaluation

    def strip(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    first, stats = S.reference_rows(cfg, cfg.validate(), data, paths, tmp_path / "a", log=quiet)
    assert calls == ["other"]
    assert first[0]["forget_quality"] == pytest.approx(1.0)  # original ≡ retain here
    again, stats2 = S.reference_rows(cfg, cfg.validate(), data, paths, tmp_path / "b", log=quiet)
    assert calls == ["other"]
    assert strip(again) == strip(first) and stats2 == stats
    assert (tmp_path / "b" / "retain_stats.json").is_file()

    switched = dataclasses.replace(cfg, protocol=ProtocolConfig(es_no_match="inverse_length"))
    S.reference_rows(switched, switched.validate(), data, paths, tmp_path / "c", log=quiet)
    assert len(calls) == 2
    fewer = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, max_new_tokens=20))
    S.reference_rows(fewer, fewer.validate(), data, paths, tmp_path / "d", log=quiet)
    assert len(calls) == 3

    weights = load_file(other / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] * 1.5
    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    changed, _ = S.reference_rows(cfg, cfg.validate(), data, paths, tmp_path / "e", log=quiet)
    assert calls[3:] == ["other"]  # the original's folder is unchanged: still cached
    assert strip(changed) != strip(first)


def test_last_epoch_takes_its_probe_from_the_final_evaluation(tmp_path, monkeypatch):
    """TOFU reports the final model, whose full evaluation computes the probe's ES/EM on the
    same items: the last epoch runs that evaluation on the model in memory (the probe runs
    for epoch 1 only, no reload for the row), and the row equals the literal path — the
    saved weights loaded from disk, the probe and the full evaluation run on them (the same
    numbers to float rounding: ES/EM are means of per-item argmax matches, ≤ 1e-6 here)."""
    import satimp.study.run as study
    from satimp.benchmarks import Tofu, get_benchmark, load_retain_stats
    from satimp.models import load_model

    probes, evaluated = [], []
    real_eval = Tofu.epoch_eval

    def counted_eval(self, *a, **kw):
        probe = real_eval(self, *a, **kw)
        return lambda model, tok, epoch: probes.append(epoch) or probe(model, tok, epoch)

    monkeypatch.setattr(Tofu, "epoch_eval", counted_eval)
    real_model = study.evaluate_model
    monkeypatch.setattr(
        study,
        "evaluate_model",
        lambda cfg, bench, d, *a: evaluated.append(Path(d).name) or real_model(cfg, bench, d, *a),
    )
    cfg = dataclasses.replace(
        tiny_config(tmp_path, ["ga"]),
        unlearn=TrainConfig(epochs=2, lr=1e-3, batch_size=4, warmup_epochs=0, device="cpu"),
        save_models=True,
    )
    out = tmp_path / "run"
    rows = run(cfg, out, log=lambda *a: None)
    ga = next(r for r in rows if r["method"] == "ga")
    curve = json.loads((out / "methods/ga/row.json").read_text())["curve"]
    assert probes == [1] and "ga" not in evaluated
    assert [e["epoch"] for e in curve] == [1, 2]
    summary = json.loads((out / "methods/ga/summary.json").read_text())
    for key in ("forget_es", "forget_em", "retain_es", "retain_em"):
        assert curve[-1][key] == summary[key]
    # the literal path on the saved model
    bench = get_benchmark(cfg)
    data = study.prepare_data(cfg, log=lambda *a: None)
    model, tok = load_model(out / "methods/ga")
    probe = real_eval(bench, data, max_length=512, batch_size=cfg.eval.batch_size, stats=None)
    for key, value in probe(model, tok, 2).items():
        assert value == pytest.approx(curve[-1][key], abs=1e-6), key
    literal, per_sample = bench.evaluate(model, tok, data, **study._eval_kw(cfg))
    stats = load_retain_stats(out / "retain_stats.json", bench)  # FQ: against the retain model
    literal = bench.apply_stats(literal, per_sample, stats)
    for key, value in literal.items():
        assert value == pytest.approx(summary[key], abs=1e-6), key
    # a p-value can be far below 1e-6: relative to its size
    assert summary["forget_quality"] is not None
    assert literal["forget_quality"] == pytest.approx(summary["forget_quality"], rel=1e-6)
    assert ga["forget_quality"] == summary["forget_quality"]


def test_real_world_sizes_sample_the_real_sets_and_need_them(tmp_path) -> None:
    """synth.real_world_sizes writes that many real authors and world facts (the data folder's
    name says so); asked for with invented real-world sets (a preset base), it is refused before
    anything is written."""
    from satimp.study.run import prepare_data

    cfg = tiny_config(tmp_path, ["ga"])
    synth = dataclasses.replace(cfg.synth, real_world=True, real_world_sizes=[20, 30])
    data = prepare_data(dataclasses.replace(cfg, synth=synth), log=lambda *a: None)
    assert data.name.endswith("-real-20x30")
    for name, n in (("real_authors", 20), ("world_facts_perturbed", 30)):
        assert len((data / f"{name}.jsonl").read_text().splitlines()) == n
    refused = dataclasses.replace(cfg.synth, real_world_sizes=[20, 30], real_world=None)
    before = sorted(p.name for p in (tmp_path / "cache").iterdir())
    with pytest.raises(InputError, match="synth.real_world_sizes needs the real"):
        prepare_data(dataclasses.replace(cfg, synth=refused), log=lambda *a: None)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == before


@pytest.mark.parametrize(
    "path",
    sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")),
    ids=lambda p: p.name,
)
def test_shipped_run_configs_load_and_validate(path: Path) -> None:
    """Every config the docs point to parses into a RunConfig and passes its checks (methods,
    recipes, a named model's package), so a typo in one fails here, not an hour into a run.
    Under transformers 4.x (the low end of the supported range) a config on a GGUF model
    (smollm2) is refused instead, in one line."""
    if transformers_major() < 5 and "smollm2" in str(read_yaml(path).get("models")):
        with pytest.raises(InputError, match="needs transformers 5"):
            load_config(RunConfig, path)
        return
    cfg = load_config(RunConfig, path)
    cfg.validate()
    assert cfg.methods and cfg.name
