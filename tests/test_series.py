"""Tests for seqjax.data.series (splits, scaler, windows) and the time-series generators."""

import numpy as np
import pytest

from experiments.timeseries.data import mackey_glass, sine_mixture
from seqjax.data.series import Scaler, check_length, chronological_split, make_windows, min_length, window_origins

# A ramp (value = index) makes every window show exactly which indices it read.
T, LOOKBACK, HORIZON = 20, 3, 2
RAMP = np.arange(T, dtype=np.float64)


def _ids(a):
    return a[..., 0].astype(int).tolist()


def test_split_is_chronological_and_exact():
    s = chronological_split(T, 0.6, 0.2)
    assert (s.train, s.val, s.test) == (range(0, 12), range(12, 16), range(16, 20))
    # floor(10 * 0.7) must be 7, not 6 from floating-point round-off.
    assert chronological_split(10, 0.7, 0.2).train == range(0, 7)
    assert chronological_split(10, 0.7, 0.0).val == range(7, 7)


@pytest.mark.parametrize("fracs", [(0.0, 0.2), (1.0, 0.0), (0.6, 0.4), (0.7, -0.1)])
def test_split_rejects_bad_fractions(fracs):
    with pytest.raises(ValueError):
        chronological_split(100, *fracs)


def test_windows_exact_on_ramp():
    s = chronological_split(T, 0.6, 0.2)
    xs, ys = make_windows(RAMP, LOOKBACK, HORIZON, s.train.start, s.train.stop)
    assert xs.shape == (8, 3, 1) and ys.shape == (8, 2, 1)
    assert _ids(xs) == [[t - 3, t - 2, t - 1] for t in range(3, 11)]
    assert _ids(ys) == [[t, t + 1] for t in range(3, 11)]

    xv, yv = make_windows(RAMP, LOOKBACK, HORIZON, s.val.start, s.val.stop)
    assert _ids(xv) == [[9, 10, 11], [10, 11, 12], [11, 12, 13]]
    assert _ids(yv) == [[12, 13], [13, 14], [14, 15]]

    xt, yt = make_windows(RAMP, LOOKBACK, HORIZON, s.test.start, s.test.stop)
    assert _ids(xt) == [[13, 14, 15], [14, 15, 16], [15, 16, 17]]
    assert _ids(yt) == [[16, 17], [17, 18], [18, 19]]

    assert window_origins(LOOKBACK, HORIZON, 12, 16).tolist() == [12, 13, 14]
    assert window_origins(LOOKBACK, HORIZON, 0, 12, stride=3).tolist() == [3, 6, 9]


def test_no_leakage_across_splits():
    n = 200
    series = np.arange(n, dtype=np.float64)
    for lookback, horizon in [(1, 1), (10, 5), (24, 12), (7, 30)]:
        s = chronological_split(n, 0.7, 0.15)
        xs, ys = make_windows(series, lookback, horizon, s.train.start, s.train.stop)
        # Training windows never read a val/test index, as input or as target.
        assert xs.max() < s.train.stop and ys.max() < s.train.stop
        for span in (s.val, s.test):
            x, y = make_windows(series, lookback, horizon, span.start, span.stop)
            assert y.min() >= span.start and y.max() < span.stop
            # Each input block ends right before its targets.
            assert np.all(x[:, -1, 0] + 1 == y[:, 0, 0])
            # The windows cover every target index in the span that has enough history.
            assert y[:, 0, 0].tolist() == list(range(span.start, span.stop - horizon + 1))


def test_multicolumn_targets_subset():
    series = np.stack([RAMP, 100 + RAMP, 200 + RAMP], axis=1)
    x, y = make_windows(series, 4, 3, 0, 12, target_cols=[0])
    assert x.shape == (6, 4, 3) and y.shape == (6, 3, 1)
    assert x[0, :, 1].tolist() == [100, 101, 102, 103]
    assert y[-1, :, 0].tolist() == [9, 10, 11]
    _, y2 = make_windows(series, 4, 3, 0, 12, target_cols=[2, 1])
    assert y2[0, 0].tolist() == [204, 104]


@pytest.mark.parametrize("lookback,horizon", [(0, 1), (-2, 1), (3, 0), (3, -1)])
def test_windows_reject_nonpositive_sizes(lookback, horizon):
    with pytest.raises(ValueError, match="lookback|horizon"):
        make_windows(RAMP, lookback, horizon, 0, 12)


def test_windows_too_short_says_lengths():
    with pytest.raises(ValueError, match=r"length 10.*length >= 13"):
        make_windows(RAMP[:10], 8, 5)


def test_check_length_minimum_is_exact():
    lookback, horizon, tf, vf = 24, 12, 0.7, 0.15
    need = min_length(lookback, horizon, tf, vf)
    split = check_length(need, lookback, horizon, tf, vf)
    # At the minimum, every split holds at least one window ...
    assert len(split.train) >= lookback + horizon and len(split.val) >= horizon and len(split.test) >= horizon
    # ... and one point fewer is rejected with both lengths in the message.
    with pytest.raises(ValueError, match=rf"length {need - 1} but must have length >= {need}"):
        check_length(need - 1, lookback, horizon, tf, vf)
    with pytest.raises(ValueError, match="horizon"):
        check_length(1000, lookback, 0, tf, vf)


