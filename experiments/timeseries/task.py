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
import math
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
from seqjax.cells import LINEAR_KINDS
from seqjax.data.series import Scaler
from seqjax.train import ConfigError, Task
from seqjax.train.config import check_inactive
from seqjax.train.config import is_int as _is_int
from seqjax.train.config import require as _need


def check_config(config) -> None:
    """Validates the ``model`` section against ``data``; a key the model would ignore fails."""
    m, d, defaults = config.model, config.data, default.get_config()
    for key, allowed in (("structure", model_lib.STRUCTURES), ("skip", model_lib.SKIPS), ("norm", model_lib.NORMS),
                         ("head", model_lib.HEADS)):
        _need(m[key] in allowed, f"model.{key}", m[key], f"expected one of {', '.join(allowed)}")
    for key in ("hidden", "num_layers", "ensemble"):
        _need(_is_int(m[key]) and m[key] >= 1, f"model.{key}", m[key], "expected an integer >= 1")
    _need(_is_int(m.series_embedding) and m.series_embedding >= 0, "model.series_embedding", m.series_embedding,
          "expected an integer >= 0 (0: none)")
    _need(_is_int(m.highway) and m.highway >= -1, "model.highway", m.highway,
          "expected an integer: K >= 1 (the last K inputs), -1 (the whole lookback) or 0 (none)")
    _need(0.0 <= m.dropout < 1.0, "model.dropout", m.dropout, "expected a number in [0, 1)")
    check_inactive(config, defaults, ["model.forget_bias"], m.cell == "lstm",
                   f"model.cell='lstm' (this config has model.cell={m.cell!r})")
    check_inactive(config, defaults, ["model.scan"], m.cell in LINEAR_KINDS,
                   f"model.cell one of {', '.join(LINEAR_KINDS)} (this config has model.cell={m.cell!r})")
    check_inactive(config, defaults, ["model.dropout"], m.num_layers > 1,
                   f"model.num_layers > 1: dropout sits between layers (this config has "
                   f"model.num_layers={m.num_layers})")
    one_shot = f"model.structure 'n_to_1' or 'direct' (this config has model.structure={m.structure!r})"
    check_inactive(config, defaults, ["model.skip", "model.highway"], m.structure in ("n_to_1", "direct"), one_shot)
    if m.skip == "seasonal":
        _need(d.period >= 1 and d.lookback >= d.period, "model.skip", m.skip,
              f"needs data.period >= 1 and data.lookback >= data.period (got period {d.period}, "
              f"lookback {d.lookback})")
    _need(m.highway <= d.lookback, "model.highway", m.highway,
          f"the highway reads the last model.highway inputs, more than data.lookback={d.lookback}")
    if m.structure == "n_to_1":
        _need(d.horizon == 1, "data.horizon", d.horizon,
              "model.structure='n_to_1' forecasts one step; use horizon=1, or structure 'direct', "
              "'n_to_n' or 'autoregressive' for longer horizons")


@partial(jax.jit, static_argnames=("model", "members"))
def _distribution(model: model_lib.Forecaster, members: int, params, inputs, series):
    """The point forecast ``(B, H)`` (the members' mean) and each member's distribution ``(E, B, H)``."""
    if members == 1:
        d = model.distribution(params, inputs, series)
        return d["mu"], jax.tree.map(lambda a: a[None], d)
    d = jax.vmap(lambda p: model.distribution(p, inputs, series))(params)
    return jnp.mean(d["mu"], axis=0), d


@partial(jax.jit, static_argnames=("model", "members", "n"))
def _samples(model: model_lib.Forecaster, members: int, params, inputs, series, key, n: int):
    """``(members * n, B, H)`` draws: ``n`` from each member (an equal-weight mixture)."""
    if members == 1:
        return model.sample(params, inputs, key, n, series)
    keys = jax.random.split(key, members)
    draws = jax.vmap(lambda p, k: model.sample(p, inputs, k, n, series))(params, keys)
    return draws.reshape((members * n,) + draws.shape[2:])


