"""Evaluation: the metrics of `satimp.metrics` run over each benchmark's splits, in batches.

scoring (teacher-forced passes) → generation (greedy decoding) → tofu / muse / wmdp (a
benchmark's whole evaluation) → probes (what unlearning logs after each epoch); harness runs
lm-evaluation-harness on a saved model.
"""
