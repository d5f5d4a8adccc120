"""Time-series forecasting as a trainer Task: the forecaster, its loss, and the evaluation.

    task = ForecastTask(config, metadata)     # metadata: names, scalers, horizon, ... (data or workdir)
    task.forecast(params, values)              # the next `horizon` values after a raw (T, F) series

Training minimises each structure's objective (see :mod:`experiments.timeseries.model`) on
z-scored values. Validation (``val_loss``, ``val_mae``) always scores the *forecast* of the
window's ``horizon`` targets, in scaled units, whatever the structure trains on, so it ranks
checkpoints by what is evaluated. :meth:`ForecastTask.final_eval` scores the validation and test
windows in original units, for the model and for every classical baseline of
:mod:`experiments.timeseries.baselines` (fitted on the training span only), and writes

* ``results.md``         who wins on test, which baseline validation chooses, a table of MAE, RMSE,
                         MASE, sMAPE (CRPS and interval coverage for probabilistic forecasts) on
                         validation and test, and per horizon step (per series for a global model)
* ``test_metrics.json``  the same numbers per forecaster and split (the test metrics' own record;
                         ``metrics.jsonl`` holds the trainer's records only)
* ``forecast.png``       forecasts vs truth over the first series' test span (``horizon``-step
                         forecasts from every ``horizon``-th origin, so the span is covered once)
* ``error_by_horizon_rmse.png``, ``error_by_horizon_mae.png``  error vs horizon step
"""

from __future__ import annotations

import json
import os
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from experiments.timeseries import baselines as B
from experiments.timeseries import model as model_lib
from experiments.timeseries import report as R
from experiments.timeseries.configs import default
from experiments.timeseries.data import SeriesData, unscale
from experiments.timeseries.metrics import POINT_KEYS, PROB_KEYS, Forecast, mase_scale, to_json
from seqjax.data.series import Scaler
from seqjax.train import ConfigError, Task
from seqjax.train.config import check_inactive
from seqjax.train.config import is_int as _is_int
from seqjax.train.config import require as _need


def check_config(config) -> None:
    """Validates the ``model`` section against ``data``; a key the model would ignore fails."""
    m, d, defaults = config.model, config.data, default.get_config()
    _need(m.skip in model_lib.SKIPS, "model.skip", m.skip, f"expected one of {', '.join(model_lib.SKIPS)}")
    for key in ("hidden", "num_layers"):
        _need(_is_int(m[key]) and m[key] >= 1, f"model.{key}", m[key], "expected an integer >= 1")
    _need(0.0 <= m.dropout < 1.0, "model.dropout", m.dropout, "expected a number in [0, 1)")
    check_inactive(config, defaults, ["model.forget_bias"], m.cell == "lstm",
                   f"model.cell='lstm' (this config has model.cell={m.cell!r})")
    check_inactive(config, defaults, ["model.dropout"], m.num_layers > 1,
                   f"model.num_layers > 1: dropout sits between layers (this config has "
                   f"model.num_layers={m.num_layers})")
    if m.skip == "seasonal":
        _need(d.period >= 1 and d.lookback >= d.period, "model.skip", m.skip,
              f"needs data.period >= 1 and data.lookback >= data.period (got period {d.period}, "
              f"lookback {d.lookback})")
    if m.structure == "n_to_1":
        _need(d.horizon == 1, "data.horizon", d.horizon,
              "model.structure='n_to_1' forecasts one step; use horizon=1, or structure 'direct', "
              "'n_to_n' or 'autoregressive' for longer horizons")


@partial(jax.jit, static_argnames="model")
def _forecast(model: model_lib.Forecaster, params, inputs):
    return model.forecast(params, inputs)


