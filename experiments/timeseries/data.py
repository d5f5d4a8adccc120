"""The time-series experiment's data: its sources, and the windows cut from them.

Sources (``config.data.source``; every key is in ``configs/default.py``):

* ``mackey_glass``: the Mackey-Glass delay equation (keys ``mg_*``), ``length`` points.
* ``sine``: a sum of sines plus Gaussian noise (keys ``sine_*``), ``length`` points.
* ``csv``: a column of a CSV file (``csv``, ``column``), read by :mod:`seqjax.data.table`, with
  optional ``covariates`` (extra numeric input columns, features 1..K) and ``date_column`` (dates
  for the plots' time axis: datetime64[D] when every cell parses with one of a few common
  formats, else kept as text; parsed dates must be strictly increasing). Missing cells fail
  unless ``fill_nan`` is ``ffill`` or ``interpolate`` (a warning names the rows); text that is
  not a number always fails, naming its row.

The series is split in time order (``train_frac``, ``val_frac``, the rest is test), z-scored by
a scaler fitted on the training span only, and cut into forecast windows of ``lookback`` inputs
and ``horizon`` targets (see :mod:`seqjax.data.series` for the window and leakage rules). The
target is feature 0. ``period`` is the seasonal-naive baseline's period (0: none; with
``source='sine'`` it then defaults to the first of ``sine_periods``).

Batches: training windows in shuffled epochs (:func:`seqjax.data.train_batches`), validation and
test windows in time order (:func:`seqjax.data.eval_batches`), all ``{"inputs": (B, L, F),
"targets": (B, H, 1), "weight": (B,)}`` float32, in scaled units.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from collections.abc import Sequence

import numpy as np

from experiments.timeseries.configs import default
from seqjax.data import ArraySource, eval_batches, train_batches
from seqjax.data.series import Scaler, Split, check_length, make_windows, window_origins
from seqjax.data.table import FILL_NAN, read_csv
from seqjax.train import Data
from seqjax.train.config import check_inactive, check_keys
from seqjax.train.config import is_int as _is_int
from seqjax.train.config import require as _need

SOURCES = ("mackey_glass", "sine", "csv")
CSV_KEYS = ("csv", "column", "date_column", "covariates", "fill_nan")
MG_KEYS = ("mg_tau", "mg_beta", "mg_gamma", "mg_n", "mg_dt", "mg_x0", "mg_discard", "mg_seed", "mg_sample_every")
SINE_KEYS = ("sine_periods", "sine_amplitudes", "sine_noise", "sine_seed")
SPLITS = ("train", "val", "test")
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y-%m", "%b-%d-%Y", "%d-%b-%Y", "%m/%d/%Y", "%Y")


def check_config(config) -> None:
    """Validates ``config.data`` and ``eval``; a key that the chosen source would ignore fails."""
    d, defaults = config.data, default.get_config()
    check_keys(config, defaults)
    _need(d.source in SOURCES, "data.source", d.source, f"expected one of {', '.join(SOURCES)}")
    for key in ("lookback", "horizon", "length"):
        _need(_is_int(d[key]) and d[key] >= 1, f"data.{key}", d[key], "expected an integer >= 1")
    _need(_is_int(d.period) and d.period >= 0, "data.period", d.period,
          "expected an integer >= 0 (0: no seasonal-naive baseline)")
    _need(d.fill_nan in FILL_NAN, "data.fill_nan", d.fill_nan, f"expected one of {', '.join(FILL_NAN)}")
    source = f"(this config has data.source={d.source!r})"
    check_inactive(config, defaults, [f"data.{k}" for k in CSV_KEYS], d.source == "csv", f"data.source='csv' {source}")
    check_inactive(config, defaults, ["data.length"], d.source != "csv",
                   f"a generated data.source, 'mackey_glass' or 'sine' (a CSV's length is its own) {source}")
    check_inactive(config, defaults, [f"data.{k}" for k in MG_KEYS], d.source == "mackey_glass",
                   f"data.source='mackey_glass' {source}")
    check_inactive(config, defaults, [f"data.{k}" for k in SINE_KEYS], d.source == "sine",
                   f"data.source='sine' {source}")
    if d.source == "csv":
        _need(bool(d.csv), "data.csv", d.csv, "data.source='csv' needs the path: --config.data.csv=PATH")
        _need(bool(d.column), "data.column", d.column, "data.source='csv' needs the target column: "
                                                       "--config.data.column=NAME")


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


# --------------------------------------------------------------------------- sources


def _parse_dates(cells: list[str], table, name: str) -> np.ndarray:
    """datetime64[D] if every cell parses with one format (and the dates increase), else the text."""
    cells = [("" if c is None else str(c)).strip() for c in cells]
    for fmt in _DATE_FORMATS:
        try:
            parsed = [_dt.datetime.strptime(c, fmt).date() for c in cells]
        except ValueError:
            continue
        dates = np.array(parsed, dtype="datetime64[D]")
        back = np.flatnonzero(np.diff(dates) <= np.timedelta64(0, "D"))
        if back.size:
            i = int(back[0]) + 1
            raise ValueError(f"date column {name!r} is not strictly increasing at {table.where(i)}: "
                             f"{cells[i]!r} follows {cells[i - 1]!r}; sort the file by date")
        return dates
    return np.array(cells, dtype=str)


def read_csv_series(path: str, column: str, date_column: str = "", covariates: Sequence[str] = (),
                    fill_nan: str = "error") -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """``(values (T, 1 + K) float64, names, dates or None)``: the target column, then the covariates."""
    table = read_csv(path)
    names = [column, *covariates]
    if len(set(names)) != len(names):
        raise ValueError(f"the target and covariate columns repeat a name: {names}")
    table.require([column])
    table.require(list(covariates), "covariate column")
    if date_column:
        table.require([date_column], "date_column")
    values = np.stack([table.floats(name, fill_nan) for name in names], axis=1)
    dates = _parse_dates(table.column(date_column), table, date_column) if date_column else None
    return values, names, dates


def read_series(d) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """``(values float64 (T, F), names, dates or None)`` of ``config.data``'s source; feature 0 is the target."""
    if d.source == "mackey_glass":
        x = mackey_glass(d.length, tau=d.mg_tau, beta=d.mg_beta, gamma=d.mg_gamma, n_exp=d.mg_n, dt=d.mg_dt,
                         sample_every=d.mg_sample_every, x0=d.mg_x0, discard=d.mg_discard, seed=d.mg_seed)
        return x[:, None], ["mackey_glass"], None
    if d.source == "sine":
        x = sine_mixture(d.length, periods=tuple(d.sine_periods), amplitudes=tuple(d.sine_amplitudes) or None,
                         noise=d.sine_noise, seed=d.sine_seed)
        return x[:, None], ["sine"], None
    if d.source == "csv":
        try:
            return read_csv_series(d.csv, d.column, d.date_column, tuple(d.covariates), d.fill_nan)
        except FileNotFoundError as e:
            raise ValueError(f"config.data.csv={d.csv!r}: no such file ({e.strerror})") from None
    raise ValueError(f"config.data.source={d.source!r}: expected one of {', '.join(SOURCES)}")


