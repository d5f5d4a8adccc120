"""Time-series building blocks: generators, chronological splits, scaling, windows.

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

import json
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = [
    "Scaler",
    "Split",
    "chronological_split",
    "check_length",
    "mackey_glass",
    "make_next_step_windows",
    "make_windows",
    "min_length",
    "sine_mixture",
    "window_origins",
]


# --------------------------------------------------------------------------- generators


def mackey_glass(
    n: int,
    tau: float = 17.0,
    beta: float = 0.2,
    gamma: float = 0.1,
    n_exp: float = 10.0,
    dt: float = 0.1,
    sample_every: int = 1,
    x0: float = 1.2,
    discard: int = 500,
    seed: int | None = None,
) -> np.ndarray:
    """Mackey-Glass series ``dx/dt = beta x(t-tau) / (1 + x(t-tau)^n_exp) - gamma x(t)``.

    Integrator: classical fourth-order Runge-Kutta with internal step ``dt``
    (default 0.1 time units, so 10 steps per unit). The state is kept on the
    ``dt`` grid in a history buffer; the delayed value ``x(s - tau)`` needed at the
    stage times ``s = t, t + dt/2, t + dt`` is read from that buffer by linear
    interpolation between grid points (exact when ``tau/dt`` is an integer and the
    stage sits on the grid; at the half-step it is the mean of the two neighbours,
    which makes the scheme second order overall in ``dt``).

    Initial history: ``x(t) = x0`` for ``t in [-tau, 0]``. With ``seed`` given, each
    history grid point gets an independent ``Uniform(-0.05, 0.05)`` perturbation, so
    different seeds give different (diverging) trajectories; ``seed=None`` gives the
    classical constant history and is fully deterministic.

    The trajectory is sampled every ``sample_every`` time units (default 1, i.e.
    ``Delta t = 1``) starting at ``t = discard``: the first ``discard`` time units
    are a warm-up that is integrated but not returned.

    Returns a float64 array of shape ``(n,)``.
    """
    n = int(n)
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if dt <= 0:
        raise ValueError(f"dt must be positive, got {dt}")
    steps_per_unit = round(1.0 / dt)
    if abs(steps_per_unit * dt - 1.0) > 1e-9:
        raise ValueError(f"1/dt must be an integer so that samples fall on the grid, got dt={dt}")
    if int(sample_every) != sample_every or sample_every < 1:
        raise ValueError(f"sample_every must be a positive integer (time units), got {sample_every}")
    if int(discard) != discard or discard < 0:
        raise ValueError(f"discard must be a non-negative integer (time units), got {discard}")
    delay = tau / dt  # delay in grid steps
    if delay < 1.0:
        raise ValueError(f"tau must be at least dt (tau={tau}, dt={dt})")

    sample_every = int(sample_every)
    discard = int(discard)
    n_hist = int(math.ceil(delay)) + 1  # grid points covering [-tau, 0], the last one is t = 0
    n_steps = (discard + (n - 1) * sample_every) * steps_per_unit

    history = np.full(n_hist, float(x0))
    if seed is not None:
        history = history + np.random.default_rng(seed).uniform(-0.05, 0.05, size=n_hist)
    buf = history.tolist()  # Python floats: far faster than numpy scalars in this loop

    # Linear interpolation weights for the delayed value at the stage offsets 0, 1/2, 1
    # (in steps) relative to the current grid index g: x(g + off - delay).
    def weights(off: float) -> tuple[int, float]:
        p = off - delay
        j = math.floor(p)
        return j, p - j

    (j0, w0), (jh, wh), (j1, w1) = weights(0.0), weights(0.5), weights(1.0)
    half = 0.5 * dt

    def f(x: float, xd: float) -> float:
        return beta * xd / (1.0 + xd**n_exp) - gamma * x

    buf.append(0.0)  # slot read with zero weight when tau/dt == 1
    g = n_hist - 1  # grid index of t = 0
    x = buf[g]
    for _ in range(n_steps):
        d0 = (1.0 - w0) * buf[g + j0] + w0 * buf[g + j0 + 1]
        dh = (1.0 - wh) * buf[g + jh] + wh * buf[g + jh + 1]
        d1 = (1.0 - w1) * buf[g + j1] + w1 * buf[g + j1 + 1]
        k1 = f(x, d0)
        k2 = f(x + half * k1, dh)
        k3 = f(x + half * k2, dh)
        k4 = f(x + dt * k3, d1)
        x = x + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        g += 1
        buf[g] = x
        buf.append(0.0)
    grid = np.asarray(buf[: g + 1])
    first = n_hist - 1 + discard * steps_per_unit
    return grid[first :: sample_every * steps_per_unit][:n].copy()


def sine_mixture(
    n: int,
    periods: Sequence[float] = (12.0, 50.0),
    amplitudes: Sequence[float] | None = None,
    noise: float = 0.1,
    seed: int | None = 0,
    phases: Sequence[float] | None = None,
) -> np.ndarray:
    """Sum of sines plus Gaussian noise: ``sum_k a_k sin(2 pi t / p_k + phi_k) + noise * N(0, 1)``.

    ``t = 0 .. n-1``; ``amplitudes`` default to 1 for every period, ``phases`` to 0.
    The noise is drawn from ``numpy.random.default_rng(seed)``. Returns float64 ``(n,)``.
    """
    n = int(n)
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    periods = [float(p) for p in periods]
    if not periods or any(p <= 0 for p in periods):
        raise ValueError(f"periods must be a non-empty list of positive numbers, got {periods}")
    amps = [1.0] * len(periods) if amplitudes is None else [float(a) for a in amplitudes]
    phs = [0.0] * len(periods) if phases is None else [float(p) for p in phases]
    if len(amps) != len(periods) or len(phs) != len(periods):
        raise ValueError(
            f"periods ({len(periods)}), amplitudes ({len(amps)}) and phases ({len(phs)}) differ in length"
        )
    t = np.arange(n, dtype=np.float64)
    y = np.zeros(n)
    for p, a, ph in zip(periods, amps, phs, strict=True):
        y += a * np.sin(2.0 * np.pi * t / p + ph)
    if noise:
        y += float(noise) * np.random.default_rng(seed).standard_normal(n)
    return y


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

    def to_json(self) -> str:
        """JSON text (floats written with repr precision, so the round trip is exact)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> Scaler:
        if d.get("kind", "zscore") != "zscore":
            raise ValueError(f"unknown scaler kind {d.get('kind')!r}")
        return cls(d["mean"], d["std"])

    @classmethod
    def from_json(cls, text: str) -> Scaler:
        return cls.from_dict(json.loads(text))

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


