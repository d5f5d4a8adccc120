"""A seconds-long config for tests and smoke runs.

    ./launch.sh seq2seq --config tiny --workdir /tmp/seq2seq_tiny

Numbers of 1-3 digits, the default's architecture (BiGRU encoder, attention) at hidden 32.
Cost: about 20 s on a 2-core CPU, mostly compilation (200 steps of 32 numbers).
Expected: greedy exact match about 0.99 on 120 validation numbers (measured 0.9917);
tests/test_seq2seq.py asserts > 0.8.
"""

from experiments.seq2seq.configs.default import get_config as _default


def get_config():
    config = _default()
    config.model.embed_dim = 16
    config.model.hidden = 32
    config.data.max_digits = 3
    config.data.val_size = 120
    config.data.examples = 8
    t = config.train
    t.steps = 200
    t.batch_size = 32
    t.learning_rate = 1e-2
    t.warmup_steps = 0
    t.log_every = 50
    t.eval_every = 100
    t.checkpoint_every = 200
    t.max_to_keep = 1
    config.eval.batch_size = 128  # the 120 validation numbers in one batch
    return config