# --------------------------------------------------------------------------- windows


@dataclasses.dataclass
class Windows:
    """Scaled windows of one split: ``inputs (N, L, F)``, ``targets (N, H, 1)``, ``origins (N,)``.

    ``origins[i]`` is the index of the first target of window ``i`` in the full series."""

    inputs: np.ndarray
    targets: np.ndarray
    origins: np.ndarray

    def __len__(self) -> int:
        return int(self.origins.shape[0])

    def source(self) -> ArraySource:
        return ArraySource(inputs=self.inputs.astype(np.float32), targets=self.targets.astype(np.float32))


def _windows(scaled: np.ndarray, lookback: int, horizon: int, span: range) -> Windows:
    if not len(span):
        return Windows(np.zeros((0, lookback, scaled.shape[1])), np.zeros((0, horizon, 1)), np.zeros(0, np.int64))
    x, y = make_windows(scaled, lookback, horizon, span.start, span.stop, target_cols=[0])
    return Windows(x, y, window_origins(lookback, horizon, span.start, span.stop))


@dataclasses.dataclass
class SeriesData(Data):
    """A split, scaled series with its windows and batches. Targets are feature 0 only."""

    test: object  # test batches, as val
    values: np.ndarray  # raw (T, F), original units
    names: list
    dates: np.ndarray | None
    split: Split
    scaler: Scaler  # fitted on values[split.train] only
    lookback: int
    horizon: int
    period: int  # 0: no seasonal baseline
    windows: dict  # split name -> Windows

    def unscale_targets(self, x: np.ndarray) -> np.ndarray:
        """Scaled target-column values (any shape) back to original units."""
        return unscale(self.scaler, x)

    def raw_targets(self, split: str) -> np.ndarray:
        """Targets of ``split`` in original units, ``(N, H)``."""
        o = self.windows[split].origins
        return self.values[o[:, None] + np.arange(self.horizon)[None, :], 0]

    def history(self, split: str, length: int) -> np.ndarray:
        """Raw target values ``values[t - length : t, 0]`` before each origin, ``(N, length)``.

        ``length`` may exceed the lookback (e.g. a seasonal period longer than it) as long as
        every origin has that much history."""
        o = self.windows[split].origins
        if o.size and o[0] < length:
            raise ValueError(f"{split!r} windows start at index {int(o[0])}, so they have only {int(o[0])} points "
                             f"of history, fewer than the {length} asked for")
        return self.values[o[:, None] + np.arange(-length, 0)[None, :], 0]


