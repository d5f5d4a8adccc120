"""The Task: what an experiment supplies to the shared trainer.

The trainer owns the loop, the optimizer, checkpoints and records; a task owns its model, its
data and its loss. Subclass :class:`Task` to inherit the defaults of the optional methods, or
write any object with the same methods (missing optional ones fall back to the defaults here).

Metrics follow the flax sst2 convention: ``loss`` returns ``{name: (sum, count)}`` and the host
reports ``sum / count`` accumulated over steps (training) or batches (validation), so a metric is
weighted by whatever the task counts (examples, tokens, ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

import jax
import numpy as np

Params = Any
Batch = dict  # name -> np.ndarray, batch axis first
Metrics = dict  # name -> (sum, count)


@runtime_checkable
class Task(Protocol):
    """An experiment's model, data and loss. Only ``init``, ``loss``, ``train_batch`` and
    ``eval_batches`` are required."""

    def init(self, rng: jax.Array) -> Params:
        """Returns the parameter pytree (jax arrays)."""
        ...

    def loss(
        self, params: Params, batch: Batch, rng: jax.Array, *, train: bool, state: Any
    ) -> tuple[jax.Array, tuple[Metrics, Any]]:
        """Returns ``(scalar loss to minimise, (metrics, new_state))``; traced under jit."""
        ...

    def train_batch(self, step: int) -> Batch:
        """The batch for ``step``; a pure function of (config seed, step) so a resumed run sees
        the same data order."""
        ...

    def eval_batches(self) -> Iterable[Batch]:
        """A finite validation set; may be empty. Batches are evaluated in order with the task
        state carried from one to the next (reset to ``init_state`` when the batch size changes);
        a task whose batches are independent ignores ``state`` when ``train=False``."""
        ...

    def init_state(self, batch_size: int) -> Any:
        """Task state carried across train steps (e.g. the hidden state of stateful truncated
        BPTT). ``None`` when unused."""
        return None

    def metadata(self) -> dict:
        """JSON-able facts needed to use the params later (e.g. the vocabulary)."""
        return {}

    def batch_tokens(self, batch: Batch) -> int:
        """Tokens in a batch, for tokens/s: by default the product of the first two dimensions
        of the first array."""
        first = np.shape(next(iter(batch.values())))
        return int(np.prod(first[:2])) if first else 1

    def on_log(self, params: Params, step: int) -> None:
        """Called at every log point (e.g. to print a sample)."""

    def final_eval(self, params: Params, workdir: str) -> dict:
        """Test metrics (and plots written into ``workdir``) at the end of training."""
        return {}


_OPTIONAL = ("init_state", "metadata", "batch_tokens", "on_log", "final_eval")
_REQUIRED = ("init", "loss", "train_batch", "eval_batches")


class _Completed:
    """Wraps a duck-typed task, filling in the optional methods it lacks."""

    def __init__(self, task: Any):
        self._task = task

    def __getattr__(self, name: str) -> Any:
        if hasattr(self._task, name):
            return getattr(self._task, name)
        if name in _OPTIONAL:
            return getattr(Task, name).__get__(self)
        raise AttributeError(name)


def as_task(obj: Any) -> Task:
    """Returns ``obj`` with every Task method present; raises ``TypeError`` naming what is missing."""
    missing = [name for name in _REQUIRED if not callable(getattr(obj, name, None))]
    if missing:
        raise TypeError(f"{type(obj).__name__} is not a Task: missing {', '.join(missing)}")
    if all(callable(getattr(obj, name, None)) for name in _OPTIONAL):
        return obj
    return _Completed(obj)


def is_task(obj: Any) -> bool:
    """A task instance (not a task class or a factory): has the required methods."""
    return not isinstance(obj, type) and all(callable(getattr(obj, name, None)) for name in _REQUIRED)
