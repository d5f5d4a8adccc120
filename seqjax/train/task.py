"""What an experiment supplies to the shared trainer: a :class:`Task` (model and loss) and its :class:`Data`.

The trainer owns the loop, the optimizer, checkpoints and records. An experiment owns:

* its data, built from the config: ``data.load(config) -> Data``, with the training batches,
  the validation batches and ``metadata``, the JSON facts the model needs (a vocabulary, a
  scaler, ...), saved beside every checkpoint;
* its task, built from the config and that metadata alone: ``Task(config, metadata)``. So
  ``sample``, ``predict`` and the other inference commands rebuild the model from a workdir,
  without reading any data.

Metrics follow the flax sst2 convention: ``loss`` returns ``{name: (sum, count)}`` and the host
reports ``sum / count`` accumulated over steps (training) or batches (validation), so a metric is
weighted by whatever the task counts (examples, tokens, ...). Every batch has a ``weight`` per
example (0 for the fillers of a padded evaluation batch, see :mod:`seqjax.data.pipeline`), and a
task weights its sums and counts by it.

With several JAX processes the loss runs on the global batch (each process supplies its rows), so
metrics are global. ``on_log`` and ``final_eval`` run on process 0 alone, with the params as host
(numpy) arrays, inside ``seqjax.data.whole_batches()``: the batches of a split built by
``eval_batches`` (a test split, the validation split) are whole there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

Params = Any
Batch = dict  # name -> np.ndarray, batch axis first
Metrics = dict  # name -> (sum, count)


@dataclasses.dataclass
class Data:
    """One run's data. Experiments subclass it to carry what their ``final_eval`` reads (a test split, ...)."""

    train: Sequence[Batch]  # train[s]: this process's rows of step s's batch (seqjax.data.train_batches)
    val: Sequence[Batch]  # validation batches, in order (seqjax.data.eval_batches); may be empty
    metadata: dict  # JSON facts the Task needs to rebuild the model, saved with each checkpoint


class Task:
    """An experiment's model and loss, rebuilt from ``(config, metadata)`` alone.

    Subclasses set ``name`` (the experiment, saved with each checkpoint, so that a workdir says
    whose run it holds) and implement ``init`` and ``loss``; the other methods have defaults.
    ``__init__`` may raise :class:`~seqjax.train.config.ConfigError` for a bad ``model`` section.
    """

    name = ""
    # Keys of the data's metadata that must equal those saved with a checkpoint to resume from it
    # (a vocabulary: the same size with other entries would silently remap the embedding rows).
    metadata_must_match: tuple[str, ...] = ()

    def __init__(self, config, metadata: dict):
        self.config = config
        self.metadata = dict(metadata)

    def init(self, rng: jax.Array) -> Params:
        """Returns the parameter pytree (jax arrays)."""
        raise NotImplementedError

    def loss(self, params: Params, batch: Batch, rng: jax.Array, *, train: bool,
             state: Any) -> tuple[jax.Array, tuple[Metrics, Any]]:
        """Returns ``(scalar loss to minimise, (metrics, new_state))``; traced under jit."""
        raise NotImplementedError

    def init_state(self, batch_size: int) -> Any:
        """State carried across train steps (e.g. the hidden state of stateful truncated BPTT), or
        None. Evaluation starts each pass from ``init_state`` and carries it from batch to batch."""
        return None

    def batch_tokens(self, batch: Batch) -> int:
        """Tokens in a batch, for tokens/s: by default the product of the first two dimensions of
        the first array."""
        first = np.shape(next(iter(batch.values())))
        return int(np.prod(first[:2])) if first else 1

    def on_log(self, params: Params, step: int, data: Data) -> None:
        """Called at every log point (e.g. to print a sample); by process 0 only."""

    def final_eval(self, params: Params, data: Data, workdir: str) -> dict:
        """Test metrics (and plots written into ``workdir``) at the end of training; by process 0 only."""
        return {}