class ForecastTask(Task):
    name = "timeseries"

    def __init__(self, config, metadata):
        super().__init__(config, metadata)
        check_config(config)
        try:
            self.model = model_lib.from_config(config.model, metadata["horizon"], len(metadata["names"]),
                                               metadata["period"])
        except ValueError as e:
            raise ConfigError(f"model: {e}") from None
        # one scaler per series ("scaler": a workdir written before there could be several)
        self.scalers = [Scaler.from_dict(m) for m in metadata.get("scalers", [metadata.get("scaler")])]
        self.series_names = list(metadata.get("series", metadata["names"][:1]))

    @property
    def scaler(self) -> Scaler:
        return self.scalers[0]

    # -- model
    def init(self, rng):
        return self.model.init(rng)

    def loss(self, params, batch, rng, *, train: bool, state):
        if train:
            pred, target = self.model.objective(params, batch["inputs"], batch["targets"], rng=rng, train=True)
        else:  # validation: the forecast itself
            pred, target = self.model.forecast(params, batch["inputs"]), batch["targets"][..., 0]
        w = batch["weight"].reshape((-1,) + (1,) * (pred.ndim - 1))
        weight = jnp.broadcast_to(w.astype(pred.dtype), pred.shape)
        err = pred - target
        n = jnp.sum(weight)
        sq = jnp.sum(weight * err**2)
        metrics = {"loss": (sq, n), "mae": (jnp.sum(weight * jnp.abs(err)), n)}
        return sq / jnp.maximum(n, 1.0), (metrics, state)

    def batch_tokens(self, batch) -> int:
        return int(batch["inputs"].shape[0])  # windows per second

    # -- forecasts
    def forecast(self, params, values: np.ndarray, series: int = 0) -> np.ndarray:
        """The next ``horizon`` target values, in original units, after a raw ``(T, F)`` series
        whose columns are the training ones (target first); only its last ``lookback`` rows are read.
        ``series`` is the index of the training series whose scaler (and embedding) it uses."""
        values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
        L = int(self.metadata["lookback"])
        if values.shape[0] < L:
            raise ValueError(f"the series has {values.shape[0]} rows; the model reads the last {L} (data.lookback)")
        scaler = self.scalers[series]
        inputs = scaler.transform(values[-L:])[None].astype(np.float32)
        return unscale(scaler, np.asarray(_forecast(self.model, params, inputs)))[0]

    def predict(self, params, data: SeriesData, split: str = "test") -> Forecast:
        """The forecast of every window of ``split`` in original units (``mean (N, horizon)``)."""
        batches = data.test if split == "test" else data.val
        out = []
        for i in range(len(batches)):
            batch = batches[i]
            pred = np.asarray(_forecast(self.model, params, jnp.asarray(batch["inputs"])))
            out.append(pred[batch["weight"] > 0])
        return Forecast(data.unscale_targets(np.concatenate(out), split))

    def final_eval(self, params, data: SeriesData, workdir: str) -> dict:
        return evaluate(self, params, data, workdir)

    @property
    def model_name(self) -> str:
        m = self.config.model
        return f"{m.cell} {m.structure}" + (f" + {m.skip} skip" if m.skip != "none" else "")


def baselines(data: SeriesData, split: str = "test") -> dict:
    """Naive forecasts of ``split`` in original units: persistence, and seasonal naive with a period."""
    out = {"persistence": B.persistence(data.history(split, 1)[:, -1], data.horizon)}
    if data.period:
        out["seasonal_naive"] = B.seasonal_naive(data.history(split, data.period), data.horizon, data.period)
    return out


def classical_baselines(d: SeriesData, config) -> tuple[dict, dict]:
    """Every classical baseline on the validation and test windows of every series, pooled in the
    windows' order: ``({name: {split: Forecast}}, {name: note})`` (notes of several series are joined)."""
    per_series, notes = [], {}
    for i, s in enumerate(d.series):
        origins = {split: s.origins(split) for split in ("val", "test")}
        fc, nt = B.classical(s.values[:, 0], s.split.train.stop, origins, d.horizon, d.period, d.lookback,
                             samples=config.eval.samples, seed=config.seed + i,
                             use_statsforecast=config.eval.statsforecast)
        per_series.append(fc)
        for name, note in nt.items():
            notes.setdefault(name, []).append(note if len(d.series) == 1 else f"{s.name}: {note}")
    names = [n for n in per_series[0] if all(n in fc for fc in per_series)]
    pooled = {n: {split: Forecast.concat([fc[n][split] for fc in per_series]) for split in ("val", "test")}
              for n in names}
    for n in {n for fc in per_series for n in fc} - set(names):
        notes.setdefault(n, []).append("left out: it could not forecast every series")
    return pooled, {n: "; ".join(v) for n, v in notes.items()}


def mase_scales(d: SeriesData, split: str) -> np.ndarray:
    """Each window's MASE scale: the mean absolute seasonal difference of its series' training span."""
    per_series = np.array([mase_scale(s.train_values, d.period) for s in d.series])
    return per_series[d.windows[split].series]


