"""Naive forecasting baselines, per-horizon metrics, tables and plots.

All functions work on windows in original units. Shapes: ``N`` windows, ``H`` horizon
steps, optionally ``F`` target columns as a trailing axis. A metrics dict (from
:func:`per_horizon_metrics`) is ``{'rmse': (H,), 'mae': (H,), 'rmse_all': float,
'mae_all': float, 'n': N}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "format_table",
    "per_horizon_metrics",
    "persistence",
    "plot_error_by_horizon",
    "plot_forecast",
    "plot_future",
    "ratio_table",
    "seasonal_naive",
]


def persistence(inputs_last_value: np.ndarray, horizon: int) -> np.ndarray:
    """Repeat the last observed value for every horizon step.

    ``inputs_last_value`` is ``(N,)`` or ``(N, F)``; returns ``(N, H)`` or ``(N, H, F)``.
    """
    if int(horizon) != horizon or horizon <= 0:
        raise ValueError(f"horizon must be a positive integer, got {horizon}")
    last = np.asarray(inputs_last_value, dtype=np.float64)
    return np.repeat(last[:, None, ...], int(horizon), axis=1)


def seasonal_naive(history: np.ndarray, horizon: int, period: int) -> np.ndarray:
    """Value one season back: step ``h`` (1-based) predicts ``y[t + h - period * ceil(h / period)]``.

    ``t`` is the last observed index, i.e. ``history[:, -1]``. ``history`` is ``(N, L)`` or
    ``(N, L, F)`` with ``L >= period`` (only the last ``period`` values are used); a 1-D
    ``(L,)`` history gives one window. For ``horizon > period`` the last observed season
    repeats. Returns ``(N, H)`` / ``(N, H, F)`` (``(H,)`` for 1-D input).
    """
    if int(horizon) != horizon or horizon <= 0:
        raise ValueError(f"horizon must be a positive integer, got {horizon}")
    if int(period) != period or period <= 0:
        raise ValueError(f"period must be a positive integer, got {period}")
    hist = np.asarray(history, dtype=np.float64)
    single = hist.ndim == 1
    if single:
        hist = hist[None]
    L = hist.shape[1]
    if L < period:
        raise ValueError(f"seasonal_naive needs at least period={period} values of history, got {L}")
    h = np.arange(1, int(horizon) + 1)
    # y[t + k] lives at history position L - 1 + k.
    pos = L - 1 + h - period * ((h + period - 1) // period)
    out = hist[:, pos]
    return out[0] if single else out


def per_horizon_metrics(pred: np.ndarray, truth: np.ndarray) -> dict:
    """RMSE and MAE per horizon step (averaged over windows and columns) and overall."""
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape:
        raise ValueError(f"pred {pred.shape} and truth {truth.shape} differ in shape")
    if pred.ndim < 2:
        raise ValueError(f"expected (N, H) or (N, H, F), got {pred.shape}")
    err = (pred - truth).reshape(pred.shape[0], pred.shape[1], -1)
    if not np.all(np.isfinite(err)):
        raise ValueError("predictions or truth contain non-finite values")
    return {
        "rmse": np.sqrt(np.mean(err**2, axis=(0, 2))),
        "mae": np.mean(np.abs(err), axis=(0, 2)),
        "rmse_all": float(np.sqrt(np.mean(err**2))),
        "mae_all": float(np.mean(np.abs(err))),
        "n": int(pred.shape[0]),
    }


def _is_metrics(d) -> bool:
    return isinstance(d, Mapping) and "rmse" in d and "mae" in d


def ratio_table(model, baselines: Mapping[str, dict], reference: str = "persistence") -> list[dict]:
    """Rows ``{name, step, rmse, mae, rmse_ratio, mae_ratio}``, ratios relative to ``reference``.

    ``model`` is one metrics dict (named 'model') or a mapping ``name -> metrics``;
    ``baselines`` maps names to metrics and must contain ``reference``. ``step`` runs
    over ``1..H`` and then ``'all'`` (the overall figures). Models come first, then
    the baselines (whose reference rows have ratio 1).
    """
    models = {"model": model} if _is_metrics(model) else dict(model)
    if reference not in baselines:
        raise ValueError(f"baselines must include {reference!r}; got {sorted(baselines)}")
    ref = baselines[reference]
    H = len(ref["rmse"])
    rows = []
    for name, m in list(models.items()) + list(baselines.items()):
        if len(m["rmse"]) != H:
            raise ValueError(f"{name!r} has {len(m['rmse'])} horizon steps, {reference!r} has {H}")
        for k in range(H):
            rows.append(_row(name, k + 1, m["rmse"][k], m["mae"][k], ref["rmse"][k], ref["mae"][k]))
        rows.append(_row(name, "all", m["rmse_all"], m["mae_all"], ref["rmse_all"], ref["mae_all"]))
    return rows


def _row(name, step, rmse, mae, ref_rmse, ref_mae) -> dict:
    def ratio(a, b):
        return float(a) / float(b) if b > 0 else float("nan")

    return {
        "name": name,
        "step": step,
        "rmse": float(rmse),
        "mae": float(mae),
        "rmse_ratio": ratio(rmse, ref_rmse),
        "mae_ratio": ratio(mae, ref_mae),
    }


def format_table(rows: Sequence[dict], steps: Sequence | None = None, digits: int = 4) -> str:
    """Markdown table of :func:`ratio_table` rows, optionally only the given ``steps``."""
    if steps is not None:
        keep = {str(s) for s in steps}
        rows = [r for r in rows if str(r["step"]) in keep]
    lines = [
        "| model | step | RMSE | MAE | RMSE / persistence | MAE / persistence |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['step']} | {r['rmse']:.{digits}f} | {r['mae']:.{digits}f} | "
            f"{r['rmse_ratio']:.3f} | {r['mae_ratio']:.3f} |"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- plots
# The Figure / FigureCanvasAgg pair renders without pyplot, so it neither needs a
# display nor changes the process-wide matplotlib backend.


def _figure(width: float = 8.0, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def plot_forecast(
    path,
    truth: np.ndarray,
    preds: Mapping[str, np.ndarray],
    history: np.ndarray | None = None,
    x=None,
    title: str | None = None,
) -> str:
    """PNG of the true series and each forecast over the same time steps.

    ``truth`` and every ``preds[name]`` are 1-D of equal length. ``history`` (optional,
    1-D) is drawn just before them; ``x`` gives the time axis of ``truth`` (indices or
    dates) and defaults to ``0..len-1`` (history then sits at negative indices).
    """
    truth = np.asarray(truth, dtype=np.float64).reshape(-1)
    for name, p in preds.items():
        if np.asarray(p).reshape(-1).shape != truth.shape:
            raise ValueError(f"prediction {name!r} has shape {np.shape(p)}, truth has {truth.shape}")
    if history is not None and x is not None:
        raise ValueError("give history only with the default index axis (x=None)")
    fig, ax = _figure()
    xs = np.arange(truth.size) if x is None else np.asarray(x)
    if history is not None:
        hist = np.asarray(history, dtype=np.float64).reshape(-1)
        ax.plot(np.arange(-hist.size, 0), hist, color="0.6", label="history")
    ax.plot(xs, truth, color="black", lw=1.5, label="truth")
    for name, p in preds.items():
        ax.plot(xs, np.asarray(p, dtype=np.float64).reshape(-1), lw=1.0, label=name)
    ax.set_xlabel("time")
    ax.set_ylabel("value")
    return _finish(fig, ax, path, title)


def _finish(fig, ax, path, title: str | None) -> str:
    if title:
        ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    return str(path)


def plot_error_by_horizon(
    path, metrics: Mapping[str, dict], key: str = "rmse", title: str | None = None
) -> str:
    """PNG of ``metrics[name][key]`` against horizon step for each model/baseline."""
    if key not in ("rmse", "mae"):
        raise ValueError(f"key must be 'rmse' or 'mae', got {key!r}")
    fig, ax = _figure(6.0, 4.0)
    for name, m in metrics.items():
        v = np.asarray(m[key], dtype=np.float64)
        ax.plot(np.arange(1, v.size + 1), v, marker="o", ms=3, label=name)
    ax.set_xlabel("horizon step")
    ax.set_ylabel(key.upper())
    return _finish(fig, ax, path, title)


def plot_future(path, history: np.ndarray, forecast: np.ndarray, title: str | None = None) -> str:
    """PNG of a series' last values (at steps -N..-1) and the forecast that continues it (0..H-1)."""
    history = np.asarray(history, dtype=np.float64).reshape(-1)
    forecast = np.asarray(forecast, dtype=np.float64).reshape(-1)
    fig, ax = _figure()
    ax.plot(np.arange(-history.size, 0), history, color="black", lw=1.5, label="history")
    ax.plot(np.arange(-1, forecast.size), np.concatenate([history[-1:], forecast]), color="C1", lw=1.5,
            marker="o", ms=3, markevery=list(range(1, forecast.size + 1)), label="forecast")
    ax.axvline(-0.5, color="0.7", lw=0.8)
    ax.set_xlabel("step (0 = the first forecast step)")
    ax.set_ylabel("value")
    return _finish(fig, ax, path, title)
