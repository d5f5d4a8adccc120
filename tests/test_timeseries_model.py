"""The forecaster's options: per-window normalisation, the autoregressive highway, the probabilistic
heads and their samples, the series embedding and the ensemble, checked against direct computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from experiments.timeseries.configs import tiny
from experiments.timeseries.data import load
from experiments.timeseries.model import Forecaster
from experiments.timeseries.task import ForecastTask
from seqjax.train import ConfigError

RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.normal(size=(3, 12, 1)), jnp.float32)


def _model(**kw):
    kw.setdefault("structure", "direct")
    kw.setdefault("horizon", 4)
    return Forecaster(cell="gru", hidden=5, **kw)


def _zero_head(params):
    return dict(params, head=jax.tree.map(jnp.zeros_like, params["head"]))


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize("structure", ["direct", "n_to_n", "autoregressive"])
@pytest.mark.parametrize("norm", ["last", "mean"])
def test_shift_normalisation_makes_the_forecast_follow_the_level(structure, norm):
    model = _model(structure=structure, norm=norm)
    params = model.init(jax.random.PRNGKey(0))
    base = np.asarray(model.forecast(params, X))
    shifted = np.asarray(model.forecast(params, X + 50.0))  # a level far outside anything seen
    np.testing.assert_allclose(shifted, base + 50.0, atol=2e-4)
    plain = _model(structure=structure)
    p0 = plain.init(jax.random.PRNGKey(0))
    assert np.max(np.abs(np.asarray(plain.forecast(p0, X + 50.0)) - (np.asarray(plain.forecast(p0, X)) + 50))) > 1.0


def test_revin_is_equivariant_to_scale_and_shift_and_its_affine_is_learned():
    model = _model(norm="revin", head="gaussian")
    params = model.init(jax.random.PRNGKey(1))
    assert set(params["revin"]) == {"gamma", "beta"}
    params["revin"] = {"gamma": jnp.array([1.7]), "beta": jnp.array([0.3])}
    d = model.distribution(params, X)
    d2 = model.distribution(params, 3.0 * X - 7.0)
    np.testing.assert_allclose(d2["mu"], 3.0 * d["mu"] - 7.0, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(d2["sigma"], 3.0 * d["sigma"], rtol=1e-4)
    # the affine map is a parameter: the loss has a gradient with respect to it
    targets = jnp.asarray(RNG.normal(size=(3, 4, 1)), jnp.float32)
    grad = jax.grad(lambda p: jnp.mean(model.pointwise_loss(*model.objective(p, X, targets))))(params)
    assert np.all(np.asarray(grad["revin"]["gamma"]) != 0)


# --------------------------------------------------------------------------- highway


def test_highway_adds_a_linear_ar_on_the_last_inputs():
    model = _model(highway=5, norm="last")
    params = _zero_head(model.init(jax.random.PRNGKey(2)))  # the network adds nothing
    w, b = np.asarray(params["highway"]["w"]), np.asarray(params["highway"]["b"])
    assert w.shape == (5, 4)
    x = np.asarray(X[..., 0], np.float64)
    last = x[:, -1:]
    want = last + (x[:, -5:] - last) @ w + b  # in the window's own coordinates, then shifted back
    np.testing.assert_allclose(model.forecast(params, X), want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="for the structures 'n_to_1' and 'direct'"):
        _model(structure="n_to_n", highway=3)
    with pytest.raises(ValueError, match="reads more steps than the lookback 12"):
        _model(highway=13).forecast(_model(highway=13).init(jax.random.PRNGKey(0)), X)


# --------------------------------------------------------------------------- heads


def test_gaussian_and_student_t_likelihoods_match_scipy():
    y = jnp.asarray(RNG.normal(size=(3, 4)), jnp.float32)
    for head in ("gaussian", "student_t"):
        model = _model(head=head)
        params = model.init(jax.random.PRNGKey(3))
        params["head"]["b"] = jnp.asarray(RNG.normal(size=params["head"]["b"].shape), jnp.float32)
        d = model.distribution(params, X)
        nll = np.asarray(model.pointwise_loss(d, y))
        mu, sigma = np.asarray(d["mu"]), np.asarray(d["sigma"])
        want = (-stats.norm.logpdf(y, mu, sigma) if head == "gaussian"
                else -stats.t.logpdf(y, np.asarray(d["df"]), mu, sigma))
        np.testing.assert_allclose(nll, want, rtol=1e-4, atol=1e-5)
        assert np.all(sigma > 0) and (head == "gaussian" or np.all(np.asarray(d["df"]) > 2))
    with pytest.raises(ValueError, match="a point head has no predictive distribution"):
        _model().sample(_model().init(jax.random.PRNGKey(0)), X, jax.random.PRNGKey(0), 3)


def test_samples_follow_the_predicted_distribution():
    model = _model(head="gaussian")
    params = model.init(jax.random.PRNGKey(4))
    d = model.distribution(params, X)
    draws = np.asarray(model.sample(params, X, jax.random.PRNGKey(5), 4000))
    assert draws.shape == (4000, 3, 4)
    np.testing.assert_allclose(draws.mean(0), d["mu"], atol=5 * float(np.max(d["sigma"])) / np.sqrt(4000))
    np.testing.assert_allclose(draws.std(0), d["sigma"], rtol=0.06)


def test_autoregressive_sample_paths_feed_each_draw_back():
    model = _model(structure="autoregressive", head="gaussian", norm="last")
    params = model.init(jax.random.PRNGKey(6))
    paths = np.asarray(model.sample(params, X, jax.random.PRNGKey(7), 300))
    assert paths.shape == (300, 3, 4) and np.all(np.isfinite(paths))
    # step 1 is drawn from the one-step distribution; later steps spread further as draws feed back
    d = model.distribution(params, X)
    assert np.abs(paths[:, :, 0].mean(0) - np.asarray(d["mu"])[:, 0]).max() < 0.5
    assert np.all(paths.std(0)[:, 1:].mean(-1) > 0.5 * paths.std(0)[:, 0])
    # with a vanishing scale the paths collapse onto the rollout of locations
    tiny_sigma = dict(params, head={"w": params["head"]["w"].at[:, 1].set(0.0),
                                    "b": params["head"]["b"].at[1].set(-30.0)})
    collapsed = np.asarray(model.sample(tiny_sigma, X, jax.random.PRNGKey(8), 5))
    np.testing.assert_allclose(collapsed, np.broadcast_to(np.asarray(model.forecast(tiny_sigma, X)), collapsed.shape),
                               atol=2e-3)


# --------------------------------------------------------------------------- series embedding


def test_series_embedding_tells_series_apart():
    model = _model(num_series=3, series_embedding=2)
    params = model.init(jax.random.PRNGKey(9))
    assert params["embed"].shape == (3, 2) and params["rnn"][0]["fwd"]["w_ih"].shape[1] == 1 + 2
    a = model.forecast(params, X, jnp.array([0, 0, 0]))
    b = model.forecast(params, X, jnp.array([1, 1, 1]))
    assert np.max(np.abs(np.asarray(a) - np.asarray(b))) > 1e-4
    mixed = model.forecast(params, X, jnp.array([0, 1, 0]))
    np.testing.assert_allclose(mixed[1], b[1], rtol=1e-6)
    np.testing.assert_allclose(mixed[0], a[0], rtol=1e-6)
    ar = _model(structure="autoregressive", num_series=2, series_embedding=2)
    assert ar.forecast(ar.init(jax.random.PRNGKey(0)), X, jnp.array([0, 1, 1])).shape == (3, 4)


# --------------------------------------------------------------------------- ensemble (through the task)


def _task_config(**model):
    config = tiny.get_config()
    config.data.update(length=300, lookback=8, horizon=3)
    config.model.update(structure="direct", hidden=4, **model)
    config.train.warmup_steps = 0
    config.eval.samples = 40
    return config


def test_an_ensemble_trains_independent_members_and_forecasts_their_mean():
    config = _task_config(ensemble=3, head="gaussian")
    data = load(config)
    task = ForecastTask(config, data.metadata)
    params = task.init(jax.random.PRNGKey(0))
    assert params["head"]["w"].shape == (3, 4, 6)  # members first; 3 steps x (location, scale)
    member = [jax.tree.map(lambda a, i=i: a[i], params) for i in range(3)]
    assert not np.allclose(member[0]["head"]["w"], member[1]["head"]["w"])  # different initialisations
    batch = data.val[0]
    inputs = jnp.asarray(batch["inputs"])
    from experiments.timeseries.task import _forecast

    want = np.mean([np.asarray(jax.jit(task.model.forecast)(m, inputs)) for m in member], axis=0)
    np.testing.assert_allclose(_forecast(task.model, params, inputs, None, 3), want, rtol=1e-5, atol=1e-6)
    # each member's gradient is its own single-model gradient over sqrt(3)
    train = data.train[0]
    g = jax.jit(jax.grad(lambda p: task.loss(p, train, jax.random.PRNGKey(1), train=True, state=None)[0]))(params)
    single = ForecastTask(_task_config(head="gaussian"), data.metadata)
    g1 = jax.jit(jax.grad(lambda p: single.loss(p, train, jax.random.PRNGKey(1), train=True, state=None)[0]))(member[1])
    np.testing.assert_allclose(g["head"]["w"][1], np.asarray(g1["head"]["w"]) / np.sqrt(3), rtol=1e-4, atol=1e-7)
    # every member learns: each has a gradient everywhere
    for leaf in jax.tree.leaves(g):
        assert all(np.any(np.asarray(leaf[i]) != 0) for i in range(3))
    fc = task.predict(params, data, "test")
    assert fc.mean.shape == (len(data.windows["test"]), 3) and fc.samples.shape == (40, *fc.mean.shape)
    assert "ensemble of 3" in task.model_name and "gaussian" in task.model_name


def test_series_embedding_with_one_series_is_refused():
    config = _task_config(series_embedding=2)
    with pytest.raises(ConfigError, match="an embedding tells several series apart, and this data has one"):
        ForecastTask(config, load(config).metadata)


# --------------------------------------------------------------------------- highway initialisation


def test_the_highway_starts_at_its_least_squares_fit_and_its_order_is_chosen_on_validation():
    rng = np.random.default_rng(1)
    y = np.zeros(400)
    for t in range(3, 400):  # an AR(3) process
        y[t] = 0.5 * y[t - 1] - 0.3 * y[t - 2] + 0.4 * y[t - 3] + 0.1 * rng.normal()
    L, H = 10, 2
    idx = np.arange(L, 398)
    inputs = y[idx[:, None] + np.arange(-L, 0)][..., None].astype(np.float32)
    targets = y[idx[:, None] + np.arange(H)][..., None].astype(np.float32)
    tr, va = slice(0, 250), slice(250, None)
    model = _model(horizon=H, highway=10, norm="mean")
    fit = model.least_squares_highway(inputs[tr], targets[tr], inputs[va], targets[va], orders=range(1, L + 1))
    assert fit["order"] >= 3 and fit["val_mae"][3] < fit["val_mae"][2] < fit["val_mae"][1]
    chosen = _model(horizon=H, highway=fit["order"], norm="mean")
    params = chosen.with_highway_init(chosen.init(jax.random.PRNGKey(0)), fit)
    # the first forecast is the linear fit itself, in the window's own (mean-removed) coordinates
    x = inputs[va, :, 0].astype(np.float64)
    mean = x.mean(axis=1, keepdims=True)
    X = np.concatenate([x[:, -fit["order"]:] - mean, np.ones((len(x), 1))], axis=1)
    xt = inputs[tr, :, 0].astype(np.float64)
    A = np.concatenate([xt[:, -fit["order"]:] - xt.mean(1, keepdims=True), np.ones((250, 1))], axis=1)
    b = targets[tr, :, 0] - xt.mean(1, keepdims=True)
    coef = np.linalg.solve(A.T @ A + 1e-4 * 250 * np.eye(A.shape[1]), A.T @ b)  # with the fit's small ridge
    np.testing.assert_allclose(chosen.forecast(params, jnp.asarray(inputs[va])), X @ coef + mean, atol=2e-4)
    assert np.all(np.asarray(params["head"]["w"]) == 0)  # the network's share starts at zero
