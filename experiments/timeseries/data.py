"""The time-series experiment's data: its sources, and the windows cut from them.

Sources (``config.data.source``; every key is in ``configs/default.py``):

* ``mackey_glass``: the Mackey-Glass delay equation (keys ``mg_*``), ``length`` points.
* ``sine``: a sum of sines plus Gaussian noise (keys ``sine_*``), ``length`` points.
* ``csv``: columns of a CSV file (``csv``, ``column``), read by :mod:`seqjax.data.table`, with
  optional ``covariates`` (extra numeric input columns, features 1..K) and ``date_column`` (dates
  for the plots' time axis: datetime64[D] when every cell parses with one of a few common
  formats, else kept as text; parsed dates must be strictly increasing). Missing cells fail
  unless ``fill_nan`` is ``ffill`` or ``interpolate`` (a warning names the rows); text that is
  not a number always fails, naming its row.

**Several series (a global model).** ``column`` may name several target columns, comma
separated (``column=a,b,c``), and ``csv`` may be a folder: every ``*.csv`` in it, in name order,
is read with the same columns. Each (file, target column) pair is one series, named by the
column, the file's stem, or ``stem:column`` when both vary. One model trains on the windows of
all of them; each series is split, scaled and windowed on its own, so its scaler comes from its
own training span.

Each series is split in time order (``train_frac``, ``val_frac``, the rest is test), z-scored by
a scaler fitted on its training span only, and cut into forecast windows of ``lookback`` inputs
and ``horizon`` targets (see :mod:`seqjax.data.series` for the window and leakage rules). The
target is feature 0. ``period`` is the seasonal period of the baselines and the seasonal skip
(0: none; with ``source='sine'`` it then defaults to the first of ``sine_periods``).

Batches: training windows of every series in shuffled epochs (:func:`seqjax.data.train_batches`),
validation and test windows in series then time order (:func:`seqjax.data.eval_batches`), all
``{"inputs": (B, L, F), "targets": (B, H, 1), "series": (B,), "weight": (B,)}``, float32 values in
scaled units and each window's series index (int32).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import glob
import math
import os
from collections.abc import Sequence

import numpy as np

from experiments.timeseries.configs import default
from experiments.timeseries.model import highway_fit
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


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


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
    e = config.eval
    _need(_is_int(e.samples) and e.samples >= 2, "eval.samples", e.samples,
          "expected an integer >= 2 (draws per forecast for the CRPS and the intervals)")
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
    if d.source == "mackey_glass":
        for key in ("mg_tau", "mg_beta", "mg_gamma", "mg_n", "mg_x0"):
            _need(_positive(d[key]), f"data.{key}", d[key], "expected a finite number > 0 (the equation "
                  "dx/dt = beta x(t-tau) / (1 + x(t-tau)^n) - gamma x(t) describes a positive quantity)")
        _need(_positive(d.mg_dt) and d.mg_dt <= 1 and abs(round(1 / d.mg_dt) * d.mg_dt - 1) < 1e-9, "data.mg_dt",
              d.mg_dt, "expected a step in (0, 1] with 1/mg_dt an integer, so that samples fall on the grid")
        _need(d.mg_tau >= d.mg_dt, "data.mg_tau", d.mg_tau, f"expected a delay >= mg_dt={d.mg_dt}")
        _need(_is_int(d.mg_discard) and d.mg_discard >= 0, "data.mg_discard", d.mg_discard,
              "expected an integer >= 0 (time units)")
        _need(_is_int(d.mg_sample_every) and d.mg_sample_every >= 1, "data.mg_sample_every", d.mg_sample_every,
              "expected an integer >= 1 (time units)")
    if d.source == "sine":
        periods = tuple(d.sine_periods)
        _need(bool(periods) and all(_positive(p) for p in periods), "data.sine_periods", periods,
              "expected one or more positive numbers")
        _need(not d.sine_amplitudes or len(d.sine_amplitudes) == len(periods), "data.sine_amplitudes",
              tuple(d.sine_amplitudes), f"expected {len(periods)} numbers, one per period (or none: all 1)")
        _need(isinstance(d.sine_noise, (int, float)) and math.isfinite(d.sine_noise) and d.sine_noise >= 0,
              "data.sine_noise", d.sine_noise, "expected a finite number >= 0")


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


def split_names(value) -> list[str]:
    """Column names from a config value: ``'a'``, ``'a,b'`` or a tuple of names."""
    items = [value] if isinstance(value, str) else list(value)
    return [n.strip() for item in items for n in str(item).split(",") if n.strip()]


def read_csv_series(path: str, column: str, date_column: str = "", covariates: Sequence[str] = (),
                    fill_nan: str = "error") -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """``(values (T, 1 + K) float64, names, dates or None)``: the target column, then the covariates."""
    values, names, dates = read_csv_columns(path, [column], date_column, covariates, fill_nan)
    return values[0], names, dates


def read_csv_columns(path: str, targets: Sequence[str], date_column: str = "", covariates: Sequence[str] = (),
                     fill_nan: str = "error") -> tuple[list[np.ndarray], list[str], np.ndarray | None]:
    """One ``(T, 1 + K)`` array per target column (that target, then the covariates), the feature
    names of the first, and the dates."""
    table = read_csv(path)
    targets, covariates = list(targets), list(covariates)
    for names in ([*targets, *covariates],):
        if len(set(names)) != len(names):
            raise ValueError(f"the target and covariate columns repeat a name: {names}")
    table.require(targets)
    table.require(covariates, "covariate column")
    if date_column:
        table.require([date_column], "date_column")
    cov = [table.floats(name, fill_nan) for name in covariates]
    values = [np.stack([table.floats(name, fill_nan), *cov], axis=1) for name in targets]
    dates = _parse_dates(table.column(date_column), table, date_column) if date_column else None
    return values, [targets[0], *covariates], dates


def csv_files(path: str) -> list[str]:
    """The file itself, or every ``*.csv`` of a folder in name order."""
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "*.csv")))
        if not files:
            raise ValueError(f"config.data.csv={path!r} is a folder without *.csv files")
        return files
    if not os.path.exists(path):
        raise ValueError(f"config.data.csv={path!r}: no such file or folder")
    return [path]


@dataclasses.dataclass
class RawSeries:
    """One series as read: ``values (T, F)`` raw, feature 0 the target (column ``target``)."""

    name: str
    values: np.ndarray
    dates: np.ndarray | None = None
    source: str = ""  # where it came from, for messages
    target: str = ""


def read_all(d) -> tuple[list[RawSeries], list[str]]:
    """Every series of ``config.data``'s source and the feature names (target first)."""
    if d.source == "mackey_glass":
        try:
            x = mackey_glass(d.length, tau=d.mg_tau, beta=d.mg_beta, gamma=d.mg_gamma, n_exp=d.mg_n, dt=d.mg_dt,
                             sample_every=d.mg_sample_every, x0=d.mg_x0, discard=d.mg_discard, seed=d.mg_seed)
        except OverflowError:
            x = np.array([np.inf])
        if not np.all(np.isfinite(x)):
            raise ValueError(f"the Mackey-Glass integration overflowed with mg_beta={d.mg_beta}, "
                             f"mg_gamma={d.mg_gamma}, mg_n={d.mg_n}, mg_dt={d.mg_dt}: the RK4 step is unstable for "
                             "these rates; lower mg_dt or the rates")
        return [RawSeries("mackey_glass", x[:, None], source="the Mackey-Glass series", target="mackey_glass")], \
            ["mackey_glass"]
    if d.source == "sine":
        x = sine_mixture(d.length, periods=tuple(d.sine_periods), amplitudes=tuple(d.sine_amplitudes) or None,
                         noise=d.sine_noise, seed=d.sine_seed)
        return [RawSeries("sine", x[:, None], source="the sine series", target="sine")], ["sine"]
    if d.source != "csv":
        raise ValueError(f"config.data.source={d.source!r}: expected one of {', '.join(SOURCES)}")
    targets, covariates = split_names(d.column), split_names(d.covariates)
    if not targets:
        raise ValueError(f"config.data.column={d.column!r}: name at least one target column")
    files = csv_files(d.csv)
    out, names = [], None
    for path in files:
        try:
            values, feature_names, dates = read_csv_columns(path, targets, d.date_column, covariates, d.fill_nan)
        except FileNotFoundError as e:
            raise ValueError(f"config.data.csv={path!r}: no such file ({e.strerror})") from None
        names = names or feature_names
        stem = os.path.splitext(os.path.basename(path))[0]
        for column, v in zip(targets, values, strict=True):
            name = (f"{stem}:{column}" if len(targets) > 1 else stem) if len(files) > 1 else column
            out.append(RawSeries(name, v, dates, f"column {column!r} of {path}", column))
    return out, names


