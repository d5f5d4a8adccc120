"""Data for the time-series forecasting experiment.

``load_series(cfg)`` reads or generates a series; ``prepare(cfg, lookback, horizon, seed)``
splits it in time order, fits a z-score scaler on the training span only and cuts
scaled forecast windows (see :mod:`seqjax.data.series` for the window and leakage rules).

Config keys (``cfg`` may be a dict, an ``ml_collections.ConfigDict`` or any object with
attributes; absent keys take the defaults shown)
-------------------------------------------------------------------------------------
source       'mackey_glass' (default, needs no file) | 'sine' | 'csv'
length       number of points generated for 'mackey_glass' / 'sine' (default 2000)
csv          path of the CSV file (source='csv'); the first row is the header
column       name of the target column (source='csv'); the target is always feature 0
date_column  optional column of dates/labels, returned as ``dates`` (datetime64[D] when
             every cell parses with one of a few common formats, else the raw strings);
             parsed dates must be strictly increasing
covariates   optional tuple of extra numeric columns, used as input features 1..K
fill_nan     what to do with missing cells (empty, 'nan', 'NA', 'N/A', 'null', 'none',
             '.') in the chosen columns:
               'error'       (default) raise ValueError listing the rows
               'ffill'       carry the last valid value forward (a leading gap is an error)
               'interpolate' linear in the row index (a leading/trailing gap is an error)
             Filling is reported with a UserWarning naming the rows; it is never silent.
             Non-numeric text (e.g. 'abc', '1,234') is always an error.
train_frac   fraction of points for training (default 0.7)
val_frac     fraction for validation (default 0.15); the test span takes the rest
lookback     input window length, used when ``prepare`` is not given one (default 48)
horizon      forecast steps, used when ``prepare`` is not given one (default 12)
period       seasonal period for the seasonal-naive baseline (default: the first of
             sine_periods for source='sine', otherwise None = no seasonal baseline)
Generator knobs
  mg_tau (17), mg_beta (0.2), mg_gamma (0.1), mg_n (10), mg_dt (0.1), mg_x0 (1.2),
  mg_discard (500), mg_seed (None = constant initial history), mg_sample_every (1)
  sine_periods ((12, 50)), sine_amplitudes (None = all 1), sine_noise (0.1), sine_seed (0)

Rows in CSV error messages are 1-based *data* rows (the first row after the header is
row 1); the file line number is given beside it.
"""

from __future__ import annotations

import csv as _csv
import dataclasses
import datetime as _dt
import math
import warnings
from collections.abc import Iterator, Sequence

import numpy as np

from seqjax.data.series import (
    Scaler,
    Split,
    check_length,
    mackey_glass,
    make_windows,
    sine_mixture,
    window_origins,
)

DEFAULTS = {
    "source": "mackey_glass",
    "length": 2000,
    "csv": None,
    "column": None,
    "date_column": None,
    "covariates": (),
    "fill_nan": "error",
    "train_frac": 0.7,
    "val_frac": 0.15,
    "lookback": 48,
    "horizon": 12,
    "period": None,
    "mg_tau": 17.0,
    "mg_beta": 0.2,
    "mg_gamma": 0.1,
    "mg_n": 10.0,
    "mg_dt": 0.1,
    "mg_x0": 1.2,
    "mg_discard": 500,
    "mg_seed": None,
    "mg_sample_every": 1,
    "sine_periods": (12.0, 50.0),
    "sine_amplitudes": None,
    "sine_noise": 0.1,
    "sine_seed": 0,
}

_NAN_TOKENS = {"", "nan", "na", "n/a", "null", "none", "."}
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y-%m", "%b-%d-%Y", "%d-%b-%Y", "%m/%d/%Y", "%Y")
_SPLITS = ("train", "val", "test")


def _get(cfg, key):
    """Read ``key`` from a dict / ConfigDict / attribute object, else the default."""
    if cfg is None:
        return DEFAULTS[key]
    if hasattr(cfg, "get"):
        try:
            v = cfg.get(key, DEFAULTS[key])
        except (AttributeError, KeyError, TypeError):
            v = DEFAULTS[key]
    else:
        v = getattr(cfg, key, DEFAULTS[key])
    return DEFAULTS[key] if v is None and DEFAULTS[key] is not None else v


def _fmt_rows(rows: Sequence[int], limit: int = 20) -> str:
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (f", ... ({len(rows)} in all)" if len(rows) > limit else "")


# --------------------------------------------------------------------------- CSV


