"""The parallel-scan cells against the GRU and LSTM they are ablations of, at equal steps.

    ./launch.sh sweep chargen --sweep parallel_scan --config protocol --set data.source=file \
        --set data.text_file=PATH/TO/shakespeare.txt
    ./launch.sh sweep chargen --sweep parallel_scan --config tiny --seeds 2   # a smoke test

minGRU and minLSTM (Feng et al. 2024) and the RG-LRU (Griffin) read only the input in their gates,
so a layer's recurrence is elementwise and its matmuls run over all steps at once; the GRU and LSTM
carry a recurrent matmul per step. Same width, depth, optimiser and steps for all five: the
parallel-scan cells have fewer parameters (no recurrent matrices). Results: results.md in the sweep root.
"""

from seqjax.sweep import sweep


def get_sweep():
    return sweep("model.cell", ["gru", "lstm", "mingru", "minlstm", "rglru"])
