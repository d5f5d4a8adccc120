"""The classical baselines, the forecast scores and the report's choice on validation, on hand-made
series whose answers are known."""

import importlib.util

import numpy as np
import pytest

from experiments.timeseries import baselines as B
from experiments.timeseries import report as R
from experiments.timeseries.metrics import Forecast, crps_gaussian, crps_samples, mase_scale, score

HAS_STATSFORECAST = importlib.util.find_spec("statsforecast") is not None


# --------------------------------------------------------------------------- scores


def test_point_scores_by_hand():
    truth = np.array([[1.0, 2.0], [3.0, 4.0]])
    pred = np.array([[2.0, 2.0], [3.0, 1.0]])  # errors [[1, 0], [0, -3]]
    m = score(pred, truth, scale=np.array([1.0, 2.0]))
    np.testing.assert_allclose(m["mae"], [0.5, 1.5])
    np.testing.assert_allclose(m["rmse"], [np.sqrt(0.5), np.sqrt(4.5)])
    np.testing.assert_allclose(m["mase"], [0.5, 0.75])  # window 2's errors are halved by its scale
    np.testing.assert_allclose(m["smape"], [(200 / 3) / 2, (200 * 3 / 5) / 2])
    assert m["mae_all"] == pytest.approx(1.0) and m["rmse_all"] == pytest.approx(np.sqrt(10 / 4))
    assert m["n"] == 2 and "crps" not in m
    assert score(np.zeros((1, 1)), np.zeros((1, 1)))["smape_all"] == 0.0  # 0 / 0 counts as no error
    with pytest.raises(ValueError, match="differ in shape"):
        score(pred, truth[:1])
    with pytest.raises(ValueError, match="non-finite"):
        score(pred * np.nan, truth)


def test_mase_scale_is_the_in_sample_seasonal_naive_error():
    y = np.array([1.0, 2.0, 4.0, 7.0, 11.0])
    assert mase_scale(y) == pytest.approx(np.mean([1, 2, 3, 4]))  # no period: the naive one-step error
    assert mase_scale(y, period=2) == pytest.approx(np.mean([3, 5, 7]))
    with pytest.raises(ValueError, match="constant"):
        mase_scale(np.ones(10))


def test_crps_from_samples_matches_the_gaussian_closed_form_and_coverage_its_levels():
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=(200, 3)), rng.uniform(0.5, 2.0, size=(200, 3))
    truth = mu + sigma * rng.normal(size=mu.shape)
    samples = mu[None] + sigma[None] * rng.normal(size=(4000, *mu.shape))
    np.testing.assert_allclose(crps_samples(samples, truth).mean(), crps_gaussian(mu, sigma, truth).mean(), rtol=0.02)
    m = score(Forecast(mu, samples), truth)
    assert m["coverage80_all"] == pytest.approx(0.8, abs=0.04) and m["coverage95_all"] == pytest.approx(0.95, abs=0.03)
    # a point mass at the forecast: the CRPS is the absolute error
    point = np.repeat(mu[None], 2, axis=0)
    np.testing.assert_allclose(crps_samples(point, truth), np.abs(mu - truth))
    with pytest.raises(ValueError, match=r"samples must be \(S, 200, 3\)"):
        Forecast(mu, samples[:, :10])


# --------------------------------------------------------------------------- AR(p)


