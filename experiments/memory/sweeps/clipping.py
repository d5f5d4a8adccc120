"""Gradient clipping against none, for a vanilla (tanh) RNN on the adding problem at T = 100.

    ./launch.sh sweep memory --sweep clipping --seeds 5 --parallel 2

Plain SGD with momentum 0.9, whose step grows with the gradient (Adam's would not), at two
learning rates; clip_norm 5.0 is the articles' demo's, 0 turns clipping off. A run that meets a
non-finite loss is stopped by the trainer and recorded as failed with that error; docs/claims.md
counts it, and a run that ends worse than the trivial baseline, as diverged.
Cost: 20 runs (5 seeds) in about 2 minutes with --parallel 2 on a shared 2-core AMD EPYC; a
diverging run stops within seconds.
"""

from seqjax.sweep import fixed, product, sweep

SETTINGS = {"model.cell": "rnn", "data.lag": 100, "train.optimizer": "sgd", "train.momentum": 0.9,
            "train.steps": 500, "train.eval_every": 250, "train.checkpoint_every": 250}


def get_sweep():
    return product(fixed(SETTINGS), sweep("train.learning_rate", [0.03, 0.1]), sweep("train.clip_norm", [0.0, 5.0]))
