"""The main job: a character LM on the embedded corpus (no network).

    ./launch.sh                      # same as: ./launch.sh chargen
    ./launch.sh chargen --workdir runs/chargen/mine      # rerun the same line to resume
    ./launch.sh chargen sample --workdir runs/chargen/mine --prompt "The "

Cost: 3.5-5 minutes on a 2-core CPU (1000 steps of 32 x 128 characters; measured 202-275 s).
Expected: validation loss about 1.31 nats/char (measured 1.309), and samples that look like
Python's reference manual (indented code blocks, "**" headings) by the end.
"""

from ml_collections import ConfigDict

from seqjax.train.config import base_config


def get_config() -> ConfigDict:
    config = base_config()
    config.seed = 0
    config.model = ConfigDict(dict(
        cell="lstm",          # rnn | rnn_relu | lstm | gru | gru_cho | mingru | minlstm | rglru
        embed_dim=64,         # character embedding size
        hidden=256,           # hidden units per layer
        num_layers=2,         # stacked layers
        dropout=0.0,          # between layers (needs num_layers > 1); the source articles' demo uses 0.2
        init="torch",         # torch | xavier_orthogonal | he_orthogonal
        forget_bias=0.0,      # LSTM only: added to the forget gate (e.g. 1.0)
        matmul_dtype="float32",  # float32 | bfloat16 (recurrent matmuls in bf16, summed in f32)
        scan="auto",  # mingru | minlstm | rglru: auto | sequential | chunked | associative (seqjax.scan)
        remat=0,  # checkpoint every k steps (jax.checkpoint): less memory, more time; 0 = off
        wavefront=False,  # rnn | lstm without dropout: all layers in one time loop (Stack(wavefront=True))
    ))
    config.data = ConfigDict(dict(
        source="embedded",    # embedded | file | tiny_shakespeare
        text_file="",         # source='file': a local UTF-8 file
        tfds_data_dir="",     # source='tiny_shakespeare': TFDS data_dir ('' = TFDS default)
        train_fraction=0.9,   # embedded and file: first 90% trains, last 10% validates
        seq_len=128,          # characters per window (BPTT length)
        mode="windows",       # windows (random) | tbptt (stateful, carries h across windows)
        eval_windows=256,     # non-overlapping validation windows scored at each eval
    ))
    config.sample = ConfigDict(dict(
        every=250,            # steps between printed samples (0 = never)
        prompt="The ",        # falls back to the first validation character if outside the vocabulary
        length=300,           # characters per sample
        temperature=0.8,      # the source articles' choice
        top_k=0,              # 0 = no truncation
    ))
    t = config.train
    t.steps = 1000
    t.batch_size = 32
    t.learning_rate = 2e-3
    t.clip_norm = 5.0         # the source articles' remedy for exploding gradients
    t.log_every = 50
    t.eval_every = 250
    t.checkpoint_every = 250
    t.best_metric = "val_loss"
    config.eval.batch_size = 256  # the 256 validation windows in one batch
    return config
