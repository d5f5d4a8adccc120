"""Classical forecasters, scored beside every recurrent model on the same windows.

Each works on one raw series ``y`` (the target column, original units) and forecasts the
``horizon`` values after given origins ``t`` (window ``i`` forecasts ``y[t_i : t_i + H]`` from
``y[:t_i]``). Everything is fitted on the training span ``y[:train_stop]`` only:

* ``persistence``: the last value, repeated.
* ``seasonal_naive``: the value one period back (needs a period).
* ``ar``: a linear autoregression AR(p) fitted by least squares, *direct*: one regression per
  horizon step ``h``, ``y[t+h-1] = c_h + sum_j a_hj y[t-j]`` (no forecast is fed back). ``p`` is
  chosen on the validation windows' MAE among ``1..max(24, 2 period)``; its predictive distribution is
  Gaussian with the training residuals' spread at each step.
* ``ets``, ``arima``, ``theta``: AutoETS, AutoARIMA and AutoTheta from ``statsforecast``
  (optional: ``pip install 'seqjax[forecast]'``), fitted on the training span with their own
  order selection, then applied with those fitted parameters to each origin's history
  (``forward``), with Gaussian intervals.

:func:`classical` runs them all on one series and returns ``{name: {split: Forecast}}`` and
notes (the chosen ``p``, why a model was skipped).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from experiments.timeseries.metrics import Forecast

__all__ = ["LinearAR", "classical", "persistence", "select_ar", "seasonal_naive", "statsforecast_forecasts"]

STATSFORECAST_MODELS = ("ets", "arima", "theta")
INSTALL_HINT = "pip install 'seqjax[forecast]'"


def _check_horizon(horizon) -> int:
    if int(horizon) != horizon or horizon <= 0:
        raise ValueError(f"horizon must be a positive integer, got {horizon}")
    return int(horizon)


def persistence(inputs_last_value: np.ndarray, horizon: int) -> np.ndarray:
    """Repeat the last observed value for every horizon step: ``(N,)`` -> ``(N, H)``
    (``(N, F)`` -> ``(N, H, F)``)."""
    horizon = _check_horizon(horizon)
    last = np.asarray(inputs_last_value, dtype=np.float64)
    return np.repeat(last[:, None, ...], horizon, axis=1)


def seasonal_naive(history: np.ndarray, horizon: int, period: int) -> np.ndarray:
    """Value one season back: step ``h`` (1-based) predicts ``y[t + h - period * ceil(h / period)]``.

    ``history`` is ``(N, L)`` or ``(N, L, F)`` ending at ``y[t - 1]``, with ``L >= period`` (only
    the last ``period`` values are read); a 1-D ``(L,)`` history is one window. Past one period the
    last season repeats. Returns ``(N, H)`` / ``(N, H, F)`` (``(H,)`` for 1-D input).
    """
    horizon = _check_horizon(horizon)
    if int(period) != period or period <= 0:
        raise ValueError(f"period must be a positive integer, got {period}")
    hist = np.asarray(history, dtype=np.float64)
    single = hist.ndim == 1
    if single:
        hist = hist[None]
    L = hist.shape[1]
    if L < period:
        raise ValueError(f"seasonal_naive needs at least period={period} values of history, got {L}")
    h = np.arange(1, horizon + 1)
    pos = L - 1 + h - period * ((h + period - 1) // period)  # y[t + k] sits at position L - 1 + k
    out = hist[:, pos]
    return out[0] if single else out


# --------------------------------------------------------------------------- AR(p)


def _lags(y: np.ndarray, origins: np.ndarray, p: int) -> np.ndarray:
    """Design rows ``[1, y[t-1], ..., y[t-p]]`` for each origin ``t``: ``(N, p + 1)``."""
    idx = origins[:, None] - np.arange(1, p + 1)[None, :]
    return np.concatenate([np.ones((len(origins), 1)), y[idx]], axis=1)


@dataclasses.dataclass
class LinearAR:
    """A direct AR(p): ``coef (p + 1, H)`` (intercept row, then lags 1..p) and the residual
    standard deviation of each step on the training span, ``sigma (H,)``."""

    p: int
    coef: np.ndarray
    sigma: np.ndarray

    @classmethod
    def fit(cls, y: np.ndarray, p: int, horizon: int, train_stop: int) -> LinearAR:
        """Least squares over every origin whose lags and targets lie in ``y[:train_stop]``."""
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        origins = np.arange(p, train_stop - horizon + 1)
        if len(origins) < p + 2:
            raise ValueError(f"AR({p}) at horizon {horizon} needs at least {2 * p + horizon + 2} training "
                             f"values, got {train_stop}")
        X = _lags(y, origins, p)
        Y = y[origins[:, None] + np.arange(horizon)[None, :]]
        coef = np.linalg.lstsq(X, Y, rcond=None)[0]
        resid = Y - X @ coef
        sigma = np.sqrt(np.sum(resid**2, axis=0) / max(len(origins) - p - 1, 1))
        return cls(int(p), coef, sigma)

    def predict(self, y: np.ndarray, origins: np.ndarray) -> np.ndarray:
        """``(N, H)`` forecasts from ``y[:t]`` for each origin ``t`` (needs ``t >= p``)."""
        origins = np.asarray(origins, dtype=np.int64)
        if origins.size and origins.min() < self.p:
            raise ValueError(f"AR({self.p}) needs {self.p} values before each origin; the first is {origins.min()}")
        return _lags(np.asarray(y, dtype=np.float64).reshape(-1), origins, self.p) @ self.coef


AR_MAX_ORDER = 24


def ar_orders(period: int, train_stop: int, horizon: int) -> list[int]:
    """Candidate orders: ``1 .. max(24, 2 * period)``, capped so the fit has at least about three
    rows per coefficient. They do not depend on the network's lookback, so every recurrent
    configuration is compared with the same baseline."""
    cap = (train_stop - horizon) // 3
    return list(range(1, max(1, min(max(AR_MAX_ORDER, 2 * int(period)), cap)) + 1))


def select_ar(y: np.ndarray, train_stop: int, horizon: int, orders, val_origins: np.ndarray) -> tuple[LinearAR, dict]:
    """The order with the lowest validation MAE (the smaller on a tie) and each order's score.

    Without validation windows the order is chosen by BIC on the step-1 training residuals."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    fitted, scores = {}, {}
    for p in orders:
        try:
            fitted[p] = LinearAR.fit(y, p, horizon, train_stop)
        except ValueError:
            break  # longer orders have even fewer rows
        if len(val_origins):
            truth = y[val_origins[:, None] + np.arange(horizon)[None, :]]
            scores[p] = float(np.mean(np.abs(fitted[p].predict(y, val_origins) - truth)))
        else:
            n = train_stop - p - horizon + 1
            scores[p] = float(n * np.log(max(fitted[p].sigma[0] ** 2, 1e-300)) + (p + 1) * np.log(n))
    if not fitted:
        raise ValueError(f"the training span ({train_stop} values) is too short for any AR order at horizon {horizon}")
    best = min(scores, key=lambda p: (scores[p], p))
    return fitted[best], scores


