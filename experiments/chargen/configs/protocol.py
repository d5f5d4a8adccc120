"""The comparison protocol of ../shared/data/README.md (and the PyTorch reference run).

    ./launch.sh chargen --config protocol --config.data.text_file=PATH/shakespeare.txt

Embedding 64, 2-layer LSTM(256), batch 32 random 128-char windows, Adam 2e-3, clip-norm 5,
3000 steps; validation loss = mean cross-entropy (nats/char) over the first 256 non-overlapping
128-char windows of the last 10% of the text.
Cost: 10-11 minutes on a 2-core CPU. Measured val_loss: 1.650, 1.607, 1.613 with seeds 0, 1, 2 (mean 1.623;
target <= 1.63; PyTorch reference: 1.615 here, 1.619 in the issue).
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
