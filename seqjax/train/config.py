"""Run configuration: the trainer's standard sections, their checks, and what a workdir records.

An experiment's ``configs/default.py`` is its only source of defaults. It starts from
:func:`base_config` and adds its ``model`` and ``data`` sections; its presets start from it::

    def get_config():
        config = base_config()
        config.train.steps = 2000          # about 3 minutes on a laptop CPU
        config.model = ConfigDict(dict(cell="lstm", hidden=256))
        config.data = ConfigDict(dict(seq_len=128))
        return config

Every key can be set from the command line (``--config.model.cell=gru``, parsed by
``ml_collections.config_flags``, see :mod:`seqjax.train.cli`). A value that may be unset is a
typed ``ml_collections.config_dict.placeholder``, so that it can be set too.

No silent combinations: a key that only matters for another choice (``train.momentum`` unless
``train.optimizer='sgd'``, a CSV path unless the source is a CSV, ...) either takes effect or
fails. :func:`check_inactive` fails when such a key differs from its default.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import ml_collections

ConfigDict = ml_collections.ConfigDict

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")
# Sections whose change makes a checkpoint unusable; the rest (steps, learning rate, ...) may change.
RESUME_MUST_MATCH = ("model",)


class ConfigError(ValueError):
    """A bad config file, preset, override or value. Raised before anything is written."""


def require(cond: bool, key: str, value: Any, what: str) -> None:
    """Raises ``ConfigError("config.KEY=VALUE: WHAT")`` unless ``cond``; for experiments' checks."""
    if not cond:
        raise ConfigError(f"config.{key}={value!r}: {what}")


def is_int(value: Any) -> bool:
    """An int that is not a bool (``True`` is an int to Python, not to a config)."""
    return isinstance(value, int) and not isinstance(value, bool)


def lookup(config: ConfigDict, key: str) -> Any:
    """``config.a.b`` for ``key='a.b'``."""
    node = config
    for part in key.split("."):
        node = node[part]
    return node


def check_inactive(config: ConfigDict, defaults: ConfigDict, keys: Sequence[str], active: bool,
                   when: str) -> None:
    """Raises ConfigError if ``active`` is false and one of ``keys`` differs from ``defaults``.

    Such a key would be silently ignored. ``when`` says what makes the keys count, for example
    ``"data.source='csv' (this config has data.source='sine')"``."""
    if active:
        return
    for key in keys:
        value, default = lookup(config, key), lookup(defaults, key)
        if _plain(value) != _plain(default):
            raise ConfigError(f"config.{key}={value!r} only takes effect with {when}; "
                              f"set that as well, or leave {key} at its default {default!r}")


def check_keys(config: ConfigDict, defaults: ConfigDict, prefix: str = "config") -> None:
    """Raises ConfigError for a key that ``defaults`` (the experiment's ``configs/default.py``) lacks.

    The command line cannot add keys, but a config file can, and the code would never read one."""
    for key in config.keys():
        where = f"{prefix}.{key}"
        if key not in defaults:
            raise ConfigError(f"{where}: unknown key; {prefix} has {', '.join(sorted(defaults.keys()))} "
                              "(see the experiment's configs/default.py)")
        if isinstance(config[key], ConfigDict) and isinstance(defaults[key], ConfigDict):
            check_keys(config[key], defaults[key], where)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def base_config() -> ConfigDict:
    """The sections the trainer reads, with defaults. Experiments add ``model`` and ``data``."""
    config = ConfigDict()
    config.seed = 0  # seeds init, the per-step RNG stream and the data order
    config.train = ConfigDict(dict(
        steps=1000,  # optimizer updates in total; may be raised on resume
        batch_size=32,  # global batch, split across processes and devices
        optimizer="adam",  # adam | adamw | sgd
        learning_rate=1e-3,  # peak rate, reached after warmup
        weight_decay=0.0,  # adamw: decoupled decay; adam and sgd: L2 added to the gradient
        momentum=0.9,  # sgd only
        schedule="constant",  # constant | cosine (to zero at train.steps)
        warmup_steps=0,  # linear warmup from zero
        clip_norm=0.0,  # global-norm gradient clipping; 0 turns it off
        log_every=50,  # steps between log lines / metrics.jsonl records
        eval_every=200,  # steps between validation passes; 0: only at the end
        checkpoint_every=200,  # steps between checkpoints; 0: only at the end
        max_to_keep=3,  # latest checkpoints kept, plus the best one
        best_metric="val_loss",  # a key of metrics.jsonl that ranks checkpoints
        best_mode="min",  # min | max
        final_eval="best",  # params given to the task's final_eval (test metrics): best | latest
        patience=0,  # early stopping: stop after this many evaluations without a new best; 0: off
    ))
    config.eval = ConfigDict(dict(
        batch_size=256,  # examples per validation (and test) batch; the last batch is padded
    ))
    return config


