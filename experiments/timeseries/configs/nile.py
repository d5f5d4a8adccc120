"""Annual flow of the Nile at Aswan, 1871-1970 (100 values, no season), one year ahead.

    ./launch.sh timeseries --config nile --config.data.csv=PATH/nile.csv [--config.data.horizon=5]

Not shipped with the repository (the classical series of Cobb 1978 and Durbin and Koopman; columns
year and volume): pass your copy with --config.data.csv=PATH (required). Any CSV with a ``volume``
column works, or name yours with --config.data.column.
"""

from experiments.timeseries.configs.default import get_config as _default


def get_config():
    config = _default()
    m = config.model
    m.structure = "direct"
    m.cell = "gru"
    m.hidden = 16
    d = config.data
    d.source = "csv"
    # d.csv: no default, the file is not shipped; --config.data.csv=PATH is required
    d.column = "volume"
    d.date_column = "year"
    d.lookback = 10
    d.horizon = 1
    d.period = 0
    t = config.train
    t.steps = 300
    t.batch_size = 16
    t.learning_rate = 3e-3
    t.warmup_steps = 10
    t.log_every = 10
    t.eval_every = 10
    t.checkpoint_every = 100
    t.patience = 10
    return config