def unscale(scaler: Scaler, x: np.ndarray) -> np.ndarray:
    """Scaled target-column values (any shape) back to original units."""
    return scaler.inverse_transform(np.asarray(x, dtype=np.float64)[..., None], columns=[0])[..., 0]


def period_of(d) -> int:
    """``data.period``, or for ``source='sine'`` with period 0 the first of ``sine_periods``."""
    if d.period or d.source != "sine":
        return int(d.period)
    return int(round(float(tuple(d.sine_periods)[0])))


def load(config) -> SeriesData:
    """Reads or generates the series, splits it in time order, scales it and cuts its windows."""
    check_config(config)
    d = config.data
    values, names, dates = read_series(d)
    split = check_length(values.shape[0], d.lookback, d.horizon, d.train_frac, d.val_frac)
    scaler = Scaler().fit(values[split.train.start:split.train.stop])
    scaled = scaler.transform(values)
    windows = {name: _windows(scaled, d.lookback, d.horizon, getattr(split, name)) for name in SPLITS}
    n_train = len(windows["train"])
    _need(config.train.batch_size <= n_train, "train.batch_size", config.train.batch_size,
          f"larger than the {n_train} training windows")
    period = period_of(d)
    if period:
        o = int(windows["test"].origins[0])
        _need(o >= period, "data.period", period, f"the first test window has only {o} points of history")
    metadata = {"names": list(names), "scaler": scaler.to_dict(), "lookback": d.lookback, "horizon": d.horizon,
                "period": period, "split": [split.val.start, split.test.start, int(values.shape[0])]}
    return SeriesData(
        train=train_batches(windows["train"].source(), config.train.batch_size, config.seed),
        val=eval_batches(windows["val"].source(), config.eval.batch_size) if len(windows["val"]) else [],
        test=eval_batches(windows["test"].source(), config.eval.batch_size, shard=False),
        metadata=metadata, values=values, names=list(names), dates=dates, split=split, scaler=scaler,
        lookback=d.lookback, horizon=d.horizon, period=period, windows=windows)
