"""Global models: several target columns or a folder of CSVs, each series scaled on its own, one
model over all of them; the forecast verb on such a model; the compare verb."""

import json

import numpy as np
import pytest

from experiments.timeseries import __main__ as cli
from experiments.timeseries.compare import compare
from experiments.timeseries.configs import default
from experiments.timeseries.data import load


def _series(n, level, amp, seed):
    rng = np.random.default_rng(seed)
    return level + amp * np.sin(2 * np.pi * np.arange(n) / 12) + 0.1 * amp * rng.normal(size=n)


def _config(csv, column, **data):
    config = default.get_config()
    config.train.batch_size = 8
    config.data.update(source="csv", csv=str(csv), column=column, lookback=12, horizon=2, period=12, **data)
    return config


def test_several_target_columns_are_several_series_each_scaled_on_its_own(tmp_path):
    a, b = _series(120, 10.0, 1.0, 0), _series(120, 500.0, 50.0, 1)
    csv = tmp_path / "two.csv"
    csv.write_text("t,a,b,x\n" + "".join(f"{i},{a[i]},{b[i]},{i % 7}\n" for i in range(120)))
    data = load(_config(csv, "a,b", covariates=("x",)))
    assert data.series_names == ["a", "b"] and data.names == ["a", "x"] and data.metadata["targets"] == ["a", "b"]
    for s, raw in zip(data.series, (a, b), strict=True):
        assert s.scaler.mean[0] == pytest.approx(raw[:84].mean()) and s.scaler.std[0] == pytest.approx(raw[:84].std())
    w = data.windows["test"]
    assert sorted(set(w.series.tolist())) == [0, 1] and len(w) == 2 * len(data.series[0].windows["test"])
    # each window is unscaled by its own series' scaler
    np.testing.assert_allclose(data.unscale_targets(w.targets[..., 0], "test"), data.raw_targets("test"))
    assert data.raw_targets("test")[w.series == 1].min() > 300  # series b keeps its level
    batch = data.train[0]
    assert batch["series"].dtype == np.int32 and set(batch["series"].tolist()) <= {0, 1}
    with pytest.raises(ValueError, match="several series: say which split"):
        data.unscale_targets(w.targets[..., 0])


def test_a_folder_of_csvs_is_one_series_per_file(tmp_path):
    folder = tmp_path / "shops"
    folder.mkdir()
    for i, name in enumerate(["north", "south", "east"]):
        y = _series(100 + 10 * i, 20.0 * (i + 1), 2.0, i)
        (folder / f"{name}.csv").write_text("y\n" + "".join(f"{v}\n" for v in y))
    data = load(_config(folder, "y"))
    assert data.series_names == ["east", "north", "south"]  # in file-name order
    assert [s.values.shape[0] for s in data.series] == [120, 100, 110]
    (folder / "west.csv").write_text("y\n" + "".join(f"{v}\n" for v in range(15)))
    with pytest.raises(ValueError, match=r"column 'y' of .*west.csv: series has length 15 but must have length >= "):
        load(_config(folder, "y"))
    (folder / "west.csv").write_text("z\n1\n2\n")
    with pytest.raises(ValueError, match=r"west.csv: no column 'y'; its columns are \['z'\]"):
        load(_config(folder, "y"))


@pytest.fixture(scope="module")
def global_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("global")
    a, b = _series(150, 10.0, 1.0, 0), _series(150, 500.0, 50.0, 1)
    csv = d / "two.csv"
    csv.write_text("t,a,b\n" + "".join(f"{i},{a[i]},{b[i]}\n" for i in range(150)))
    workdir = d / "run"
    final = cli.run(["--config", "tiny", "--workdir", str(workdir), "--config.data.length=2000",
                     "--config.data.source=csv", f"--config.data.csv={csv}", "--config.data.column=a,b",
                     "--config.data.lookback=12", "--config.data.horizon=2", "--config.data.period=12",
                     "--config.model.structure=direct", "--config.model.series_embedding=2",
                     "--config.model.head=gaussian", "--config.model.highway=-1", "--config.train.steps=40",
                     "--config.train.eval_every=20", "--config.train.checkpoint_every=40",
                     "--config.train.batch_size=8", "--config.eval.samples=50"])
    return d, csv, workdir, final


