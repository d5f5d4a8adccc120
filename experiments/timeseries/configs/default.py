"""Mackey-Glass (tau = 17), one-step forecast with an LSTM: the classical benchmark, and the default.

    ./launch.sh timeseries --workdir runs/timeseries/mg
    ./launch.sh timeseries --config.model.structure=n_to_n --config.model.cell=gru
    ./launch.sh timeseries forecast --workdir runs/timeseries/mg --csv new.csv

Cost: 15-25 seconds on a 2-core CPU (2000 steps of 32 windows of 32 steps, LSTM(64)).
Expected: test RMSE 0.0021 against persistence's 0.0331 (ratio 0.063, 16x lower; MAE ratio 0.055).
More structures and horizons in experiments/timeseries/README.md.
"""

from ml_collections import ConfigDict
from ml_collections.config_dict import placeholder

from seqjax.train.config import base_config


def get_config() -> ConfigDict:
    config = base_config()
    config.seed = 0
    config.model = ConfigDict(dict(
        structure="n_to_1",     # n_to_1 | n_to_n | direct | autoregressive (see model.py)
        cell="lstm",            # rnn | rnn_relu | lstm | gru | gru_cho | mingru | minlstm | rglru
        hidden=64,              # hidden units per layer; plenty for a smooth chaotic series
        num_layers=1,           # one layer is enough at horizon 1
        dropout=0.0,            # between layers (needs num_layers > 1); nothing to regularise on noise-free data
        init="torch",           # torch | xavier_orthogonal | he_orthogonal
        forget_bias=1.0,        # LSTM only: added to the forget gate, keeps the cell state flowing early on
        matmul_dtype="float32",  # float32 | bfloat16 (recurrent matmuls in bf16, summed in f32)
        scan="auto",  # mingru | minlstm | rglru: auto | sequential | chunked | associative (seqjax.scan)
        remat=0,  # checkpoint every k steps (jax.checkpoint): less memory, more time; 0 = off
        skip="none",            # none | last | seasonal: learn a correction to a naive forecast
                                # (n_to_1 and direct only; seasonal uses data.period)
        norm="none",            # none | last | mean | revin: per-window normalisation of the inputs
        highway=0,              # K > 0: add a linear AR on the last K inputs, started at its least-squares
                                # fit (LSTNet; n_to_1, direct); -1: K chosen on validation in 1..lookback
        head="point",           # point (MSE) | gaussian | student_t (likelihood; CRPS and intervals)
        ensemble=1,             # N > 1: N members from N initialisations, forecasting their mean
        series_embedding=0,     # D > 0: a learned D-vector per series on every input (several series)
    ))
    config.data = ConfigDict(dict(
        source="mackey_glass",  # mackey_glass | sine | csv (see experiments/timeseries/data.py)
        length=2000,            # mackey_glass / sine: points at Delta t = 1
        mg_tau=17.0,            # mackey_glass: the delay; 17 gives the classical mildly chaotic attractor
        mg_beta=0.2,            # mackey_glass: dx/dt = beta x(t-tau) / (1 + x(t-tau)^n) - gamma x(t)
        mg_gamma=0.1,
        mg_n=10.0,
        mg_dt=0.1,              # mackey_glass: RK4 step, in time units (1/dt must be an integer)
        mg_x0=1.2,              # mackey_glass: the initial history's value
        mg_discard=500,         # mackey_glass: warm-up time units integrated but not returned
        mg_seed=placeholder(int),  # mackey_glass: perturbs the initial history; unset: the classical constant one
        mg_sample_every=1,      # mackey_glass: time units between samples
        sine_periods=(12.0, 50.0),  # sine: one sine per period ...
        sine_amplitudes=(),     # sine: ... with these amplitudes (empty: all 1)
        sine_noise=0.1,         # sine: standard deviation of the added Gaussian noise
        sine_seed=0,            # sine: seeds the noise
        csv="",                 # csv: path of the file, or a folder: each *.csv in it is a series
        column="",              # csv: the target column, or several (a,b,c): one series each, one global model
        date_column="",         # csv: optional dates, used on the forecast plot's axis
        covariates=(),          # csv: extra input columns (not with 'autoregressive')
        fill_nan="error",       # csv: missing cells: error | ffill | interpolate
        train_frac=0.7,         # chronological split: 70% train, 15% val, 15% test
        val_frac=0.15,
        lookback=32,            # input window; covers about two delays of the system
        horizon=1,              # one-step forecast, as in the classical benchmark
        period=0,               # seasonal-naive period; 0 = none (sine: the first of sine_periods)
    ))
    config.eval = ConfigDict(dict(
        batch_size=256,         # windows per validation / test batch (the last one is padded)
        samples=500,            # draws per forecast for the CRPS and the 80% / 95% intervals
        statsforecast=True,     # ETS, ARIMA and Theta baselines when statsforecast is installed
    ))
    t = config.train
    t.steps = 2000
    t.batch_size = 32
    t.learning_rate = 3e-3
    t.schedule = "cosine"       # anneal to 0: the last digits of accuracy come at small steps
    t.warmup_steps = 50
    t.clip_norm = 1.0           # the articles' remedy for exploding gradients (they clip at 5)
    t.log_every = 100
    t.eval_every = 500
    t.checkpoint_every = 500
    return config