def read_series(d) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """``(values float64 (T, F), names, dates or None)`` of the first series of ``config.data``'s source."""
    series, names = read_all(d)
    return series[0].values, names, series[0].dates


# --------------------------------------------------------------------------- windows


@dataclasses.dataclass
class Windows:
    """Scaled windows of one split: ``inputs (N, L, F)``, ``targets (N, H, 1)``, ``origins (N,)`` and
    ``series (N,)`` (the index of each window's series).

    ``origins[i]`` is the index of the first target of window ``i`` in its series."""

    inputs: np.ndarray
    targets: np.ndarray
    origins: np.ndarray
    series: np.ndarray

    def __len__(self) -> int:
        return int(self.origins.shape[0])

    def source(self) -> ArraySource:
        return ArraySource(inputs=self.inputs.astype(np.float32), targets=self.targets.astype(np.float32),
                           series=self.series.astype(np.int32))

    @staticmethod
    def concat(parts: list[Windows]) -> Windows:
        return Windows(*(np.concatenate([getattr(p, f.name) for p in parts])
                         for f in dataclasses.fields(Windows)))


def _windows(scaled: np.ndarray, lookback: int, horizon: int, span: range, index: int) -> Windows:
    if not len(span):
        return Windows(np.zeros((0, lookback, scaled.shape[1])), np.zeros((0, horizon, 1)), np.zeros(0, np.int64),
                       np.zeros(0, np.int64))
    x, y = make_windows(scaled, lookback, horizon, span.start, span.stop, target_cols=[0])
    origins = window_origins(lookback, horizon, span.start, span.stop)
    return Windows(x, y, origins, np.full(len(origins), index, np.int64))