def test_a_global_model_reports_every_series_and_its_baselines(global_run):
    _, _, workdir, final = global_run
    text = (workdir / "results.md").read_text()
    assert "## Per series (test MAE)" in text and "| a |" in text and "| b |" in text
    saved = json.loads((workdir / "test_metrics.json").read_text())
    assert saved["series"] == ["a", "b"] and "embedding 2" in saved["model"] and "gaussian" in saved["model"]
    # the baselines forecast each series from its own history, and MASE scales each by its own error:
    # seasonal naive scores about 1 (its in-sample error is the scale), persistence far worse
    assert 0.7 < final["seasonal_naive_mase"] < 1.4 and final["persistence_mase"] > 3
    assert 0 < final["test_coverage95"] <= 1
    assert final["test_mase"] == pytest.approx(saved["metrics"][saved["model"]]["test"]["mase_all"])
    assert "highway" in saved["model"]  # its order was chosen on validation


def test_forecast_verb_on_a_global_model(global_run, tmp_path, capsys):
    d, csv, workdir, _ = global_run
    out = cli.run(["forecast", "--workdir", str(workdir), "--csv", str(csv), "--out", str(tmp_path / "f")])
    assert list(out) == ["a", "b"] and all(v.shape == (2,) for v in out.values())
    assert out["b"].min() > 300 and out["a"].max() < 20  # each series in its own units
    header = (tmp_path / "f.csv").read_text().splitlines()[0]
    assert header == "step,a,a_lo80,a_hi80,a_lo95,a_hi95,b,b_lo80,b_hi80,b_lo95,b_hi95"
    assert (tmp_path / "f_a.png").exists() and (tmp_path / "f_b.png").exists()
    only = cli.run(["forecast", "--workdir", str(workdir), "--csv", str(csv), "--series", "b",
                    "--out", str(tmp_path / "g")])
    np.testing.assert_allclose(only["b"], out["b"])
    with pytest.raises(SystemExit) as exc:
        cli.run(["forecast", "--workdir", str(workdir), "--csv", str(csv), "--series", "c"])
    assert exc.value.code == 2 and "--series 'c': the model in" in capsys.readouterr().err
    (tmp_path / "other.csv").write_text("t,q\n" + "".join(f"{i},{i}\n" for i in range(30)))
    with pytest.raises(SystemExit) as exc:
        cli.run(["forecast", "--workdir", str(workdir), "--csv", str(tmp_path / "other.csv")])
    assert exc.value.code == 2 and "trained on the series ['a', 'b']" in capsys.readouterr().err


def test_compare_chooses_on_validation_and_reads_test_only(global_run, tmp_path, capsys):
    _, _, workdir, final = global_run
    text = cli.run(["compare", str(workdir)])
    assert "| configuration | seeds | val MASE |" in text and "Chosen on validation" in text
    # a sweep root: two configurations with made-up results; the better validation wins even with a worse test
    root = tmp_path / "sweep"
    runs = []
    for name, val, test in [("cell=gru,seed=0", 0.5, 2.0), ("cell=gru,seed=1", 0.7, 2.2),
                            ("cell=lstm,seed=0", 0.8, 1.0), ("cell=lstm,seed=1", 0.8, 1.2)]:
        cell, seed = name.split(",")
        runs.append({"name": name, "overrides": {"model.cell": cell[5:], "seed": seed[5:]}})
        (root / name).mkdir(parents=True)
        (root / name / "final.json").write_text(json.dumps(
            {"model_val_mase": val, "test_mae": test, "best_baseline": "ar", "best_baseline_test_mae": 1.6,
             "test_mae_vs_best_baseline": test / 1.6, "steps": 10}))
    (root / "sweep.json").write_text(json.dumps({"experiment": "timeseries", "config": None, "runs": runs}))
    table, facts = compare([str(root)])
    assert facts["chosen"] == "model.cell=gru" and facts["test_mae_mean"] == pytest.approx(2.1)
    assert facts["ratio"] == pytest.approx(2.1 / 1.6) and "short of the target" in table
    assert table.index("| model.cell=gru |") < table.index("| model.cell=lstm |")
    # several directories: each configuration is named with the directory it came from
    table, _ = compare([str(root), str(workdir)])
    assert "| sweep: model.cell=gru |" in table and f"| {workdir.name}: " in table
    with pytest.raises(SystemExit) as exc:
        cli.run(["compare", str(tmp_path / "nothing")])
    assert exc.value.code == 2 and "neither a finished run" in capsys.readouterr().err
