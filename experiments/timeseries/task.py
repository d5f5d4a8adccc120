"""Time-series forecasting as a trainer Task: the forecaster, its MSE loss, and the test evaluation.

    task = ForecastTask(config, metadata)     # metadata: names, scaler, horizon, ... (data or workdir)
    task.forecast(params, values)              # the next `horizon` values after a raw (T, F) series

Training minimises each structure's objective (see :mod:`experiments.timeseries.model`) on
z-scored values. Validation (``val_loss``, ``val_mae``) always scores the *forecast* of the
window's ``horizon`` targets, in scaled units, whatever the structure trains on, so it ranks
checkpoints by what is evaluated. :meth:`ForecastTask.final_eval` scores the test split in
original units against the persistence and seasonal-naive baselines and writes

* ``results.md``         Markdown table: RMSE, MAE and their ratios to persistence per horizon step
* ``test_metrics.json``  the same numbers per model and baseline, plus the table rows (the test
                         metrics' own record; ``metrics.jsonl`` holds the trainer's records only)
* ``forecast.png``       forecasts vs truth over the test span (``horizon``-step forecasts from
                         every ``horizon``-th origin, so the span is covered once)
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
from experiments.timeseries.configs import default
from experiments.timeseries.data import SeriesData, unscale
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
        self.scaler = Scaler.from_dict(metadata["scaler"])

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
    def forecast(self, params, values: np.ndarray) -> np.ndarray:
        """The next ``horizon`` target values, in original units, after a raw ``(T, F)`` series
        whose columns are the training ones (target first); only its last ``lookback`` rows are read."""
        values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
        L = int(self.metadata["lookback"])
        if values.shape[0] < L:
            raise ValueError(f"the series has {values.shape[0]} rows; the model reads the last {L} (data.lookback)")
        inputs = self.scaler.transform(values[-L:])[None].astype(np.float32)
        return unscale(self.scaler, np.asarray(_forecast(self.model, params, inputs)))[0]

    def predict(self, params, data: SeriesData, split: str = "test") -> np.ndarray:
        """Forecasts of every window of ``split`` in original units, ``(N, horizon)``."""
        batches = data.test if split == "test" else data.val
        out = []
        for i in range(len(batches)):
            batch = batches[i]
            pred = np.asarray(_forecast(self.model, params, jnp.asarray(batch["inputs"])))
            out.append(pred[batch["weight"] > 0])
        return data.unscale_targets(np.concatenate(out))

    def final_eval(self, params, data: SeriesData, workdir: str) -> dict:
        return evaluate(self, params, data, workdir)

    @property
    def model_name(self) -> str:
        m = self.config.model
        return f"{m.cell} {m.structure}" + (f" + {m.skip} skip" if m.skip != "none" else "")


def baselines(data: SeriesData, split: str = "test") -> dict:
    """Baseline forecasts in original units: persistence, and seasonal naive when a period is set."""
    out = {"persistence": B.persistence(data.history(split, 1)[:, -1], data.horizon)}
    if data.period:
        out["seasonal_naive"] = B.seasonal_naive(data.history(split, data.period), data.horizon, data.period)
    return out


def evaluate(task: ForecastTask, params, d: SeriesData, workdir: str) -> dict:
    """Scores the test split, writes the table, JSON and plots into ``workdir``, returns flat metrics."""
    truth = d.raw_targets("test")
    forecasts = {task.model_name: task.predict(params, d), **baselines(d)}
    metrics = {name: B.per_horizon_metrics(pred, truth) for name, pred in forecasts.items()}
    name = task.model_name
    baseline_metrics = {k: v for k, v in metrics.items() if k != name}
    rows = B.ratio_table({name: metrics[name]}, baseline_metrics)

    os.makedirs(workdir, exist_ok=True)
    o = d.windows["test"].origins
    header = (f"# Test results: {d.names[0]}, {name}, horizon {d.horizon}\n\n"
              f"{len(o)} test windows (origins {int(o[0])}..{int(o[-1])} of {d.values.shape[0]} points), "
              f"lookback {d.lookback}, original units; ratios are to persistence"
              + (f"; seasonal naive uses period {d.period}" if d.period else "") + ".\n\n")
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(header + B.format_table(rows))
    as_json = {k: {**v, "rmse": v["rmse"].tolist(), "mae": v["mae"].tolist()} for k, v in metrics.items()}
    with open(os.path.join(workdir, "test_metrics.json"), "w") as f:
        json.dump({"horizon": d.horizon, "period": d.period, "metrics": as_json, "rows": rows}, f, indent=2)
    _plots(workdir, d, forecasts, truth, metrics)

    m, p = metrics[name], metrics["persistence"]
    out = {"test_rmse": m["rmse_all"], "test_mae": m["mae_all"],
           "test_rmse_ratio": m["rmse_all"] / p["rmse_all"], "test_mae_ratio": m["mae_all"] / p["mae_all"],
           "persistence_rmse": p["rmse_all"], "persistence_mae": p["mae_all"]}
    if "seasonal_naive" in metrics:
        s = metrics["seasonal_naive"]
        out.update(seasonal_naive_rmse=s["rmse_all"], seasonal_naive_mae=s["mae_all"],
                   test_mae_vs_seasonal_naive=m["mae_all"] / s["mae_all"],
                   test_rmse_vs_seasonal_naive=m["rmse_all"] / s["rmse_all"])
    if d.horizon > 1:
        for row in (r for r in rows if r["name"] == name and r["step"] != "all"):
            k = row["step"]
            out.update({f"test_rmse_h{k}": row["rmse"], f"test_mae_h{k}": row["mae"],
                        f"test_rmse_ratio_h{k}": row["rmse_ratio"], f"test_mae_ratio_h{k}": row["mae_ratio"]})
    return {k: float(v) for k, v in out.items()}


def _plots(workdir: str, d: SeriesData, forecasts: dict, truth: np.ndarray, metrics: dict) -> None:
    H = d.horizon
    origins = d.windows["test"].origins
    pick = np.arange(0, len(origins) - H + 1, H) if len(origins) >= H else np.arange(1)
    t = (origins[pick][:, None] + np.arange(H)[None, :]).reshape(-1)
    x = d.dates[t] if d.dates is not None and np.issubdtype(d.dates.dtype, np.datetime64) else t
    what = "one-step forecasts" if H == 1 else f"{H}-step forecasts from every {H}th origin"
    B.plot_forecast(os.path.join(workdir, "forecast.png"), truth[pick].reshape(-1),
                    {k: v[pick].reshape(-1) for k, v in forecasts.items()}, x=x,
                    title=f"test span: {what}")
    for key in ("rmse", "mae"):
        B.plot_error_by_horizon(os.path.join(workdir, f"error_by_horizon_{key}.png"), metrics, key,
                                title=f"test {key.upper()} by horizon step (original units)")
