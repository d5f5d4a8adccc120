"""A seconds-long config for tests and smoke runs.

    ./launch.sh chargen --config tiny
"""

from experiments.chargen.configs.default import get_config as _default


def get_config():
    config = _default()
    config.model.embed_dim = 8
    config.model.hidden = 16
    config.model.num_layers = 2
    config.data.seq_len = 16
    config.data.eval_windows = 8
    config.sample.every = 0
    config.sample.length = 20
    config.train.steps = 20
    config.train.batch_size = 4
    config.train.log_every = 5
    config.train.eval_every = 10
    config.train.checkpoint_every = 10
    config.eval.batch_size = 8
    return config
