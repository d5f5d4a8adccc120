"""What a run reports: scores of every forecaster on validation and test, the choice made on
validation, the Markdown tables of ``results.md``, and the plots.

A *score table* is ``{name: {split: metrics}}`` with the metrics of :func:`metrics.score`. The
recurrent model and the classical baselines are scored on exactly the same windows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from experiments.timeseries.metrics import Forecast, interval, score

__all__ = ["LABELS", "choose", "format_results", "plot_error_by_horizon", "plot_forecast", "plot_future",
           "score_all"]

LABELS = {
    "persistence": "persistence",
    "seasonal_naive": "seasonal naive",
    "ar": "AR(p), least squares",
    "ets": "ETS (statsforecast AutoETS)",
    "arima": "ARIMA (statsforecast AutoARIMA)",
    "theta": "Theta (statsforecast AutoTheta)",
}
SELECT_KEY = "mase_all"  # the validation score that chooses (MAE divided by each series' scale)


def label(name: str) -> str:
    return LABELS.get(name, name)


def score_all(forecasts: Mapping[str, Mapping[str, Forecast]], truth: Mapping[str, np.ndarray],
              scale: Mapping[str, np.ndarray]) -> dict:
    """``{name: {split: metrics}}`` for every forecaster and every split it forecast."""
    return {name: {split: score(f, truth[split], scale[split]) for split, f in by_split.items() if len(truth[split])}
            for name, by_split in forecasts.items()}


def choose(scores: Mapping[str, Mapping[str, dict]], names: Sequence[str], split: str = "val",
           key: str = SELECT_KEY) -> str | None:
    """The name with the lowest ``key`` on ``split`` (the first on a tie), or None without that split."""
    ranked = [(scores[n][split][key], i, n) for i, n in enumerate(names) if split in scores.get(n, {})]
    return min(ranked)[2] if ranked else None


def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return f"{value:.{digits}g}"


def summary_table(scores: dict, names: Sequence[str]) -> str:
    """One row per forecaster: validation MASE and MAE, then every test score."""
    prob = any("crps_all" in scores[n].get("test", {}) for n in names)
    head = ["model", "val MASE", "val MAE", "test MAE", "RMSE", "MASE", "sMAPE %"]
    head += ["CRPS", "80% cover", "95% cover"] if prob else []
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for n in names:
        v, t = scores[n].get("val", {}), scores[n]["test"]
        cells = [label(n), _fmt(v.get("mase_all")), _fmt(v.get("mae_all")), _fmt(t["mae_all"]), _fmt(t["rmse_all"]),
                 _fmt(t["mase_all"]), _fmt(t["smape_all"])]
        if prob:
            cells += [_fmt(t.get("crps_all")), _fmt(t.get("coverage80_all"), 3), _fmt(t.get("coverage95_all"), 3)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def horizon_table(scores: dict, names: Sequence[str], key: str, split: str = "test") -> str:
    """``key`` (e.g. ``'mae'``) of every forecaster at each horizon step."""
    H = len(scores[names[0]][split]["mae"])
    lines = ["| model | " + " | ".join(str(h) for h in range(1, H + 1)) + " |", "|---|" + "---:|" * H]
    for n in names:
        if key in scores[n].get(split, {}):
            lines.append(f"| {label(n)} | " + " | ".join(_fmt(float(v)) for v in scores[n][split][key]) + " |")
    return "\n".join(lines) + "\n"


def verdict(scores: dict, model: str, baselines: Sequence[str]) -> tuple[list[str], dict]:
    """The lines that say who wins, and the same facts as numbers (for ``final.json``)."""
    everyone = [model, *baselines]
    winner = min(everyone, key=lambda n: scores[n]["test"]["mae_all"])
    lines = [f"**Winner on test (lowest MAE): {label(winner)}**, MAE {_fmt(scores[winner]['test']['mae_all'])}."]
    facts: dict = {"test_winner": winner}
    chosen = choose(scores, baselines)
    if chosen is None:
        lines.append("No validation windows: nothing is chosen on validation.")
        return lines, facts
    m, b = scores[model]["test"]["mae_all"], scores[chosen]["test"]["mae_all"]
    overall = choose(scores, everyone)
    facts.update(best_baseline=chosen, best_baseline_test_mae=b,
                 best_baseline_val_mase=scores[chosen]["val"][SELECT_KEY],
                 test_mae_vs_best_baseline=m / b if b > 0 else float("nan"), val_choice=overall)
    lines.append(f"Chosen on validation (lowest validation MASE) among the classical baselines: **{label(chosen)}**, "
                 f"test MAE {_fmt(b)}. The model's test MAE is {_fmt(m)}, {m / b:.3f}x that: the model "
                 + ("**matches or beats it**." if m <= b else "**falls short of it**."))
    lines.append(f"Chosen on validation among all of them: **{label(overall)}**.")
    return lines, facts


def format_results(title: str, info: str, scores: dict, model: str, baselines: Sequence[str], notes: Mapping[str, str],
                   per_series: str = "") -> tuple[str, dict]:
    """The text of ``results.md`` and the verdict's facts."""
    names = [model, *baselines]
    lines, facts = verdict(scores, model, baselines)
    parts = [f"# {title}\n", info + "\n", "\n".join(lines) + "\n", "## Scores\n",
             "Validation and test, original units (MASE: MAE over the mean absolute seasonal difference of the "
             "training span; CRPS and the interval coverage for forecasters with a predictive distribution).\n",
             summary_table(scores, names)]
    if notes:
        parts.append("\n".join(f"* {label(k)}: {v}" for k, v in notes.items()) + "\n")
    for key, what in (("mae", "MAE"), ("rmse", "RMSE"), ("mase", "MASE"), ("smape", "sMAPE %"), ("crps", "CRPS")):
        if any(key in scores[n]["test"] for n in names) and len(scores[model]["test"]["mae"]) > 1:
            parts += [f"## Test {what} by horizon step\n", horizon_table(scores, names, key)]
    if per_series:
        parts += ["## Per series (test MAE)\n", per_series]
    return "\n".join(parts), facts


