"""A seconds-long Mackey-Glass config for tests and smoke runs.

    python -m experiments.timeseries --config tiny --workdir /tmp/ts-tiny

Cost: about 10 seconds on a 2-core CPU, most of it compilation. Expected: test RMSE 0.0154
against persistence's 0.0322 (ratio 0.48); the end-to-end test asserts a ratio below 0.7.
"""

from experiments.timeseries.configs.default import get_config as _default


def get_config():
    config = _default()
    config.model.hidden = 16
    config.data.length = 600        # 420 train, 90 val, 90 test points
    config.data.lookback = 16
    config.train.steps = 150
    config.train.batch_size = 16
    config.train.learning_rate = 1e-2
    config.train.warmup_steps = 10
    config.train.log_every = 50
    config.train.eval_every = 150
    config.train.checkpoint_every = 150
    config.eval.batch_size = 64
    config.eval.statsforecast = False  # ETS / ARIMA / Theta add ~15 s here; their own tests cover them
    return config
