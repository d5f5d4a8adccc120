"""Train state, optimizer, and the jitted train and eval steps.

``train_step(state, batch, rng) -> (state, metrics)`` is pure: the step's key is
``fold_in(rng, state.step)``, so a run resumed from a checkpoint replays the same RNG stream.

A step whose loss or gradient is not finite, or whose update would leave a non-finite value in
the params, optimizer state or task state (a huge learning rate overflows the update while the
loss and gradient are still finite), is caught inside the step without a host sync: the update
is skipped, so the state stays finite, and the first bad step is recorded in ``state.bad_step``;
the host reads it at its log, eval and checkpoint points and stops there (see ``loop.py``).
"""

from __future__ import annotations

import warnings
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from seqjax.train.config import ConfigDict
from seqjax.train.task import Task


@flax.struct.dataclass
class TrainState:
    step: jax.Array  # int32: updates applied so far; also the index of the next batch
    params: Any
    opt_state: Any
    task_state: Any  # the task's carried state (None if unused)
    bad_step: jax.Array  # int32: first step whose loss, gradient or update was not finite; -1 if none
    bad_loss: jax.Array  # float32: the loss at bad_step
    bad_grad_norm: jax.Array  # float32: the gradient's global norm at bad_step

    def checkpoint_items(self) -> tuple[Any, dict]:
        """(params, the rest) as saved in a checkpoint; a saved state never has a bad step."""
        return self.params, {"step": self.step, "opt_state": self.opt_state, "task_state": self.task_state}


def learning_rate_schedule(train: ConfigDict) -> optax.Schedule:
    """Linear warmup from 0, then constant or cosine decay to 0 at ``train.steps``."""
    with np.errstate(over="ignore"):  # a rate beyond float32's range is inf, as the step would see it
        peak = float(np.float32(train.learning_rate))
    warmup = int(train.warmup_steps or 0)
    if train.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, peak, warmup, decay_steps=int(train.steps), end_value=0.0
        )
    if warmup == 0:
        return optax.constant_schedule(peak)
    return optax.join_schedules(
        [optax.linear_schedule(0.0, peak, warmup), optax.constant_schedule(peak)], [warmup]
    )


def make_optimizer(train: ConfigDict) -> optax.GradientTransformation:
    lr = learning_rate_schedule(train)
    wd = float(train.weight_decay or 0.0)
    parts = []
    if train.clip_norm:
        parts.append(optax.clip_by_global_norm(float(train.clip_norm)))
    if train.optimizer == "adamw":
        parts.append(optax.adamw(lr, weight_decay=wd))
    else:
        if wd:  # coupled L2, as torch's Adam/SGD weight_decay
            parts.append(optax.add_decayed_weights(wd))
        if train.optimizer == "adam":
            parts.append(optax.adam(lr))
        else:
            parts.append(optax.sgd(lr, momentum=float(train.momentum) or None))
    return optax.chain(*parts)


def _strong(tree: Any) -> Any:
    """Drops weak types (e.g. from ``jnp.full(shape, 0.1)``), so that the state's types are
    those of a restored checkpoint and the train step compiles once."""
    return jax.tree.map(lambda x: jax.lax.convert_element_type(x, jnp.asarray(x).dtype), tree)


def init_state(
    task: Task, optimizer: optax.GradientTransformation, rng: jax.Array, batch_size: int
) -> TrainState:
    params = _strong(task.init(rng))
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=_strong(optimizer.init(params)),
        task_state=_strong(task.init_state(batch_size)),
        **no_bad_step(),
    )


def no_bad_step() -> dict:
    """The ``bad_*`` fields of a state that has had no bad step."""
    return dict(bad_step=jnp.full((), -1, jnp.int32), bad_loss=jnp.zeros((), jnp.float32),
                bad_grad_norm=jnp.zeros((), jnp.float32))


def all_finite(tree: Any) -> jax.Array:
    """A scalar bool: every floating-point leaf of ``tree`` is finite (integer leaves always are)."""
    checks = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(checks)) if checks else jnp.array(True)