def test_scaler_fits_train_only_and_ignores_later_values():
    s = chronological_split(T, 0.6, 0.2)
    sc = Scaler().fit(RAMP[s.train.start : s.train.stop])
    assert sc.mean.tolist() == [5.5]
    np.testing.assert_allclose(sc.std, [np.arange(12).std()])
    changed = RAMP.copy()
    changed[s.test.start] = 1e6
    sc2 = Scaler().fit(changed[s.train.start : s.train.stop])
    assert sc2.mean.tolist() == sc.mean.tolist() and sc2.std.tolist() == sc.std.tolist()


def test_scaler_roundtrip_multicolumn_and_json():
    rng = np.random.default_rng(0)
    x = rng.normal(loc=[1.0, -50.0, 3e4], scale=[0.1, 7.0, 2e3], size=(40, 3))
    sc = Scaler().fit(x[:30])
    z = sc.transform(x)
    np.testing.assert_allclose(z[:30].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z[:30].std(axis=0), 1.0, atol=1e-12)
    np.testing.assert_allclose(sc.inverse_transform(z), x, rtol=1e-12)
    # Windows (N, L, F) and a subset of columns.
    w = z[:24].reshape(4, 6, 3)
    np.testing.assert_allclose(sc.inverse_transform(w), x[:24].reshape(4, 6, 3), rtol=1e-12)
    np.testing.assert_allclose(sc.inverse_transform(z[:, [2]], columns=[2]), x[:, [2]], rtol=1e-12)
    # a dict for JSON (checkpoint metadata), exact round trip
    saved = sc.to_dict()
    assert saved["kind"] == "zscore"
    sc2 = Scaler.from_dict(saved)
    assert np.array_equal(sc2.mean, sc.mean) and np.array_equal(sc2.std, sc.std)
    np.testing.assert_array_equal(sc2.transform(x), z)


def test_scaler_constant_column_and_unfitted():
    x = np.stack([np.arange(5.0), np.full(5, 3.0)], axis=1)
    sc = Scaler().fit(x)
    assert sc.std[1] == 1.0
    np.testing.assert_allclose(sc.inverse_transform(sc.transform(x)), x)
    with pytest.raises(RuntimeError):
        Scaler().transform(x)


def _acf(x, lag):
    x = x - x.mean()
    return float(np.mean(x[: x.size - lag] * x[lag:]) / x.var()) if lag else 1.0


def test_mackey_glass_bounded_chaotic_deterministic():
    x = mackey_glass(1500)
    assert x.shape == (1500,) and x.dtype == np.float64
    assert 0.2 < x.min() and x.max() < 1.5
    assert x.std() > 0.15  # not constant, not a decayed fixed point
    assert abs(_acf(x, 17) - _acf(x, 0)) > 0.8  # lag-17 autocorrelation far from lag 0
    assert np.array_equal(x, mackey_glass(1500))  # deterministic
    # Sensitive dependence: a 1e-6 change in the initial history grows by orders of magnitude.
    y = mackey_glass(1500, x0=1.2 + 1e-6)
    early, late = np.abs(x - y)[:50].max(), np.abs(x - y)[1000:].max()
    assert late > 30 * early
    # Seeds perturb the initial history: reproducible per seed, different across seeds.
    assert np.array_equal(mackey_glass(300, seed=1), mackey_glass(300, seed=1))
    assert not np.allclose(mackey_glass(300, seed=1), mackey_glass(300, seed=2))


def test_mackey_glass_matches_fine_euler():
    """RK4 at dt=0.1 against a plain Euler reference at dt=0.002 over 60 time units."""
    n, dt, tau = 60, 0.002, 17.0
    d, spu = round(tau / dt), round(1 / dt)
    ref = [1.2] * (d + 1)
    for _ in range((n - 1) * spu):
        xd, xc = ref[-1 - d], ref[-1]
        ref.append(xc + dt * (0.2 * xd / (1 + xd**10) - 0.1 * xc))
    ref = np.asarray(ref[d::spu])
    got = mackey_glass(n, discard=0)
    assert got[0] == 1.2
    np.testing.assert_allclose(got, ref, atol=2e-3)
    # Halving the internal step barely moves the RK4 solution.
    np.testing.assert_allclose(mackey_glass(n, discard=0, dt=0.05), got, atol=2e-4)


def test_mackey_glass_sampling_and_validation():
    a = mackey_glass(40, discard=10)
    b = mackey_glass(20, discard=10, sample_every=2)
    np.testing.assert_array_equal(b, a[::2])
    c = mackey_glass(30, discard=20)
    np.testing.assert_array_equal(c, a[10:])
    with pytest.raises(ValueError):
        mackey_glass(10, dt=0.3)
    with pytest.raises(ValueError):
        mackey_glass(0)


def test_sine_mixture():
    y = sine_mixture(100, periods=(12, 30), amplitudes=(2.0, 0.5), noise=0.0)
    t = np.arange(100)
    np.testing.assert_allclose(y, 2 * np.sin(2 * np.pi * t / 12) + 0.5 * np.sin(2 * np.pi * t / 30))
    a, b = sine_mixture(50, noise=0.3, seed=4), sine_mixture(50, noise=0.3, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, sine_mixture(50, noise=0.3, seed=5))
    with pytest.raises(ValueError):
        sine_mixture(10, periods=(12,), amplitudes=(1.0, 2.0))
