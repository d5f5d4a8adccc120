"""Bi- against uni-directional LSTM on two-sided tagging (--config tagging): 2 configurations.

    ./launch.sh sweep memory --config tagging --sweep bidirectional --seeds 3 --parallel 2

Each tag names the symbols 4 steps before and 4 after, so a unidirectional model, which has
seen only the past one, can be right at most 1 time in 8. Cost: 6 runs (3 seeds) in about 2
minutes with --parallel 2 on a shared 2-core AMD EPYC.
"""

from seqjax.sweep import sweep


def get_sweep():
    return sweep("model.bidirectional", [False, True])
