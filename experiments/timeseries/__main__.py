"""python -m experiments.timeseries [--workdir DIR] [--config FILE_OR_PRESET] [--config.KEY=VALUE ...]

Presets: default (Mackey-Glass, LSTM, horizon 1), elec_equip (monthly CSV, horizon 12), tiny.
A bad model or data config exits with status 2 before the workdir is created (the shared CLI
builds the task first and reports the error in one line).
"""

from experiments.timeseries.task import make_task
from seqjax.train import main

if __name__ == "__main__":
    main("timeseries", make_task)