def evaluate(task: ForecastTask, params, d: SeriesData, workdir: str) -> dict:
    """Scores the model and every baseline on validation and test, writes ``results.md``,
    ``test_metrics.json`` and the plots into ``workdir``, and returns the flat metrics."""
    name = task.model_name
    splits = ("val", "test") if len(d.windows["val"]) else ("test",)
    truth = {s: d.raw_targets(s) for s in ("val", "test")}
    scale = {s: mase_scales(d, s) for s in ("val", "test")}
    base, notes = classical_baselines(d, task.config)
    forecasts = {name: {s: task.predict(params, d, s) for s in splits}, **base}
    scores = R.score_all(forecasts, truth, scale)
    baseline_names = list(base)

    o = d.windows["test"].origins
    where = (f"{len(o)} test windows (origins {int(o[0])}..{int(o[-1])} of {d.values.shape[0]} points)"
             if len(d.series) == 1 else f"{len(o)} test windows of {len(d.series)} series")
    info = (f"{where}, {len(d.windows['val'])} validation windows, lookback {d.lookback}, original units"
            + (f", period {d.period}" if d.period else ", no period (MASE scaled by the naive one-step error)")
            + f". Every baseline is fitted on the training span only; the model is the checkpoint chosen by "
            f"{task.config.train.best_metric}.")
    per_series = _per_series_table(d, forecasts, truth["test"], [name, *baseline_names]) if len(d.series) > 1 else ""
    text, facts = R.format_results(f"Test results: {', '.join(d.series_names[:5])}"
                                   + (" ..." if len(d.series) > 5 else "") + f", {name}, horizon {d.horizon}",
                                   info, scores, name, baseline_names, notes, per_series)
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(workdir, "test_metrics.json"), "w") as f:
        json.dump({"horizon": d.horizon, "period": d.period, "model": name, "series": d.series_names,
                   "notes": notes, **facts,
                   "metrics": {n: {s: to_json(m) for s, m in by.items()} for n, by in scores.items()}}, f, indent=2)
    _plots(workdir, d, forecasts, truth["test"], scores, name, facts.get("best_baseline"))
    return _flat(scores, name, baseline_names, facts, d.horizon)


def _flat(scores: dict, name: str, baseline_names: list, facts: dict, horizon: int) -> dict:
    m, p = scores[name]["test"], scores["persistence"]["test"]
    out: dict = {f"test_{k}": m[f"{k}_all"] for k in (*POINT_KEYS, *PROB_KEYS) if f"{k}_all" in m}
    if "val" in scores[name]:
        out.update(model_val_mae=scores[name]["val"]["mae_all"], model_val_mase=scores[name]["val"]["mase_all"])
    out.update(test_rmse_ratio=m["rmse_all"] / p["rmse_all"], test_mae_ratio=m["mae_all"] / p["mae_all"])
    for b in baseline_names:
        t = scores[b]["test"]
        out.update({f"{b}_{k}": t[f"{k}_all"] for k in ("mae", "rmse", "mase")})
        if "val" in scores[b]:
            out[f"{b}_val_mase"] = scores[b]["val"]["mase_all"]
        out[f"test_mae_vs_{b}"] = m["mae_all"] / t["mae_all"] if t["mae_all"] > 0 else float("nan")
    out = {k: float(v) for k, v in out.items()}
    out.update(facts)
    if horizon > 1:
        for k in range(horizon):
            out.update({f"test_rmse_h{k + 1}": float(m["rmse"][k]), f"test_mae_h{k + 1}": float(m["mae"][k]),
                        f"test_rmse_ratio_h{k + 1}": float(m["rmse"][k] / p["rmse"][k]),
                        f"test_mae_ratio_h{k + 1}": float(m["mae"][k] / p["mae"][k])})
    return out


def _per_series_table(d: SeriesData, forecasts: dict, truth: np.ndarray, names: list) -> str:
    ids = d.windows["test"].series
    lines = ["| series | " + " | ".join(R.label(n) for n in names) + " |", "|---|" + "---:|" * len(names)]
    for i, s in enumerate(d.series):
        rows = ids == i
        cells = [f"{np.mean(np.abs(forecasts[n]['test'].mean[rows] - truth[rows])):.4g}" for n in names]
        lines.append(f"| {s.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plots(workdir: str, d: SeriesData, forecasts: dict, truth: np.ndarray, scores: dict, name: str,
           chosen: str | None) -> None:
    """The first series' test span (H-step forecasts from every H-th origin), and error by horizon."""
    H = d.horizon
    rows = np.flatnonzero(d.windows["test"].series == 0)
    pick = rows[np.arange(0, len(rows) - H + 1, H) if len(rows) >= H else np.arange(1)]
    t = (d.windows["test"].origins[pick][:, None] + np.arange(H)[None, :]).reshape(-1)
    x = d.dates[t] if d.dates is not None and np.issubdtype(d.dates.dtype, np.datetime64) else t
    shown = [name] + [n for n in dict.fromkeys([chosen, "seasonal_naive" if d.period else "persistence"])
                      if n and n in forecasts]
    model = forecasts[name]["test"]
    what = "one-step forecasts" if H == 1 else f"{H}-step forecasts from every {H}th origin"
    R.plot_forecast(os.path.join(workdir, "forecast.png"), truth[pick].reshape(-1),
                    {R.label(n): forecasts[n]["test"].mean[pick].reshape(-1) for n in shown}, x=x,
                    samples=({R.label(name): model.samples[:, pick].reshape(model.samples.shape[0], -1)}
                             if model.probabilistic else None),
                    title=f"{d.series[0].name}, test span: {what}")
    for key in ("rmse", "mae"):
        R.plot_error_by_horizon(os.path.join(workdir, f"error_by_horizon_{key}.png"),
                                {R.label(n): by["test"] for n, by in scores.items()}, key,
                                title=f"test {key.upper()} by horizon step (original units)")
