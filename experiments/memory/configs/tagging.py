"""Two-sided tagging with a bidirectional LSTM(64): each tag names the symbols 4 steps before and after.

    ./launch.sh memory --config tagging --workdir runs/memory/tagging
    ./launch.sh memory --config tagging --config.model.bidirectional=false    # reads the past only

Cost: about 30 s on a shared 2-core AMD EPYC (1000 steps of 64 sequences of 40 steps).
Expected: test accuracy 1.000 bidirectional, 0.128 ± 0.002 unidirectional (3 seeds, measured in
docs/claims.md): a unidirectional model knows the past neighbour, not the future one, so it
cannot exceed 1/8 (chance is 1/64).
"""

from experiments.memory.configs.default import get_config as _default


def get_config():
    config = _default()
    config.model.bidirectional = True
    config.data.task = "tagging"
    config.data.lag = 4        # the two neighbours sit 4 steps away on either side
    config.data.tag_len = 40   # 32 tagged steps per sequence
    config.train.steps = 1000
    return config
