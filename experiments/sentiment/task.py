"""The sentiment Task for the shared trainer: model, data, loss and the final test report.

    make_task(config)             reads and validates the data, then builds the model
    SentimentTask(config)         the model alone (no data): enough to restore a checkpoint

Loss: binary cross-entropy on the logit (``optax.sigmoid_binary_cross_entropy``). Metrics are
``(sum, count)`` pairs weighted by ``batch["weights"]`` where present (the padding rows of the
last validation batch weigh 0), so ``val_loss`` and ``val_accuracy`` are exact means over the
validation reviews.

``final_eval`` scores the test split and writes ``confusion.json`` and ``results.md`` into the
workdir. The checkpoint metadata holds the vocabulary, so ``predict`` needs the workdir alone.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.sentiment.data import SentimentData, load_sentiment
from experiments.sentiment.model import SentimentModel
from seqjax.train import ConfigError, Task

LABELS = ("negative", "positive")
CONFUSION_FILE = "confusion.json"
RESULTS_FILE = "results.md"


class SentimentTask(Task):
    def __init__(self, config, data: SentimentData | None = None):
        self.config = config
        try:
            self.model = SentimentModel.from_config(config.model, vocab_size=config.data.vocab_size)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.data = data
        self.batch_size = int(config.train.batch_size)
        self._logits = jax.jit(lambda params, tokens, lengths: self.model(params, tokens, lengths))

    def _need_data(self) -> SentimentData:
        if self.data is None:
            raise RuntimeError("this SentimentTask was built without data (use make_task(config) to train)")
        return self.data

    # ------------------------------------------------------------------ Task
    def init(self, rng: jax.Array) -> dict:
        return self.model.init(rng)

    def loss(self, params, batch, rng, *, train: bool, state: Any):
        logits = self.model(params, batch["tokens"], batch["lengths"], rng=rng, train=train)
        labels = batch["labels"]
        per_example = optax.sigmoid_binary_cross_entropy(logits, labels.astype(logits.dtype))
        correct = ((logits > 0).astype(jnp.int32) == labels).astype(logits.dtype)
        w = batch.get("weights")
        w = jnp.ones_like(per_example) if w is None else w.astype(logits.dtype)
        n = jnp.sum(w)
        metrics = {"loss": (jnp.sum(w * per_example), n), "accuracy": (jnp.sum(w * correct), n)}
        return jnp.sum(w * per_example) / jnp.maximum(n, 1.0), (metrics, state)

    def train_batch(self, step: int) -> dict:
        return self._need_data().train_batch(step, self.batch_size, seed=int(self.config.seed))

    def eval_batches(self):
        data = self._need_data()
        return data.eval_batches("val", self.batch_size) if len(data.val) else []

    def batch_tokens(self, batch) -> int:
        return int(np.sum(batch["lengths"]))

    def metadata(self) -> dict:
        data = self._need_data()
        return {"vocab": json.loads(data.vocab.to_json()), "max_len": data.max_len,
                "truncate": self.config.data.get("truncate", "head"), "labels": list(LABELS)}

    def final_eval(self, params, workdir: str) -> dict:
        data = self._need_data()
        if not len(data.test):
            return {}
        labels, probs, loss_sum = [], [], 0.0
        for batch in data.eval_batches("test", self.batch_size):
            real = batch["weights"] > 0
            logits = np.asarray(self._logits(params, batch["tokens"], batch["lengths"]))[real]
            y = batch["labels"][real]
            loss_sum += float(np.sum(optax.sigmoid_binary_cross_entropy(logits, y.astype(np.float32))))
            labels.append(y)
            probs.append(1.0 / (1.0 + np.exp(-logits)))
        report = evaluate_predictions(np.concatenate(labels), np.concatenate(probs))
        report["test_loss"] = loss_sum / report["test_examples"]
        write_report(workdir, report, self.config)
        return report


def make_task(config) -> SentimentTask:
    """Loads and validates the data (a bad value raises ConfigError before anything is written)."""
    try:
        data = load_sentiment(config.data, seed=int(config.seed))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return SentimentTask(config, data)


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
