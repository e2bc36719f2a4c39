"""Bad input through the `satimp` command, one case per row: every case exits with code 2,
prints exactly one `satimp: error: …` line holding the expected text (naming the file and
line, the config key, or the argument), and writes nothing — neither the output folder nor
any other file under the test's folder (the commands run with it as working directory).

The rows cover malformed, missing and mistyped data records and files, out-of-range and
mistyped config values of every section, unknown keys, methods, criteria hyperparameters,
bad models, retain statistics and output folders. Nothing trains: each case stops at the
validation under test, in milliseconds (the data cases load the tiny model first).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from satimp import cli, experiment


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No hub, and the test's folder as working directory (a default cache or run folder
    would land there, and be seen)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def check_refused(argv: list[str], match: str, root: Path, capsys) -> None:
    """`satimp argv` exits 2 with one error line containing `match`; no file under `root`
    changes and `root/out` does not appear."""
    before = _files(root)
    code = cli.main(argv)
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("satimp: error: ")]
    assert code == 2, err
    assert len(lines) == 1 and err == lines[0] + "\n", err
    assert match in lines[0], lines[0]
    assert not (root / "out").exists()
    assert _files(root) == before


# ---------------------------------------------------------------- data records and files


def _set(field: str, value):
    def change(record: dict):
        return {**record, field: value}

    return change


def _drop(field: str):
    def change(record: dict):
        return {k: v for k, v in record.items() if k != field}

    return change


def _raw(text: str):
    return lambda record: text


RECORDS = [  # (split, change to its line 2, expected text)
    ("full", _drop("question"), "full.jsonl:2: missing field 'question'"),
    ("full", _drop("answer"), "full.jsonl:2: missing field 'answer'"),
    ("full", _set("question", 5), "full.jsonl:2: field 'question' must be a string"),
    ("full", _set("question", None), "field 'question' must be a string"),
    ("full", _set("question", ["a"]), "field 'question' must be a string"),
    ("full", _set("answer", 7), "full.jsonl:2: field 'answer' must be a string"),
    ("full", _set("answer", None), "field 'answer' must be a string"),
    ("full", _set("answer", {"a": 1}), "field 'answer' must be a string"),
    ("full", _set("keywords", "Tarsk"), "full.jsonl:2: field 'keywords' must be a list"),
    ("full", _set("keywords", [1]), "field 'keywords' must be a list of strings"),
    ("full", _set("keywords", {"a": "b"}), "field 'keywords' must be a list of strings"),
    ("full", _raw("[1, 2]"), "full.jsonl:2: expected a JSON object, got list"),
    ("full", _raw('"text"'), "full.jsonl:2: expected a JSON object, got str"),
    ("full", _raw("42"), "full.jsonl:2: expected a JSON object, got int"),
    ("full", _raw('{"question": "q", "answer": '), "full.jsonl:2: malformed JSON line"),
    ("retain90", _drop("answer"), "retain90.jsonl:2: missing field 'answer'"),
    ("forget10", _set("question", 1.5), "forget10.jsonl:2: field 'question' must be a string"),
    ("retain_perturbed", _drop("paraphrased_answer"), "missing field 'paraphrased_answer'"),
    ("retain_perturbed", _set("paraphrased_answer", 3), "'paraphrased_answer' must be a string"),
    ("retain_perturbed", _drop("perturbed_answer"), "missing field 'perturbed_answer'"),
    ("retain_perturbed", _set("perturbed_answer", "x"), "'perturbed_answer' must be a non-empty"),
    ("retain_perturbed", _set("perturbed_answer", []), "'perturbed_answer' must be a non-empty"),
    ("retain_perturbed", _set("perturbed_answer", None), "'perturbed_answer' must be a non-empty"),
    ("retain_perturbed", _set("perturbed_answer", ["a", 3]), "must hold strings only"),
    ("forget10_perturbed", _drop("question"), "forget10_perturbed.jsonl:2: missing field"),
    ("world_facts_perturbed", _set("answer", 0), "field 'answer' must be a string"),
]


@pytest.mark.parametrize(
    "split, change, match", RECORDS, ids=[f"{s}-{m[-30:]}" for s, _, m in RECORDS]
)
def test_bad_record(bench_dir, tiny_trained, tmp_path, capsys, split, change, match) -> None:
    """`finetune --split SPLIT` on a copy of the benchmark whose SPLIT has one bad record."""
    data = tmp_path / "data"
    shutil.copytree(bench_dir, data)
    path = data / f"{split}.jsonl"
    lines = path.read_text().splitlines()
    new = change(json.loads(lines[1]))
    lines[1] = new if isinstance(new, str) else json.dumps(new)
    path.write_text("\n".join(lines) + "\n")
    argv = ["finetune", "--data", str(data), "--model", str(tiny_trained), "--split", split]
    check_refused([*argv, "--out", str(tmp_path / "out")], match, tmp_path, capsys)


def _replace_split(data: Path, name: str, content: bytes) -> None:
    (data / "full.jsonl").unlink()
    (data / name).write_bytes(content)


FILES = [  # (what the `full` split's file becomes, expected text)
    (("full.jsonl", b""), "split 'full' is empty"),
    (("full.jsonl", b"\n\n"), "split 'full' is empty"),
    (("full.jsonl", b'{"question": "caf\xe9", "answer": "a"}\n'), "not valid UTF-8"),
    (("full.json", b'[{"question": "q", "answer": "a"},'), "full.json:1: malformed JSON"),
    (("full.json", b"[]"), "split 'full' is empty"),
    (("full.parquet", b"PAR1 not really parquet"), "not a readable parquet file"),
]


@pytest.mark.parametrize("file, match", FILES, ids=[f"{f[0]}-{m}" for f, m in FILES])
def test_bad_split_file(bench_dir, tiny_trained, tmp_path, capsys, file, match) -> None:
    data = tmp_path / "data"
    shutil.copytree(bench_dir, data)
    _replace_split(data, *file)
    argv = ["finetune", "--data", str(data), "--model", str(tiny_trained), "--split", "full"]
    check_refused([*argv, "--out", str(tmp_path / "out")], match, tmp_path, capsys)


# ---------------------------------------------------------------- every other argument

# Each row: (command line with {data} {model} {out} {tmp} placeholders, expected text).
# `finetune` and `unlearn` use a model path that does not exist unless {model} is given:
# config, method and folder errors are found before any model is looked at.
FT = "finetune --data {data} --model tiny --out {out}"
UL = "unlearn --data {data} --model {tmp}/no_model --out {out}"
ULM = "unlearn --data {data} --model {model} --out {out} --epochs 1"
RUN = "run --out {out} cache_dir={tmp}/cache"
CASES = [
    # train: every range, type and choice of TrainConfig (finetune; the same code serves unlearn)
    (f"{FT} --epochs 0", "train.epochs=0 is out of range"),
    (f"{FT} --epochs -3", "train.epochs=-3"),
    (f"{FT} train.epochs=three", "train.epochs: cannot read 'three' as int"),
    (f"{FT} train.epochs=2.5", "train.epochs: cannot read 2.5 as int"),
    (f"{FT} train.epochs=true", "train.epochs: cannot read True as int"),
    (f"{FT} --lr 0", "train.lr=0.0 is out of range"),
    (f"{FT} train.lr=.nan", "train.lr=nan"),
    (f"{FT} 'train.lr=[1]'", "train.lr: cannot read [1] as float"),
    (f"{FT} --batch-size 0", "train.batch_size=0"),
    (f"{FT} --batch-size -4", "train.batch_size=-4"),
    (f"{FT} --grad-accum 0", "train.grad_accum=0"),
    (f"{FT} --batch-size 6 --grad-accum 4", "train.grad_accum=4"),
    (f"{FT} --weight-decay -0.1", "train.weight_decay=-0.1"),
    (f"{FT} --warmup-epochs -1", "train.warmup_epochs=-1.0"),
    (f"{FT} train.warmup_steps=-1", "train.warmup_steps=-1"),
    (f"{FT} train.max_steps=-1", "train.max_steps=-1"),
    (f"{FT} --schedule cosine", "train.schedule='cosine'"),
    (f"{FT} --max-grad-norm -1", "train.max_grad_norm=-1.0"),
    (f"{FT} --precision fp16", "train.precision='fp16'"),
    (f"{FT} --max-length 4", "train.max_length=4"),
    (f"{FT} train.log_every=0", "train.log_every=0"),
    (f"{FT} --save-every -1", "train.save_every=-1"),
    (f"{FT} train.keep_checkpoints=0", "train.keep_checkpoints=0"),
    (f"{FT} --checkpoints 0", "train.checkpoints='0'"),
    (f"{FT} --checkpoints -2", "train.checkpoints='-2'"),
    (f"{FT} --checkpoints never", "train.checkpoints='never'"),
    (f"{FT} --checkpoints 1.5", "train.checkpoints='1.5'"),
    (f"{FT} --device tpu", "train.device='tpu'"),
    (f"{FT} --compile inductr", "train.compile='inductr'"),
    (f"{FT} train.eval_every_epoch=maybe", "train.eval_every_epoch: cannot read 'maybe'"),
    (f"{FT} train.eval_every_epoch=2", "train.eval_every_epoch: cannot read 2 as bool"),
    (f"{FT} train.gradient_checkpointing=sometimes", "train.gradient_checkpointing: cannot"),
    (f"{FT} train.deterministic=2", "train.deterministic: cannot read 2 as bool"),
    (f"{FT} train.seed=abc", "train.seed: cannot read 'abc' as int"),
    (f"{FT} --lora-r -1", "lora: r=-1 must be ≥ 0"),
    (f"{FT} --lora-r 4 --lora-alpha 0", "alpha=0.0 > 0"),
    (f"{FT} train.lora.dropout=1", "dropout=1.0 in [0, 1)"),
    (f"{FT} 'train.lora.targets=[]'", "targets=[] non-empty"),
    (f"{FT} train.lora.save=both", "lora.save='both'; valid: merged, adapter"),
    (f"{FT} train.lora.rank=4", "unknown config key train.lora.rank"),
    (f"{FT} train.lora=4", "train.lora: expected a mapping"),
    (f"{FT} train.learning_rate=1e-3", "unknown config key train.learning_rate"),
    (f"{FT} --save-every 2 --checkpoints 3", "train.save_every=2"),
    (f"{FT} --resume --checkpoints none", "--resume needs checkpoints"),
    # the same checks on `unlearn`, whose defaults differ
    (f"{UL} --method ga --epochs 0", "train.epochs=0"),
    (f"{UL} --method ga --checkpoints weekly", "train.checkpoints='weekly'"),
    (f"{UL} --method ga --resume", "--resume needs checkpoints"),
    (f"{UL} --method ga --device gpu", "train.device='gpu'"),
    # methods and their hyperparameters (checked before the model is looked at)
    (f"{UL} --method SatImp", "unknown method 'SatImp'; valid methods: ga, gd"),
    (f"{UL} --method ascent", "unknown method 'ascent'"),
    (f"{UL} method.name=nope", "unknown method 'nope'"),
    (f"{UL} --method npo --beta 0", "beta=0.0 must be > 0"),
    (f"{UL} --method simnpo --beta -1", "beta=-1.0 must be ≥ 0"),
    (f"{UL} --method satimp --beta2 -1", "beta2=-1.0 must be ≥ 0"),
    (f"{UL} --method simsat --beta -2", "beta=-2.0 must be ≥ 0"),
    (f"{UL} --method wga --beta -0.5", "beta=-0.5 must be ≥ 0"),
    (f"{UL} --method simimp --beta -1", "beta=-1.0 must be ≥ 0"),
    (f"{UL} --method topk --frac 0", "0 < frac <= 1"),
    (f"{UL} --method bottomk --frac 2", "0 < frac <= 1"),
    (f"{UL} --method random --frac -0.5", "0 < frac <= 1"),
    (f"{UL} --method npo_topk --frac 1.5", "0 < frac <= 1"),
    (f"{UL} --method annotated --rho -0.1", "0 <= rho <= 1"),
    (f"{UL} --method ga --beta1 5", "method 'ga' has no parameter 'beta1'"),
    (f"{UL} --method npo --frac 0.5", "method 'npo' has no parameter 'frac'"),
    (f"{UL} --method rmu --beta 1", "method 'rmu' has no parameter 'beta'"),
    (f"{UL} --method satimp --granularity group --group-size 0", "group_size=0"),
    (f"{UL} --method satimp --tau 0", "tau=0.0 out of range"),
    (f"{UL} --method gd --retain-pairing sorted", "train.retain_pairing='sorted' is out of range"),
    (f"{UL} --method satimp --tau -1", "tau=-1.0 out of range"),
    (f"{UL} --method satimp method.granularity=word", "unknown granularity 'word'"),
    (f"{UL} --method bottomk --granularity batch", "batch"),
    (f"{UL} --method gd method.retain=mse", "retain='mse'; valid"),
    (f"{UL} --method satimp 'method.params=[1, 2]'", "method.params: expected a mapping"),
    (f"{UL} --method satimp method.gamma=strong", "method.gamma: cannot read 'strong'"),
    (f"{UL} --method satimp method.tau=warm", "method.tau: cannot read 'warm' as float"),
    (f"{ULM} --method rmu --layer -1", "rmu layer=-1 out of range for a 2-layer model"),
    (f"{ULM} --method gd --retain retain77", "'retain77'"),
    (f"{ULM} --method ga --forget forget77", "'forget77'"),
    # models
    (f"{FT.replace('tiny', 'huge')}", "huge: no such model directory, and not a hub id"),
    ("finetune --data {data} --model {data}/full.jsonl --out {out}", "not a model directory"),
    ("eval --model {tmp}/badfmt --data {data} --out {out}", "satimp.json: not valid JSON"),
    # the prompt format finetune trains in
    (f"{FT} --protocol tofo", "unknown protocol 'tofo'; valid protocols"),
    (f"{FT} protocol.answer_tokens=both", "protocol.answer_tokens='both'; valid: separate, chat"),
    (f"{UL.replace('/no_model', '/adapter')} --method ga", "no base_model_name_or_path"),
    # `run` and `study`: every section of RunConfig
    (f"{RUN} foo=1", "unknown config key foo; valid keys under the top level"),
    (f"{RUN} unlearn.lrr=3", "unknown config key unlearn.lrr"),
    (f"{RUN} unlearn.lr=0", "unlearn.lr=0.0 is out of range"),
    (f"{RUN} unlearn.checkpoints=hourly", "unlearn.checkpoints='hourly'"),
    (f"{RUN} models.original_train.epochs=0", "models.original_train.epochs=0"),
    (f"{RUN} models.base_train.batch_size=-1", "models.base_train.batch_size=-1"),
    (f"{RUN} models.nope=1", "unknown config key models.nope"),
    (f"{RUN} benchmark=glue", "unknown benchmark 'glue'; valid benchmarks: tofu, muse, wmdp"),
    (f"{RUN} 'methods=[ga,nope]'", "unknown method 'nope'"),
    (f"{RUN} 'methods=[ga,ga]'", "label 'ga' appears twice"),
    (f"{RUN} 'methods=[]'", "methods: the list is empty"),
    (f"{RUN} 'methods=[{{{{name: satimp, foo: 1}}}}]'", "unknown config key methods[0].foo"),
    (f"{RUN} 'methods=[5]'", "methods[0]: expected a name or a mapping"),
    (f"{RUN} 'methods=[{{{{name: topk, params: {{{{frac: 3}}}}}}}}]'", "0 < frac <= 1"),
    (f"{RUN} eval.es_mode=slow", "eval.es_mode='slow'; valid: forward, generate"),
    (f"{RUN} eval.batch_size=big", "eval.batch_size: cannot read 'big' as int"),
    (f"{RUN} eval.generation_batch_size=0", "eval.generation_batch_size=0 must be ≥ 1"),
    (f"{RUN} synth.authors=many", "synth.authors: cannot read 'many' as int"),
    (f"{RUN} benchmark=muse muse.select=best", "muse.select='best'; valid: last, privleak"),
    (f"{RUN} benchmark=muse muse.min_k=0", "muse.min_k=0.0 must be in (0, 1]"),
    (f"{RUN} benchmark=wmdp wmdp.format=words", "wmdp.format='words'; valid: letters, text"),
    (f"{RUN} benchmark=wmdp 'wmdp.sets=[]'", "wmdp.sets is empty"),
    (f"{RUN} save_models=perhaps", "save_models: cannot read 'perhaps' as bool"),
    ("run {tmp}/missing.yaml --out {out}", "config file"),
    ("run --resume", "--resume needs the --out folder"),
    ("run --out {tmp}/absent --resume", "--resume: output folder"),
    ("study nope --out {out}", "unknown study 'nope'; valid studies: criteria"),
    ("study criteria unlearn.epochs=0 --out {out}", "unlearn.epochs=0"),
    ("study criteria --out {out} unlearn.epochs=0", "unlearn.epochs=0"),  # after an option
    ("study criteria --out {out} stray", "unrecognized arguments: stray"),
    # eval
    ("eval --model m --data {data} --out {out} --benchmark glue", "unknown benchmark 'glue'"),
    ("eval --model {tmp}/nothing --data {data} --out {out}", "cannot load model /"),
    ("eval --model m --data {data} --out {out} --retain-stats {tmp}/none.json", "none.json"),
    ("eval --model m --data {data} --out {out} --retain-stats {data}/full.jsonl", "not a retain"),
    # output folders that hold something already, and resuming nothing
    (f"{FT.replace('{out}', '{tmp}/full')}", "exists and is not empty"),
    (f"{UL.replace('{out}', '{tmp}/full')} --method ga", "exists and is not empty"),
    ("eval --model m --data {data} --out {tmp}/full", "exists and is not empty"),
    ("run --out {tmp}/full", "exists and is not empty"),
    ("data synth --out {tmp}/full", "exists and is not empty"),
    (f"{FT} --resume", "--resume: output folder"),
    (f"{UL} --method ga --checkpoints epoch --resume", "--resume: output folder"),
    # the synthetic generators
    ("data synth --out {out} --authors 0", "authors must be an integer"),
    ("data synth --out {out} --qa-per-author 99", "qa_per_author must be an integer"),
    ("data synth --out {out} --benchmark muse --people 7", "people must be a multiple of 5"),
    ("data synth --out {out} --benchmark wmdp --agents 0", "agents must be an integer"),
    ("data synth --out {out} --real-world-sizes 100 117", "real_world_sizes needs real_world"),
    ("data synth --out {out} --real-world --real-world-sizes 0 117", "real_authors: size must"),
    ("data synth --out {out} --real-world --real-world-sizes 100 161", "world_facts: size must"),
]


@pytest.mark.parametrize("line, match", CASES, ids=[c[0].split(" --")[0] + c[1] for c in CASES])
def test_bad_argument(bench_dir, tiny_trained, tmp_path, capsys, line, match) -> None:
    import shlex

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    (tmp_path / "badfmt").mkdir()
    (tmp_path / "badfmt" / "satimp.json").write_text("{")  # a model folder's broken record
    values = {"data": bench_dir, "model": tiny_trained, "out": tmp_path / "out", "tmp": tmp_path}
    argv = shlex.split(line.format(**{k: str(v) for k, v in values.items()}))
    check_refused(argv, match, tmp_path, capsys)


def test_eval_checks_every_record_before_the_model_is_read(
    bench_dir, tiny_trained, tmp_path, capsys, monkeypatch
) -> None:
    """`eval` on data whose forget10_perturbed has a bad record stops with the record's error
    before any model is read: a spy on the evaluation's model loading sees no call. (Without
    the check the model loads and the evaluation's own read of the split raises the same
    message later, so only the order tells them apart.)"""
    loaded: list[str] = []
    real_load = experiment.load_model

    def spy(path, **kw):
        loaded.append(str(path))
        return real_load(path, **kw)

    monkeypatch.setattr(experiment, "load_model", spy)  # what evaluate_saved calls
    data = tmp_path / "data"
    shutil.copytree(bench_dir, data)
    path = data / "forget10_perturbed.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = json.dumps(_drop("paraphrased_answer")(json.loads(lines[1])))
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    argv = ["eval", "--model", str(tiny_trained), "--data", str(data), "--out", str(out)]
    match = "forget10_perturbed.jsonl:2: missing field 'paraphrased_answer'"
    check_refused(argv, match, tmp_path, capsys)
    assert loaded == [], f"the model was read before the data check: {loaded}"
