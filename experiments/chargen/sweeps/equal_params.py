"""RNN, GRU and LSTM at (nearly) equal parameter counts, plus a GRU as wide as the LSTM.

    ./launch.sh sweep chargen --sweep equal_params --seeds 3

The default config's 2-layer LSTM(256) has 889,127 parameters with embedding 64 and the embedded
corpus' 103 characters. A GRU needs 296 units and a tanh RNN 515 units to match it within 0.4%
(886,111 and 890,435, read from results.csv of this sweep run with --set train.steps=1); the
GRU(256), 675,111 parameters, is as wide as the LSTM with three quarters of its parameters.
Each pair of values is one run: ``zipped`` pairs the cells with their widths, ``chain`` appends
the control.
"""

from seqjax.sweep import chain, fixed, sweep, zipped


def get_sweep():
    return chain(
        zipped(sweep("model.cell", ["lstm", "gru", "rnn"]), sweep("model.hidden", [256, 296, 515])),
        fixed({"model.cell": "gru", "model.hidden": 256}),
    )