def _with_loss_metric(metrics: dict, loss: jax.Array) -> dict:
    if "loss" not in metrics:
        metrics = {**metrics, "loss": (loss, jnp.ones((), loss.dtype))}
    return metrics


def make_train_step(task: Task, optimizer: optax.GradientTransformation):
    """The (unjitted) train step for ``task``."""

    def train_step(state: TrainState, batch: dict, rng: jax.Array) -> tuple[TrainState, dict]:
        step_rng = jax.random.fold_in(rng, state.step)

        def loss_fn(params):
            return task.loss(params, batch, step_rng, train=True, state=state.task_state)

        (loss, (metrics, task_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        grad_norm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(grads)))
        # the updated state is checked too: an overflowing update can follow a finite gradient
        ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & all_finite((params, opt_state, task_state))
        first_bad = (state.bad_step < 0) & ~ok

        def keep_if_ok(new, old):
            return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)

        new_state = state.replace(
            step=state.step + 1,
            params=keep_if_ok(params, state.params),
            opt_state=keep_if_ok(opt_state, state.opt_state),
            task_state=keep_if_ok(task_state, state.task_state),
            bad_step=jnp.where(first_bad, state.step, state.bad_step),
            bad_loss=jnp.where(first_bad, loss.astype(jnp.float32), state.bad_loss),
            bad_grad_norm=jnp.where(first_bad, grad_norm.astype(jnp.float32), state.bad_grad_norm),
        )
        metrics = _with_loss_metric(dict(metrics), loss)
        metrics["grad_norm"] = (grad_norm, jnp.ones((), grad_norm.dtype))
        return new_state, metrics

    return train_step


def make_eval_step(task: Task):
    """``eval_step(params, batch, rng, state) -> (metrics, state)``, with ``train=False``."""

    def eval_step(params: Any, batch: dict, rng: jax.Array, state: Any) -> tuple[dict, Any]:
        loss, (metrics, state) = task.loss(params, batch, rng, train=False, state=state)
        return _with_loss_metric(dict(metrics), loss), state

    return eval_step


# ----------------------------------------------------------------------------- devices


class Placement:
    """A ``Mesh`` over all devices: batches sharded on their first axis, the state replicated.

    With one device this is a plain single-device placement. With several processes the mesh lists
    the devices process by process, so that process ``p``'s rows of a global batch (its share from
    ``seqjax.data.pipeline``) land on its own devices, in the one-process order."""

    def __init__(self, devices=None):
        devices = list(devices if devices is not None else jax.devices())
        if jax.process_count() > 1:
            devices.sort(key=lambda d: (d.process_index, d.id))
        self.mesh = Mesh(np.array(devices), ("data",))
        self.num_devices = len(devices)
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.sharded = NamedSharding(self.mesh, PartitionSpec("data"))
        self._warned = False

    def put_state(self, tree: Any) -> Any:
        return jax.device_put(tree, self.replicated)

    def abstract(self, tree: Any) -> Any:
        """Abstract arrays (shape, dtype, replicated sharding) for restoring a checkpoint."""
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=self.replicated), tree)

    def put_batch(self, batch: dict) -> dict:
        """Global arrays from this process's rows of a global batch, split along their first axis
        across the devices (arrays that cannot be split are replicated, with a warning).

        With several JAX processes each holds its own rows (``seqjax.data.pipeline``), and
        ``jax.make_array_from_process_local_data`` joins them into the global batch."""
        if jax.process_count() > 1:
            return jax.tree.map(lambda x: jax.make_array_from_process_local_data(self.sharded, np.asarray(x)), batch)
        if self.num_devices == 1:
            return jax.device_put(batch, self.replicated)

        def place(x):
            if np.ndim(x) > 0 and np.shape(x)[0] % self.num_devices == 0:
                return jax.device_put(x, self.sharded)
            if np.ndim(x) > 0 and not self._warned:
                warnings.warn(
                    f"batch axis of size {np.shape(x)[0]} is not divisible by {self.num_devices} devices; "
                    "such arrays are replicated rather than split",
                    stacklevel=3,
                )
                self._warned = True
            return jax.device_put(x, self.replicated)

        return jax.tree.map(place, batch)
