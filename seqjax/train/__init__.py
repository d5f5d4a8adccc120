"""The shared trainer: an experiment supplies a Task and a config; seqjax.train owns the loop.

    from seqjax.train import Task, base_config, main
    main("chargen", make_task)        # in experiments/chargen/__main__.py

See ``task.py`` for the Task contract, ``config.py`` for the config sections, ``loop.py`` for
the loop and ``checkpoint.py`` for what a workdir holds.
"""

from seqjax.train.checkpoint import ResumeError, load_from_workdir
from seqjax.train.cli import main
from seqjax.train.config import ConfigDict, ConfigError, apply_override, base_config, load_config
from seqjax.train.loop import NonFiniteLossError, train
from seqjax.train.state import TrainState, make_optimizer, make_train_step
from seqjax.train.task import Task

__all__ = [
    "ConfigDict",
    "ConfigError",
    "NonFiniteLossError",
    "ResumeError",
    "Task",
    "TrainState",
    "apply_override",
    "base_config",
    "load_config",
    "load_from_workdir",
    "main",
    "make_optimizer",
    "make_train_step",
    "train",
]
