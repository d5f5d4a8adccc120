"""The forecasting experiment: model structures, one train step, final_eval, the CLI end to end."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import SHARED_DATA

from experiments.timeseries import __main__ as cli
from experiments.timeseries import baselines as B
from experiments.timeseries import data as data_lib
from experiments.timeseries.configs import tiny
from experiments.timeseries.metrics import score
from experiments.timeseries.model import Forecaster
from experiments.timeseries.task import ForecastTask
from seqjax import cells
from seqjax.train import make_optimizer, make_train_step
from seqjax.train.state import init_state

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG = b"\x89PNG\r\n\x1a\n"


def _config(num_layers=1, **model):
    config = tiny.get_config()
    config.data.length = 300
    config.data.lookback = 8
    config.data.horizon = 1 if model.get("structure") == "n_to_1" else 3
    config.train.warmup_steps = 0  # so that the first step has a non-zero learning rate
    config.model.update(hidden=4, num_layers=num_layers, **model)
    return config


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _task(config):
    data = data_lib.load(config)
    return ForecastTask(config, data.metadata), data


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("structure, cell, layers", [("n_to_1", "lstm", 1), ("n_to_n", "gru", 1),
                                                     ("direct", "rnn", 1), ("autoregressive", "lstm", 2)])
def test_one_real_step_changes_every_parameter(structure, cell, layers):
    config = _config(layers, structure=structure, cell=cell)
    task, data = _task(config)
    optimizer = make_optimizer(config.train)
    state = init_state(task, optimizer, jax.random.PRNGKey(0), config.train.batch_size)
    step = jax.jit(make_train_step(task, optimizer))
    new, metrics = step(state, data.train[0], jax.random.PRNGKey(1))
    before, after = _leaves(state.params), _leaves(new.params)
    assert len(before) == layers * 4 + 2  # (w_ih, w_hh, b_ih, b_hh) per layer, and the head
    for b, a in zip(before, after, strict=True):
        assert np.all(b != a)
    total, count = jax.device_get(metrics["loss"])
    H = config.data.horizon
    per_window = {"n_to_1": 1, "direct": H, "n_to_n": 8 * H, "autoregressive": 8 + H - 1}[structure]
    assert count == config.train.batch_size * per_window and np.isfinite(total)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ts") / "run"
    return workdir, cli.run(["--config", "tiny", "--workdir", str(workdir)])


def test_tiny_run_through_the_cli_beats_persistence(trained):
    workdir, final = trained
    assert final["steps"] == 150
    assert final["test_rmse_ratio"] < 0.7 and final["test_mae_ratio"] < 0.7  # measured: 0.50, 0.49
    assert final["test_rmse"] == pytest.approx(final["test_rmse_ratio"] * final["persistence_rmse"])
    assert json.loads((workdir / "final.json").read_text()) == final
    for name in ("forecast.png", "error_by_horizon_rmse.png", "error_by_horizon_mae.png", "loss.png"):
        assert (workdir / name).read_bytes()[:8] == PNG
    assert "| lstm n_to_1 |" in (workdir / "results.md").read_text()
    # the test metrics have their own record; metrics.jsonl holds the trainer's records only
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [50, 100, 150] and all("kind" not in r for r in records)
    saved = json.loads((workdir / "test_metrics.json").read_text())
    assert saved["metrics"]["lstm n_to_1"]["test"]["rmse_all"] == pytest.approx(final["test_rmse"])


def test_forecast_verb_reads_a_csv_and_writes_csv_and_png(trained, tmp_path, capsys):
    workdir, _ = trained
    series = data_lib.mackey_glass(200)
    csv = tmp_path / "recent.csv"
    csv.write_text("t,mackey_glass\n" + "".join(f"{i},{v}\n" for i, v in enumerate(series)))
    future = cli.run(["forecast", "--workdir", str(workdir), "--csv", str(csv), "--out", str(tmp_path / "f")])
    assert list(future) == ["mackey_glass"]
    future = future["mackey_glass"]
    assert future.shape == (1,) and abs(future[0] - data_lib.mackey_glass(201)[-1]) < 0.05
    lines = (tmp_path / "f.csv").read_text().splitlines()
    assert lines[0] == "step,mackey_glass" and float(lines[1].split(",")[1]) == pytest.approx(future[0])
    assert (tmp_path / "f.png").read_bytes()[:8] == PNG
    # the forecast is the model's own on the last lookback rows
    from seqjax.train import load_from_workdir
    run = load_from_workdir(str(workdir), ForecastTask, which="best")
    np.testing.assert_allclose(run.task.forecast(run.params, series[-16:, None]), future, rtol=1e-6)
    (tmp_path / "other.csv").write_text("t,y\n" + "".join(f"{i},{v}\n" for i, v in enumerate(series)))
    with pytest.raises(SystemExit) as info:
        cli.run(["forecast", "--workdir", str(workdir), "--csv", str(tmp_path / "other.csv")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "trained on the column(s) ['mackey_glass'], but the file has ['t', 'y']" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not list(workdir.glob("forecast_other*")), "a refused forecast wrote its files"
    (tmp_path / "short.csv").write_text("mackey_glass\n0.5\n0.6\n")
    with pytest.raises(SystemExit) as info:
        cli.run(["forecast", "--workdir", str(workdir), "--csv", str(tmp_path / "short.csv")])
    assert info.value.code == 2 and "the series has 2 rows; the model reads the last 16" in capsys.readouterr().err


# --------------------------------------------------------------------------- structures


def test_autoregressive_rollout_equals_a_step_by_step_loop():
    model = Forecaster("autoregressive", horizon=5, cell="lstm", hidden=6, num_layers=2)
    params = model.init(jax.random.PRNGKey(0))
    xs = np.sin(np.arange(3 * 7, dtype=np.float32).reshape(3, 7, 1))
    got = np.asarray(model.forecast(params, jnp.asarray(xs)))

    cell, layers, head = cells.lstm, params["rnn"], params["head"]
    carry = [cell.initial_carry(3, 6) for _ in layers]

    def one_step(x):
        for i, p in enumerate(layers):
            carry[i], x = cell.step(p["fwd"], carry[i], x)
        return x @ head["w"] + head["b"][None, :]

    for t in range(7):
        pred = one_step(jnp.asarray(xs[:, t]))
    want = [pred]
    for _ in range(4):
        pred = one_step(pred)  # the prediction is the next input
        want.append(pred)
    want = np.concatenate(want, axis=1)
    assert got.shape == (3, 5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.ptp(want[0]) > 1e-3  # a real rollout, not a constant


def test_direct_head_shape_and_naive_skips():
    xs = jnp.asarray(np.random.default_rng(0).normal(size=(4, 15, 2)), jnp.float32)
    model = Forecaster("direct", horizon=7, num_features=2, cell="gru", hidden=5, skip="seasonal", period=5)
    params = model.init(jax.random.PRNGKey(0))
    assert params["head"]["w"].shape == (5, 7)

    # The skips are exactly the baselines of baselines.py, and with a zero head they are the forecast.
    seasonal = B.seasonal_naive(np.asarray(xs[..., 0]), 7, 5)
    np.testing.assert_allclose(np.asarray(model.naive(xs)), seasonal, rtol=1e-6)
    last = Forecaster("direct", horizon=7, num_features=2, skip="last")
    persistence = B.persistence(np.asarray(xs[:, -1, 0]), 7)
    np.testing.assert_allclose(np.asarray(last.naive(xs)), persistence, rtol=1e-6)
    zero = dict(params, head=jax.tree.map(jnp.zeros_like, params["head"]))
    out = np.asarray(model.forecast(zero, xs))
    assert out.shape == (4, 7)
    np.testing.assert_allclose(out, seasonal, rtol=1e-6)

    with pytest.raises(ValueError, match="n_to_1' forecasts one step"):
        Forecaster("n_to_1", horizon=3)
    with pytest.raises(ValueError, match="univariate"):
        Forecaster("autoregressive", horizon=3, num_features=2)
    with pytest.raises(ValueError, match="for the structures 'n_to_1' and 'direct'"):
        Forecaster("n_to_n", horizon=3, skip="last")


def test_n_to_n_targets_every_step_and_forecasts_from_the_last():
    L, H = 6, 3
    inputs = jnp.arange(L, dtype=jnp.float32)[None, :, None] * jnp.ones((2, 1, 1))  # series[t-L+j] = j
    targets = jnp.arange(L, L + H, dtype=jnp.float32)[None, :, None] * jnp.ones((2, 1, 1))
    model = Forecaster("n_to_n", horizon=H, cell="rnn", hidden=4)
    params = model.init(jax.random.PRNGKey(1))
    pred, target = model.objective(params, inputs, targets)
    assert pred["mu"].shape == target.shape == (2, L, H)
    np.testing.assert_array_equal(target[0], np.arange(L)[:, None] + 1 + np.arange(H)[None, :])
    np.testing.assert_allclose(model.forecast(params, inputs), pred["mu"][:, -1], rtol=1e-5, atol=1e-6)

    ar = Forecaster("autoregressive", horizon=H, cell="rnn", hidden=4)
    _, ar_target = ar.objective(ar.init(jax.random.PRNGKey(1)), inputs, targets)
    np.testing.assert_array_equal(ar_target[0], np.arange(1, L + H))  # the next value at every step


# --------------------------------------------------------------------------- evaluation


def test_final_eval_writes_plots_table_and_independent_baselines(tmp_path):
    config = _config(structure="direct", cell="gru")
    config.data.update(source="sine", length=400, lookback=16, horizon=3, period=12)
    config.eval.statsforecast = False  # its own test is in test_timeseries_baselines.py
    task, data = _task(config)
    params = task.init(jax.random.PRNGKey(0))
    final = task.final_eval(params, data, str(tmp_path))

    for name in ("forecast.png", "error_by_horizon_rmse.png", "error_by_horizon_mae.png"):
        png = (tmp_path / name).read_bytes()
        assert png[:8] == PNG and len(png) > 5000
    table = (tmp_path / "results.md").read_text()
    assert "| model | val MASE | val MAE | test MAE | RMSE | MASE | sMAPE % |" in table
    assert "| seasonal naive |" in table and "## Test MAE by horizon step" in table
    assert "**Winner on test (lowest MAE):" in table and "Chosen on validation" in table
    assert "ETS (statsforecast AutoETS): skipped: turned off (eval.statsforecast=False)" in table

    # Baselines from the raw series by hand: origin o, step h -> values[o-1] and values[o+h-1-12].
    values, o = data.values[:, 0], data.windows["test"].origins
    h = np.arange(3)
    truth = values[o[:, None] + h]
    train = values[:data.split.train.stop]
    scale = np.mean(np.abs(train[12:] - train[:-12]))  # MASE: the in-sample seasonal naive error
    persistence = score(np.repeat(values[o - 1][:, None], 3, axis=1), truth, scale)
    seasonal = score(values[o[:, None] + h - 12], truth, scale)
    forecast = task.model.forecast(params, data.windows["test"].inputs.astype(np.float32))
    model = score(data.unscale_targets(forecast), truth, scale)
    saved = json.loads((tmp_path / "test_metrics.json").read_text())["metrics"]
    for name, want in [("persistence", persistence), ("seasonal_naive", seasonal), ("gru direct", model)]:
        for key in ("rmse", "mae", "mase", "smape"):
            np.testing.assert_allclose(saved[name]["test"][key], want[key], rtol=1e-5)
        assert saved[name]["test"]["n"] == len(o)
    assert set(saved) == {"gru direct", "persistence", "seasonal_naive", "ar"}
    assert saved["ar"]["test"]["coverage95_all"] > 0.5  # AR has a Gaussian predictive distribution
    assert not (tmp_path / "metrics.jsonl").exists()  # test metrics stay out of the trainer's records
    assert final["persistence_rmse"] == pytest.approx(persistence["rmse_all"])
    assert final["seasonal_naive_mae"] == pytest.approx(seasonal["mae_all"])
    assert final["test_mase"] == pytest.approx(model["mase_all"], rel=1e-5)
    assert final["test_mae_ratio_h2"] == pytest.approx(model["mae"][1] / persistence["mae"][1], rel=1e-5)
    # the choice on validation is the baseline with the lowest validation MASE
    val_mase = {b: final[f"{b}_val_mase"] for b in ("persistence", "seasonal_naive", "ar")}
    assert final["best_baseline"] == min(val_mase, key=val_mase.get)
    assert final["test_mae_vs_best_baseline"] == pytest.approx(
        model["mae_all"] / final[f"{final['best_baseline']}_mae"], rel=1e-5)
    json.dumps(data.metadata)  # JSON-able, as the checkpoint needs


@pytest.mark.skipif(not (SHARED_DATA / "elec_equip.csv").exists(),
                    reason=f"real data absent at {SHARED_DATA} (not part of a fresh checkout)")
def test_elec_equip_preset_loads_and_its_baselines():
    from experiments.timeseries.configs import elec_equip
    from experiments.timeseries.task import baselines

    config = elec_equip.get_config()
    config.data.csv = str(SHARED_DATA / "elec_equip.csv")
    data = data_lib.load(config)
    assert tuple(len(data.windows[s]) for s in ("train", "val", "test")) == (144, 28, 28)
    truth = data.raw_targets("test")
    mae = {k: score(v, truth)["mae_all"] for k, v in baselines(data).items()}
    assert mae["seasonal_naive"] == pytest.approx(2.43756, abs=1e-4)
    assert mae["persistence"] > 3 * mae["seasonal_naive"]


# --------------------------------------------------------------------------- bad input


def test_bad_horizon_exits_2_from_the_real_cli_without_a_workdir(tmp_path):
    workdir = tmp_path / "w"
    proc = subprocess.run([sys.executable, "-m", "experiments.timeseries", "--config", "tiny",
                           "--config.data.horizon=0", "--workdir", str(workdir)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "config.data.horizon=0: expected an integer >= 1" in proc.stderr
    assert "Traceback" not in proc.stderr and not workdir.exists()


@pytest.mark.parametrize("override, message", [
    (["--config.data.column=nope"], "no column 'nope'; its columns are ['date', 'y', 'x']"),
    (["--config.data.csv=/no/such.csv"], "config.data.csv='/no/such.csv': no such file"),
    (["--config.data.horizon=3"], "'n_to_1' forecasts one step"),
    (["--config.model.structure=autoregressive", "--config.data.covariates=x"], "univariate"),
    (["--config.model.skip=seasonal"], "needs data.period >= 1"),
    (["--config.model.skip=sesonal"], "config.model.skip='sesonal': expected one of none, last, seasonal"),
    (["--config.data.source=mackey_glass"], "config.data.csv="),  # the CSV keys would be ignored
    (["--config.model.cell=gru", "--config.model.forget_bias=2.0"],
     "config.model.forget_bias=2.0 only takes effect with model.cell='lstm'"),
    (["--config.model.dropout=0.1"], "config.model.dropout=0.1 only takes effect with model.num_layers > 1"),
    (["--config.data.date_column=when"], "no date_column 'when'"),
])
def test_bad_config_or_data_exits_2_without_a_workdir(tmp_path, capsys, override, message):
    csv = tmp_path / "s.csv"
    csv.write_text("date,y,x\n" + "".join(f"2000-01-{1 + i % 28:02d},{np.sin(i)},{i}\n" for i in range(200)))
    workdir = tmp_path / "w"
    argv = ["--config", "tiny", "--workdir", str(workdir), "--config.data.source=csv", "--config.data.length=2000",
            f"--config.data.csv={csv}", "--config.data.column=y", *override]
    with pytest.raises(SystemExit) as exc:
        cli.run(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("experiments.timeseries: error: ") and len(err.splitlines()) == 1, err
    assert not workdir.exists()


def test_csv_given_without_its_source_fails_naming_the_conflict(tmp_path, capsys):
    workdir = tmp_path / "w"
    with pytest.raises(SystemExit) as exc:
        cli.run(["--workdir", str(workdir), "--config.data.csv=my.csv", "--config.data.column=y"])
    assert exc.value.code == 2 and not workdir.exists()
    assert ("config.data.csv='my.csv' only takes effect with data.source='csv' (this config has "
            "data.source='mackey_glass')") in capsys.readouterr().err