def validate(config: ConfigDict) -> None:
    """Checks the trainer's own settings; raises :class:`ConfigError` naming the bad field."""
    if "train" not in config or "seed" not in config or "eval" not in config:
        raise ConfigError("config needs 'seed', 'train' and 'eval'; start from seqjax.train.base_config()")
    t = config.train

    def need(cond: bool, key: str, what: str) -> None:
        if not cond:
            raise ConfigError(f"config.train.{key}={t.get(key)!r}: {what}")

    need(t.optimizer in OPTIMIZERS, "optimizer", f"expected one of {', '.join(OPTIMIZERS)}")
    need(t.schedule in SCHEDULES, "schedule", f"expected one of {', '.join(SCHEDULES)}")
    need(t.best_mode in ("min", "max"), "best_mode", "expected 'min' or 'max'")
    need(t.final_eval in ("best", "latest"), "final_eval", "expected 'best' or 'latest'")
    for key in ("steps", "batch_size", "log_every", "max_to_keep"):
        need(is_int(t[key]) and t[key] >= 1, key, "expected an integer >= 1")
    for key in ("eval_every", "checkpoint_every", "warmup_steps", "patience"):
        need(is_int(t[key]) and t[key] >= 0, key, "expected an integer >= 0")
    need(t.learning_rate > 0, "learning_rate", "expected a positive number")
    need(t.weight_decay >= 0, "weight_decay", "expected a number >= 0")
    need(t.clip_norm >= 0, "clip_norm", "expected a number >= 0 (0 turns clipping off)")
    need(0 <= t.momentum < 1, "momentum", "expected a number in [0, 1)")
    if t.patience:
        need(t.eval_every > 0, "patience", "early stopping counts evaluations; it needs train.eval_every > 0")
    if t.schedule == "cosine":
        need(t.warmup_steps < t.steps, "warmup_steps", "cosine needs warmup_steps < steps")
    check_inactive(config, base_config(), ["train.momentum"], t.optimizer == "sgd",
                   f"train.optimizer='sgd' (this config has train.optimizer={t.optimizer!r})")
    require(is_int(config.eval.batch_size) and config.eval.batch_size >= 1, "eval.batch_size",
            config.eval.batch_size, "expected an integer >= 1")


# ----------------------------------------------------------------------------- records


def to_dict(config: ConfigDict) -> dict:
    """A JSON-able plain dict of the config (tuples become lists)."""
    return json.loads(config.to_json_best_effort())


def from_dict(data: dict) -> ConfigDict:
    return ConfigDict(data)


def save_json(config: ConfigDict, path: str) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(to_dict(config), f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)


def diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Lines ``key: old -> new`` for every leaf that differs between two plain dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in sorted(set(old) | set(new)):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                lines.append(f"{name}: (absent) -> {new[key]!r}")
            elif key not in new:
                lines.append(f"{name}: {old[key]!r} -> (absent)")
            else:
                lines.extend(diff(old[key], new[key], name))
        return lines
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        old, new = list(old), list(new)
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


def resume_mismatch(saved: dict, current: dict) -> list[str]:
    """Differences in the sections that must match to resume from a checkpoint."""
    lines = []
    for section in RESUME_MUST_MATCH:
        lines.extend(diff(saved.get(section), current.get(section), section))
    return lines
