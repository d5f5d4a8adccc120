"""Generated long-range memory tasks, with the lag as a config key (``data.task``, ``data.lag``).

* ``adding`` (Hochreiter & Schmidhuber 1997, in the form of Le, Jaitly & Hinton 2015): ``T = lag``
  steps of two features, a number ``u_t ~ U(0, 1)`` and a marker ``m_t`` in {0, 1}. Exactly two
  steps are marked, one uniformly in the first half and one in the second; the target is the sum
  of their two numbers, read from the final state. The first number must be held for between
  ``T/2`` and ``T`` steps. Predicting the mean (1) scores the trivial MSE ``Var(u + u') = 1/6``;
  knowing one of the two numbers exactly scores ``1/12``.
* ``copy`` (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016): ``copy_len`` symbols drawn from
  ``num_symbols``, then blanks, a delimiter at step ``lag - 1``, and blanks while the model writes
  the symbols back: symbol ``i``, read at step ``i``, is the target at step ``i + lag``
  (``T = lag + copy_len``). Scored at those ``copy_len`` steps only; chance accuracy is
  ``1 / num_symbols``.
* ``tagging``: a task that needs context from both sides (N -> N, like part-of-speech tags). A
  sequence of ``tag_len`` uniform symbols; the tag at step ``t`` is the pair of its two
  neighbours ``lag`` steps away, one class of ``num_symbols**2``: ``x[t - lag] * num_symbols +
  x[t + lag]``, scored at the ``tag_len - 2 lag`` steps that have both. A linear readout of the
  two directions' states can name the pair; a unidirectional model knows only the past half, so
  its accuracy is at most ``1 / num_symbols`` (chance is ``1 / num_symbols**2``).

Inputs are float32 ``(T, features)``: the two adding features, or one-hot symbols (``copy`` has
two more one-hot columns, the blank and the delimiter). Batches are
``{"inputs": (B, T, F), "targets": (B,) float32 | (B, K) int32, "weight": (B,)}``.

Training sequence ``i`` is drawn by Grain's per-index generator seeded from the run seed, so step
``s``'s batch is a pure function of ``(seed, s)``; the validation and test sets are fixed by
``val_seed`` and ``test_seed``, whatever the run seed.
"""

from __future__ import annotations

import dataclasses

import grain
import numpy as np

from experiments.memory.configs import default
from seqjax.data import ArraySource, eval_batches, train_batches
from seqjax.data.pipeline import shuffle_seed
from seqjax.train import Data
from seqjax.train.config import check_inactive, check_keys
from seqjax.train.config import is_int as _is_int
from seqjax.train.config import require as _need

TASKS = ("adding", "copy", "tagging")
ADDING_BASELINE_MSE = 1.0 / 6.0  # Var(u + u') of two U(0, 1): the MSE of always predicting 1


@dataclasses.dataclass(frozen=True)
class Layout:
    """What a task's sequences look like: length, input width, where the targets are read."""

    task: str
    length: int  # T
    features: int  # F
    classes: int  # 0 for the adding task's scalar target
    readout: tuple[int, int] | None  # [start, stop) of the scored steps; None: the final state

    @property
    def baseline(self) -> float:
        """The trivial score: the adding task's MSE of predicting the mean, else chance accuracy."""
        return ADDING_BASELINE_MSE if self.task == "adding" else 1.0 / self.classes


def layout(d) -> Layout:
    """The :class:`Layout` of ``config.data`` (checked first)."""
    if d.task == "adding":
        return Layout("adding", d.lag, 2, 0, None)
    if d.task == "copy":
        return Layout("copy", d.lag + d.copy_len, d.num_symbols + 2, d.num_symbols, (d.lag, d.lag + d.copy_len))
    return Layout("tagging", d.tag_len, d.num_symbols, d.num_symbols**2, (d.lag, d.tag_len - d.lag))


