"""Bi- against uni-directional LSTM and GRU on the generated marker task (2 x 2 configurations).

    ./launch.sh sweep sentiment --sweep bidirectional --seeds 3 --parallel 2

A unidirectional model reads the review left to right and classifies from its last state, so the
marker word must survive up to 100 steps of filler; the bidirectional one also sees it from the end.
Cost: 12 runs of the default config, about 35 s each on a 2-core CPU (configs/default.py).
"""

from seqjax.sweep import product, sweep


def get_sweep():
    return product(
        sweep("model.bidirectional", [True, False]),
        sweep("model.cell", ["lstm", "gru"]),
    )