def gaussian_samples(mean: np.ndarray, sigma: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """``(S, N, H)`` draws from independent normals around ``mean (N, H)`` with spread ``sigma``
    (``(H,)`` or ``(N, H)``)."""
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), mean.shape)
    return mean[None] + sigma[None] * rng.standard_normal((samples, *mean.shape))


# --------------------------------------------------------------------------- statsforecast


def statsforecast_available() -> str:
    """'' when statsforecast imports, else the reason it does not."""
    try:
        import statsforecast.models  # noqa: F401
    except ImportError as e:
        return f"statsforecast is not installed ({e}); {INSTALL_HINT}"
    return ""


def _statsforecast_model(name: str, period: int):
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta

    m = int(period) if period and period > 1 else 1
    return {"ets": AutoETS, "arima": AutoARIMA, "theta": AutoTheta}[name](season_length=m)


def statsforecast_forecasts(name: str, y: np.ndarray, train_stop: int, horizon: int, period: int,
                            origins: dict) -> dict:
    """``{split: (mean (N, H), sigma (N, H))}`` of one statsforecast model fitted on ``y[:train_stop]``."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = _statsforecast_model(name, period).fit(y[:train_stop])
        out = {}
        for split, os_ in origins.items():
            mean, sigma = np.zeros((len(os_), horizon)), np.zeros((len(os_), horizon))
            for i, o in enumerate(os_):
                res = model.forward(y[:int(o)], h=horizon, level=[95])
                mean[i] = np.asarray(res["mean"], dtype=np.float64)
                sigma[i] = (np.asarray(res["hi-95"], dtype=np.float64) - mean[i]) / 1.959964
            if not np.all(np.isfinite(mean)):
                raise ValueError(f"non-finite {split} forecasts")
            out[split] = (mean, np.where(np.isfinite(sigma) & (sigma > 0), sigma, 0.0))
    return out


# --------------------------------------------------------------------------- all of them


def classical(y: np.ndarray, train_stop: int, origins: dict, horizon: int, period: int, *,
              samples: int = 500, seed: int = 0, use_statsforecast: bool = True) -> tuple[dict, dict]:
    """Every baseline on one series: ``({name: {split: Forecast}}, {name: note})``.

    ``origins`` maps split names (at least ``'val'`` and ``'test'``) to window origins; forecasts
    come in that order. Notes say which AR order was chosen and why a model was left out."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    horizon = _check_horizon(horizon)
    rng = np.random.default_rng(seed)
    history = {s: y[o[:, None] + np.arange(-max(period, 1), 0)[None, :]] if len(o) else np.zeros((0, max(period, 1)))
               for s, o in origins.items()}
    out: dict = {"persistence": {s: Forecast(persistence(h[:, -1], horizon)) for s, h in history.items()}}
    notes: dict = {}
    if period:
        out["seasonal_naive"] = {s: Forecast(seasonal_naive(h, horizon, period)) for s, h in history.items()}
    orders = ar_orders(period, train_stop, horizon)
    try:
        ar, scores = select_ar(y, train_stop, horizon, orders, origins.get("val", np.zeros(0, np.int64)))
    except ValueError as e:
        notes["ar"] = f"skipped: {e}"
    else:
        how = "validation MAE" if len(origins.get("val", ())) else "BIC (no validation windows)"
        notes["ar"] = f"p={ar.p}, chosen by {how} among p=1..{max(scores)}"
        out["ar"] = {}
        for s, o in origins.items():
            mean = ar.predict(y, o)
            out["ar"][s] = Forecast(mean, gaussian_samples(mean, ar.sigma, samples, rng))
    reason = statsforecast_available() if use_statsforecast else "turned off (eval.statsforecast=False)"
    for name in STATSFORECAST_MODELS:
        if reason:
            notes[name] = f"skipped: {reason}"
            continue
        try:
            fc = statsforecast_forecasts(name, y, train_stop, horizon, period, origins)
        except Exception as e:  # a model that cannot fit this series is reported, not fatal
            notes[name] = f"skipped: statsforecast failed ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
            continue
        out[name] = {s: Forecast(m, gaussian_samples(m, sd, samples, rng)) for s, (m, sd) in fc.items()}
    return out, notes
