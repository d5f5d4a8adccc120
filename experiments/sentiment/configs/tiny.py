"""A tiny BiLSTM on generated reviews: the end-to-end test's config.

    ./launch.sh sentiment --config tiny --workdir /tmp/sentiment_tiny

Cost: about 15 s on a 2-core CPU, most of it compilation (150 steps of 32 x 80 tokens).
Expected: test accuracy 1.00 (>= 0.95 asserted by tests/test_sentiment.py) on the generated marker
task: 20-80 filler words with one marker word ("great" / "awful") anywhere that sets the label.
"""

from experiments.sentiment.configs.default import get_config as _default


def get_config():
    config = _default()
    config.train.steps = 150  # enough to reach ~100% on this task
    config.train.learning_rate = 1e-2  # high for Adam, fine for a model this small
    config.train.log_every = 50
    config.train.eval_every = 50
    config.train.checkpoint_every = 150  # one checkpoint at the end (plus the best by val_loss)
    config.train.max_to_keep = 1
    config.eval.batch_size = 64
    config.model.update(embed_dim=16, hidden=16)
    config.data.update(
        vocab_size=32,  # 20 fillers + 2 markers + PAD + OOV fit
        max_len=80,
        gen_train_size=1000,
        gen_test_size=200,
        gen_max_len=80,  # the marker may sit anywhere in up to 80 words
        gen_num_fillers=20,
    )
    return config
