"""Two stacked BiLSTM(64) layers on IMDB, as in the Keras "Bidirectional LSTM on IMDB" example.

    ./launch.sh sentiment --config bilstm --workdir runs/sentiment_bilstm

Needs TFDS imdb_reviews prepared locally (or a network to download it); offline, point it at an
unpacked aclImdb: --config.data.source=imdb_dir --config.data.path=/path/to/aclImdb
Cost: 1875 steps of 32 x 200 tokens, about 0.4 s each on a 2-core CPU (measured on generated
data of the same shape): about 15 minutes, plus reading and tokenising 50000 reviews.
Expected: test accuracy >= 0.88 (target; the Keras 2 x BiLSTM(64) example reports 0.878).
Not measured: no copy of IMDB was at hand.
"""

from experiments.sentiment.configs.default import get_config as _default

TRAIN_EXAMPLES = 20000  # 25000 IMDB train reviews, 20% held out for validation
BATCH = 32  # the Keras example's batch size


def get_config():
    config = _default()
    t = config.train
    t.steps = 3 * TRAIN_EXAMPLES // BATCH  # 3 epochs = 1875 updates; LSTMs overfit IMDB soon after
    t.batch_size = BATCH
    t.learning_rate = 1e-3  # Keras "adam"
    t.log_every = 100
    t.eval_every = 625  # once per epoch
    t.checkpoint_every = 625
    config.model.update(
        cell="lstm",
        embed_dim=128,  # Embedding(20000, 128)
        hidden=64,  # per direction: Bidirectional(LSTM(64)), 128 features out
        num_layers=2,  # return_sequences=True into a second Bidirectional(LSTM(64))
        bidirectional=True,
        pooling="last",  # the second layer's final states, both directions
        dropout=0.2,  # between the layers and before the head: 2.6M params on 20000 reviews
    )
    config.data.update(
        source="imdb_reviews",
        vocab_size=20000,  # max_features = 20000
        max_len=200,  # maxlen = 200
    )
    return config