def _read_csv(path: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows (blank lines dropped) and the file line of each data row."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = _csv.reader(fh)
        header = None
        rows, lines = [], []
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            if header is None:
                header = [c.strip() for c in row]
                continue
            rows.append(row)
            lines.append(reader.line_num)
    if header is None:
        raise ValueError(f"{path}: the file is empty (no header row)")
    if not rows:
        raise ValueError(f"{path}: the file has a header but no data rows")
    return header, rows, lines


def _column_index(header: list[str], name: str, path: str, what: str) -> int:
    if name not in header:
        raise ValueError(f"{path}: {what} {name!r} not found; available columns: {header}")
    return header.index(name)


def _parse_column(rows, lines, j: int, name: str, path: str) -> tuple[np.ndarray, list[str]]:
    """Float column with NaN for missing cells, and the raw cells; non-numeric text raises."""
    out = np.empty(len(rows))
    bad = []
    cells = []
    for i, row in enumerate(rows):
        cell = row[j].strip() if j < len(row) else ""
        cells.append(cell)
        if cell.lower() in _NAN_TOKENS:
            out[i] = np.nan
            continue
        try:
            v = float(cell)
        except ValueError:
            bad.append((i + 1, lines[i], cell))
            continue
        if math.isinf(v):
            bad.append((i + 1, lines[i], cell))
            continue
        out[i] = v
    if bad:
        desc = "; ".join(f"row {r} (line {ln}): {s!r}" for r, ln, s in bad[:20])
        more = f"; ... ({len(bad)} in all)" if len(bad) > 20 else ""
        raise ValueError(
            f"{path}: column {name!r} has non-numeric values at data rows "
            f"{_fmt_rows([b[0] for b in bad])}: {desc}{more}"
        )
    return out, cells


def _fill(parsed: tuple[np.ndarray, list[str]], how: str, name: str, path: str) -> np.ndarray:
    x, cells = parsed
    nan = np.flatnonzero(np.isnan(x))
    if nan.size == 0:
        return x
    rows = (nan + 1).tolist()
    if how == "error":
        shown = ", ".join(f"row {i + 1}: {cells[i]!r}" for i in nan[:20])
        raise ValueError(
            f"{path}: column {name!r} has missing/NaN values at data rows {_fmt_rows(rows)} "
            f"({shown}); fix the file or set fill_nan='ffill' or 'interpolate'"
        )
    ok = np.flatnonzero(~np.isnan(x))
    if ok.size == 0:
        raise ValueError(f"{path}: column {name!r} has no numeric values at all")
    x = x.copy()
    if how == "ffill":
        if nan[0] < ok[0]:
            lead = (np.arange(ok[0]) + 1).tolist()
            raise ValueError(
                f"{path}: column {name!r} starts with missing values at data rows {_fmt_rows(lead)}; "
                f"fill_nan='ffill' has no earlier value to carry forward"
            )
        last = np.maximum.accumulate(np.where(np.isnan(x), -1, np.arange(x.size)))
        x = x[last]
    elif how == "interpolate":
        edge = nan[(nan < ok[0]) | (nan > ok[-1])]
        if edge.size:
            raise ValueError(
                f"{path}: column {name!r} has missing values at data rows {_fmt_rows((edge + 1).tolist())} "
                f"before the first or after the last valid value; fill_nan='interpolate' does not extrapolate"
            )
        x[nan] = np.interp(nan, ok, x[ok])
    else:
        raise ValueError(f"fill_nan must be 'error', 'ffill' or 'interpolate', got {how!r}")
    warnings.warn(
        f"{path}: filled {nan.size} missing value(s) in column {name!r} by {how} "
        f"at data rows {_fmt_rows(rows)}",
        UserWarning,
        stacklevel=3,
    )
    return x


def _parse_dates(cells: list[str], lines: list[int], path: str, name: str):
    for fmt in _DATE_FORMATS:
        try:
            parsed = [_dt.datetime.strptime(c.strip(), fmt).date() for c in cells]
        except ValueError:
            continue
        dates = np.array(parsed, dtype="datetime64[D]")
        back = np.flatnonzero(np.diff(dates) <= np.timedelta64(0, "D"))
        if back.size:
            i = int(back[0]) + 1
            raise ValueError(
                f"{path}: date column {name!r} is not strictly increasing at data row {i + 1} "
                f"(line {lines[i]}): {cells[i]!r} follows {cells[i - 1]!r}; sort the file by date"
            )
        return dates
    return np.array(cells, dtype=str)


def load_csv(
    path: str,
    column: str,
    date_column: str | None = None,
    covariates: Sequence[str] = (),
    fill_nan: str = "error",
):
    """``(values (T, 1 + K) float64, names, dates_or_None)`` from a CSV file; see module docstring."""
    if fill_nan not in ("error", "ffill", "interpolate"):
        raise ValueError(f"fill_nan must be 'error', 'ffill' or 'interpolate', got {fill_nan!r}")
    if not column:
        raise ValueError("source='csv' needs `column`, the name of the target column")
    if isinstance(covariates, str):
        covariates = (covariates,)
    header, rows, lines = _read_csv(path)
    names = [column, *covariates]
    if len(set(names)) != len(names):
        raise ValueError(f"the target and covariate columns repeat a name: {names}")
    idx = [
        _column_index(header, c, path, "column" if k == 0 else "covariate column")
        for k, c in enumerate(names)
    ]
    cols = [
        _fill(_parse_column(rows, lines, j, c, path), fill_nan, c, path)
        for j, c in zip(idx, names, strict=True)
    ]
    values = np.stack(cols, axis=1)
    dates = None
    if date_column:
        jd = _column_index(header, date_column, path, "date_column")
        dates = _parse_dates([r[jd] if jd < len(r) else "" for r in rows], lines, path, date_column)
    return values, names, dates


def load_series(cfg_data=None):
    """``(values float64 (T, F), names, dates_or_None)`` for ``cfg_data.source``.

    Feature 0 is the forecast target; CSV covariates follow it.
    """
    source = _get(cfg_data, "source")
    if source == "mackey_glass":
        x = mackey_glass(
            int(_get(cfg_data, "length")),
            tau=float(_get(cfg_data, "mg_tau")),
            beta=float(_get(cfg_data, "mg_beta")),
            gamma=float(_get(cfg_data, "mg_gamma")),
            n_exp=float(_get(cfg_data, "mg_n")),
            dt=float(_get(cfg_data, "mg_dt")),
            sample_every=int(_get(cfg_data, "mg_sample_every")),
            x0=float(_get(cfg_data, "mg_x0")),
            discard=int(_get(cfg_data, "mg_discard")),
            seed=_get(cfg_data, "mg_seed"),
        )
        return x[:, None], ["mackey_glass"], None
    if source == "sine":
        amps = _get(cfg_data, "sine_amplitudes")
        x = sine_mixture(
            int(_get(cfg_data, "length")),
            periods=tuple(_get(cfg_data, "sine_periods")),
            amplitudes=None if amps is None else tuple(amps),
            noise=float(_get(cfg_data, "sine_noise")),
            seed=_get(cfg_data, "sine_seed"),
        )
        return x[:, None], ["sine"], None
    if source == "csv":
        path = _get(cfg_data, "csv")
        if not path:
            raise ValueError("source='csv' needs `csv`, the path of the file")
        return load_csv(
            str(path),
            _get(cfg_data, "column"),
            date_column=_get(cfg_data, "date_column"),
            covariates=tuple(_get(cfg_data, "covariates") or ()),
            fill_nan=_get(cfg_data, "fill_nan"),
        )
    raise ValueError(f"unknown source {source!r}; expected 'mackey_glass', 'sine' or 'csv'")


# --------------------------------------------------------------------------- prepared data


@dataclasses.dataclass
class Windows:
    """Scaled windows of one split: ``inputs (N, L, F)``, ``targets (N, H, 1)``, ``origins (N,)``.

    ``origins[i]`` is the index of the first target of window ``i`` in the full series.
    """

    inputs: np.ndarray
    targets: np.ndarray
    origins: np.ndarray

    def __len__(self) -> int:
        return int(self.origins.shape[0])


@dataclasses.dataclass
class SeriesData:
    """A split, scaled series with its windows. Targets are feature 0 only."""

    values: np.ndarray  # raw (T, F), original units
    names: list
    dates: np.ndarray | None
    split: Split
    scaler: Scaler  # fitted on values[split.train] only
    scaled: np.ndarray  # scaler.transform(values)
    lookback: int
    horizon: int
    period: int | None
    seed: int
    train: Windows
    val: Windows | None  # None when val_frac == 0
    test: Windows

    @property
    def num_features(self) -> int:
        return int(self.values.shape[1])

    @property
    def test_raw(self) -> np.ndarray:
        """Raw (unscaled) values of the test span, ``(T_test, F)``."""
        return self.values[self.split.test.start : self.split.test.stop]

    def windows(self, split: str) -> Windows:
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
        w = getattr(self, split)
        if w is None:
            raise ValueError(f"there is no {split!r} split (val_frac == 0)")
        return w

    def unscale_targets(self, x: np.ndarray) -> np.ndarray:
        """Scaled target-column values (any shape) back to original units."""
        x = np.asarray(x, dtype=np.float64)
        return self.scaler.inverse_transform(x[..., None], columns=[0])[..., 0]

    def raw_targets(self, split: str) -> np.ndarray:
        """Targets of ``split`` in original units, ``(N, H)``."""
        o = self.windows(split).origins
        return self.values[o[:, None] + np.arange(self.horizon)[None, :], 0]

    def history(self, split: str, length: int | None = None) -> np.ndarray:
        """Raw target values ``values[t - length : t, 0]`` before each origin, ``(N, length)``.

        ``length`` defaults to ``lookback``; it may exceed it (e.g. a seasonal period
        longer than the lookback) as long as every origin has that much history.
        """
        length = self.lookback if length is None else int(length)
        o = self.windows(split).origins
        if o.size and o[0] < length:
            raise ValueError(
                f"{split!r} windows start at index {int(o[0])}, so they have only {int(o[0])} points of "
                f"history, fewer than the {length} asked for"
            )
        return self.values[o[:, None] + np.arange(-length, 0)[None, :], 0]

    def steps_per_epoch(self, batch_size: int) -> int:
        n = len(self.train)
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if batch_size > n:
            raise ValueError(f"batch_size={batch_size} exceeds the {n} training windows")
        return n // batch_size

    def train_batch(self, step: int, batch_size: int, seed: int | None = None) -> dict:
        """Training batch ``step``, a pure function of ``(seed, step)`` (and the data).

        Epoch ``e = step // steps_per_epoch`` visits the training windows in the order
        ``default_rng([seed, e]).permutation(N)``; the last incomplete batch of an epoch
        is dropped. Returns float32 ``{'inputs': (B, L, F), 'targets': (B, H, 1)}``.
        """
        seed = self.seed if seed is None else int(seed)
        spe = self.steps_per_epoch(batch_size)
        epoch, k = divmod(int(step), spe)
        perm = np.random.default_rng([seed, epoch]).permutation(len(self.train))
        idx = perm[k * batch_size : (k + 1) * batch_size]
        return {
            "inputs": self.train.inputs[idx].astype(np.float32),
            "targets": self.train.targets[idx].astype(np.float32),
        }

    def eval_batches(self, split: str, batch_size: int, pad: bool = False) -> Iterator[dict]:
        """Windows of ``split`` in time order, ``batch_size`` at a time.

        Each batch is float32 ``{'inputs', 'targets', 'mask'}``; ``mask`` (bool ``(B,)``)
        marks real windows. With ``pad=True`` the last batch is padded to ``batch_size``
        by repeating its last window (mask False there), so every batch has one shape.
        """
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        w = self.windows(split)
        n = len(w)
        for lo in range(0, n, batch_size):
            idx = np.arange(lo, min(lo + batch_size, n))
            mask = np.ones(idx.size, dtype=bool)
            if pad and idx.size < batch_size:
                extra = batch_size - idx.size
                idx = np.concatenate([idx, np.full(extra, idx[-1])])
                mask = np.concatenate([mask, np.zeros(extra, dtype=bool)])
            yield {
                "inputs": w.inputs[idx].astype(np.float32),
                "targets": w.targets[idx].astype(np.float32),
                "mask": mask,
            }


def _windows(scaled: np.ndarray, lookback: int, horizon: int, span: range) -> Windows:
    x, y = make_windows(scaled, lookback, horizon, span.start, span.stop, target_cols=[0])
    return Windows(x, y, window_origins(lookback, horizon, span.start, span.stop))


def prepare(
    cfg_data=None, lookback: int | None = None, horizon: int | None = None, seed: int = 0
) -> SeriesData:
    """Load, split (time order), scale (train span only) and window the series.

    ``lookback``/``horizon`` default to the config's. ``seed`` fixes the training batch
    order (see :meth:`SeriesData.train_batch`). Raises ``ValueError`` if the series is
    too short for the windows and splits, saying how long it is and must be.
    """
    lookback = int(_get(cfg_data, "lookback") if lookback is None else lookback)
    horizon = int(_get(cfg_data, "horizon") if horizon is None else horizon)
    train_frac = float(_get(cfg_data, "train_frac"))
    val_frac = float(_get(cfg_data, "val_frac"))
    values, names, dates = load_series(cfg_data)
    split = check_length(values.shape[0], lookback, horizon, train_frac, val_frac)
    scaler = Scaler().fit(values[split.train.start : split.train.stop])
    scaled = scaler.transform(values)
    period = _get(cfg_data, "period")
    if period is None and _get(cfg_data, "source") == "sine":
        period = int(round(float(tuple(_get(cfg_data, "sine_periods"))[0])))
    return SeriesData(
        values=values,
        names=list(names),
        dates=dates,
        split=split,
        scaler=scaler,
        scaled=scaled,
        lookback=lookback,
        horizon=horizon,
        period=None if period is None else int(period),
        seed=int(seed),
        train=_windows(scaled, lookback, horizon, split.train),
        val=_windows(scaled, lookback, horizon, split.val) if len(split.val) else None,
        test=_windows(scaled, lookback, horizon, split.test),
    )
