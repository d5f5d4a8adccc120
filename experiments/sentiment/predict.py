"""Score reviews with a trained sentiment model, from its workdir alone.

    python -m experiments.sentiment.predict --workdir W "this movie was wonderful" "a dull mess"
    python -m experiments.sentiment.predict --workdir W --file reviews.txt     # one review per line

Prints one line per review: the probability that it is positive, a tab, the review. The config,
the vocabulary (checkpoint metadata) and the params all come from ``W``; reviews are tokenised and
truncated to ``data.max_len`` exactly as in training. ``--which best`` (default) takes the
checkpoint with the best ``train.best_metric``, ``--which latest`` the last one.

Errors (exit status 2, a message on stderr): a workdir without a checkpoint, an empty review
(no words after tokenisation), an unreadable or empty ``--file``, no review at all.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import jax
import numpy as np

from experiments.sentiment.task import SentimentTask
from seqjax.data.text import PAD_ID, WordVocab, pad_batch, read_text_file, tokenize
from seqjax.train import load_from_workdir


class PredictError(ValueError):
    """Bad input to the predictor: a workdir without a checkpoint, an empty review, ..."""


class Predictor:
    """The model, params and vocabulary of a workdir; ``predictor(texts)`` gives p(positive)."""

    def __init__(self, workdir: str, which: str = "best"):
        try:
            config, params, metadata = load_from_workdir(workdir, lambda c: SentimentTask(c), which=which)
        except FileNotFoundError as e:
            raise PredictError(f"{e}; train one first with "
                               f"python -m experiments.sentiment --workdir {workdir}") from None
        if "vocab" not in metadata:
            raise PredictError(f"the checkpoint in {workdir} has no vocabulary in its metadata; "
                               "was it written by experiments.sentiment?")
        self.config, self.params = config, params
        self.vocab = WordVocab.from_json(metadata["vocab"])
        self.max_len = int(metadata.get("max_len", config.data.max_len))
        self.keep = metadata.get("truncate", "head")
        self.model = SentimentTask(config).model
        self._logits = jax.jit(lambda p, tokens, lengths: self.model(p, tokens, lengths))

    def encode(self, texts: Sequence[str], names: Sequence[str] | None = None):
        """``(tokens, lengths)`` padded to the longest review; raises PredictError on an empty one."""
        if not texts:
            raise PredictError("no reviews to score")
        ids = []
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not tokenize(text):
                where = names[i] if names else f"review {i + 1}"
                raise PredictError(f"{where} is empty (no words after tokenisation): {text!r:.60}")
            ids.append(self.vocab.encode(text, self.max_len, self.keep))
        return pad_batch(ids, PAD_ID)

    def __call__(self, texts: Sequence[str], names: Sequence[str] | None = None,
                 batch_size: int = 256) -> np.ndarray:
        """Probabilities (float64, one per text) that each review is positive."""
        tokens, lengths = self.encode(texts, names)
        logits = [np.asarray(self._logits(self.params, tokens[i:i + batch_size], lengths[i:i + batch_size]))
                  for i in range(0, len(texts), batch_size)]
        return 1.0 / (1.0 + np.exp(-np.concatenate(logits).astype(np.float64)))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m experiments.sentiment.predict",
        description="Probability that each review is positive, from a trained workdir.")
    p.add_argument("--workdir", required=True, help="the run's workdir (holds checkpoints/)")
    p.add_argument("--file", help="a UTF-8 text file with one review per line (blank lines are skipped)")
    p.add_argument("--which", choices=("best", "latest"), default="best",
                   help="which checkpoint: best by the run's train.best_metric (default), or latest")
    p.add_argument("texts", nargs="*", help="reviews to score")
    return p


def main(argv: list[str] | None = None) -> np.ndarray:
    parser = _parser()
    args = parser.parse_args(argv)
    texts, names = list(args.texts), [f"review {i + 1}" for i in range(len(args.texts))]
    try:
        if args.file:
            try:
                content = read_text_file(args.file, min_chars=0)
            except OSError as e:
                raise PredictError(f"cannot read --file {args.file}: {e.strerror}") from None
            except ValueError as e:  # not UTF-8
                raise PredictError(str(e)) from None
            lines = [(n, line) for n, line in enumerate(content.splitlines(), start=1) if line.strip()]
            if not lines:
                raise PredictError(f"--file {args.file} holds no reviews (all lines are blank)")
            texts += [line for _, line in lines]
            names += [f"line {n} of {args.file}" for n, _ in lines]
        if not texts:
            raise PredictError("give at least one review, or --file PATH")
        for text, name in zip(texts, names, strict=True):  # fail before loading anything
            if not tokenize(text):
                raise PredictError(f"{name} is empty (no words after tokenisation): {text!r:.60}")
        predictor = Predictor(args.workdir, which=args.which)
        probs = predictor(texts, names)
    except PredictError as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    for prob, text in zip(probs, texts, strict=True):
        print(f"{prob:.4f}\t{text}")
    return probs


if __name__ == "__main__":
    main()
