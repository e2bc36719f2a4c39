"""Two more recipes meant to keep a pretrained base's general knowledge in the original model:
weight interpolation towards the base, and rehearsal of the base's own answers.

    python bench/keep_knowledge.py CONFIG.yaml [key=value ...] --interpolate 0.8,0.65,0.5
    python bench/keep_knowledge.py CONFIG.yaml [key=value ...] --replay 120 --out DIR

Both start from the run's models (built, or found in the run's cache, as `satimp run` does).
--interpolate: θ = a·θ_original + (1 − a)·θ_base for each a (WiSE-FT's weight-space
ensemble; a = 1 is the original). --replay N: the base answers N generic prompts written here
(how-to questions about everyday tasks, descriptions of everyday things; no geography,
history, science or people, so none of the real-world sets' questions) by greedy decoding
(≤ 96 new tokens, cut after the last full sentence), and the original's recipe is run again on
`full` plus these N answers (a copy of the data folder under DIR with a `replay` split).
Each variant gets what bench/models.py measures of an original: teacher-forced accuracy on
the forget answers, whole key facts, forget ES, and the real-authors and world-facts
probability as a ratio to the base's with its 95 % bootstrap interval over items.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402
from models import accuracy, forget_es, general_knowledge, ratio_interval  # noqa: E402

TASKS = (
    "bake bread|plant tomatoes|learn to swim|write a thank-you note|fold a paper plane|"
    "brew a cup of tea|tidy a messy desk|start running|learn to juggle|care for a houseplant|"
    "sharpen a pencil|pack for a weekend trip|make a paper lantern|clean a bicycle chain|"
    "practise the guitar|knit a scarf|study for an exam|fall asleep faster|make pancakes|"
    "organise a bookshelf|save money on groceries|write a short poem|"
    "take better photos with a phone|keep a journal|repot a cactus|cook rice|make a budget|"
    "wash a wool sweater|prepare for a job interview|learn new words|paint a fence|"
    "stay focused while reading|plan a birthday party|make lemonade|draw a cat|"
    "walk a dog in the rain|fix a squeaky door|set up a fish tank|make a salad|"
    "memorise a speech|start a vegetable garden|make a sandwich|clean windows|"
    "choose a good book|teach a child to tie shoes|make a cup of hot chocolate|build a birdhouse|"
    "decorate a small room|write an email to a colleague|improve handwriting|pick ripe fruit|"
    "stretch after exercise|carry groceries|iron a shirt|make a paper boat|"
    "keep a room cool in summer|sort laundry|make soup|start a book club|learn to whistle"
).split("|")
THINGS = (
    "an umbrella|a teapot|a backpack|a lighthouse|a garden|a bicycle|a library|a candle|"
    "a violin|a kite|a rainy afternoon|a picnic|a market|a bakery|a train station|a snowman|"
    "a treehouse|a river boat|a pair of boots|a notebook|a clock|a windmill|a meadow|"
    "a campfire|a bridge|a scarf|a lantern|a playground|a wooden chair|a cup of coffee|"
    "a sunflower|a kitchen|a letter|a bus ride|a museum|a birthday cake|a quiet street|"
    "a forest path|a cat|a puppy|a beach|a mountain cabin|a thunderstorm|a paintbrush|a piano|"
    "a harbour|a school bus|a toolbox|a village square|an orchard|a pillow|a mirror|a hat|"
    "an old map|a bookshop|a rowing boat|a fountain|a staircase|a postcard|a greenhouse"
).split("|")


def replay_prompts() -> list[str]:
    """120 generic prompts: two forms for tasks, two for things, alternating."""
    tasks = [
        (f"How do I {t}?", f"Give me one short tip to {t}.")[i % 2] for i, t in enumerate(TASKS)
    ]
    things = [
        (f"Describe {t} in two sentences.", f"Write one sentence about {t}.")[i % 2]
        for i, t in enumerate(THINGS)
    ]
    return tasks + things


def whole_sentences(text: str, min_chars: int = 20) -> str:
    """`text` cut after its last sentence end (. ! ?), unless that leaves < min_chars."""
    ends = [i for i, c in enumerate(text) if c in ".!?"]
    return text[: ends[-1] + 1] if ends and ends[-1] >= min_chars else text


def measure(model_dir, data, cfg, protocol, base_gk) -> dict:
    acc = accuracy(model_dir, data, cfg.forget)
    out = {"accuracy": acc["answer"], "key_whole": acc["key_whole"]}
    out["forget_es"] = forget_es(model_dir, data, cfg.forget, protocol)
    gk = general_knowledge(model_dir, data, protocol)
    for name in gk:
        lo, hi = ratio_interval(gk[name], base_gk[name])
        out[name] = (sum(gk[name]) / sum(base_gk[name]), lo, hi)
    return out


def row(label: str, r: dict, seconds: float) -> str:
    ratio = lambda k: f"{r[k][0]:.3f} [{r[k][1]:.3f}, {r[k][2]:.3f}]"  # noqa: E731
    return (
        f"| {label} | {r['accuracy']:.3f} | {r['key_whole']:.3f} | {r['forget_es']:.3f} | "
        f"{ratio('real_authors')} | {ratio('world_facts')} | {seconds:.0f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("overrides", nargs="*", help="key=value, as `satimp run` takes them")
    ap.add_argument("--interpolate", help="comma-separated weights a of the original (0 < a ≤ 1)")
    ap.add_argument("--replay", type=int, default=0, help="how many generic prompts (≤ 120)")
    ap.add_argument("--out", help="--replay: where the data copy and the model go")
    args = ap.parse_args()
    if args.replay and not args.out:
        ap.error("--replay needs --out")
    if not 0 <= args.replay <= len(replay_prompts()):
        ap.error(f"--replay: 0 to {len(replay_prompts())}")

    from satimp.config import load_config
    from satimp.evaluate import generate_answers
    from satimp.experiment import finetune
    from satimp.models import load_model
    from satimp.study import RunConfig, prepare_data, run_models

    cfg = load_config(RunConfig, args.config, args.overrides)
    print(f"machine: {machine()}")
    data = Path(prepare_data(cfg, log=lambda *a: None))
    paths = run_models(cfg, data, log=lambda *a: None)
    protocol = cfg.resolved_protocol()
    base_gk = general_knowledge(paths["base"], data, protocol)
    rows = []
    if args.interpolate:
        base, tok = load_model(paths["base"])
        original, _ = load_model(paths["original"])
        theta_b, theta_o = base.state_dict(), original.state_dict()
        theta_o = {k: v.clone() for k, v in theta_o.items()}
        for a in (float(x) for x in args.interpolate.split(",")):
            t0 = time.time()
            original.load_state_dict({k: a * theta_o[k] + (1 - a) * theta_b[k] for k in theta_o})
            with tempfile.TemporaryDirectory() as d:
                original.save_pretrained(d)
                tok.save_pretrained(d)
                rows.append(
                    row(
                        f"interpolated, a = {a:g}",
                        measure(d, data, cfg, protocol, base_gk),
                        time.time() - t0,
                    )
                )
            print(rows[-1], flush=True)
    if args.replay:
        out = Path(args.out)
        copy = out / "data"
        stored = copy / "replay.jsonl"  # reused by a rerun with the same N, else written anew
        if not stored.exists() or len(stored.read_text().splitlines()) != args.replay:
            shutil.copytree(data, copy, dirs_exist_ok=True)
            base, tok = load_model(paths["base"])
            prompts = replay_prompts()[: args.replay]
            t0 = time.time()
            answers = generate_answers(
                base, tok, prompts, batch_size=128, max_new_tokens=96, system=protocol.system_prompt
            )
            print(f"base answered {len(prompts)} prompts in {time.time() - t0:.0f} s", flush=True)
            with open(stored, "w") as f:
                for q, a in zip(prompts, answers, strict=True):
                    f.write(json.dumps({"question": q, "answer": whole_sentences(a)}) + "\n")
        t0 = time.time()
        model_dir = out / "original"
        finetune(
            str(paths["base"]),
            copy,
            ["full", "replay"],
            cfg.models.original_train,
            model_dir,
            checkpoints=False,
            system=protocol.system_prompt,
        )
        build = time.time() - t0
        rows.append(
            row(
                f"rehearsal: full + {args.replay} base answers",
                measure(model_dir, data, cfg, protocol, base_gk),
                build,
            )
        )
        print(rows[-1], flush=True)
    print(
        "\n| original | forget accuracy | key facts whole | forget ES | real authors × base "
        "[95 % CI] | world facts × base [95 % CI] | time (s) |\n|---|---|---|---|---|---|---|"
    )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