@dataclasses.dataclass
class Series:
    """One split, scaled series: its raw values, split, scaler (training span only) and windows."""

    name: str
    values: np.ndarray  # raw (T, F), original units
    dates: np.ndarray | None
    split: Split
    scaler: Scaler
    windows: dict  # split name -> Windows (scaled)
    target: str = ""  # the target column

    def origins(self, split: str) -> np.ndarray:
        return self.windows[split].origins

    def raw_targets(self, split: str, horizon: int) -> np.ndarray:
        o = self.origins(split)
        return self.values[o[:, None] + np.arange(horizon)[None, :], 0]

    @property
    def train_values(self) -> np.ndarray:
        """The target's raw training span."""
        return self.values[self.split.train.start:self.split.train.stop, 0]


@dataclasses.dataclass
class SeriesData(Data):
    """One or more split, scaled series with their pooled windows and batches. Targets are feature 0."""

    test: object  # test batches, as val
    series: list  # [Series], in the order of their index
    names: list  # feature names: the target column, then the covariates
    lookback: int
    horizon: int
    period: int  # 0: no seasonal baseline
    windows: dict  # split name -> Windows of every series, series by series

    # -- the single-series view (the first series)
    @property
    def values(self) -> np.ndarray:
        return self.series[0].values

    @property
    def dates(self):
        return self.series[0].dates

    @property
    def split(self) -> Split:
        return self.series[0].split

    @property
    def scaler(self) -> Scaler:
        return self.series[0].scaler

    @property
    def series_names(self) -> list[str]:
        return [s.name for s in self.series]

    # -- all series
    def unscale_targets(self, x: np.ndarray, split: str | None = None) -> np.ndarray:
        """Scaled target values back to original units: ``(..., N, H)`` for the windows of
        ``split``, each by its own series' scaler (any shape when there is one series)."""
        x = np.asarray(x, dtype=np.float64)
        if split is None:
            if len(self.series) > 1:
                raise ValueError("several series: say which split's windows these are")
            return unscale(self.scaler, x)
        mean, std = self.target_stats()
        ids = self.windows[split].series
        return x * std[ids][:, None] + mean[ids][:, None]

    def target_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Each series' target mean and std on its training span, ``(S,)`` each."""
        return (np.array([s.scaler.mean[0] for s in self.series]), np.array([s.scaler.std[0] for s in self.series]))

    def raw_targets(self, split: str) -> np.ndarray:
        """Targets of ``split`` in original units, ``(N, H)``."""
        return np.concatenate([s.raw_targets(split, self.horizon) for s in self.series])

    def history(self, split: str, length: int) -> np.ndarray:
        """Raw target values ``values[t - length : t, 0]`` before each origin, ``(N, length)``.

        ``length`` may exceed the lookback (e.g. a seasonal period longer than it) as long as
        every origin has that much history."""
        parts = []
        for s in self.series:
            o = s.origins(split)
            if o.size and o[0] < length:
                raise ValueError(f"{split!r} windows of {s.name!r} start at index {int(o[0])}, so they have only "
                                 f"{int(o[0])} points of history, fewer than the {length} asked for")
            parts.append(s.values[o[:, None] + np.arange(-length, 0)[None, :], 0])
        return np.concatenate(parts)


