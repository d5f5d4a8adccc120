"""The shared trainer: an experiment supplies its data, a Task and a config; seqjax.train owns the loop.

    from seqjax.train import main
    main("chargen", CharGenTask, data.load, verbs={"sample": sample})   # experiments/chargen/__main__.py

See ``task.py`` for the Task and Data contract, ``config.py`` for the config sections, ``cli.py``
for the command line, ``loop.py`` for the loop, ``checkpoint.py`` for what a workdir holds and
``workdir.py`` for its lock.
"""

from seqjax.train.checkpoint import Restored, ResumeError, load_from_workdir
from seqjax.train.cli import main
from seqjax.train.config import ConfigDict, ConfigError, base_config
from seqjax.train.loop import Interrupted, NonFiniteLossError, WorkdirWriteError, train
from seqjax.train.state import TrainState, make_optimizer, make_train_step
from seqjax.train.task import Data, Task
from seqjax.train.workdir import WorkdirBusy, WorkdirError

__all__ = [
    "ConfigDict",
    "ConfigError",
    "Data",
    "Interrupted",
    "NonFiniteLossError",
    "Restored",
    "ResumeError",
    "Task",
    "TrainState",
    "WorkdirBusy",
    "WorkdirError",
    "WorkdirWriteError",
    "base_config",
    "load_from_workdir",
    "main",
    "make_optimizer",
    "make_train_step",
    "train",
]
