"""RNN, GRU and LSTM against the lag on the adding problem and the copy task (27 configurations).

    ./launch.sh sweep memory --sweep lags --seeds 3 --parallel 2
    ./launch.sh claims          # runs this sweep (and the others) and writes docs/claims.md

Every run is the default config (hidden 64, 1500 steps of 64 sequences, Adam 3e-3, clip 5)
with the task, lag and cell of its row. Cost: the 81 runs of 3 seeds took 33 minutes of wall
time with --parallel 2 on a shared 2-core AMD EPYC (load average 2-7), most of it the lag-200
adding runs.
"""

from seqjax.sweep import chain, fixed, product, sweep

CELLS = ("rnn", "gru", "lstm")
LAGS = {"adding": (10, 20, 50, 100, 200), "copy": (10, 20, 50, 100)}


def grid(lags: dict, cells=CELLS) -> list[dict]:
    """Every (task, lag, cell) of ``lags`` (task -> lags)."""
    return chain(*(product(fixed({"data.task": task}), sweep("data.lag", values), sweep("model.cell", cells))
                   for task, values in lags.items()))


def get_sweep():
    return grid(LAGS)
