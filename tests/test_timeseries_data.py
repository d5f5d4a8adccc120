"""Tests for experiments/timeseries: CSV loading, splits and batches, baselines, plots."""

import os

import numpy as np
import pytest
from conftest import SHARED_DATA

from experiments.timeseries import baselines as B
from experiments.timeseries import report as R
from experiments.timeseries.configs import default
from experiments.timeseries.data import load, read_csv_series, read_series
from experiments.timeseries.metrics import score
from experiments.timeseries.task import baselines
from seqjax.data.series import Scaler
from seqjax.train import ConfigError

ELEC = SHARED_DATA / "elec_equip.csv"
ELEC_COL = "STS.M.I7.W.TOVT.NS0016.4.000"


def _config(seed=0, batch_size=32, **data):
    config = default.get_config()
    config.seed = seed
    config.train.batch_size = batch_size
    config.data.update(data)
    return config


def load_csv(path, column, date_column="", covariates=(), fill_nan="error"):
    return read_csv_series(path, column, date_column, covariates, fill_nan)


def load_series(data: dict):
    return read_series(_config(**data).data)


def prepare(data: dict, lookback, horizon, seed=0, batch_size=5):
    return load(_config(seed, batch_size, lookback=lookback, horizon=horizon, **data))


def _write(tmp_path, text, name="s.csv"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def _ramp_csv(tmp_path, n=40, change=None):
    """date,y,temp with y = row index; optionally overwrite one y value."""
    lines = ["date,y,temp"]
    for i in range(n):
        y = change[1] if change and change[0] == i else i
        lines.append(f"2000-{1 + i // 28:02d}-{1 + i % 28:02d},{y},{10 * i + 0.5}")
    return _write(tmp_path, "\n".join(lines) + "\n")


# --------------------------------------------------------------------------- CSV loading


def test_csv_loads_with_covariates_and_dates(tmp_path):
    path = _ramp_csv(tmp_path, n=30)
    values, names, dates = load_series(
        {"source": "csv", "csv": path, "column": "y", "covariates": ("temp",), "date_column": "date"}
    )
    assert names == ["y", "temp"]
    assert values.dtype == np.float64 and values.shape == (30, 2)
    assert values[:, 0].tolist() == list(range(30))
    assert values[3, 1] == 30.5
    assert dates.dtype == np.dtype("datetime64[D]")
    assert str(dates[0]) == "2000-01-01" and str(dates[29]) == "2000-02-02"
    # Without a date column there are no dates, and only the target column.
    v2, n2, d2 = load_series({"source": "csv", "csv": path, "column": "temp"})
    assert v2.shape == (30, 1) and n2 == ["temp"] and d2 is None


def test_csv_unparseable_dates_kept_as_strings(tmp_path):
    path = _write(tmp_path, "when,y\nspring,1\nsummer,2\nautumn,3\n")
    _, _, dates = load_csv(path, "y", date_column="when")
    assert dates.tolist() == ["spring", "summer", "autumn"]


def test_csv_dates_must_increase(tmp_path):
    path = _write(tmp_path, "d,y\n2001-01-01,1\n2001-03-01,2\n2001-02-01,3\n")
    with pytest.raises(ValueError, match=r"not strictly increasing at row 3 \(line 4\)"):
        load_csv(path, "y", date_column="d")


def test_csv_missing_column_lists_available(tmp_path):
    path = _write(tmp_path, "date,y,temp\n2000-01-01,1,2\n")
    with pytest.raises(ValueError, match=r"no column 'volume'; its columns are \['date', 'y', 'temp'\]"):
        load_csv(path, "volume")
    with pytest.raises(ValueError, match=r"no covariate column 'rain'; its columns are"):
        load_csv(path, "y", covariates=("rain",))
    with pytest.raises(ValueError, match=r"no date_column 'day'"):
        load_csv(path, "y", date_column="day")


def test_csv_empty_or_header_only(tmp_path):
    with pytest.raises(ValueError, match=r"the file is empty \(no header row\)"):
        load_csv(_write(tmp_path, ""), "y")
    with pytest.raises(ValueError, match=r"the file has a header but no data rows"):
        load_csv(_write(tmp_path, "t,y\n\n"), "y")


def test_csv_non_numeric_rows_and_strings(tmp_path):
    # A thousands separator is only one cell when quoted.
    path = _write(tmp_path, 't,y\n1,1.5\n2,abc\n3,3\n4,"1,234"\n5,7\n')
    with pytest.raises(ValueError) as e:
        load_csv(path, "y")
    msg = str(e.value)
    assert "column 'y'" in msg and "data rows 2, 4" in msg
    assert "'abc'" in msg and "'1,234'" in msg and "line 3" in msg
    # fill_nan never excuses text that is not a number.
    with pytest.raises(ValueError, match="non-numeric"):
        load_csv(path, "y", fill_nan="interpolate")


def test_csv_missing_values_error_by_default(tmp_path):
    path = _write(tmp_path, "t,y\n1,1\n2,\n3,NaN\n4,4\n5,NA\n6,6\n")
    msg = r"column 'y' has missing/NaN values at data rows 2, 3, 5 \(row 2: '', row 3: 'NaN', row 5: 'NA'\);"
    with pytest.raises(ValueError, match=msg):
        load_csv(path, "y")
    # A short row (cell absent) counts as missing too.
    path2 = _write(tmp_path, "t,y\n1,1\n2\n3,3\n", "short.csv")
    with pytest.raises(ValueError, match=r"data rows 2\b"):
        load_csv(path2, "y")


def test_csv_fill_nan_ffill_and_interpolate(tmp_path):
    path = _write(tmp_path, "t,y\n1,1\n2,\n3,NaN\n4,4\n5,NA\n6,8\n")
    msg = r"filled 3 missing value\(s\) in column 'y' by ffill at data rows 2, 3, 5"
    with pytest.warns(UserWarning, match=msg):
        v, _, _ = load_csv(path, "y", fill_nan="ffill")
    assert v[:, 0].tolist() == [1, 1, 1, 4, 4, 8]
    with pytest.warns(UserWarning, match="interpolate"):
        v, _, _ = load_csv(path, "y", fill_nan="interpolate")
    assert v[:, 0].tolist() == [1, 2, 3, 4, 6, 8]


def test_csv_fill_nan_edges_and_bad_option(tmp_path):
    lead = _write(tmp_path, "t,y\n1,\n2,nan\n3,3\n4,4\n", "lead.csv")
    with pytest.raises(ValueError, match=r"starts with missing values at data rows 1, 2"):
        load_csv(lead, "y", fill_nan="ffill")
    with pytest.raises(ValueError, match=r"data rows 1, 2 before the first or after the last"):
        load_csv(lead, "y", fill_nan="interpolate")
    trail = _write(tmp_path, "t,y\n1,1\n2,2\n3,\n", "trail.csv")
    with pytest.raises(ValueError, match=r"data rows 3 before the first or after the last"):
        load_csv(trail, "y", fill_nan="interpolate")
    with pytest.raises(ValueError, match="fill_nan must be"):
        load_csv(trail, "y", fill_nan="zero")


def test_csv_covariate_nan_reported_with_its_name(tmp_path):
    path = _write(tmp_path, "y,x\n1,1\n2,\n3,3\n")
    with pytest.raises(ValueError, match=r"column 'x' has missing/NaN values at data rows 2"):
        load_csv(path, "y", covariates=("x",))


@pytest.mark.skipif(not ELEC.exists(), reason=f"real data absent at {SHARED_DATA} (not part of a fresh checkout)")
def test_elec_equip_loads_and_seasonal_naive_wins():
    cfg = {"source": "csv", "csv": str(ELEC), "column": ELEC_COL, "date_column": "DATE", "period": 12}
    values, names, dates = load_series(dict(cfg, period=0))
    assert values.shape == (257, 1) and names == [ELEC_COL]
    assert str(dates[0]) == "1995-01-01" and str(dates[-1]) == "2016-05-01"
    assert values[0, 0] == 66.19
    data = prepare(cfg, lookback=24, horizon=12)
    truth = data.raw_targets("test")
    m_p = score(baselines(data)["persistence"], truth)
    m_s = score(baselines(data)["seasonal_naive"], truth)
    # A strongly seasonal monthly series: one season back beats the last value.
    assert m_s["rmse_all"] < 0.5 * m_p["rmse_all"]


# --------------------------------------------------------------------------- prepare and batches


def _cfg(path, **kw):
    return {"source": "csv", "csv": path, "column": "y", "train_frac": 0.6, "val_frac": 0.2, **kw}


def test_prepare_splits_scales_on_train_only(tmp_path):
    data = prepare(_cfg(_ramp_csv(tmp_path)), lookback=4, horizon=3, seed=0)
    train, val = data.windows["train"], data.windows["val"]
    assert (data.split.train, data.split.val, data.split.test) == (range(0, 24), range(24, 32), range(32, 40))
    assert data.scaler.mean.tolist() == [11.5]
    np.testing.assert_allclose(data.scaler.std, [np.arange(24).std()])
    # Windows are scaled; unscaling recovers the ramp indices exactly where they belong.
    assert train.inputs.shape == (18, 4, 1) and train.targets.shape == (18, 3, 1)
    raw_in = data.scaler.inverse_transform(train.inputs)
    np.testing.assert_allclose(raw_in[0, :, 0], [0, 1, 2, 3])
    assert train.origins.tolist() == list(range(4, 22))
    np.testing.assert_allclose(data.unscale_targets(val.targets[..., 0]), data.raw_targets("val"))
    assert data.raw_targets("val").tolist() == [
        [24, 25, 26],
        [25, 26, 27],
        [26, 27, 28],
        [27, 28, 29],
        [28, 29, 30],
        [29, 30, 31],
    ]
    assert data.raw_targets("test").min() == 32 and data.raw_targets("test").max() == 39
    assert np.all(data.unscale_targets(train.targets[..., 0]) < 24)
    # The scaler is saved beside a checkpoint, in the metadata.
    assert Scaler.from_dict(data.metadata["scalers"][0]).mean.tolist() == [11.5]


def test_changing_a_test_value_leaves_scaler_and_train_alone(tmp_path):
    a = prepare(_cfg(_ramp_csv(tmp_path)), 4, 3)
    b = prepare(_cfg(_ramp_csv(tmp_path, change=(35, 1e5))), 4, 3)
    assert a.scaler.mean.tolist() == b.scaler.mean.tolist()
    assert a.scaler.std.tolist() == b.scaler.std.tolist()
    wa, wb = a.windows, b.windows
    np.testing.assert_array_equal(wa["train"].inputs, wb["train"].inputs)
    np.testing.assert_array_equal(wa["train"].targets, wb["train"].targets)
    np.testing.assert_array_equal(wa["val"].targets, wb["val"].targets)
    assert not np.array_equal(wa["test"].targets, wb["test"].targets)


def test_prepare_with_covariates(tmp_path):
    data = prepare(_cfg(_ramp_csv(tmp_path), covariates=("temp",)), 4, 3)
    train = data.windows["train"]
    assert train.inputs.shape == (18, 4, 2) and train.targets.shape == (18, 3, 1)
    first = data.scaler.inverse_transform(train.inputs)[0]
    np.testing.assert_allclose(first[:, 1], [0.5, 10.5, 20.5, 30.5])
    assert data.scaler.mean.shape == (2,)


def test_prepare_too_short_or_bad_sizes(tmp_path):
    path = _ramp_csv(tmp_path, n=30)
    with pytest.raises(ValueError, match=r"length 30 but must have length >= \d+"):
        prepare(_cfg(path), lookback=20, horizon=6)
    with pytest.raises(ConfigError, match=r"config\.data\.horizon=0: expected an integer >= 1"):
        prepare(_cfg(path), lookback=4, horizon=0)
    with pytest.raises(ConfigError, match=r"config\.data\.lookback=0"):
        prepare(_cfg(path), lookback=0, horizon=2)


def test_generators_through_prepare():
    mg = prepare({"source": "mackey_glass", "length": 600}, lookback=20, horizon=5)
    assert mg.names == ["mackey_glass"] and mg.values.shape == (600, 1) and mg.period == 0
    sine = prepare({"source": "sine", "length": 300, "sine_periods": (12.0,), "sine_noise": 0.0}, 24, 12)
    assert sine.period == 12
    # Noise-free single sine: the seasonal-naive forecast is exact, persistence is not.
    truth = sine.raw_targets("test")
    m_s = score(baselines(sine)["seasonal_naive"], truth)
    m_p = score(baselines(sine)["persistence"], truth)
    assert m_s["rmse_all"] < 1e-9 and m_p["rmse_all"] > 0.3
    with pytest.raises(ConfigError, match=r"config\.data\.source='parquet': expected one of"):
        load(_config(source="parquet"))


@pytest.mark.parametrize("data, message", [
    (dict(csv="my.csv"), "config.data.csv='my.csv' only takes effect with data.source='csv' "
                         "(this config has data.source='mackey_glass')"),
    (dict(column="y"), "config.data.column='y' only takes effect with data.source='csv'"),
    (dict(source="csv", csv="x.csv", column="y", length=500), "config.data.length=500 only takes effect with a "
                                                               "generated data.source"),
    (dict(source="sine", mg_tau=30.0), "config.data.mg_tau=30.0 only takes effect with data.source='mackey_glass'"),
    (dict(sine_noise=0.0), "config.data.sine_noise=0.0 only takes effect with data.source='sine'"),
    (dict(source="csv"), "data.source='csv' needs the path"),
    (dict(source="csv", csv="x.csv"), "data.source='csv' needs the target column"),
    (dict(fill_nan="zero"), "config.data.fill_nan='zero': expected one of error, ffill, interpolate"),
])
def test_keys_the_source_would_ignore_fail(data, message):
    with pytest.raises(ConfigError) as info:
        load(_config(**data))
    assert message in str(info.value)


def test_train_batches_deterministic(tmp_path):
    cfg = _cfg(_ramp_csv(tmp_path, n=60))
    data = prepare(cfg, 4, 2, seed=3)
    n, bs = len(data.windows["train"]), 5
    b = data.train[7]
    assert b["inputs"].shape == (5, 4, 1) and b["inputs"].dtype == np.float32 and b["weight"].tolist() == [1] * 5
    # Pure function of (seed, step): same answer from a fresh object and in any call order.
    again = prepare(cfg, 4, 2, seed=3)
    for step in (7, 0, 7, 20):
        np.testing.assert_array_equal(data.train[step]["inputs"], again.train[step]["inputs"])
        np.testing.assert_array_equal(data.train[step]["targets"], again.train[step]["targets"])
    assert not np.array_equal(data.train[0]["inputs"], data.train[1]["inputs"])
    assert not np.array_equal(prepare(cfg, 4, 2, seed=4).train[0]["inputs"], data.train[0]["inputs"])
    # Every window once an epoch, in a fresh order each epoch (an epoch may end inside a batch).
    firsts = [v for s in range(-(-2 * n // bs)) for v in data.train[s]["inputs"][:, 0, 0].tolist()]
    epoch0, epoch1 = firsts[:n], firsts[n:2 * n]
    assert len(set(epoch0)) == n and sorted(epoch0) == sorted(epoch1) and epoch0 != epoch1
    with pytest.raises(ConfigError, match=r"train\.batch_size=200: larger than the \d+ training windows"):
        prepare(cfg, 4, 2, batch_size=200)


def test_eval_batches_in_order_and_padded(tmp_path):
    config = _config(batch_size=5, lookback=4, horizon=2, **_cfg(_ramp_csv(tmp_path, n=60)))
    config.eval.batch_size = 4
    data = load(config)
    w = data.windows["test"]
    batches = [data.test[i] for i in range(len(data.test))]
    assert [b["inputs"].shape for b in batches] == [(4, 4, 1)] * 3
    assert np.concatenate([b["weight"] for b in batches]).tolist() == [1.0] * 11 + [0.0]
    stacked = np.concatenate([b["targets"] for b in batches])[:11]
    np.testing.assert_array_equal(stacked, w.targets.astype(np.float32))
    no_val = prepare(_cfg(_ramp_csv(tmp_path, n=60), val_frac=0.0), 4, 2)
    assert len(no_val.windows["val"]) == 0 and len(no_val.val) == 0


# --------------------------------------------------------------------------- baselines


def test_persistence_hand_values():
    p = B.persistence(np.array([3.0, -1.0]), 3)
    assert p.tolist() == [[3, 3, 3], [-1, -1, -1]]
    p2 = B.persistence(np.array([[1.0, 10.0]]), 2)
    assert p2.shape == (1, 2, 2) and p2[0].tolist() == [[1, 10], [1, 10]]
    with pytest.raises(ValueError):
        B.persistence(np.array([1.0]), 0)


def test_seasonal_naive_hand_values():
    # History y[0..5] = 10..15, last observed t = 5, period 3: the last season is (13, 14, 15).
    hist = np.arange(10.0, 16.0)
    # h:        1   2   3   4   5   6   7   8
    # index:    3   4   5   3   4   5   3   4   (t + h - 3 * ceil(h / 3))
    assert B.seasonal_naive(hist, 8, 3).tolist() == [13, 14, 15, 13, 14, 15, 13, 14]
    assert B.seasonal_naive(hist, 2, 3).tolist() == [13, 14]
    # Period 1 is persistence; batched (N, L) and (N, L, F) inputs.
    two = np.stack([hist, hist * 2])
    assert B.seasonal_naive(two, 3, 1).tolist() == [[15, 15, 15], [30, 30, 30]]
    assert B.seasonal_naive(two, 5, 4).tolist()[1] == [24, 26, 28, 30, 24]
    assert B.seasonal_naive(two[..., None], 2, 2).shape == (2, 2, 1)
    with pytest.raises(ValueError, match="period=12"):
        B.seasonal_naive(hist, 3, 12)


def test_plots_write_png(tmp_path):
    truth = np.sin(np.arange(24) / 3.0)
    f1 = R.plot_forecast(
        tmp_path / "f.png",
        truth,
        {"persistence": np.zeros(24), "model": truth + 0.1},
        history=np.ones(10),
        title="test",
    )
    m = {"persistence": {"rmse": [1.0, 2.0, 3.0]}, "model": {"rmse": [0.5, 0.7, 0.9]}}
    f2 = R.plot_error_by_horizon(tmp_path / "e.png", m)
    for f in (f1, f2):
        head = open(f, "rb").read(8)
        assert head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(f) > 1000
    with pytest.raises(ValueError):
        R.plot_forecast(tmp_path / "bad.png", truth, {"short": np.zeros(3)})
