"""The copy task at lag 20 with an LSTM(64): write 5 symbols back 20 steps after reading them.

    ./launch.sh memory --config copy --workdir runs/memory/copy
    ./launch.sh memory --config copy --config.data.lag=50 --config.model.cell=rnn

Cost: 17-52 s on a shared 2-core AMD EPYC, two runs at a time under load (1500 steps of 64
sequences of 25 steps). Expected: test accuracy 0.935 ± 0.024 (3 seeds, measured; chance 1/8);
every cell against the lag in docs/claims.md.
"""

from experiments.memory.configs.default import get_config as _default


def get_config():
    config = _default()
    config.data.task = "copy"
    config.data.lag = 20
    return config