def check_config(config) -> None:
    """Validates ``config.data``; a key that the chosen task would ignore fails."""
    d, defaults = config.data, default.get_config()
    check_keys(config, defaults)
    _need(d.task in TASKS, "data.task", d.task, f"expected one of {', '.join(TASKS)}")
    for key in ("lag", "num_symbols", "copy_len", "tag_len", "val_size", "test_size", "val_seed", "test_seed"):
        _need(_is_int(d[key]) and d[key] >= (0 if key.endswith("seed") else 1), f"data.{key}", d[key],
              "expected an integer >= 0" if key.endswith("seed") else "expected an integer >= 1")
    task = f"(this config has data.task={d.task!r})"
    check_inactive(config, defaults, ["data.copy_len"], d.task == "copy", f"data.task='copy' {task}")
    check_inactive(config, defaults, ["data.tag_len"], d.task == "tagging", f"data.task='tagging' {task}")
    check_inactive(config, defaults, ["data.num_symbols"], d.task in ("copy", "tagging"),
                   f"data.task='copy' or 'tagging' {task}")
    if d.task == "adding":
        _need(d.lag >= 2, "data.lag", d.lag, "the adding task needs a sequence of at least 2 steps")
    elif d.task == "copy":
        _need(d.num_symbols >= 2, "data.num_symbols", d.num_symbols, "expected an alphabet of at least 2 symbols")
        _need(d.lag > d.copy_len, "data.lag", d.lag,
              f"the copy task needs lag > copy_len={d.copy_len} (the delimiter comes after the symbols)")
    else:
        _need(d.num_symbols >= 2, "data.num_symbols", d.num_symbols, "expected an alphabet of at least 2 symbols")
        _need(d.tag_len > 2 * d.lag, "data.tag_len", d.tag_len,
              f"tagging needs tag_len > 2 * lag = {2 * d.lag} (some steps must have both neighbours)")


def example(d, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One sequence of ``config.data``'s task, drawn with ``rng``."""
    lay = layout(d)
    T = lay.length
    if d.task == "adding":
        x = np.zeros((T, 2), np.float32)
        x[:, 0] = rng.random(T, dtype=np.float32)
        first, second = rng.integers(0, T // 2), rng.integers(T // 2, T)
        x[[first, second], 1] = 1.0
        return {"inputs": x, "targets": np.float32(x[first, 0] + x[second, 0])}
    K = d.num_symbols
    if d.task == "copy":
        symbols = rng.integers(0, K, d.copy_len)
        tokens = np.full(T, K)  # blank
        tokens[:d.copy_len] = symbols
        tokens[d.lag - 1] = K + 1  # delimiter: write from the next step on
        return {"inputs": np.eye(K + 2, dtype=np.float32)[tokens], "targets": symbols.astype(np.int32)}
    tokens = rng.integers(0, K, T)
    start, stop = lay.readout
    tags = tokens[start - d.lag:stop - d.lag] * K + tokens[start + d.lag:stop + d.lag]
    return {"inputs": np.eye(K, dtype=np.float32)[tokens], "targets": tags.astype(np.int32)}


def fixed_set(d, n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` sequences from one generator seeded by ``seed``, stacked."""
    rng = np.random.default_rng([seed, 0x3E3])
    rows = [example(d, rng) for _ in range(n)]
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


@dataclasses.dataclass
class MemoryData(Data):
    test: object  # padded test batches, as val
    layout: Layout


def load(config) -> MemoryData:
    check_config(config)
    d = config.data
    stream = grain.MapDataset.range(2**31 - 1).random_map(lambda _i, rng: example(d, rng),
                                                          seed=shuffle_seed(config.seed))
    lay = layout(d)
    return MemoryData(
        train=train_batches(stream, config.train.batch_size, config.seed, shuffle=False),
        val=eval_batches(ArraySource(**fixed_set(d, d.val_size, d.val_seed)), config.eval.batch_size),
        test=eval_batches(ArraySource(**fixed_set(d, d.test_size, d.test_seed)), config.eval.batch_size),
        metadata={"task": d.task, "length": lay.length, "features": lay.features, "classes": lay.classes,
                  "readout": list(lay.readout) if lay.readout else None, "baseline": lay.baseline},
        layout=lay)
