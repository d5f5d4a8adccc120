"""Time-series forecasting as a trainer Task: data, model, MSE loss, and the test evaluation.

Training minimises each structure's objective (see :mod:`experiments.timeseries.model`) on
z-scored values. Validation (``val_loss``, ``val_mae``) always scores the *forecast* of the
window's ``horizon`` targets, in scaled units, whatever the structure trains on, so it ranks
checkpoints by what is evaluated. :meth:`ForecastTask.final_eval` scores the test split in
original units against the persistence and seasonal-naive baselines and writes

* ``results.md``         Markdown table: RMSE, MAE and their ratios to persistence per horizon step
* ``test_metrics.json``  the same numbers per model and baseline, plus the table rows
* ``forecast.png``       forecasts vs truth over the test span (``horizon``-step forecasts from
                         every ``horizon``-th origin, so the span is covered once)
* ``error_by_horizon_rmse.png``, ``error_by_horizon_mae.png``  error vs horizon step

A bad config or data file raises :class:`~seqjax.train.config.ConfigError` from :func:`make_task`,
before the trainer creates the workdir.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from experiments.timeseries import baselines as B
from experiments.timeseries import data as data_lib
from experiments.timeseries import model as model_lib
from seqjax.cells import CELL_NAMES, INIT_SCHEMES
from seqjax.train.config import ConfigError
from seqjax.train.config import is_int as _is_int
from seqjax.train.config import require as _need
from seqjax.train.task import Task


def _skip(cfg_model) -> str:
    # older configs may lack the key (or hold None): both mean no skip
    return cfg_model.get("skip") or "none"


def check_config(config) -> None:
    """Validates the ``model``, ``data`` and ``eval`` sections; raises ConfigError naming the key."""
    m, d = config.model, config.data
    _need(m.structure in model_lib.STRUCTURES, "model.structure", m.structure,
          f"expected one of {', '.join(model_lib.STRUCTURES)}")
    _need(m.cell in CELL_NAMES, "model.cell", m.cell, f"expected one of {', '.join(CELL_NAMES)}")
    _need(m.init in INIT_SCHEMES, "model.init", m.init, f"expected one of {', '.join(INIT_SCHEMES)}")
    skip = _skip(m)
    _need(skip in model_lib.SKIPS, "model.skip", skip, f"expected one of {', '.join(model_lib.SKIPS)}")
    for key in ("hidden", "num_layers"):
        _need(_is_int(m[key]) and m[key] >= 1, f"model.{key}", m[key], "expected an integer >= 1")
    _need(0.0 <= m.dropout < 1.0, "model.dropout", m.dropout, "expected a number in [0, 1)")
    for key in ("lookback", "horizon"):
        _need(_is_int(d[key]) and d[key] >= 1, f"data.{key}", d[key], "expected an integer >= 1")
    _need(_is_int(d.period) and d.period >= 0, "data.period", d.period,
          "expected an integer >= 0 (0: no seasonal-naive baseline)")
    _need(_is_int(config.eval.batch_size) and config.eval.batch_size >= 1, "eval.batch_size",
          config.eval.batch_size, "expected an integer >= 1")
    if skip == "seasonal":
        _need(d.period >= 1 and d.lookback >= d.period, "model.skip", skip,
              f"needs data.period >= 1 and data.lookback >= data.period (got period {d.period}, "
              f"lookback {d.lookback})")
    if m.structure == "n_to_1":
        _need(d.horizon == 1, "data.horizon", d.horizon,
              "model.structure='n_to_1' forecasts one step; use horizon=1, or structure 'direct', "
              "'n_to_n' or 'autoregressive' for longer horizons")


def _data_dict(cfg_data) -> dict:
    d = cfg_data.to_dict()
    d["period"] = d.get("period") or None  # 0 = no seasonal baseline
    for key in ("csv", "column", "date_column"):  # '' = unset
        d[key] = d.get(key) or None
    d["covariates"] = tuple(d.get("covariates") or ())
    return d


class ForecastTask(Task):
    def __init__(self, config, data: data_lib.SeriesData | None = None):
        check_config(config)
        self.config = config
        d = config.data
        if data is None:
            try:
                data = data_lib.prepare(_data_dict(d), d.lookback, d.horizon, seed=config.seed)
            except FileNotFoundError as e:
                raise ConfigError(f"config.data.csv={d.csv!r}: no such file ({e.strerror})") from None
            except ValueError as e:  # the data layer's documented failure: it names the problem
                raise ConfigError(f"data: {e}") from None
        self.data = data
        try:
            self.model = model_lib.from_config(config.model, data.horizon, data.num_features,
                                               data.period or 0)
        except ValueError as e:
            raise ConfigError(f"model: {e}") from None
        n_train = len(data.train)
        _need(config.train.batch_size <= n_train, "train.batch_size", config.train.batch_size,
              f"larger than the {n_train} training windows")
        if data.period:
            o = int(data.test.origins[0])
            _need(o >= data.period, "data.period", data.period,
                  f"the first test window has only {o} points of history")
        self._forecast = jax.jit(self.model.forecast)

    # -- model
    def init(self, rng):
        return self.model.init(rng)

    def loss(self, params, batch, rng, *, train: bool, state):
        if train:
            pred, target = self.model.objective(params, batch["inputs"], batch["targets"], rng=rng,
                                                train=True)
            weight = jnp.ones_like(pred)
        else:  # validation: the forecast itself, padded windows masked out
            pred = self.model.forecast(params, batch["inputs"])
            target = batch["targets"][..., 0]
            mask = batch.get("mask")
            weight = jnp.ones_like(pred) if mask is None else jnp.broadcast_to(
                mask[:, None].astype(pred.dtype), pred.shape)
        err = pred - target
        n = jnp.sum(weight)
        sq = jnp.sum(weight * err**2)
        metrics = {"loss": (sq, n), "mae": (jnp.sum(weight * jnp.abs(err)), n)}
        return sq / jnp.maximum(n, 1.0), (metrics, state)

    # -- data
    def train_batch(self, step: int):
        return self.data.train_batch(step, self.config.train.batch_size, self.config.seed)

    def _batches(self, split: str):
        n = len(self.data.windows(split))
        return self.data.eval_batches(split, min(self.config.eval.batch_size, n), pad=True)

    def eval_batches(self):
        return [] if self.data.val is None else list(self._batches("val"))

    def batch_tokens(self, batch) -> int:
        return int(batch["inputs"].shape[0])  # windows per second

    def metadata(self) -> dict:
        d = self.data
        return {"names": d.names, "scaler": d.scaler.to_dict(), "lookback": d.lookback, "horizon": d.horizon,
                "period": d.period, "split": [d.split.val.start, d.split.test.start, int(d.values.shape[0])]}

    # -- test evaluation
    def predict(self, params, split: str = "test") -> np.ndarray:
        """Forecasts of every window of ``split`` in original units, ``(N, horizon)``."""
        out = []
        for batch in self._batches(split):
            pred = np.asarray(self._forecast(params, jnp.asarray(batch["inputs"])))
            out.append(pred[batch["mask"]])
        return self.data.unscale_targets(np.concatenate(out))

    def baselines(self, split: str = "test") -> dict:
        """Baseline forecasts in original units: persistence, and seasonal naive when a period is set."""
        d = self.data
        out = {"persistence": B.persistence(d.history(split, 1)[:, -1], d.horizon)}
        if d.period:
            out["seasonal_naive"] = B.seasonal_naive(d.history(split, d.period), d.horizon, d.period)
        return out

    def final_eval(self, params, workdir: str) -> dict:
        return evaluate(self, params, workdir)

    @property
    def model_name(self) -> str:
        m = self.config.model
        skip = _skip(m)
        return f"{m.cell} {m.structure}" + (f" + {skip} skip" if skip != "none" else "")


def evaluate(task: ForecastTask, params, workdir: str) -> dict:
    """Scores the test split, writes the table, JSON and plots into ``workdir``, returns flat metrics."""
    d = task.data
    truth = d.raw_targets("test")
    forecasts = {task.model_name: task.predict(params), **task.baselines()}
    metrics = {name: B.per_horizon_metrics(pred, truth) for name, pred in forecasts.items()}
    name = task.model_name
    baseline_metrics = {k: v for k, v in metrics.items() if k != name}
    rows = B.ratio_table({name: metrics[name]}, baseline_metrics)

    os.makedirs(workdir, exist_ok=True)
    o = d.test.origins
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
    # one line per model and baseline in metrics.jsonl too, beside the trainer's per-step records
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
        for k, v in as_json.items():
            f.write(json.dumps({"kind": "test", "model": k, "horizon": d.horizon,
                                **{key: (float(x) if np.isscalar(x) else x) for key, x in v.items()}}) + "\n")

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


def _plots(workdir: str, d: data_lib.SeriesData, forecasts: dict, truth: np.ndarray, metrics: dict) -> None:
    H = d.horizon
    pick = np.arange(0, len(d.test.origins) - H + 1, H) if len(d.test.origins) >= H else np.arange(1)
    t = (d.test.origins[pick][:, None] + np.arange(H)[None, :]).reshape(-1)
    x = d.dates[t] if d.dates is not None and np.issubdtype(d.dates.dtype, np.datetime64) else t
    what = "one-step forecasts" if H == 1 else f"{H}-step forecasts from every {H}th origin"
    B.plot_forecast(os.path.join(workdir, "forecast.png"), truth[pick].reshape(-1),
                    {k: v[pick].reshape(-1) for k, v in forecasts.items()}, x=x,
                    title=f"test span: {what}")
    for key in ("rmse", "mae"):
        B.plot_error_by_horizon(os.path.join(workdir, f"error_by_horizon_{key}.png"), metrics, key,
                                title=f"test {key.upper()} by horizon step (original units)")


def make_task(config) -> ForecastTask:
    return ForecastTask(config)
