"""The shared trainer: an experiment supplies its data, a Task and a config; seqjax.train owns the loop.

    from seqjax.train import main
    main("chargen", CharGenTask, data.load, verbs={"sample": sample})   # experiments/chargen/__main__.py

See ``task.py`` for the Task and Data contract, ``config.py`` for the config sections, ``cli.py``
for the command line, ``loop.py`` for the loop and ``checkpoint.py`` for what a workdir holds.
"""

from seqjax.train.checkpoint import Restored, ResumeError, load_from_workdir
from seqjax.train.cli import main
from seqjax.train.config import ConfigDict, ConfigError, base_config
from seqjax.train.loop import NonFiniteLossError, train
from seqjax.train.state import TrainState, make_optimizer, make_train_step
from seqjax.train.task import Data, Task

__all__ = [
    "ConfigDict",
    "ConfigError",
    "Data",
    "NonFiniteLossError",
    "Restored",
    "ResumeError",
    "Task",
    "TrainState",
    "base_config",
    "load_from_workdir",
    "main",
    "make_optimizer",
    "make_train_step",
    "train",
]
