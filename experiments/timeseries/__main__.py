"""python -m experiments.timeseries [--workdir DIR] [--config FILE_OR_PRESET] [--config.KEY=VALUE ...]

Presets: default (Mackey-Glass, LSTM, horizon 1), elec_equip (monthly CSV, horizon 12), tiny.
See seqjax.train.cli for the options. Its inference verb:

    python -m experiments.timeseries forecast --workdir W --csv recent.csv [--out PREFIX]

``forecast`` reads the CSV's training columns (the target, then any covariates, by name), takes
its last ``lookback`` rows and writes the next ``horizon`` values to PREFIX.csv and a plot to
PREFIX.png (default PREFIX: W/forecast_<csv name>).
"""

from __future__ import annotations

import csv
import os

import numpy as np

from experiments.timeseries import data
from experiments.timeseries import report as R
from experiments.timeseries.task import ForecastTask
from seqjax.data import read_csv
from seqjax.train import load_from_workdir, main
from seqjax.train.cli import run_verb, verb_parser


def forecast(argv: list[str]) -> np.ndarray:
    """Forecasts the steps after a CSV's last row with a trained workdir; returns the forecast."""
    parser = verb_parser("timeseries", "forecast", "Forecast the steps after the last row of a CSV.")
    parser.add_argument("--csv", required=True, help="a CSV with the training columns (target first, by name)")
    parser.add_argument("--out", help="output prefix for .csv and .png (default: WORKDIR/forecast_<csv name>)")

    def body(args) -> np.ndarray:
        run = load_from_workdir(args.workdir, ForecastTask, which=args.which)
        names = run.metadata["names"]
        columns = read_csv(args.csv).columns
        missing = [n for n in names if n not in columns]
        if missing:
            raise ValueError(f"{args.csv}: the model in {args.workdir} was trained on the column(s) {names}, "
                             f"but the file has {columns} (missing {missing})")
        values, _, _ = data.read_csv_series(args.csv, names[0], "", names[1:], run.config.data.fill_nan)
        future = run.task.forecast(run.params, values)
        prefix = args.out or os.path.join(args.workdir, "forecast_" + os.path.splitext(os.path.basename(args.csv))[0])
        with open(prefix + ".csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["step", names[0]])
            writer.writerows([k + 1, repr(float(v))] for k, v in enumerate(future))
        lookback = int(run.metadata["lookback"])
        steps = f"{len(future)} step{'s' if len(future) != 1 else ''}"
        R.plot_future(prefix + ".png", values[-3 * lookback:, 0], future,
                      title=f"{names[0]}: {steps} after row {len(values)} of {os.path.basename(args.csv)}")
        print(f"{names[0]} forecast, steps 1..{len(future)} after the last row: "
              + " ".join(f"{v:.6g}" for v in future))
        print(f"wrote {prefix}.csv and {prefix}.png")
        return future

    return run_verb(parser, argv, body)


def run(argv: list[str] | None = None):
    return main("timeseries", ForecastTask, data.load, argv, verbs={"forecast": forecast})


if __name__ == "__main__":
    run()