def _forecast(model: model_lib.Forecaster, params, inputs, series=None, members: int = 1):
    """The point forecast ``(B, H)``, scaled units."""
    return _distribution(model, members, params, inputs, series)[0]


class ForecastTask(Task):
    name = "timeseries"

    def __init__(self, config, metadata):
        super().__init__(config, metadata)
        check_config(config)
        # one scaler per series ("scaler": a workdir written before there could be several)
        self.scalers = [Scaler.from_dict(m) for m in metadata.get("scalers", [metadata.get("scaler")])]
        self.series_names = list(metadata.get("series", metadata["names"][:1]))
        m = config.model
        if m.series_embedding and len(self.series_names) < 2:
            raise ConfigError(f"config.model.series_embedding={m.series_embedding}: an embedding tells several "
                              f"series apart, and this data has one ({self.series_names[0]!r}); name several "
                              "target columns (data.column=a,b) or a folder of CSVs (data.csv=DIR), or set it to 0")
        try:
            self.model = model_lib.from_config(m, metadata["horizon"], len(metadata["names"]), metadata["period"],
                                               num_series=len(self.series_names), lookback=metadata["lookback"],
                                               highway_order=(metadata.get("highway_init") or {}).get("order"))
        except ValueError as e:
            raise ConfigError(f"model: {e}") from None
        self.members = int(m.ensemble)

    @property
    def scaler(self) -> Scaler:
        return self.scalers[0]

    # -- model
    def init(self, rng):
        """Fresh params (members first for an ensemble); a highway starts from its least-squares fit
        on the training windows (``metadata["highway_init"]``, see :func:`model.highway_fit`)."""
        fit = self.metadata.get("highway_init")

        def one(key):
            params = self.model.init(key)
            return self.model.with_highway_init(params, fit) if fit and self.model.highway else params

        if self.members == 1:
            return one(rng)
        return jax.jit(jax.vmap(one))(jax.random.split(rng, self.members))

    def loss(self, params, batch, rng, *, train: bool, state):
        """Training: the objective (MSE, or the NLL of a probabilistic head), summed over the members
        and divided by sqrt(members), so each member gets its own gradient and the global gradient
        norm (for clipping) stays that of one member. Validation: ``loss`` is the MSE of the point
        forecast (the members' mean), ``mae`` its MAE, and ``nll`` a probabilistic head's negative
        log-likelihood (the members' equal-weight mixture) where it has a closed form."""
        inputs, targets, series = batch["inputs"], batch["targets"], batch.get("series")
        model, E = self.model, self.members
        w = batch["weight"]

        def weighted(per_point):  # (B, ...) -> (sum, count) over real windows
            ww = jnp.broadcast_to(w.reshape((-1,) + (1,) * (per_point.ndim - 1)).astype(per_point.dtype),
                                  per_point.shape)
            return jnp.sum(ww * per_point), jnp.sum(ww)

        if train:
            def member(p, key):
                pred, target = model.objective(p, inputs, targets, series, rng=key, train=True)
                total, n = weighted(model.pointwise_loss(pred, target))
                return total, n, weighted(jnp.abs(pred["mu"] - target))[0]

            if E == 1:
                total, n, abs_err = member(params, rng)
                objective = total / jnp.maximum(n, 1.0)
            else:
                total, n, abs_err = jax.vmap(member)(params, jax.random.split(rng, E))
                objective = jnp.sum(total / jnp.maximum(n, 1.0)) / math.sqrt(E)
                total, n, abs_err = jnp.sum(total), jnp.sum(n), jnp.sum(abs_err)
            return objective, ({"loss": (total, n), "mae": (abs_err, n)}, state)
        mean, dist = _distribution(model, E, params, inputs, series)
        target = targets[..., 0]
        sq, n = weighted((mean - target) ** 2)
        metrics = {"loss": (sq, n), "mae": (weighted(jnp.abs(mean - target))[0], n)}
        if model.probabilistic and "sigma" in dist:
            per = jax.vmap(model.pointwise_loss, in_axes=(0, None))(dist, target)  # (E, B, H)
            nll = -jax.scipy.special.logsumexp(-per, axis=0) + math.log(E)
            metrics["nll"] = weighted(nll)
        return sq / jnp.maximum(n, 1.0), (metrics, state)

    def batch_tokens(self, batch) -> int:
        return int(batch["inputs"].shape[0])  # windows per second

    # -- forecasts
    def _inputs(self, values: np.ndarray, series: int) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
        L = int(self.metadata["lookback"])
        if values.shape[0] < L:
            raise ValueError(f"the series has {values.shape[0]} rows; the model reads the last {L} (data.lookback)")
        return self.scalers[series].transform(values[-L:])[None].astype(np.float32)

    def forecast(self, params, values: np.ndarray, series: int = 0) -> np.ndarray:
        """The next ``horizon`` target values, in original units, after a raw ``(T, F)`` series
        whose columns are the training ones (target first); only its last ``lookback`` rows are read.
        ``series`` is the index of the training series whose scaler (and embedding) it uses."""
        return self.forecast_with_samples(params, values, series)[0]

    def forecast_with_samples(self, params, values: np.ndarray,
                              series: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
        """``(forecast (H,), samples (S, H) or None)`` in original units (see :meth:`forecast`)."""
        inputs = self._inputs(values, series)
        ids = np.full((1,), series, np.int32)
        scaler = self.scalers[series]
        mean = unscale(scaler, np.asarray(_forecast(self.model, params, inputs, ids, self.members)))[0]
        if not self.model.probabilistic:
            return mean, None
        draws = self._draw(params, inputs, ids, jax.random.PRNGKey(self.config.seed))
        return mean, unscale(scaler, draws)[:, 0]

    def _draw(self, params, inputs, series, key) -> np.ndarray:
        n = -(-int(self.config.eval.samples) // self.members)
        return np.asarray(_samples(self.model, self.members, params, jnp.asarray(inputs), jnp.asarray(series), key,
                                   n))[:int(self.config.eval.samples)]

    def predict(self, params, data: SeriesData, split: str = "test") -> Forecast:
        """The forecast of every window of ``split`` in original units: ``mean (N, horizon)``, and
        for a probabilistic head ``eval.samples`` draws from its predictive distribution."""
        batches = data.test if split == "test" else data.val
        means, draws = [], []
        key = jax.random.fold_in(jax.random.PRNGKey(self.config.seed), SPLIT_KEYS[split])
        for i in range(len(batches)):
            batch = batches[i]
            real = batch["weight"] > 0
            inputs, series = jnp.asarray(batch["inputs"]), jnp.asarray(batch["series"])
            means.append(np.asarray(_forecast(self.model, params, inputs, series, self.members))[real])
            if self.model.probabilistic:
                draws.append(self._draw(params, inputs, series, jax.random.fold_in(key, i))[:, real])
        mean = data.unscale_targets(np.concatenate(means), split)
        samples = data.unscale_targets(np.concatenate(draws, axis=1), split) if draws else None
        return Forecast(mean, samples)

    def final_eval(self, params, data: SeriesData, workdir: str) -> dict:
        return evaluate(self, params, data, workdir)

    @property
    def model_name(self) -> str:
        m = self.config.model
        extras = [f"{m.skip} skip" if m.skip != "none" else "", f"norm {m.norm}" if m.norm != "none" else "",
                  f"highway {self.model.highway}" if m.highway else "", m.head if m.head != "point" else "",
                  f"embedding {m.series_embedding}" if m.series_embedding else "",
                  f"ensemble of {m.ensemble}" if m.ensemble > 1 else ""]
        extras = [e for e in extras if e]
        return f"{m.cell} {m.structure}" + (" + " + ", ".join(extras) if extras else "")


SPLIT_KEYS = {"val": 1, "test": 2}


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
        fc, nt = B.classical(s.values[:, 0], s.split.train.stop, origins, d.horizon, d.period,
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
