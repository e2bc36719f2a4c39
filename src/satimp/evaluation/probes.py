"""What training logs after each epoch: probes `probe(model, tokenizer, epoch) -> dict` whose
values go into metrics.jsonl beside the per-step losses.

Which probe an unlearning run gets is decided in one place: `Benchmark.epoch_probe` for
`satimp run` / `study` (a benchmark's own probe, or its final evaluation at the last epoch);
a lone `unlearn` on data of its own gets `data_probe`, chosen by the data's shape.
"""

from __future__ import annotations

from collections.abc import Callable

from satimp.data.encoding import Encoded
from satimp.data.examples import Loaded, training_examples
from satimp.data.records import has_split
from satimp.evaluation.scoring import eval_precision, extraction_scores, text_probe_scores
from satimp.evaluation.tofu import tofu_es_probe
from satimp.protocol import Protocol
from satimp.protocol import resolve as resolve_protocol
from satimp.stats import mean

Probe = Callable[[object, object, int], dict]


def with_precision(probe, precision: str):
    """A per-epoch probe(model, tokenizer, epoch) run under `eval_precision` (None stays None)."""
    if probe is None or precision == "fp32":
        return probe

    def run(model, tokenizer, epoch):
        with eval_precision(model, precision):
            return probe(model, tokenizer, epoch)

    return run


def training_probe(examples: list[Encoded], tokenizer, n: int = 100) -> Callable:
    """Fine-tuning's per-epoch evaluation (`train.eval_every_epoch`): ES and EM of the first
    `n` training examples, one teacher-forced pass — how far memorisation has got."""

    def probe(model, _epoch) -> dict:
        s = extraction_scores(model, examples[:n], pad_id=tokenizer.pad_token_id)
        return {"train_es": s["es"].mean().item(), "train_em": s["em"].mean().item()}

    return probe


def data_probe(
    tokenizer,
    data,
    forget: list[Loaded],
    forget_examples: list[Encoded],
    retain: list[Loaded],
    *,
    max_length: int,
    batch_size: int,
    probe_texts: int = 100,
    protocol: Protocol | None = None,
) -> Callable:
    """Forget and retain ES (and EM) after an epoch, one teacher-forced pass each, on the
    splits unlearning has already read.

    One TOFU forget split (`forgetXX` beside its `forgetXX_perturbed`): exactly the final
    evaluation's ES (`tofu_es_probe`: its items, prompt and conventions). Other QA
    data: the forget split's encoded answers and `retain_perturbed` when there is one. Text
    corpora: `text_probe_scores` of the first `probe_texts` texts of the forget and retain
    splits.
    """
    protocol = resolve_protocol(protocol)
    refs = [s.ref for s in forget]
    if len(refs) == 1 and refs[0].startswith("forget") and has_split(data, f"{refs[0]}_perturbed"):
        return tofu_es_probe(data, refs[0], protocol=protocol, batch_size=batch_size)

    if forget and forget[0].texts is not None:
        texts = {
            name: [t for split in splits for t in split.texts or []][:probe_texts]
            for name, splits in (("forget", forget), ("retain", retain))
        }

        def probe(model, _tok, _epoch) -> dict:
            row = {}
            for name, items in texts.items():
                if items:
                    s = text_probe_scores(
                        model, tokenizer, items, max_length=max_length, batch_size=batch_size
                    )
                    row |= {f"{name}_es": mean(s["es"]), f"{name}_em": mean(s["em"])}
            return row

        return probe
    examples = {"forget": forget_examples}
    if has_split(data, "retain_perturbed"):
        examples["retain"] = training_examples(
            tokenizer,
            data,
            "retain_perturbed",
            max_length=max_length,
            system=protocol.system_prompt,
        )

    def es(model, _tok, _epoch) -> dict:
        row = {}
        for name, items in examples.items():
            s = extraction_scores(
                model,
                items,
                pad_id=tokenizer.pad_token_id,
                batch_size=batch_size,
                no_match=protocol.es_no_match,
            )
            row |= {f"{name}_es": s["es"].mean().item(), f"{name}_em": s["em"].mean().item()}
        return row

    return es


class LastEpochEvaluation:
    """A probe whose last epoch runs the benchmark's full evaluation instead of `probe`.

    Where the full evaluation computes the probe's values on the same items (TOFU with
    forward ES: `Benchmark.probe_keys`), the last epoch evaluates the model in memory once,
    logs the probe's keys from that evaluation, and keeps it in `result` (summary,
    per_sample) for the caller to report: the same numbers as evaluating the saved weights,
    one probe fewer per method. Like the probe, it runs while the optimizer's state is still
    held. `result` stays None until the last epoch has run (a run resumed after training
    finished evaluates its saved model instead).
    """

    def __init__(self, probe: Probe, evaluate: Callable, *, last_epoch: int, keys: tuple):
        self.probe, self.evaluate = probe, evaluate
        self.last_epoch, self.keys = last_epoch, keys
        self.result: tuple[dict, dict] | None = None

    def __call__(self, model, tokenizer, epoch: int) -> dict:
        if epoch < self.last_epoch:
            return self.probe(model, tokenizer, epoch)
        summary, per_sample = self.evaluate(model, tokenizer)
        self.result = (summary, per_sample)
        return {k: summary[k] for k in self.keys if k in summary}
