"""python -m experiments.timeseries [--workdir DIR] [--config FILE_OR_PRESET] [--config.KEY=VALUE ...]

Presets: default (Mackey-Glass, LSTM, horizon 1), elec_equip (monthly CSV, horizon 12), tiny.
A bad model/data config exits with status 2 before the workdir is created: ``make_task`` raises
ConfigError, and the shared CLI reports it.
"""

from experiments.timeseries.task import make_task
from seqjax.train import main

if __name__ == "__main__":
    main("timeseries", make_task)
