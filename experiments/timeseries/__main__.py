"""python -m experiments.timeseries [--workdir DIR] [--config FILE_OR_PRESET] [--config.KEY=VALUE ...]

Presets: default (Mackey-Glass, LSTM, horizon 1), elec_equip (monthly CSV, horizon 12), nile
(annual CSV), tiny. See seqjax.train.cli for the options. Its verbs:

    python -m experiments.timeseries forecast --workdir W --csv recent.csv [--series NAME] [--out PREFIX]
    python -m experiments.timeseries compare RUN_OR_SWEEP_DIR ... [--out FILE.md]

``forecast`` reads the CSV's training columns (the target, then any covariates, by name), takes
its last ``lookback`` rows and writes the next ``horizon`` values to PREFIX.csv and a plot to
PREFIX.png (default PREFIX: W/forecast_<csv name>). A model trained on several series forecasts
each of its target columns that the CSV has, or the series named by ``--series`` (a folder-trained
model: by default the one named like the CSV file). A probabilistic head adds its 80% and 95%
intervals. ``compare`` tabulates finished runs against their classical baselines (see compare.py).
"""

from __future__ import annotations

import csv
import os

from experiments.timeseries import data
from experiments.timeseries import report as R
from experiments.timeseries.metrics import interval
from experiments.timeseries.task import ForecastTask
from seqjax.data import read_csv
from seqjax.train import load_from_workdir, main
from seqjax.train.cli import run_verb, verb_parser


def _which_series(run, workdir: str, path: str, columns: list[str], wanted: str | None) -> list[int]:
    """Indices of the training series to forecast from the CSV at ``path``."""
    series = list(run.metadata.get("series", run.metadata["names"][:1]))
    targets = list(run.metadata.get("targets", run.metadata["names"][:1] * len(series)))
    if wanted:
        if wanted not in series:
            raise ValueError(f"--series {wanted!r}: the model in {workdir} was trained on the series {series}")
        return [series.index(wanted)]
    if len(series) == 1:
        return [0]
    present = [i for i, (name, col) in enumerate(zip(series, targets, strict=True)) if name == col and col in columns]
    if present:  # several target columns of one file
        return present
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem in series:  # a folder of files, one series each
        return [series.index(stem)]
    raise ValueError(f"{path}: the model in {workdir} was trained on the series {series}; this file's name "
                     "matches none of them: pick one with --series NAME")


def forecast(argv: list[str]) -> dict:
    """Forecasts the steps after a CSV's last row with a trained workdir; returns ``{series: forecast}``."""
    parser = verb_parser("timeseries", "forecast", "Forecast the steps after the last row of a CSV.")
    parser.add_argument("--csv", required=True, help="a CSV with the training columns (target first, by name)")
    parser.add_argument("--series", help="which training series (of a model trained on several)")
    parser.add_argument("--out", help="output prefix for .csv and .png (default: WORKDIR/forecast_<csv name>)")

    def body(args) -> dict:
        run = load_from_workdir(args.workdir, ForecastTask, which=args.which)
        names = run.metadata["names"]
        table = read_csv(args.csv)
        picked = _which_series(run, args.workdir, args.csv, table.columns, args.series)
        targets = list(run.metadata.get("targets", names[:1] * len(picked)))
        need = list(dict.fromkeys([*(targets[i] for i in picked), *names[1:]]))
        missing = [n for n in need if n not in table.columns]
        if missing:
            raise ValueError(f"{args.csv}: the model in {args.workdir} was trained on the column(s) {need}, "
                             f"but the file has {table.columns} (missing {missing})")
        series_names = list(run.metadata.get("series", names[:1]))
        prefix = args.out or os.path.join(args.workdir, "forecast_" + os.path.splitext(os.path.basename(args.csv))[0])
        lookback = int(run.metadata["lookback"])
        out, header, columns = {}, ["step"], []
        for i in picked:
            values, _, _ = data.read_csv_series(args.csv, targets[i], "", names[1:], run.config.data.fill_nan)
            mean, samples = run.task.forecast_with_samples(run.params, values, i)
            label = series_names[i] if len(picked) > 1 or len(series_names) > 1 else targets[i]
            out[label] = mean
            header.append(label)
            columns.append(mean)
            if samples is not None:
                for level in (80, 95):
                    lo, hi = interval(samples, level)
                    header += [f"{label}_lo{level}", f"{label}_hi{level}"]
                    columns += [lo, hi]
            steps = f"{len(mean)} step{'s' if len(mean) != 1 else ''}"
            png = prefix + (f"_{label}" if len(picked) > 1 else "") + ".png"
            paths = samples[:5] if samples is not None and run.config.model.structure == "autoregressive" else None
            R.plot_future(png, values[-3 * lookback:, 0], mean, samples=samples, paths=paths,
                          title=f"{label}: {steps} after row {len(values)} of {os.path.basename(args.csv)}")
            print(f"{label} forecast, steps 1..{len(mean)} after the last row: " + " ".join(f"{v:.6g}" for v in mean))
        with open(prefix + ".csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows([h + 1, *(repr(float(c[h])) for c in columns)] for h in range(len(columns[0])))
        print(f"wrote {prefix}.csv and {len(picked)} plot(s) {prefix}*.png")
        return out

    return run_verb(parser, argv, body)


def compare(argv: list[str]) -> str:
    from experiments.timeseries.compare import main as compare_main

    return compare_main(argv)


def run(argv: list[str] | None = None):
    return main("timeseries", ForecastTask, data.load, argv, verbs={"forecast": forecast, "compare": compare})


if __name__ == "__main__":
    run()
