"""The long-sequence cells from every experiment's command line: a few train steps on each tiny preset.

Each case parses ``--config tiny`` plus ``model.cell`` / ``model.scan`` / ``model.remat`` overrides
the way the command line does, builds the experiment's own data and task (which run its checks),
and takes three SGD steps of the task's loss: the loss and every gradient stay finite and the
parameters move. The timeseries forecaster is also checked with ``mingru`` in each structure (and
``rglru`` autoregressive): every evaluation gives the same forecast, and the autoregressive rollout
(the cells' sequential ``step``) reads out what the parallel scan gives on the values it fed back.
A ``model.scan`` given with a classic cell is a one-line configuration error in every experiment.
"""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.timeseries.model import Forecaster
from seqjax.structures import dense
from seqjax.train import ConfigError
from seqjax.train.cli import parse_args
from seqjax.train.config import validate

TASKS = {"chargen": "CharGenTask", "memory": "MemoryTask", "sentiment": "SentimentTask",
         "seq2seq": "Seq2SeqTask", "timeseries": "ForecastTask"}


def _build(experiment, overrides):
    config, _ = parse_args(["--config", "tiny", *overrides], f"experiments.{experiment}.configs")
    validate(config)
    data = importlib.import_module(f"experiments.{experiment}.data").load(config)
    task_class = getattr(importlib.import_module(f"experiments.{experiment}.task"), TASKS[experiment])
    return task_class(config, data.metadata), data


def _train_steps(experiment, overrides, steps=3, lr=0.05):
    task, data = _build(experiment, overrides)
    params = task.init(jax.random.PRNGKey(0))

    @jax.jit
    def step(params, batch, rng, state):
        def loss(p):
            return task.loss(p, batch, rng, train=True, state=state)

        (value, (_, state)), grads = jax.value_and_grad(loss, has_aux=True)(params)
        return jax.tree.map(lambda p, g: p - lr * g, params, grads), value, grads, state

    first = params
    batch0 = data.train[0]
    state = task.init_state(int(np.shape(next(iter(batch0.values())))[0]))
    losses = []
    for s in range(steps):
        params, value, grads, state = step(params, data.train[s], jax.random.PRNGKey(s), state)
        losses.append(float(value))
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads)), (experiment, overrides, s)
    assert np.all(np.isfinite(losses)), (experiment, overrides, losses)
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), first, params)
    assert max(jax.tree.leaves(moved)) > 0, (experiment, overrides)
    return losses


# minGRU in every experiment with each evaluation and remat; minLSTM once (the RG-LRU is in the forecaster test)
CASES = [
    ("chargen", ["--config.model.cell=mingru", "--config.model.scan=associative", "--config.model.remat=4"]),
    ("chargen", ["--config.model.cell=minlstm", "--config.model.scan=chunked"]),
    ("memory", ["--config.model.cell=mingru", "--config.model.scan=chunked", "--config.model.remat=4"]),
    ("sentiment", ["--config.model.cell=mingru", "--config.model.scan=associative", "--config.model.remat=16"]),
    ("seq2seq", ["--config.model.cell=mingru", "--config.model.scan=sequential", "--config.model.remat=4"]),
    ("timeseries", ["--config.model.cell=mingru", "--config.model.scan=associative", "--config.model.remat=4"]),
]


@pytest.mark.parametrize("experiment, overrides", CASES, ids=[f"{e}-{o[0].split('=')[1]}" for e, o in CASES])
def test_a_long_sequence_cell_trains_in_every_experiment(experiment, overrides):
    _train_steps(experiment, overrides)


@pytest.mark.parametrize("experiment", sorted(TASKS))
def test_a_scan_with_a_classic_cell_is_rejected(experiment):
    with pytest.raises(ConfigError, match="model.scan"):
        _build(experiment, ["--config.model.cell=gru", "--config.model.scan=chunked"])


@pytest.mark.parametrize("structure, cell", [("direct", "mingru"), ("n_to_n", "mingru"), ("autoregressive", "mingru"),
                                             ("autoregressive", "rglru")])
def test_the_forecaster_with_a_linear_cell_in_each_structure(structure, cell, x64):
    B, L, H = 3, 12, 5
    inputs = jax.random.normal(jax.random.PRNGKey(1), (B, L, 1), jnp.float64)
    forecasts = {}
    for scan in ("sequential", "chunked", "associative"):
        model = Forecaster(structure=structure, horizon=H, cell=cell, hidden=8, num_layers=2, scan=scan,
                           remat=4)
        params = model.init(jax.random.PRNGKey(0))
        forecasts[scan] = np.asarray(model.forecast(params, inputs))
        assert forecasts[scan].shape == (B, H) and np.all(np.isfinite(forecasts[scan]))
    for scan in ("chunked", "associative"):
        np.testing.assert_allclose(forecasts[scan], forecasts["sequential"], rtol=1e-10, atol=1e-12)
    if structure == "autoregressive":
        # the rollout steps the cells one value at a time; running the whole window plus the values it
        # fed back through the parallel scan must read out the same forecasts
        model = Forecaster(structure=structure, horizon=H, cell=cell, hidden=8, num_layers=2,
                           scan="associative")
        params = model.init(jax.random.PRNGKey(0))
        fed = jnp.concatenate([inputs, jnp.asarray(forecasts["sequential"][:, :-1, None])], axis=1)
        _, ys = model.stack(params["rnn"], fed)
        readout = dense(params["head"], ys[:, L - 1:])[..., 0]
        np.testing.assert_allclose(readout, forecasts["sequential"], rtol=1e-9, atol=1e-10)
