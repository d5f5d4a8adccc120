"""The source articles' Keras IMDB recipe: Embedding(32) -> SimpleRNN(32) -> Dense(1, sigmoid).

    ./launch.sh sentiment --config keras_baseline --workdir runs/sentiment_keras

Needs TFDS imdb_reviews prepared locally (or a network to download it); offline, point it at an
unpacked aclImdb: --config.data.source=imdb_dir --config.data.path=/path/to/aclImdb
Cost: 785 steps of 128 x 200 tokens, about 30 ms each on a 2-core CPU (measured on generated
data of the same shape): under a minute of training, plus reading and tokenising 50000 reviews.
Expected: test accuracy about 0.85 (the articles' claim for this setup; not measured here,
because no copy of IMDB was at hand).

Differences from Keras that remain: the RNN reads the zero padding in front of short reviews in
Keras, while seqjax skips padding (lengths). Keras' imdb vocabulary reserves 3 ids, ours 2 (PAD, OOV).
"""

from experiments.sentiment.configs.default import get_config as _default

TRAIN_EXAMPLES = 20000  # 25000 IMDB train reviews minus validation_split=0.2
BATCH = 128
STEPS_PER_EPOCH = -(-TRAIN_EXAMPLES // BATCH)  # 157, as Keras counts them (the last batch is partial)


def get_config():
    config = _default()
    t = config.train
    t.steps = 5 * STEPS_PER_EPOCH  # 5 epochs = 785 updates (our batches are always full)
    t.batch_size = BATCH  # Keras fit(batch_size=128)
    t.learning_rate = 1e-3  # Keras "adam": lr 1e-3, no clipping
    t.clip_norm = 0.0
    t.eval_every = STEPS_PER_EPOCH  # validation once per epoch, like Keras
    t.checkpoint_every = STEPS_PER_EPOCH
    config.model.update(
        cell="rnn_tanh",  # SimpleRNN(32): h' = tanh(W x + U h + b)
        embed_dim=32,  # Embedding(10000, 32)
        hidden=32,
        bidirectional=False,
        pooling="last",  # SimpleRNN returns its last state
    )
    config.data.update(
        source="imdb_reviews",  # TFDS; 25000 train / 25000 test reviews
        vocab_size=10000,  # imdb.load_data(num_words=10000)
        max_len=200,  # pad_sequences(maxlen=200)
        truncate="tail",  # pad_sequences keeps the last 200 words of a long review
        val_fraction=0.2,  # fit(validation_split=0.2)
    )
    return config
