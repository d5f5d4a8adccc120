"""The memory tasks for the shared trainer: the loss, the skill score and the gradient probe.

    task = MemoryTask(config, metadata)
    task.gradient_profile(params)      # {"distance": [...], "norm": [...]}: ||dL/dh_t|| against T-1-t

Loss: the adding task's squared error of the sum; copy and tagging's cross-entropy over the
scored steps (the mean per sequence). Metrics are ``(sum, count)`` pairs weighted by
``batch["weight"]``, per sequence:

* ``mse`` (adding) or ``accuracy`` (copy, tagging: the share of scored symbols right);
* ``skill``: the share of the gap between the trivial baseline and perfect that the model closes:
  ``1 - mse / (1/6)`` for adding (predicting the mean scores 0), ``(accuracy - c) / (1 - c)`` with
  chance ``c`` otherwise (``1/num_symbols`` for copy,
  ``1/num_symbols**2`` for tagging). 1 is perfect; 0 or below is no better than trivial.

``final_eval`` scores the fixed test set: ``test_loss``, ``test_mse`` or ``test_accuracy``, and
``test_skill``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.memory import data as data_lib
from experiments.memory.configs import default
from experiments.memory.model import MemoryModel
from seqjax.cells import LINEAR_KINDS
from seqjax.train import ConfigError, Task
from seqjax.train.config import check_inactive

PROBE_SEQUENCES = 256  # test sequences the gradient probe averages over


def check_config(config) -> None:
    m = config.model
    check_inactive(config, default.get_config(), ["model.forget_bias"], m.cell == "lstm",
                   f"model.cell='lstm' (this config has model.cell={m.cell!r})")
    check_inactive(config, default.get_config(), ["model.scan"], m.cell in LINEAR_KINDS,
                   f"model.cell one of {', '.join(LINEAR_KINDS)} (this config has model.cell={m.cell!r})")


def per_example(layout: data_lib.Layout, prediction, targets) -> dict:
    """Per-sequence ``loss``, ``score`` (squared error or accuracy) and ``skill``, each ``(B,)``."""
    if layout.task == "adding":
        se = jnp.square(prediction - targets)
        return {"loss": se, "mse": se, "skill": 1.0 - se / layout.baseline}
    ce = optax.softmax_cross_entropy_with_integer_labels(prediction, targets)
    acc = jnp.mean((jnp.argmax(prediction, -1) == targets).astype(prediction.dtype), axis=-1)
    chance = layout.baseline
    return {"loss": jnp.mean(ce, axis=-1), "accuracy": acc, "skill": (acc - chance) / (1.0 - chance)}


@partial(jax.jit, static_argnames="model")
def _metrics(model: MemoryModel, params, inputs, targets, weight):
    terms = per_example(model.layout, model(params, inputs), targets)
    n = jnp.sum(weight)
    return {k: (jnp.sum(weight * v), n) for k, v in terms.items()}


@partial(jax.jit, static_argnames="model")
def _grad_norms(model: MemoryModel, params, inputs, targets):
    return model.hidden_grad_norms(params, inputs, lambda pred: per_example(model.layout, pred, targets)["loss"])


class MemoryTask(Task):
    name = "memory"

    def __init__(self, config, metadata):
        super().__init__(config, metadata)
        check_config(config)
        data_lib.check_config(config)
        self.layout = data_lib.layout(config.data)
        try:
            self.model = MemoryModel.from_config(config.model, self.layout)
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def init(self, rng):
        return self.model.init(rng)

    def loss(self, params, batch, rng, *, train: bool, state):
        terms = per_example(self.layout, self.model(params, batch["inputs"]), batch["targets"])
        w = batch["weight"]
        n = jnp.sum(w)
        metrics = {k: (jnp.sum(w * v), n) for k, v in terms.items()}
        return jnp.sum(w * terms["loss"]) / jnp.maximum(n, 1.0), (metrics, state)

    def batch_tokens(self, batch) -> int:
        return int(np.prod(np.shape(batch["inputs"])[:2]))

    def final_eval(self, params, data, workdir: str) -> dict:
        sums: dict[str, list[float]] = {}
        for i in range(len(data.test)):
            b = data.test[i]
            metrics = _metrics(self.model, params, b["inputs"], b["targets"], b["weight"])
            for k, (s, n) in jax.device_get(metrics).items():
                acc = sums.setdefault(k, [0.0, 0.0])
                acc[0] += float(s)
                acc[1] += float(n)
        return {f"test_{k}": s / n for k, (s, n) in sums.items() if n}

    def gradient_profile(self, params, sequences: int = PROBE_SEQUENCES) -> dict:
        """``||dL/dh_t||`` (mean over ``sequences`` test sequences) against the distance ``T - 1 - t``
        from the last step: ``{"distance": [0, 1, ...], "norm": [...]}``, nearest step first."""
        test = data_lib.fixed_set(self.config.data, sequences, self.config.data.test_seed)
        norms = np.asarray(_grad_norms(self.model, params, jnp.asarray(test["inputs"]), jnp.asarray(test["targets"])))
        return {"distance": list(range(len(norms))), "norm": [float(v) for v in norms[::-1]]}
