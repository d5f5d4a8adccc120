"""Cell type against depth on the embedded corpus: 3 cells x 1-2 layers = 6 configurations.

    ./launch.sh sweep chargen --sweep cells --seeds 3                 # 18 runs of the default config
    ./launch.sh sweep chargen --sweep cells --seeds 3 --emit          # the same 18 commands, for a scheduler
    ./launch.sh sweep chargen --sweep cells --config tiny --seeds 2   # a smoke test, seconds per run

Cost: 18 runs of the default config, one of which (the 2-layer LSTM) takes 3.5-5 minutes on a 2-core
CPU (configs/default.py); the 1-layer and RNN runs are cheaper. Results: results.md in the sweep root.
"""

from seqjax.sweep import product, sweep


def get_sweep():
    return product(
        sweep("model.cell", ["rnn", "lstm", "gru"]),
        sweep("model.num_layers", [1, 2]),
    )
