"""A seconds-long config for tests and smoke runs: the adding problem at lag 10, LSTM(16).

    ./launch.sh memory --config tiny --workdir /tmp/memory_tiny

Cost: about 11 s on a 2-core CPU, mostly start-up and compilation (300 steps of 32 sequences of
10 steps). Expected: test_skill 0.987, test MSE 0.0021 (measured; the trivial MSE is 0.167);
tests/test_memory.py asserts a skill above 0.5.
"""

from experiments.memory.configs.default import get_config as _default


def get_config():
    config = _default()
    config.model.hidden = 16
    config.data.lag = 10
    config.data.val_size = 128
    config.data.test_size = 256
    t = config.train
    t.steps = 300
    t.batch_size = 32
    t.learning_rate = 1e-2
    t.log_every = 50
    t.eval_every = 150
    t.checkpoint_every = 300
    t.max_to_keep = 1
    config.eval.batch_size = 128
    return config
