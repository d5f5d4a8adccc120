"""The sentiment Task for the shared trainer: the classifier, its loss, scoring and the test report.

    task = SentimentTask(config, metadata)        # metadata: the vocabulary, from the data or a workdir
    task.probabilities(params, ["a fine film"])   # p(positive) per review

Loss: binary cross-entropy on the logit (``optax.sigmoid_binary_cross_entropy``). Metrics are
``(sum, count)`` pairs weighted by ``batch["weight"]`` (the fillers of the last padded validation
batch weigh 0), so ``val_loss`` and ``val_accuracy`` are exact means over the validation reviews.

``final_eval`` scores the test split and writes ``confusion.json`` and ``results.md`` into the
workdir.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.sentiment.configs import default
from experiments.sentiment.data import encode
from experiments.sentiment.model import SentimentModel
from seqjax.cells import LINEAR_KINDS
from seqjax.data import WordVocab, tokenize
from seqjax.train import ConfigError, Task
from seqjax.train.config import check_inactive

LABELS = ("negative", "positive")
CONFUSION_FILE = "confusion.json"
RESULTS_FILE = "results.md"


def check_config(config) -> None:
    m = config.model
    check_inactive(config, default.get_config(), ["model.forget_bias"], m.cell == "lstm",
                   f"model.cell='lstm' (this config has model.cell={m.cell!r})")
    check_inactive(config, default.get_config(), ["model.scan"], m.cell in LINEAR_KINDS,
                   f"model.cell one of {', '.join(LINEAR_KINDS)} (this config has model.cell={m.cell!r})")


@partial(jax.jit, static_argnames="model")
def _logits(model: SentimentModel, params, tokens, lengths):
    return model(params, tokens, lengths)


class SentimentTask(Task):
    name = "sentiment"
    metadata_must_match = ("vocab",)  # the embedding rows stand for these words

    def __init__(self, config, metadata):
        super().__init__(config, metadata)
        check_config(config)
        try:
            self.model = SentimentModel.from_config(config.model, vocab_size=config.data.vocab_size)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.vocab = WordVocab.from_json(metadata["vocab"])

    def init(self, rng: jax.Array) -> dict:
        return self.model.init(rng)

    def loss(self, params, batch, rng, *, train: bool, state: Any):
        logits = self.model(params, batch["tokens"], batch["lengths"], rng=rng, train=train)
        labels = batch["labels"]
        per_example = optax.sigmoid_binary_cross_entropy(logits, labels.astype(logits.dtype))
        correct = ((logits > 0).astype(jnp.int32) == labels).astype(logits.dtype)
        w = batch["weight"].astype(logits.dtype)
        n = jnp.sum(w)
        metrics = {"loss": (jnp.sum(w * per_example), n), "accuracy": (jnp.sum(w * correct), n)}
        return jnp.sum(w * per_example) / jnp.maximum(n, 1.0), (metrics, state)

    def batch_tokens(self, batch) -> int:
        return int(np.sum(batch["lengths"] * (batch["weight"] > 0)))

    # ------------------------------------------------------------------ scoring
    def probabilities(self, params, texts: Sequence[str], names: Sequence[str] | None = None,
                      batch_size: int = 256) -> np.ndarray:
        """p(positive) (float64) of each review, tokenised and truncated exactly as in training.

        An empty review (no words after tokenisation) raises ValueError naming it."""
        if not texts:
            raise ValueError("no reviews to score")
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not tokenize(text):
                where = names[i] if names else f"review {i + 1}"
                raise ValueError(f"{where} is empty (no words after tokenisation): {text!r:.60}")
        tokens, lengths = encode(self.vocab, texts, int(self.metadata["max_len"]), self.metadata["truncate"])
        logits = [np.asarray(_logits(self.model, params, tokens[i:i + batch_size], lengths[i:i + batch_size]))
                  for i in range(0, len(texts), batch_size)]
        return 1.0 / (1.0 + np.exp(-np.concatenate(logits).astype(np.float64)))

    def final_eval(self, params, data, workdir: str) -> dict:
        if not len(data.test):
            return {}
        labels, probs, loss_sum = [], [], 0.0
        for i in range(len(data.test)):
            batch = data.test[i]
            real = batch["weight"] > 0
            logits = np.asarray(_logits(self.model, params, batch["tokens"], batch["lengths"]))[real]
            y = batch["labels"][real]
            loss_sum += float(np.sum(optax.sigmoid_binary_cross_entropy(logits, y.astype(np.float32))))
            labels.append(y)
            probs.append(1.0 / (1.0 + np.exp(-logits)))
        report = evaluate_predictions(np.concatenate(labels), np.concatenate(probs))
        report["test_loss"] = loss_sum / report["test_examples"]
        write_report(workdir, report, self.config)
        return report


# ----------------------------------------------------------------------------- reporting


def evaluate_predictions(labels: np.ndarray, probs: np.ndarray) -> dict:
    """Accuracy and the confusion matrix ``[[TN, FP], [FN, TP]]`` (rows: true, columns: predicted)."""
    labels = np.asarray(labels).astype(int)
    pred = (np.asarray(probs) > 0.5).astype(int)
    confusion = [[int(np.sum((labels == t) & (pred == p))) for p in (0, 1)] for t in (0, 1)]
    n = len(labels)
    return {"test_accuracy": float(np.mean(pred == labels)) if n else float("nan"),
            "test_examples": n, "test_confusion": confusion}


def write_report(workdir: str, report: dict, config) -> None:
    (tn, fp), (fn, tp) = report["test_confusion"]
    n = report["test_examples"]
    with open(os.path.join(workdir, CONFUSION_FILE), "w") as f:
        json.dump({"labels": list(LABELS), "rows": "true label", "columns": "predicted label",
                   "matrix": report["test_confusion"], "accuracy": report["test_accuracy"],
                   "examples": n}, f, indent=2)
    m, d = config.model, config.data
    model = (f"{'Bi' if m.bidirectional else ''}{m.cell.upper()}({m.hidden}) x{m.num_layers}, "
             f"embed {m.embed_dim}, pooling {m.pooling}")
    lines = [
        "| source | model | vocab | max_len | steps | test accuracy | test loss |",
        "|---|---|---|---|---|---|---|",
        f"| {d.source} | {model} | {d.vocab_size} | {d.max_len} | {config.train.steps} "
        f"| {report['test_accuracy']:.4f} | {report['test_loss']:.4f} |",
        "",
        f"Confusion matrix on {n} test reviews (rows: true, columns: predicted):",
        "",
        "| | predicted negative | predicted positive |",
        "|---|---|---|",
        f"| **negative** | {tn} | {fp} |",
        f"| **positive** | {fn} | {tp} |",
        "",
    ]
    with open(os.path.join(workdir, RESULTS_FILE), "w") as f:
        f.write("\n".join(lines))
