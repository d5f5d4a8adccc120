"""Grain pipelines: deterministic training batches, padded eval batches, each process's share.

    train = train_batches(source, batch_size=32, seed=0)   # train[s] is step s's batch
    val = eval_batches(source, batch_size=256)              # padded, with a weight per example

A *source* is anything random-access (``len`` and ``[i]``): a ``tfds.data_source`` split, a
list, an :class:`ArraySource`, or a ``grain.MapDataset``. Its items are dicts of numpy arrays
(one example each), and a batch stacks them along a new first axis.

**Training.** The examples form an endless stream of epochs. Each epoch is a permutation of the
source drawn by Grain's index shuffle from ``(seed, epoch)``, or the source in order with
``shuffle=False``. Global batch ``s`` holds stream positions ``[s B, (s + 1) B)``, so step ``s``'s
batch is a pure function of ``(seed, s)``: a resumed run needs no iterator state. When ``B`` does
not divide the number of examples a batch straddles two epochs, so no example is dropped and
none is repeated within an epoch.

**Evaluation.** The examples in order, in batches of exactly ``batch_size`` rows (one compiled
shape). The last batch is filled up with copies of the final example.

**Weights.** Every batch, for training and for evaluation, has ``weight`` (float32, ``(B,)``):
1 for a real example, 0 for a filler. A task multiplies its per-example terms by it, so every
``(sum, count)`` metric counts real examples only.

**Processes.** With ``P`` JAX processes, process ``p`` reads rows ``[p B/P, (p + 1) B/P)`` of
every global batch, training and evaluation alike; the local batches of all processes, in
process order, make up the one-process batch. ``B`` must be divisible by ``P``. Host-side code that
one process runs alone (``Task.final_eval`` on process 0) reads whole evaluation batches inside
:func:`whole_batches`.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Mapping

import grain
import jax
import numpy as np

__all__ = ["WEIGHT", "ArraySource", "eval_batches", "local_share", "shuffle_seed", "train_batches", "whole_batches"]

WEIGHT = "weight"


class ArraySource:
    """The rows of equal-length arrays as a random-access source: item ``i`` is ``{name: array[i]}``."""

    def __init__(self, **arrays: np.ndarray):
        lengths = {name: len(a) for name, a in arrays.items()}
        if not arrays or len(set(lengths.values())) != 1:
            raise ValueError(f"ArraySource needs arrays of one length, got {lengths}")
        self.arrays = {name: np.asarray(a) for name, a in arrays.items()}
        self._n = next(iter(lengths.values()))

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return {name: a[i] for name, a in self.arrays.items()}


def local_share(batch_size: int, what: str = "train.batch_size") -> tuple[int, int, int]:
    """``(rows per process, process index, process count)`` for a global batch of ``batch_size``."""
    index, count = jax.process_index(), jax.process_count()
    if batch_size % count:
        raise ValueError(f"{what}={batch_size} is not divisible by the {count} JAX processes "
                         "(each process reads an equal share of every batch)")
    return batch_size // count, index, count


def shuffle_seed(seed: int) -> int:
    """A 32-bit shuffle seed from any integer seed.

    Grain seeds epoch ``e`` with ``seed + e``: mixing the run seed first keeps the runs of seeds
    0 and 1 from visiting the same permutations one epoch apart."""
    return int(np.random.SeedSequence([int(seed) % 2**63, 0x5E9]).generate_state(1)[0])


def _dataset(source) -> grain.MapDataset:
    return source if isinstance(source, grain.MapDataset) else grain.MapDataset.source(source)


def _weighted(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    rows = len(next(iter(batch.values())))
    return {**batch, WEIGHT: np.ones(rows, np.float32)}


def train_batches(source, batch_size: int, seed: int, *, shuffle: bool = True) -> grain.MapDataset:
    """Item ``s``: this process's rows of global training batch ``s`` (see the module docstring)."""
    ds = _dataset(source)
    if len(ds) == 0:
        raise ValueError("there are no training examples")
    rows, index, count = local_share(batch_size)
    if shuffle:
        ds = ds.shuffle(seed=shuffle_seed(seed))
    return ds.repeat().batch(rows)[index::count].map(_weighted)


def eval_batches(source, batch_size: int, what: str = "eval.batch_size") -> grain.MapDataset:
    """This process's rows of each padded evaluation batch (see the module docstring), or the whole
    batches inside :func:`whole_batches`; ``len`` is the number of batches (0 for an empty source)."""
    ds = _dataset(source)
    n = len(ds)
    rows, index, count = local_share(batch_size, what)
    total = math.ceil(n / batch_size) * batch_size

    def example(i: int) -> dict[str, np.ndarray]:
        return {**ds[min(i, n - 1)], WEIGHT: np.float32(i < n)}

    examples = grain.MapDataset.range(total).map(example)
    share = examples.batch(rows)[index::count]
    if count == 1:
        return share
    whole = examples.batch(batch_size)
    return grain.MapDataset.range(len(whole)).map(lambda k: whole[k] if _whole.get() else share[k])


_whole = contextvars.ContextVar("seqjax_whole_batches", default=False)


@contextlib.contextmanager
def whole_batches():
    """Within this block, evaluation batches are whole in every process, not the process's share.

    For host-side code that one process runs alone: the trainer runs ``Task.final_eval`` and
    ``Task.on_log`` in it, on process 0, so that a test split built by :func:`eval_batches` is read
    whole there. (Training batches are always the process's share.)"""
    token = _whole.set(True)
    try:
        yield
    finally:
        _whole.reset(token)
