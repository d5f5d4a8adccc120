"""A tiny BiLSTM on generated reviews: the end-to-end test's config.

    python -m experiments.sentiment --config tiny --workdir /tmp/sentiment_tiny

Cost: about 15 s on a 2-core CPU, most of it compilation (150 steps of 32 x 80 tokens).
Expected: test accuracy 1.00 (>= 0.95 asserted by tests/test_sentiment.py) on the generated marker
task: 20-80 filler words with one marker word ("great" / "awful") anywhere that sets the label.
"""

from ml_collections import ConfigDict

from experiments.sentiment.configs import data_section
from seqjax.train import base_config


def get_config() -> ConfigDict:
    config = base_config()
    config.seed = 0
    config.train.steps = 150  # enough to reach ~100% on this task
    config.train.batch_size = 32
    config.train.learning_rate = 1e-2  # high for Adam, fine for a model this small
    config.train.clip_norm = 5.0  # the source articles' clip
    config.train.log_every = 50
    config.train.eval_every = 50
    config.train.checkpoint_every = 150  # one checkpoint at the end (plus the best by val_loss)
    config.train.max_to_keep = 1
    config.model = ConfigDict(dict(
        cell="lstm",  # rnn | rnn_relu | lstm | gru | gru_cho
        embed_dim=16,
        hidden=16,
        num_layers=1,
        bidirectional=True,  # both directions' final states feed the head
        pooling="last",  # last (final states) | mean | max
        dropout=0.0,
        init="xavier_orthogonal",  # Keras' default: Glorot input weights, orthogonal recurrent, zero bias
        forget_bias=None,  # None: 1.0 for an LSTM
        matmul_dtype="float32",  # float32 | bfloat16
    ))
    config.data = data_section(  # the other keys keep data.py's defaults
        source="generated",  # no files, no network
        vocab_size=32,  # 20 fillers + 2 markers + PAD + OOV fit
        max_len=80,
        val_fraction=0.2,
        gen_train_size=1000,
        gen_test_size=200,
        gen_min_len=20,
        gen_max_len=80,  # the marker may sit anywhere in up to 80 words
        gen_num_fillers=20,
        gen_seed=0,
    )
    return config
