"""Run configuration: the trainer's standard sections, loading, command-line overrides.

An experiment's ``configs/default.py`` starts from :func:`base_config` and adds its own
``model`` and ``data`` sections::

    def get_config():
        config = base_config()
        config.train.steps = 2000          # about 3 minutes on a laptop CPU
        config.model = ConfigDict(dict(cell="lstm", hidden=256))
        config.data = ConfigDict(dict(seq_len=128))
        return config

Overrides such as ``--config.model.cell=gru`` are typed by the value they replace, so a typo
or a wrong type fails before anything runs.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import json
import os
import pkgutil
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


def base_config() -> ConfigDict:
    """The sections the trainer reads, with defaults. Experiments add ``model`` and ``data``."""
    config = ConfigDict()
    config.seed = 0  # seeds init, the per-step RNG stream and (through the task) the data order
    config.train = ConfigDict(
        dict(
            steps=1000,  # optimizer updates in total; may be raised on resume
            batch_size=32,  # global batch, split across devices
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
        )
    )
    return config


def validate(config: ConfigDict) -> None:
    """Checks the trainer's own settings; raises :class:`ConfigError` naming the bad field."""
    if "train" not in config or "seed" not in config:
        raise ConfigError("config needs 'seed' and a 'train' section; start from seqjax.train.base_config()")
    t = config.train

    def need(cond: bool, key: str, what: str) -> None:
        if not cond:
            raise ConfigError(f"config.train.{key}={t.get(key)!r}: {what}")

    need(t.optimizer in OPTIMIZERS, "optimizer", f"expected one of {', '.join(OPTIMIZERS)}")
    need(t.schedule in SCHEDULES, "schedule", f"expected one of {', '.join(SCHEDULES)}")
    need(t.best_mode in ("min", "max"), "best_mode", "expected 'min' or 'max'")
    need(t.get("final_eval", "best") in ("best", "latest"), "final_eval", "expected 'best' or 'latest'")
    need(isinstance(t.steps, int) and t.steps >= 1, "steps", "expected an integer >= 1")
    need(isinstance(t.batch_size, int) and t.batch_size >= 1, "batch_size", "expected an integer >= 1")
    need(isinstance(t.log_every, int) and t.log_every >= 1, "log_every", "expected an integer >= 1")
    for key in ("eval_every", "checkpoint_every", "warmup_steps"):
        need(not t.get(key) or (isinstance(t[key], int) and t[key] >= 0), key, "expected an integer >= 0")
    need(isinstance(t.max_to_keep, int) and t.max_to_keep >= 1, "max_to_keep", "expected an integer >= 1")
    need(t.learning_rate > 0, "learning_rate", "expected a positive number")
    if t.schedule == "cosine":
        need((t.warmup_steps or 0) < t.steps, "warmup_steps", "cosine needs warmup_steps < steps")


# ----------------------------------------------------------------------------- loading


def load_config(spec: str | None, configs_package: str) -> ConfigDict:
    """Loads ``get_config()`` from a .py file path, or from the preset ``<configs_package>.<spec>``.

    ``spec=None`` loads the preset ``default``.
    """
    spec = spec or "default"
    if spec.endswith(".py") or os.sep in spec or os.path.isfile(spec):
        if not os.path.isfile(spec):
            raise ConfigError(f"--config {spec}: no such file")
        name = "_seqjax_config_" + os.path.splitext(os.path.basename(spec))[0]
        module_spec = importlib.util.spec_from_file_location(name, spec)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        where = spec
    else:
        module_name = f"{configs_package}.{spec}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            # Only a missing preset is the user's error; a missing import inside it is a bug to show.
            if e.name not in (module_name, configs_package) and not module_name.startswith(e.name + "."):
                raise
            presets = available_presets(configs_package)
            raise ConfigError(
                f"--config {spec}: not a file and not a preset ({module_name} not found); "
                f"presets: {', '.join(presets) or '(none found)'}"
            ) from None
        where = module_name
    if not hasattr(module, "get_config"):
        raise ConfigError(f"--config {spec}: {where} has no get_config()")
    config = module.get_config()
    if not isinstance(config, ConfigDict):
        raise ConfigError(f"--config {spec}: get_config() returned {type(config).__name__}, not a ConfigDict")
    return config


def available_presets(configs_package: str) -> list[str]:
    try:
        package = importlib.import_module(configs_package)
    except ImportError:
        return []
    return sorted(m.name for m in pkgutil.iter_modules(getattr(package, "__path__", [])) if not m.ispkg)


# ----------------------------------------------------------------------------- overrides


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _parse_like(text: str, old: Any) -> Any:
    """Parses ``text`` as a value of the same type as ``old``. A string field takes the text
    as it is (``--config.model.skip=none`` is the string 'none'); other fields read ``none`` or
    ``null`` as None."""
    if isinstance(old, str):
        return text
    if text.strip().lower() in ("none", "null"):
        return None
    if isinstance(old, bool):
        return _parse_bool(text)
    if isinstance(old, int):
        try:
            return int(text)
        except ValueError:
            value = float(text)  # accept 1e3, but never silently truncate 0.5
            if not value.is_integer():
                raise ValueError("expected an integer") from None
            return int(value)
    if isinstance(old, float):
        return float(text)
    if isinstance(old, str):
        return text
    if isinstance(old, (tuple, list)):
        stripped = text.strip()
        if stripped.startswith(("(", "[")):
            items = ast.literal_eval(stripped)
            items = [items] if not isinstance(items, (tuple, list)) else items
        else:  # comma separated, typed like the existing elements
            items = [s for s in stripped.split(",") if s.strip()]
            if old:
                items = [_parse_like(s, old[0]) for s in items]
            else:
                items = [_literal_or_str(s) for s in items]
        return type(old)(items)
    if old is None:
        return _literal_or_str(text)
    raise ValueError(f"cannot override a field of type {type(old).__name__} from the command line")


def _literal_or_str(text: str) -> Any:
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text


def apply_override(config: ConfigDict, dotted: str, text: str) -> None:
    """Sets ``config.<dotted>`` from the command-line string ``text``, typed by the current value."""
    parts = dotted.split(".")
    node = config
    for depth, part in enumerate(parts):
        where = ".".join(["config"] + parts[:depth])
        if not isinstance(node, ConfigDict):
            raise ConfigError(f"--config.{dotted}: {where} is a {type(node).__name__}, not a section")
        if part not in node:
            valid = sorted(node.keys())
            close = difflib.get_close_matches(part, valid, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(
                f"--config.{dotted}: unknown key '{part}' in {where}{hint}; valid keys: {', '.join(valid)}"
            )
        if depth < len(parts) - 1:
            node = node[part]
    key = parts[-1]
    old = node[key]
    if isinstance(old, ConfigDict):
        raise ConfigError(
            f"--config.{dotted} is a section; set one of its keys: {', '.join(sorted(old.keys()))}"
        )
    try:
        value = _parse_like(text, old)
    except (ValueError, SyntaxError) as e:
        raise ConfigError(f"--config.{dotted}={text}: {e} (current value {old!r})") from None
    try:
        node[key] = value
    except TypeError as e:
        raise ConfigError(f"--config.{dotted}={text}: {e}") from None


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