# --------------------------------------------------------------------------- plots
# The Figure / FigureCanvasAgg pair renders without pyplot, so it neither needs a
# display nor changes the process-wide matplotlib backend.


def _figure(width: float = 8.0, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _finish(fig, ax, path, title: str | None) -> str:
    if title:
        ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    return str(path)


def _band(ax, x, samples: np.ndarray, color: str, name: str) -> None:
    for level, alpha in ((95, 0.15), (80, 0.3)):
        lo, hi = interval(samples, level)
        ax.fill_between(x, lo, hi, color=color, alpha=alpha, lw=0, label=f"{name} {level}%")


def plot_forecast(path, truth: np.ndarray, preds: Mapping[str, np.ndarray], history: np.ndarray | None = None,
                  x=None, title: str | None = None, samples: Mapping[str, np.ndarray] | None = None,
                  paths: Mapping[str, np.ndarray] | None = None) -> str:
    """PNG of the true series and each forecast over the same time steps.

    ``truth`` and every ``preds[name]`` are 1-D of equal length; ``samples[name]`` ``(S, len)``
    draws its 80% and 95% intervals, ``paths[name]`` ``(k, len)`` a few sample paths. ``history``
    (optional, 1-D) is drawn just before; ``x`` is the time axis (default ``0..len-1``)."""
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
    for i, (name, s) in enumerate((samples or {}).items()):
        _band(ax, xs, s, f"C{i}", name)
    for i, (name, p) in enumerate((paths or {}).items()):
        for k, row in enumerate(np.asarray(p)):
            ax.plot(xs, row, color=f"C{i}", lw=0.6, alpha=0.6, label=f"{name} sample paths" if k == 0 else None)
    ax.plot(xs, truth, color="black", lw=1.5, label="truth")
    for i, (name, p) in enumerate(preds.items()):
        ax.plot(xs, np.asarray(p, dtype=np.float64).reshape(-1), color=f"C{i}", lw=1.0, label=name)
    ax.set_xlabel("time")
    ax.set_ylabel("value")
    return _finish(fig, ax, path, title)


def plot_error_by_horizon(path, metrics: Mapping[str, dict], key: str = "rmse", title: str | None = None) -> str:
    """PNG of ``metrics[name][key]`` against horizon step for each forecaster."""
    if key not in ("rmse", "mae", "mase", "smape", "crps"):
        raise ValueError(f"key must be one of rmse, mae, mase, smape, crps; got {key!r}")
    fig, ax = _figure(6.0, 4.0)
    for name, m in metrics.items():
        if key in m:
            v = np.asarray(m[key], dtype=np.float64)
            ax.plot(np.arange(1, v.size + 1), v, marker="o", ms=3, label=name)
    ax.set_xlabel("horizon step")
    ax.set_ylabel(key.upper())
    return _finish(fig, ax, path, title)


def plot_future(path, history: np.ndarray, forecast: np.ndarray, title: str | None = None,
                samples: np.ndarray | None = None, paths: np.ndarray | None = None) -> str:
    """PNG of a series' last values (at steps -N..-1) and the forecast that continues it (0..H-1),
    with the 80% / 95% intervals of ``samples (S, H)`` and sample ``paths (k, H)`` when given."""
    history = np.asarray(history, dtype=np.float64).reshape(-1)
    forecast = np.asarray(forecast, dtype=np.float64).reshape(-1)
    fig, ax = _figure()
    steps = np.arange(forecast.size)
    if samples is not None:
        _band(ax, steps, samples, "C1", "forecast")
    if paths is not None:
        for k, row in enumerate(np.asarray(paths)):
            ax.plot(steps, row, color="C2", lw=0.6, alpha=0.6, label="sample paths" if k == 0 else None)
    ax.plot(np.arange(-history.size, 0), history, color="black", lw=1.5, label="history")
    ax.plot(np.arange(-1, forecast.size), np.concatenate([history[-1:], forecast]), color="C1", lw=1.5,
            marker="o", ms=3, markevery=list(range(1, forecast.size + 1)), label="forecast")
    ax.axvline(-0.5, color="0.7", lw=0.8)
    ax.set_xlabel("step (0 = the first forecast step)")
    ax.set_ylabel("value")
    return _finish(fig, ax, path, title)
