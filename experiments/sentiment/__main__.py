"""python -m experiments.sentiment [--workdir DIR] [--config FILE_OR_PRESET] [--config.KEY=VALUE ...]

Trains the sentiment classifier (see seqjax.train.cli for the options). Its inference verb:

    python -m experiments.sentiment predict --workdir W "this movie was wonderful" "a dull mess"
    python -m experiments.sentiment predict --workdir W --file reviews.txt     # one review per line

``predict`` prints one line per review: the probability that it is positive, a tab, the review.
The config, the vocabulary and the params all come from W.
"""

from __future__ import annotations

import numpy as np

from experiments.sentiment import data
from experiments.sentiment.task import SentimentTask
from seqjax.data import read_text_file
from seqjax.train import load_from_workdir, main
from seqjax.train.cli import run_verb, verb_parser


def predict(argv: list[str]) -> np.ndarray:
    """Scores reviews with a trained workdir; returns the probabilities."""
    parser = verb_parser("sentiment", "predict", "Probability that each review is positive, from a trained workdir.")
    parser.add_argument("--file", help="a UTF-8 text file with one review per line (blank lines are skipped)")
    parser.add_argument("texts", nargs="*", help="reviews to score")

    def body(args) -> np.ndarray:
        texts, names = list(args.texts), [f"review {i + 1}" for i in range(len(args.texts))]
        if args.file:
            lines = [(n, line) for n, line in enumerate(read_text_file(args.file, min_chars=0).splitlines(), 1)
                     if line.strip()]
            if not lines:
                raise ValueError(f"--file {args.file} holds no reviews (all lines are blank)")
            texts += [line for _, line in lines]
            names += [f"line {n} of {args.file}" for n, _ in lines]
        if not texts:
            raise ValueError("give at least one review, or --file PATH")
        try:
            run = load_from_workdir(args.workdir, SentimentTask, which=args.which)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{e}; train one first with ./launch.sh sentiment --workdir {args.workdir}") \
                from None
        probs = run.task.probabilities(run.params, texts, names)
        for prob, text in zip(probs, texts, strict=True):
            print(f"{prob:.4f}\t{text}")
        return probs

    return run_verb(parser, argv, body)


def run(argv: list[str] | None = None):
    return main("sentiment", SentimentTask, data.load, argv, verbs={"predict": predict})


if __name__ == "__main__":
    run()
