"""python -m experiments.memory [--workdir DIR] [--config FILE_OR_PRESET] [--config.KEY=VALUE ...]

Trains a cell on a long-range memory task (the adding problem, the copy task, or two-sided
tagging; see experiments/memory/data.py and seqjax.train.cli for the options). Presets: default
(adding), copy, tagging, tiny. Its inference verb:

    python -m experiments.memory gradients --workdir W [--init] [--sequences 256]

``gradients`` prints ``||dL/dh_t||`` (the mean over test sequences) against the distance of step
``t`` from the last step, for the trained params (or, with ``--init``, for the initial params of
the run's seed), and writes them to ``W/gradients[_init].json``. It needs a one-layer
unidirectional model.
"""

from __future__ import annotations

import json
import os

import jax

from experiments.memory import data
from experiments.memory.task import PROBE_SEQUENCES, MemoryTask
from seqjax.train import load_from_workdir, main
from seqjax.train.cli import run_verb, verb_parser


def gradients(argv: list[str]) -> dict:
    """Prints (and returns) the gradient profile of a trained workdir."""
    parser = verb_parser("memory", "gradients", "||dL/dh_t|| against the distance from the last step.")
    parser.add_argument("--init", action="store_true", help="the run's initial params instead of the trained ones")
    parser.add_argument("--sequences", type=int, default=PROBE_SEQUENCES, help="test sequences to average over")

    def body(args) -> dict:
        if args.sequences < 1:
            raise ValueError(f"--sequences must be >= 1, got {args.sequences}")
        run = load_from_workdir(args.workdir, MemoryTask, which=args.which)
        params = run.task.init(jax.random.PRNGKey(run.config.seed)) if args.init else run.params
        profile = run.task.gradient_profile(params, args.sequences)
        what = "initial" if args.init else f"step {run.step}"
        print(f"# ||dL/dh_t||, {run.config.model.cell}, {run.config.data.task} lag {run.config.data.lag}, {what} "
              f"params, mean over {args.sequences} test sequences")
        print("distance\tnorm")
        for distance, norm in zip(profile["distance"], profile["norm"], strict=True):
            print(f"{distance}\t{norm:.4e}")
        path = os.path.join(args.workdir, "gradients_init.json" if args.init else "gradients.json")
        with open(path, "w") as f:
            json.dump({**profile, "params": what}, f)
        return profile

    return run_verb(parser, argv, body)


def run(argv: list[str] | None = None):
    return main("memory", MemoryTask, data.load, argv, verbs={"gradients": gradients})


if __name__ == "__main__":
    run()
