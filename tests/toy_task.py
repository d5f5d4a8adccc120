"""A tiny experiment for the trainer's tests: a one-hidden-layer MLP regressing a fixed linear map.

Pure JAX and numpy (no seqjax models), a few hundred parameters, one millisecond a step. The
module is also a config file: ``--config tests/toy_task.py`` loads :func:`get_config`.

Knobs in ``config.data`` used by the tests:
  nan_at_step   the train batch of this step holds a NaN, so its loss is NaN
  delay         seconds each train batch takes to read, to make a run slow enough to kill mid-way
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from seqjax.data import ArraySource, eval_batches, train_batches
from seqjax.train import Data, Task, base_config


def get_config() -> ConfigDict:
    config = base_config()
    config.seed = 0
    config.train.steps = 40
    config.train.batch_size = 16
    config.train.learning_rate = 0.03
    config.train.log_every = 10
    config.train.eval_every = 20
    config.train.checkpoint_every = 20
    config.train.max_to_keep = 2
    config.eval.batch_size = 32
    config.model = ConfigDict(dict(hidden=8))
    config.data = ConfigDict(dict(dim=4, examples=200, val_examples=50, nan_at_step=-1, delay=0.0))
    return config


def _uniform(key, shape):
    """Numbers in [-1, 1) from a key: a sine hash, since XLA:CPU takes ~0.5 s to compile
    jax.random's threefry bits, and the tests compile many small programs."""
    seed = jax.random.key_data(key).astype(jnp.float32)
    index = jnp.arange(int(np.prod(shape)), dtype=jnp.float32).reshape(shape)
    v = jnp.sin(index * 12.9898 + seed[0] * 1e-3 + seed[1] * 78.233) * 43758.5453
    return 2.0 * (v - jnp.floor(v)) - 1.0


def _examples(dim: int, n: int, seed) -> ArraySource:
    w_true = np.random.default_rng(1234).normal(size=(dim, 1)).astype(np.float32)  # one map for every seed
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    y = x @ w_true + 0.01 * rng.normal(size=(n, 1)).astype(np.float32)
    return ArraySource(x=x, y=y)


def load(config: ConfigDict) -> Data:
    d = config.data

    def spoil(step, batch):
        if d.delay:
            time.sleep(d.delay)
        if step == d.nan_at_step:
            batch = dict(batch, x=batch["x"].copy())
            batch["x"][0, 0] = np.nan
        return batch

    train = train_batches(_examples(d.dim, d.examples, [config.seed, 0]), config.train.batch_size, config.seed)
    val = eval_batches(_examples(d.dim, d.val_examples, [config.seed, 1]), config.eval.batch_size)
    return Data(train=train.map_with_index(spoil), val=val, metadata={"dim": d.dim, "names": ["x", "y"]})


class ToyTask(Task):
    name = "toy"

    def __init__(self, config, metadata):
        super().__init__(config, metadata)
        self.dim = metadata["dim"]
        self.hidden = config.model.hidden
        self.logged_steps: list[int] = []

    def init(self, rng):
        k1, k2 = jax.random.split(rng)
        return {
            "hidden": {"w": _uniform(k1, (self.dim, self.hidden)) / np.sqrt(self.dim),
                       "b": jnp.full((self.hidden,), 0.1)},
            "out": {"w": _uniform(k2, (self.hidden, 1)) / np.sqrt(self.hidden), "b": jnp.full((1,), 0.1)},
        }

    def init_state(self, batch_size):
        return {"examples_seen": jnp.zeros((), jnp.int32)}

    def loss(self, params, batch, rng, *, train, state):
        h = jnp.tanh(batch["x"] @ params["hidden"]["w"] + params["hidden"]["b"][None, :])
        if train:  # a little dropout, so the per-step RNG matters for resume
            keep = _uniform(rng, h.shape) > -0.8
            h = jnp.where(keep, h / 0.9, 0.0)  # drop 10%
        pred = h @ params["out"]["w"] + params["out"]["b"][None, :]
        err = (pred - batch["y"])[:, 0]
        w = batch["weight"]
        n = jnp.sum(w)
        metrics = {"loss": (jnp.sum(w * err**2), n), "mae": (jnp.sum(w * jnp.abs(err)), n)}
        new_state = {"examples_seen": state["examples_seen"] + err.shape[0]}
        return jnp.sum(w * err**2) / n, (metrics, new_state)

    def batch_tokens(self, batch):
        return int(batch["x"].shape[0])

    def on_log(self, params, step, data):
        self.logged_steps.append(step)

    def final_eval(self, params, data, workdir):
        test = eval_batches(_examples(self.dim, 64, [self.config.seed, 2]), 64)[0]
        evaluate = jax.jit(lambda p, b, s: self.loss(p, b, None, train=False, state=s))
        _, (metrics, _) = evaluate(params, test, self.init_state(64))
        total, count = metrics["loss"]
        return {"test_mse": float(total / count)}
