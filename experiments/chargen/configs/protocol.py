"""The comparison protocol: Shakespeare's works as one text, the set-up the PyTorch reference run shares.

    ./launch.sh chargen --config protocol --config.data.text_file=PATH/shakespeare.txt

Embedding 64, 2-layer LSTM(256), batch 32 random 128-char windows, Adam 2e-3, clip-norm 5,
3000 steps; validation loss = mean cross-entropy (nats/char) over the first 256 non-overlapping
128-char windows of the last 10% of the text.
Cost: 9-10 minutes on a 2-core CPU. Measured val_loss: 1.611, 1.605, 1.627 with seeds 0, 1, 2 (1.614 ± 0.011;
target <= 1.63; the PyTorch reference on the same machine: 1.615, 1.641, 1.627, 1.628 ± 0.013).
"""

from experiments.chargen.configs.default import get_config as _default


def get_config():
    config = _default()
    config.data.source = "file"   # needs --config.data.text_file=PATH
    config.train.steps = 3000
    config.train.eval_every = 1000
    config.train.checkpoint_every = 500
    config.train.log_every = 100
    config.sample.every = 1000
    config.sample.prompt = "ROMEO:"
    return config
