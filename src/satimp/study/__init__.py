"""Studies: `satimp run` and `satimp study` — config (what a study is), run (data → models →
unlearning with each method → evaluation → report), frontier (learning-rate fronts over
seeds), preflight (every input checked before anything is written) and analysis (weight
curves).
"""