def unscale(scaler: Scaler, x: np.ndarray) -> np.ndarray:
    """Scaled target-column values (any shape) back to original units."""
    return scaler.inverse_transform(np.asarray(x, dtype=np.float64)[..., None], columns=[0])[..., 0]


def period_of(d) -> int:
    """``data.period``, or for ``source='sine'`` with period 0 the first of ``sine_periods``."""
    if d.period or d.source != "sine":
        return int(d.period)
    return int(round(float(tuple(d.sine_periods)[0])))


def prepare(raw: RawSeries, index: int, d, several: bool) -> Series:
    """Splits, scales and windows one series; a series too short fails naming it."""
    try:
        split = check_length(raw.values.shape[0], d.lookback, d.horizon, d.train_frac, d.val_frac)
    except ValueError as e:
        raise ValueError(f"{raw.source}: {e}" if several or raw.source.startswith("column") else str(e)) from None
    scaler = Scaler().fit(raw.values[split.train.start:split.train.stop])
    scaled = scaler.transform(raw.values)
    windows = {name: _windows(scaled, d.lookback, d.horizon, getattr(split, name), index) for name in SPLITS}
    return Series(raw.name, raw.values, raw.dates, split, scaler, windows, raw.target)


def load(config) -> SeriesData:
    """Reads or generates the series, splits each in time order, scales it and cuts its windows."""
    check_config(config)
    d = config.data
    raws, names = read_all(d)
    several = len(raws) > 1
    series = [prepare(raw, i, d, several) for i, raw in enumerate(raws)]
    windows = {split: Windows.concat([s.windows[split] for s in series]) for split in SPLITS}
    n_train = len(windows["train"])
    _need(config.train.batch_size <= n_train, "train.batch_size", config.train.batch_size,
          f"larger than the {n_train} training windows")
    period = period_of(d)
    if period:
        for split in ("val", "test"):
            for s in series:
                o = s.origins(split)
                _need(not o.size or o[0] >= period, "data.period", period,
                      f"the first {split} window of {s.name!r} has only {int(o[0]) if o.size else 0} points "
                      "of history")
    metadata = {"names": list(names), "series": [s.name for s in series], "targets": [s.target for s in series],
                "scalers": [s.scaler.to_dict() for s in series], "lookback": d.lookback, "horizon": d.horizon,
                "period": period,
                "splits": [[s.split.val.start, s.split.test.start, int(s.values.shape[0])] for s in series]}
    fit = highway_fit(config.model, d.horizon, len(names), period, len(series), d.lookback,
                      (windows["train"].inputs, windows["train"].targets),
                      (windows["val"].inputs, windows["val"].targets))
    if fit is not None:
        metadata["highway_init"] = fit
    return SeriesData(
        train=train_batches(windows["train"].source(), config.train.batch_size, config.seed),
        val=eval_batches(windows["val"].source(), config.eval.batch_size) if len(windows["val"]) else [],
        test=eval_batches(windows["test"].source(), config.eval.batch_size),
        metadata=metadata, series=series, names=list(names), lookback=d.lookback, horizon=d.horizon,
        period=period, windows=windows)
