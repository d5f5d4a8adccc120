"""Forecast scores, in original units, overall and per horizon step.

A forecast of ``N`` windows and ``H`` steps is a :class:`Forecast`: its point forecast ``mean``
``(N, H)`` and, for a probabilistic model, ``samples`` ``(S, N, H)`` drawn from its predictive
distribution. Every score is averaged over windows (and, for ``*_all``, over steps too):

* ``mae``, ``rmse``;
* ``mase``: the MAE divided by the mean absolute seasonal difference ``|y[t] - y[t - m]|`` of the
  series' training span (``m`` = the period, or 1 when there is none: the in-sample naive
  forecast's error), per window, so that series of different scales average fairly;
* ``smape``: ``200 |f - y| / (|f| + |y|)`` in percent (0 where both are 0);
* with samples: ``crps`` (the continuous ranked probability score, estimated without bias from
  the samples; it equals the MAE for a point forecast) and ``coverage80`` / ``coverage95``, the
  share of true values inside the central 80% and 95% intervals of the samples.

``score(forecast, truth, scale)`` returns ``{"mae": (H,), "mae_all": float, ..., "n": N}``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = ["COVERAGE_LEVELS", "Forecast", "crps_gaussian", "crps_samples", "interval", "mase_scale", "score"]

COVERAGE_LEVELS = (80, 95)
POINT_KEYS = ("mae", "rmse", "mase", "smape")
PROB_KEYS = ("crps", "coverage80", "coverage95")


@dataclasses.dataclass
class Forecast:
    """A point forecast ``mean (N, H)`` and optional predictive ``samples (S, N, H)``."""

    mean: np.ndarray
    samples: np.ndarray | None = None

    def __post_init__(self):
        self.mean = np.asarray(self.mean, dtype=np.float64)
        if self.mean.ndim != 2:
            raise ValueError(f"a forecast's mean must be (windows, horizon), got shape {self.mean.shape}")
        if self.samples is not None:
            self.samples = np.asarray(self.samples, dtype=np.float64)
            if self.samples.ndim != 3 or self.samples.shape[1:] != self.mean.shape:
                raise ValueError(f"samples must be (S, {self.mean.shape[0]}, {self.mean.shape[1]}), "
                                 f"got {self.samples.shape}")

    @property
    def probabilistic(self) -> bool:
        return self.samples is not None

    def take(self, rows) -> Forecast:
        """The forecast of some windows only."""
        return Forecast(self.mean[rows], None if self.samples is None else self.samples[:, rows])

    @staticmethod
    def concat(parts: list[Forecast]) -> Forecast:
        """Windows of several forecasts, one after another (samples only if every part has them)."""
        mean = np.concatenate([p.mean for p in parts])
        if not all(p.probabilistic for p in parts):
            return Forecast(mean)
        S = min(p.samples.shape[0] for p in parts)
        return Forecast(mean, np.concatenate([p.samples[:S] for p in parts], axis=1))


def mase_scale(train_values: np.ndarray, period: int = 0) -> float:
    """Mean absolute ``m``-step difference of a training span (``m`` = period, or 1 when 0).

    A constant span would give 0 and a meaningless MASE; it fails instead."""
    y = np.asarray(train_values, dtype=np.float64).reshape(-1)
    m = int(period) if period else 1
    if y.size <= m:
        raise ValueError(f"the MASE scale needs more than {m} training values, got {y.size}")
    scale = float(np.mean(np.abs(y[m:] - y[:-m])))
    if not scale > 0:
        raise ValueError(f"the training span is constant at lag {m}: its MASE scale is 0")
    return scale


def crps_samples(samples: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """CRPS per point from ``S`` samples ``(S, ...)`` of each forecast (unbiased for the
    distribution they are drawn from): ``mean|X - y| - sum_{i,j}|X_i - X_j| / (2 S (S - 1))``."""
    x = np.sort(np.asarray(samples, dtype=np.float64), axis=0)
    y = np.asarray(truth, dtype=np.float64)
    S = x.shape[0]
    if S < 2:
        raise ValueError(f"the CRPS needs at least 2 samples, got {S}")
    first = np.mean(np.abs(x - y[None]), axis=0)
    # sum_{i<j} (x_(j) - x_(i)) over sorted samples = sum_k (2k - S + 1) x_(k), k = 0..S-1
    k = np.arange(S, dtype=np.float64).reshape((S,) + (1,) * y.ndim)
    spread = np.sum((2 * k - S + 1) * x, axis=0)
    return first - spread / (S * (S - 1))


def crps_gaussian(mu, sigma, truth) -> np.ndarray:
    """The closed form for a normal distribution (Gneiting and Raftery 2007, eq. 21)."""
    from scipy.stats import norm  # scipy comes with jax

    mu, sigma, y = (np.asarray(a, dtype=np.float64) for a in (mu, sigma, truth))
    z = (y - mu) / sigma
    return sigma * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / math.sqrt(math.pi))


def interval(samples: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
    """The central ``level``% interval of the samples (axis 0): ``(lower, upper)``."""
    tail = (100 - level) / 200
    lo, hi = np.quantile(np.asarray(samples, dtype=np.float64), [tail, 1 - tail], axis=0)
    return lo, hi


def score(forecast: Forecast, truth: np.ndarray, scale: np.ndarray | float = 1.0) -> dict:
    """Scores of a forecast against ``truth (N, H)``; ``scale`` is the MASE scale, one per window or one."""
    f = forecast if isinstance(forecast, Forecast) else Forecast(forecast)
    y = np.asarray(truth, dtype=np.float64)
    if f.mean.shape != y.shape:
        raise ValueError(f"forecast {f.mean.shape} and truth {y.shape} differ in shape")
    if not (np.all(np.isfinite(f.mean)) and np.all(np.isfinite(y))):
        raise ValueError("the forecast or the truth holds non-finite values")
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64).reshape(-1, 1), y.shape)
    err = f.mean - y
    denom = np.abs(f.mean) + np.abs(y)
    per_point = {
        "mae": np.abs(err),
        "mase": np.abs(err) / scale,
        "smape": np.where(denom > 0, 200.0 * np.abs(err) / np.where(denom > 0, denom, 1.0), 0.0),
    }
    if f.probabilistic:
        per_point["crps"] = crps_samples(f.samples, y)
        for level in COVERAGE_LEVELS:
            lo, hi = interval(f.samples, level)
            per_point[f"coverage{level}"] = ((y >= lo) & (y <= hi)).astype(np.float64)
    out: dict = {}
    for key, v in per_point.items():
        out[key] = v.mean(axis=0)
        out[f"{key}_all"] = float(v.mean())
    out["rmse"] = np.sqrt(np.mean(err**2, axis=0))
    out["rmse_all"] = float(math.sqrt(np.mean(err**2)))
    out["n"] = int(y.shape[0])
    return out


def to_json(metrics: dict) -> dict:
    """Arrays as lists, for a JSON file."""
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in metrics.items()}
