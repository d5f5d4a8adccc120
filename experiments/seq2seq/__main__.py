"""python -m experiments.seq2seq [--workdir DIR] [--config FILE_OR_PRESET] [--config.KEY=VALUE ...]

Spell out numbers ("407" -> "four hundred seven") with an encoder-decoder (N -> M).
Presets: default (GRU, attention, up to 9 digits), tiny (tests).
"""

from experiments.seq2seq.task import make_task
from seqjax.train import main

if __name__ == "__main__":
    main("seq2seq", make_task)
