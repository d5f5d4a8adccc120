"""Time-series building blocks: chronological splits, scaling, windows.

Everything here is plain numpy (float64) and independent of any model or experiment.

Conventions used throughout
---------------------------
* A series is an array of shape ``(T,)`` or ``(T, F)``; 1-D input is treated as one
  column. Index ``t`` is time.
* A forecast window has an *origin* ``t``: its inputs are ``series[t - lookback : t]``
  and its targets ``series[t : t + horizon]``. The last observed value is
  ``series[t - 1]``; horizon step ``h`` (1-based) is ``series[t - 1 + h]``.
* Splits are contiguous and in time order: train ``[0, a)``, val ``[a, b)``,
  test ``[b, T)``. Nothing is ever shuffled across time.

Leakage rules enforced by :func:`make_windows` (with ``start``/``stop`` the split):
every *target* index of every window lies in ``[start, stop)``. Inputs may reach
back before ``start``: a validation or test window may read earlier history (train
or val values) as its inputs, exactly as a deployed forecaster would. Because a
training span starts at 0 and inputs precede targets, training windows never touch
a val/test value, neither as input nor as target. The scaler is fitted on the
training span only (:meth:`Scaler.fit` on ``series[train]``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = [
    "Scaler",
    "Split",
    "chronological_split",
    "check_length",
    "make_windows",
    "min_length",
    "window_origins",
]


# --------------------------------------------------------------------------- splits


class Split(NamedTuple):
    """Contiguous index ranges, in time order."""

    train: range
    val: range
    test: range


def chronological_split(n: int, train_frac: float, val_frac: float) -> Split:
    """Split ``range(n)`` into train ``[0, a)``, val ``[a, b)``, test ``[b, n)``.

    ``a = floor(n * train_frac)``, ``b = floor(n * (train_frac + val_frac))``; the
    test span takes the rest. ``val_frac`` may be 0 (empty val range); train and
    test must be non-empty.
    """
    n = int(n)
    if not 0.0 < train_frac < 1.0:
        raise ValueError(f"train_frac must be in (0, 1), got {train_frac}")
    if not 0.0 <= val_frac < 1.0:
        raise ValueError(f"val_frac must be in [0, 1), got {val_frac}")
    if train_frac + val_frac >= 1.0:
        raise ValueError(
            f"train_frac + val_frac must be < 1 to leave a test span, got {train_frac + val_frac}"
        )
    # The small epsilon keeps e.g. 10 * 0.7 = 6.999999 from flooring to 6.
    a = int(math.floor(n * train_frac + 1e-9))
    b = int(math.floor(n * (train_frac + val_frac) + 1e-9))
    if a <= 0 or b >= n:
        raise ValueError(
            f"series of length {n} is too short for train_frac={train_frac}, val_frac={val_frac}: "
            f"train span {a}, test span {n - b}"
        )
    return Split(range(0, a), range(a, b), range(b, n))


def _split_ok(n: int, lookback: int, horizon: int, train_frac: float, val_frac: float) -> bool:
    a = int(math.floor(n * train_frac + 1e-9))
    b = int(math.floor(n * (train_frac + val_frac) + 1e-9))
    if a < lookback + horizon:  # at least one training window
        return False
    if val_frac > 0 and b - a < horizon:  # at least one val window
        return False
    return n - b >= horizon  # at least one test window


def min_length(lookback: int, horizon: int, train_frac: float, val_frac: float) -> int:
    """Length from which on every series splits into at least one train, val and test window.

    (A val window is only required when ``val_frac > 0``.) Because of the floors in
    :func:`chronological_split` the condition is not quite monotone in the length; the
    value returned is the smallest ``n`` such that ``n`` and every longer length work.
    """
    _check_lh(lookback, horizon)
    chronological_split(10**6, train_frac, val_frac)  # validates the fractions
    # Beyond this length each floor loses less than one point, so every n >= hi works.
    need = [(lookback + horizon + 1) / train_frac, horizon / (1.0 - train_frac - val_frac)]
    if val_frac > 0:
        need.append((horizon + 1) / val_frac)
    n = int(math.ceil(max(need))) + 1
    while n > 1 and _split_ok(n - 1, lookback, horizon, train_frac, val_frac):
        n -= 1
    return n


def check_length(n: int, lookback: int, horizon: int, train_frac: float, val_frac: float) -> Split:
    """Return the split of a length-``n`` series, or raise ``ValueError`` if it is too short.

    The message says how long the series is and how long it must be.
    """
    _check_lh(lookback, horizon)
    if not _split_ok(n, lookback, horizon, train_frac, val_frac):
        need = min_length(lookback, horizon, train_frac, val_frac)
        raise ValueError(
            f"series has length {n} but must have length >= {need} for lookback={lookback}, "
            f"horizon={horizon}, train_frac={train_frac}, val_frac={val_frac} (at least one "
            f"training window needs lookback + horizon points inside the training span and each "
            f"val/test span needs at least horizon points)"
        )
    return chronological_split(n, train_frac, val_frac)


# --------------------------------------------------------------------------- scaling


class Scaler:
    """Per-column z-score scaling: ``(x - mean) / std``.

    Fit it on the training span only. Columns with zero spread get ``std = 1`` (they
    are only shifted). ``transform``/``inverse_transform`` accept any array whose last
    axis is the column axis (``(..., F)``) and, with ``columns``, arrays that hold only
    a subset of the fitted columns (e.g. the target column of a multi-feature series).
    """

    def __init__(self, mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = None if std is None else np.asarray(std, dtype=np.float64).reshape(-1)
        if (self.mean is None) != (self.std is None):
            raise ValueError("give both mean and std, or neither")
        if self.mean is not None and self.mean.shape != self.std.shape:
            raise ValueError(f"mean {self.mean.shape} and std {self.std.shape} differ in shape")

    def fit(self, x: np.ndarray) -> Scaler:
        x = _as_2d(x)
        if x.shape[0] == 0:
            raise ValueError("cannot fit a scaler on an empty span")
        if not np.all(np.isfinite(x)):
            raise ValueError("cannot fit a scaler on non-finite values")
        self.mean = x.mean(axis=0)
        std = x.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)
        return self

    def _params(self, columns):
        if self.mean is None:
            raise RuntimeError("Scaler is not fitted")
        if columns is None:
            return self.mean, self.std
        cols = np.asarray(columns, dtype=int).reshape(-1)
        return self.mean[cols], self.std[cols]

    def transform(self, x: np.ndarray, columns: Sequence[int] | None = None) -> np.ndarray:
        mean, std = self._params(columns)
        return (np.asarray(x, dtype=np.float64) - mean) / std

    def inverse_transform(self, x: np.ndarray, columns: Sequence[int] | None = None) -> np.ndarray:
        mean, std = self._params(columns)
        return np.asarray(x, dtype=np.float64) * std + mean

    def to_dict(self) -> dict:
        if self.mean is None:
            raise RuntimeError("Scaler is not fitted")
        return {"kind": "zscore", "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Scaler:
        if d.get("kind", "zscore") != "zscore":
            raise ValueError(f"unknown scaler kind {d.get('kind')!r}")
        return cls(d["mean"], d["std"])

    def __repr__(self) -> str:
        return f"Scaler(mean={self.mean!r}, std={self.std!r})"


# --------------------------------------------------------------------------- windows


def _as_2d(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        return x[:, None]
    if x.ndim != 2:
        raise ValueError(f"a series must have shape (T,) or (T, F), got {x.shape}")
    return x


def _check_lh(lookback: int, horizon: int) -> None:
    if int(lookback) != lookback or lookback <= 0:
        raise ValueError(f"lookback must be a positive integer, got {lookback}")
    if int(horizon) != horizon or horizon <= 0:
        raise ValueError(f"horizon must be a positive integer, got {horizon}")


def _check_span(T: int, start: int, stop: int) -> None:
    if not 0 <= start <= stop <= T:
        raise ValueError(f"need 0 <= start <= stop <= len(series); got start={start}, stop={stop}, len={T}")


def window_origins(lookback: int, horizon: int, start: int, stop: int, stride: int = 1) -> np.ndarray:
    """Origins ``t`` of all windows whose targets ``[t, t + horizon)`` lie in ``[start, stop)``.

    ``t`` runs from ``max(start, lookback)`` (inputs need ``t - lookback >= 0``) to
    ``stop - horizon`` in steps of ``stride``.
    """
    _check_lh(lookback, horizon)
    if int(stride) != stride or stride <= 0:
        raise ValueError(f"stride must be a positive integer, got {stride}")
    first = max(int(start), int(lookback))
    last = int(stop) - int(horizon)
    if last < first:
        return np.zeros(0, dtype=np.int64)
    return np.arange(first, last + 1, int(stride), dtype=np.int64)


def make_windows(
    series: np.ndarray,
    lookback: int,
    horizon: int,
    start: int = 0,
    stop: int | None = None,
    *,
    target_cols: Sequence[int] | None = None,
    stride: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Sliding forecast windows whose targets all lie in ``[start, stop)``.

    Returns ``inputs`` of shape ``(N, lookback, F)`` (= ``series[t-lookback:t]``) and
    ``targets`` of shape ``(N, horizon, len(target_cols))`` (= ``series[t:t+horizon]``),
    one row per origin of :func:`window_origins`. ``target_cols`` defaults to all columns.

    Inputs may come from before ``start`` (history that precedes a val/test span);
    targets never leave ``[start, stop)``. Raises ``ValueError`` if lookback/horizon are
    not positive or if the span holds no window, saying how long the series is and
    how long it must be.
    """
    x = _as_2d(series)
    T = x.shape[0]
    stop = T if stop is None else int(stop)
    start = int(start)
    _check_lh(lookback, horizon)
    _check_span(T, start, stop)
    origins = window_origins(lookback, horizon, start, stop, stride)
    if origins.size == 0:
        need = max(start, lookback) + horizon
        raise ValueError(
            f"no window fits: the series has length {T} and the span is [{start}, {stop}); with "
            f"lookback={lookback}, horizon={horizon} the span must end at >= {need}, i.e. the series "
            f"must have length >= {need} (and stop >= {need})"
        )
    cols = list(range(x.shape[1])) if target_cols is None else list(target_cols)
    in_idx = origins[:, None] + np.arange(-lookback, 0)[None, :]
    tg_idx = origins[:, None] + np.arange(horizon)[None, :]
    return x[in_idx], x[tg_idx][:, :, cols]