def make_next_step_windows(
    series: np.ndarray,
    length: int,
    start: int = 0,
    stop: int | None = None,
    *,
    target_cols: Sequence[int] | None = None,
    stride: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """N->N windows: inputs ``series[s:s+length]``, targets ``series[s+1:s+length+1]``.

    The target at every input step is the next value. All target indices lie in
    ``[start, stop)``, so the first input may be ``series[start - 1]`` (one step of
    earlier history), never more. Windows start at ``s = max(0, start - 1)`` and move
    by ``stride`` (use ``stride=length`` for non-overlapping windows). Returns
    ``(N, length, F)`` and ``(N, length, len(target_cols))``.
    """
    x = _as_2d(series)
    T = x.shape[0]
    stop = T if stop is None else int(stop)
    start = int(start)
    if int(length) != length or length <= 0:
        raise ValueError(f"length must be a positive integer, got {length}")
    if int(stride) != stride or stride <= 0:
        raise ValueError(f"stride must be a positive integer, got {stride}")
    _check_span(T, start, stop)
    first = max(0, start - 1)
    last = stop - length - 1  # last s with s + length + 1 <= stop
    if last < first:
        need = first + length + 1
        raise ValueError(
            f"no window fits: the series has length {T} and the span is [{start}, {stop}); with "
            f"length={length} the span must end at >= {need}, i.e. the series must have length >= {need}"
        )
    starts = np.arange(first, last + 1, int(stride))
    idx = starts[:, None] + np.arange(length)[None, :]
    cols = list(range(x.shape[1])) if target_cols is None else list(target_cols)
    return x[idx], x[idx + 1][:, :, cols]
