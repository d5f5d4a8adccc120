"""A small BiLSTM on generated reviews: runs offline, anywhere, in about a minute.

    ./launch.sh sentiment                                   # this config, a fresh runs/sentiment/<time>
    ./launch.sh sentiment --workdir runs/sent --config.model.cell=gru

Cost: 15-35 s on a shared 2-core CPU (500 steps of 32 reviews of 20-100 words).
Expected: test accuracy 1.00 (>= 0.99) on the generated marker task: each review is 20-100
filler words with one marker ("great" or "awful") at a random position that alone sets the
label, so the model must find one word anywhere in a long sequence and ignore padding.

For real reviews use the presets `keras_baseline` or `bilstm` (TFDS imdb_reviews), or
`--config.data.source=imdb_dir|csv|jsonl --config.data.path=...` for local files.
"""

from ml_collections import ConfigDict

from seqjax.train.config import base_config


def get_config() -> ConfigDict:
    config = base_config()
    config.seed = 0  # seeds init, dropout, the validation hold-out and the batch order
    config.train.steps = 500  # ~8 epochs of the 1600 training reviews; converges by ~300
    config.train.batch_size = 32
    config.train.optimizer = "adam"
    config.train.learning_rate = 3e-3  # a little above Adam's 1e-3: small model, easy task
    config.train.clip_norm = 5.0  # the source articles' gradient-norm clip, against LSTM spikes
    config.train.log_every = 50
    config.train.eval_every = 100  # val_loss / val_accuracy on the 400 held-out reviews
    config.train.checkpoint_every = 100
    config.train.best_metric = "val_loss"  # predict --which best reads this checkpoint
    config.eval.batch_size = 256  # validation and test reviews per batch (the last one padded)
    config.model = ConfigDict(dict(
        cell="lstm",  # rnn | rnn_tanh | rnn_relu | lstm | gru | gru_cho | mingru | minlstm | rglru
        embed_dim=32,  # word vectors; 54 distinct words here need few dimensions
        hidden=32,  # per direction
        num_layers=1,  # one BiLSTM layer finds a single marker word
        bidirectional=True,  # the head reads both directions' final states (pooling=last)
        pooling="last",  # last (final states of both directions) | mean | max (over real words)
        dropout=0.0,  # between layers and before the head; nothing to regularise on this task
        init="xavier_orthogonal",  # Keras' default: Glorot input weights, orthogonal recurrent, zero bias
        forget_bias=1.0,  # LSTM only: added to the forget gate (Keras' unit_forget_bias)
        matmul_dtype="float32",  # float32 | bfloat16 (recurrent matmuls in bf16, summed in f32)
        scan="auto",  # mingru | minlstm | rglru: auto | sequential | chunked | associative (seqjax.scan)
        remat=0,  # checkpoint every k steps (jax.checkpoint): less memory, more time; 0 = off
    ))
    config.data = ConfigDict(dict(
        source="generated",  # imdb_reviews | glue/sst2 | imdb_dir | csv | jsonl | generated
        path="",  # imdb_dir: the aclImdb directory; csv / jsonl: the file
        test_path="",  # csv / jsonl: a separate test file ('' = hold out test_fraction of path)
        test_fraction=0.2,  # csv / jsonl without test_path: rows held out (seed 0) as the test split
        text_column="text",  # csv / jsonl: the review's column
        label_column="label",  # csv / jsonl: the 0/1 label's column
        vocab_size=100,  # incl. PAD and OOV; >= 50 fillers + 2 markers + 2 here; also the embedding's rows
        max_len=100,  # reviews are cut to max_len words (>= gen_max_len here)
        truncate="head",  # which words a long review keeps: head (the first) | tail (the last, as Keras)
        val_fraction=0.2,  # of train, held out for validation before the vocabulary is built
        tfds_data_dir="",  # imdb_reviews / glue/sst2: TFDS data_dir ('' = $TFDS_DATA_DIR or ~/tensorflow_datasets)
        tfds_download=True,  # imdb_reviews / glue/sst2: let TFDS prepare a dataset it does not have
        gen_train_size=2000,  # generated: training reviews (before the validation hold-out)
        gen_test_size=500,  # generated: test reviews
        gen_min_len=20,  # generated: words per review, uniform in [gen_min_len, gen_max_len]
        gen_max_len=100,
        gen_num_fillers=50,  # generated: distinct filler words
        gen_seed=0,  # generated: the data set itself; fixed across run seeds
    ))
    return config