def _ar2(n=400, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    y = np.zeros(n)
    y[:2] = [1.0, 0.5]
    for t in range(2, n):
        y[t] = 0.3 + 1.2 * y[t - 1] - 0.5 * y[t - 2] + noise * rng.normal()
    return y


def test_direct_ar_recovers_a_known_process_and_its_multi_step_forecast():
    y = _ar2(noise=0.1)
    ar = B.LinearAR.fit(y, 2, horizon=3, train_stop=300)
    np.testing.assert_allclose(ar.coef[:, 0], [0.3, 1.2, -0.5], atol=0.05)  # step 1 is the process itself
    # step 2 of a direct AR is the process applied twice: y[t+1] = c(1 + a1) + (a1^2 + a2) y[t-1] + a1 a2 y[t-2]
    np.testing.assert_allclose(ar.coef[:, 1], [0.3 * 2.2, 1.2**2 - 0.5, -0.6], atol=0.08)
    assert ar.sigma[0] == pytest.approx(0.1, rel=0.15) and ar.sigma[2] > ar.sigma[0]  # error grows with the step
    origins = np.array([310, 350])
    want = np.stack([[ar.coef[0, h] + ar.coef[1, h] * y[o - 1] + ar.coef[2, h] * y[o - 2] for h in range(3)]
                     for o in origins])
    np.testing.assert_allclose(ar.predict(y, origins), want)
    with pytest.raises(ValueError, match="needs 2 values before each origin"):
        ar.predict(y, np.array([1]))


def test_ar_order_is_chosen_on_validation_and_fitted_on_training_only():
    y = _ar2(noise=0.05, seed=1)
    val = np.arange(300, 350)
    ar, scores = B.select_ar(y, 300, 1, range(1, 9), val)
    assert ar.p >= 2 and scores[2] < scores[1]  # AR(1) cannot fit an AR(2) process
    # the fit reads nothing after the training span
    changed = y.copy()
    changed[300:] += 100.0
    np.testing.assert_allclose(B.LinearAR.fit(changed, 2, 1, 300).coef, B.LinearAR.fit(y, 2, 1, 300).coef)
    assert B.ar_orders(period=12, train_stop=300, horizon=12) == list(range(1, 25))
    assert B.ar_orders(period=24, train_stop=300, horizon=12) == list(range(1, 49))
    assert B.ar_orders(period=0, train_stop=30, horizon=3) == list(range(1, 10))  # (30 - 3) // 3


def test_classical_forecasts_every_split_and_says_what_it_chose():
    y = 10 + np.sin(2 * np.pi * np.arange(300) / 12) + 0.01 * np.arange(300)
    origins = {"val": np.arange(210, 250), "test": np.arange(250, 290)}
    fc, notes = B.classical(y, 210, origins, horizon=6, period=12, samples=50, use_statsforecast=False)
    assert set(fc) == {"persistence", "seasonal_naive", "ar"}
    for name in fc:
        assert fc[name]["val"].mean.shape == (40, 6) and fc[name]["test"].mean.shape == (40, 6)
    assert fc["ar"]["test"].samples.shape == (50, 40, 6)
    np.testing.assert_allclose(fc["persistence"]["test"].mean[:, 0], y[249:289])
    np.testing.assert_allclose(fc["seasonal_naive"]["test"].mean[:, 0], y[250 - 12:290 - 12])
    truth = y[origins["test"][:, None] + np.arange(6)]
    # a linear trend plus a season: AR with a season's worth of lags is near exact, seasonal naive is off by the trend
    assert score(fc["ar"]["test"], truth)["mae_all"] < 0.1 * score(fc["seasonal_naive"]["test"], truth)["mae_all"]
    assert notes["ar"].startswith("p=") and "chosen by validation MAE among p=1..24" in notes["ar"]
    assert notes["ets"] == "skipped: turned off (eval.statsforecast=False)"


@pytest.mark.skipif(not HAS_STATSFORECAST, reason="statsforecast is not installed (the optional extra 'forecast')")
def test_statsforecast_models_are_fitted_on_training_and_applied_at_each_origin():
    rng = np.random.default_rng(0)
    y = 50 + 5 * np.sin(2 * np.pi * np.arange(120) / 12) + rng.normal(0, 0.3, 120)
    origins = {"val": np.arange(84, 96), "test": np.arange(102, 110)}
    fc, notes = B.classical(y, 84, origins, horizon=3, period=12, samples=20)
    assert {"ets", "arima", "theta"} <= set(fc), notes
    truth = y[origins["test"][:, None] + np.arange(3)]
    for name in ("ets", "arima", "theta"):
        assert score(fc[name]["test"], truth)["mae_all"] < 1.5  # the season is 10 wide, the noise 0.3
    # later values move the forecast of a later origin (it reads the history), not the fit
    changed = y.copy()
    changed[100:] += 20.0
    a = B.statsforecast_forecasts("ets", y, 84, 3, 12, {"val": origins["val"]})["val"][0]
    b = B.statsforecast_forecasts("ets", changed, 84, 3, 12, {"val": origins["val"]})["val"][0]
    np.testing.assert_allclose(a, b)


def test_statsforecast_absent_is_skipped_with_its_reason(monkeypatch):
    monkeypatch.setattr(B, "statsforecast_available", lambda: "statsforecast is not installed; " + B.INSTALL_HINT)
    y = np.sin(np.arange(100) / 3.0)
    fc, notes = B.classical(y, 60, {"val": np.arange(60, 75), "test": np.arange(80, 95)}, 2, 0, samples=10)
    assert set(fc) == {"persistence", "ar"}
    for name in ("ets", "arima", "theta"):
        assert notes[name] == "skipped: statsforecast is not installed; pip install 'seqjax[forecast]'"


# --------------------------------------------------------------------------- the report


def test_the_report_chooses_on_validation_and_names_the_test_winner():
    truth = {"val": np.zeros((4, 2)), "test": np.zeros((4, 2))}
    scale = {"val": np.ones(4), "test": np.ones(4)}
    f = lambda v, t: {"val": Forecast(np.full((4, 2), v)), "test": Forecast(np.full((4, 2), t))}
    # 'b' is best on validation and 'c' on test: validation's choice is b, however the test turns out
    scores = R.score_all({"model": f(0.5, 0.3), "a": f(2.0, 2.0), "b": f(1.0, 0.8), "c": f(3.0, 0.1)}, truth, scale)
    assert R.choose(scores, ["a", "b", "c"]) == "b"
    text, facts = R.format_results("T", "info", scores, "model", ["a", "b", "c"], {"a": "a note"})
    assert facts == {"test_winner": "c", "best_baseline": "b", "best_baseline_test_mae": 0.8,
                     "best_baseline_val_mase": 1.0, "test_mae_vs_best_baseline": pytest.approx(0.375),
                     "val_choice": "model"}
    assert "**Winner on test (lowest MAE): c**" in text and "0.375x that: the model **matches or beats it**" in text
    assert "| model | 0.5 | 0.5 | 0.3 |" in text and "* a: a note" in text and "## Test MAE by horizon step" in text
