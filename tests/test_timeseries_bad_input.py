"""Bad input to the time-series experiment: one line on stderr, exit status 2, no workdir."""

import numpy as np
import pytest

from experiments.timeseries import __main__ as cli


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    rows = lambda n, cell=lambda i: f"{i}.5": "".join(f"{i},{cell(i)}\n" for i in range(n))
    (d / "header.csv").write_text("date,y,x\n")
    (d / "nan.csv").write_text("t,y\n" + rows(100, lambda i: "" if i in (41, 57) else f"{i}.5"))
    (d / "text.csv").write_text("t,y\n" + rows(100, lambda i: "abc" if i == 33 else f"{i}.5"))
    (d / "short.csv").write_text("t,y\n" + rows(20))
    rng = np.random.default_rng(0)
    (d / "ok.csv").write_text("t,y,z\n" + "".join(f"{i},{rng.normal()},{rng.normal()}\n" for i in range(200)))
    (d / "empty_folder").mkdir()
    return d


def _csv(files, name, column="y"):
    return ["--config.data.length=2000", "--config.data.source=csv", f"--config.data.csv={files / name}",
            f"--config.data.column={column}"]


CASES = {
    # the list
    "missing column": (lambda f: _csv(f, "ok.csv", "nope"),
                       "ok.csv: no column 'nope'; its columns are ['t', 'y', 'z']"),
    "NaN, fill_nan=error": (lambda f: _csv(f, "nan.csv"),
                            "column 'y' has missing/NaN values at data rows 42, 58 (row 42: '', row 58: '')"),
    "non-numeric cell": (lambda f: _csv(f, "text.csv"), "column 'y' has non-numeric values at data rows 34: "
                                                        "row 34 (line 35): 'abc'"),
    "too short": (lambda f: _csv(f, "short.csv"), "series has length 20 but must have length >= 25 for lookback=16"),
    "header only": (lambda f: _csv(f, "header.csv"), "header.csv: the file has a header but no data rows"),
    "csv without its source": (lambda f: [f"--config.data.csv={f / 'ok.csv'}"],
                               "only takes effect with data.source='csv' (this config has data.source='mackey_glass')"),
    # several series
    "one of several columns missing": (lambda f: _csv(f, "ok.csv", "y,nope"), "no column 'nope'"),
    "folder without CSVs": (lambda f: _csv(f, "empty_folder"), "is a folder without *.csv files"),
    "embedding of one series": (lambda f: ["--config.model.series_embedding=4"],
                                "an embedding tells several series apart, and this data has one ('mackey_glass')"),
    # Mackey-Glass values that overflow or make no sense
    "mg_gamma overflows": (lambda f: ["--config.data.mg_gamma=40.0"],
                           "the Mackey-Glass integration overflowed with mg_beta=0.2, mg_gamma=40.0"),
    "mg_n overflows": (lambda f: ["--config.data.mg_n=1e6"], "the Mackey-Glass integration overflowed"),
    "negative mg_beta": (lambda f: ["--config.data.mg_beta=-0.2"], "config.data.mg_beta=-0.2: expected a finite "
                                                                   "number > 0"),
    "negative mg_n": (lambda f: ["--config.data.mg_n=-10.0"], "config.data.mg_n=-10.0: expected a finite number > 0"),
    "zero mg_n": (lambda f: ["--config.data.mg_n=0.0"], "config.data.mg_n=0.0: expected a finite number > 0"),
    "mg_dt off the grid": (lambda f: ["--config.data.mg_dt=0.3"], "config.data.mg_dt=0.3: expected a step in (0, 1]"),
    "negative sine noise": (lambda f: ["--config.data.source=sine", "--config.data.sine_noise=-1.0"],
                            "config.data.sine_noise=-1.0: expected a finite number >= 0"),
    # the model's options
    "highway past the lookback": (lambda f: ["--config.model.highway=40"],
                                  "config.model.highway=40: the highway reads the last model.highway inputs, more "
                                  "than data.lookback=16"),
    "highway -2": (lambda f: ["--config.model.highway=-2"], "config.model.highway=-2: expected an integer"),
    "highway on n_to_n": (lambda f: ["--config.model.structure=n_to_n", "--config.model.highway=3"],
                          "config.model.highway=3 only takes effect with model.structure 'n_to_1' or 'direct'"),
    "unknown norm": (lambda f: ["--config.model.norm=median"],
                     "config.model.norm='median': expected one of none, last, mean, revin"),
    "unknown head": (lambda f: ["--config.model.head=laplace"],
                     "config.model.head='laplace': expected one of point, gaussian, student_t"),
    "empty ensemble": (lambda f: ["--config.model.ensemble=0"], "config.model.ensemble=0: expected an integer >= 1"),
    "one sample": (lambda f: ["--config.eval.samples=1"], "config.eval.samples=1: expected an integer >= 2"),
    "patience without evaluations": (lambda f: ["--config.train.patience=3", "--config.train.eval_every=0"],
                                     "config.train.patience=3: early stopping counts evaluations"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_writes_nothing(files, tmp_path, capsys, case):
    overrides, message = CASES[case]
    workdir = tmp_path / "w"
    with pytest.raises(SystemExit) as exc:
        cli.run(["--config", "tiny", "--workdir", str(workdir), *overrides(files)])
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert err.startswith("experiments.timeseries: error: ") and len(err.strip().splitlines()) == 1, err
    assert message in err, err
    assert "Traceback" not in err and not workdir.exists()


@pytest.mark.parametrize("preset", ["elec_equip", "nile"])
def test_real_series_presets_need_the_path_of_their_csv(files, tmp_path, capsys, preset):
    # the files are not shipped, so the presets have no default path: without one, or with one that
    # is absent, the run stops with one line and no workdir
    for overrides, message in [([], "data.source='csv' needs the path: --config.data.csv=PATH"),
                               ([f"--config.data.csv={tmp_path / 'absent.csv'}"], "absent.csv': no such file")]:
        workdir = tmp_path / "w"
        with pytest.raises(SystemExit) as exc:
            cli.run(["--config", preset, "--workdir", str(workdir), *overrides])
        err = capsys.readouterr().err
        assert exc.value.code == 2, err
        assert err.startswith("experiments.timeseries: error: ") and len(err.strip().splitlines()) == 1, err
        assert message in err, err
        assert "Traceback" not in err and not workdir.exists()
