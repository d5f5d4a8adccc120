"""Declaring a sweep: override dicts, the combinators that build them, and the runs they become.

A sweep is a list of override dicts such as ``{"model.cell": "gru", "seed": 1}``. Each dict is one
run, i.e. one command ``python -m experiments.<exp> --workdir ROOT/<name> [--config PRESET]
--config.KEY=VALUE ...``. The combinators build such lists from small pieces::

    product(sweep("model.cell", ["rnn", "gru"]), sweep("seed", range(3)))   # 2 x 3 = 6 runs
    zipped(sweep("model.cell", ["gru", "lstm"]), sweep("model.hidden", [296, 256]))   # 2 runs, paired
    chain(fixed({"model.cell": "rnn"}), product(...))                        # one list after the other

:func:`plan` checks every key and value against the experiment's config (preset applied) and names
each run by the overrides that vary across the sweep (``cell=gru,seed=1``).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib
import importlib.util
import json
import os
import re
import shlex
import sys
from collections.abc import Iterable
from typing import Any

from ml_collections import ConfigDict

import experiments

REPO = os.path.dirname(os.path.dirname(os.path.abspath(experiments.__file__)))
SEED = "seed"


class SweepError(ValueError):
    """A bad sweep: unknown key, empty values, clashing overrides, a root holding another sweep."""


# ----------------------------------------------------------------------------- combinators


def sweep(key: str, values: Iterable[Any]) -> list[dict]:
    """One run per value: ``[{key: v} for v in values]``."""
    values = list(values)
    if not isinstance(key, str) or not key:
        raise SweepError(f"sweep: expected a config key such as 'model.cell', got {key!r}")
    if not values:
        raise SweepError(f"sweep({key!r}): no values")
    return [{key: v} for v in values]


def fixed(overrides: dict | None = None, **kwargs: Any) -> list[dict]:
    """One run with the given overrides (keys with dots go in the dict)."""
    return [{**(overrides or {}), **kwargs}]


def product(*sweeps: list[dict]) -> list[dict]:
    """Every combination, the last sweep varying fastest."""
    runs: list[dict] = [{}]
    for part in sweeps:
        runs = [_merge(a, b, "product") for a in runs for b in _as_runs(part)]
    return runs


def zipped(*sweeps: list[dict]) -> list[dict]:
    """The i-th runs of equally long sweeps merged: one run per position."""
    parts = [_as_runs(p) for p in sweeps]
    lengths = [len(p) for p in parts]
    if len(set(lengths)) > 1:
        raise SweepError(f"zipped: sweeps of different lengths {lengths}")
    runs = []
    for row in zip(*parts, strict=True):
        merged: dict = {}
        for d in row:
            merged = _merge(merged, d, "zipped")
        runs.append(merged)
    return runs


def chain(*sweeps: list[dict]) -> list[dict]:
    """The runs of each sweep, one sweep after the other."""
    return [dict(d) for part in sweeps for d in _as_runs(part)]


def _as_runs(part: Any) -> list[dict]:
    if isinstance(part, dict):
        return [part]
    if not isinstance(part, (list, tuple)) or not all(isinstance(d, dict) for d in part):
        raise SweepError(f"expected a list of override dicts, got {type(part).__name__}")
    return list(part)


def _merge(a: dict, b: dict, what: str) -> dict:
    clash = sorted(set(a) & set(b))
    if clash:
        raise SweepError(f"{what}: {', '.join(clash)} set by two parts (values {a[clash[0]]!r} and {b[clash[0]]!r})")
    return {**a, **b}


# ----------------------------------------------------------------------------- values as command-line text


def to_text(value: Any) -> str:
    """The ``--config.KEY=`` text of a Python value (text stays as it is)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(to_text(v) for v in value) + (",)" if len(value) == 1 else ")")
    return repr(value)


def _check_value(key: str, text: str, old: Any) -> None:
    """Type check against the field's current value, so a typo fails before any run starts."""
    ok = True
    if isinstance(old, bool):
        ok = text.strip().lower() in ("true", "false", "1", "0", "yes", "no", "on", "off")
        expected = "true or false"
    elif isinstance(old, int):
        try:
            ok = float(text).is_integer()
        except ValueError:
            ok = False
        expected = "an integer"
    elif isinstance(old, float):
        try:
            float(text)
        except ValueError:
            ok = False
        expected = "a number"
    if not ok:
        raise SweepError(f"{key}={text}: expected {expected} (the config has {old!r})")


# ----------------------------------------------------------------------------- the experiment's config


def experiment_names() -> list[str]:
    return sorted(d for d in os.listdir(os.path.join(REPO, "experiments"))
                  if os.path.isfile(os.path.join(REPO, "experiments", d, "__main__.py")))


def load_config(experiment: str, config: str | None) -> ConfigDict:
    """The experiment's ``get_config()``: a preset of ``experiments/<exp>/configs`` or a .py file."""
    if experiment not in experiment_names():
        raise SweepError(f"unknown experiment {experiment!r}; expected one of {', '.join(experiment_names())}")
    spec = config or "default"
    if spec.endswith(".py"):
        if not os.path.isfile(spec):
            raise SweepError(f"--config {spec}: no such file")
        module_spec = importlib.util.spec_from_file_location("_sweep_config", spec)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        folder = os.path.join(REPO, "experiments", experiment, "configs")
        presets = sorted(f[:-3] for f in os.listdir(folder) if f.endswith(".py") and not f.startswith("_"))
        if spec not in presets:
            raise SweepError(f"--config {spec}: not a .py file nor a preset of {experiment}; "
                             f"presets: {', '.join(presets)}")
        module = importlib.import_module(f"experiments.{experiment}.configs.{spec}")
    return module.get_config()


def _leaves(node: ConfigDict, prefix: str = "") -> list[str]:
    names = []
    for key in sorted(node.keys()):
        name = f"{prefix}{key}"
        names.extend(_leaves(node[key], name + ".") if isinstance(node[key], ConfigDict) else [name])
    return names


def check_key(config: ConfigDict, key: str, text: str) -> None:
    """Raises SweepError unless ``key`` is a leaf of ``config`` and ``text`` fits its type."""
    node, parts = config, key.split(".")
    for depth, part in enumerate(parts):
        section = ".".join(parts[:depth])
        if not isinstance(node, ConfigDict) or part not in node:
            where = f"config.{section}" if section else "config"
            valid = _leaves(node, section + "." if section else "") if isinstance(node, ConfigDict) else []
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise SweepError(f"unknown key {key!r}{hint}; valid keys in {where}: {', '.join(valid) or '(none)'}")
        node = node[part]
    if isinstance(node, ConfigDict):
        raise SweepError(f"{key} is a section, not a key; its keys: {', '.join(_leaves(node, key + '.'))}")
    _check_value(key, text, node)


# ----------------------------------------------------------------------------- runs and their names


@dataclasses.dataclass(frozen=True)
class Run:
    name: str  # its workdir's name under the sweep root
    overrides: dict  # key -> command-line text, in command order

    @property
    def seed(self) -> str | None:
        return self.overrides.get(SEED)

    @property
    def setting(self) -> dict:
        """The overrides except the seed: runs with equal settings are seeds of one configuration."""
        return {k: v for k, v in self.overrides.items() if k != SEED}


@dataclasses.dataclass
class Plan:
    """A checked sweep: the experiment, its preset and the runs, ready to launch or to emit."""

    experiment: str
    config: str | None
    runs: list[Run]
    label: str  # names the default root
    primary_metric: str = "val_loss"
    mode: str = "min"
    python: str = sys.executable

    def workdir(self, root: str, run: Run) -> str:
        return os.path.join(os.path.abspath(root), run.name)

    def argv(self, root: str, run: Run) -> list[str]:
        argv = [self.python, "-m", f"experiments.{self.experiment}", "--workdir", self.workdir(root, run)]
        if self.config:
            argv += ["--config", os.path.abspath(self.config) if self.config.endswith(".py") else self.config]
        return argv + [f"--config.{k}={v}" for k, v in run.overrides.items()]

    def command(self, root: str, run: Run) -> str:
        """The shell line that runs ``run``: what ``--emit`` prints and a local run executes."""
        return f"cd {shlex.quote(REPO)} && {shlex.join(self.argv(root, run))}"

    def identity(self) -> dict:
        """What a root's ``sweep.json`` must match for the root to be reused."""
        return {"experiment": self.experiment, "config": self.config,
                "runs": [{"name": r.name, "overrides": r.overrides} for r in self.runs]}

    def default_root(self) -> str:
        digest = hashlib.sha1(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:8]
        return os.path.join("runs", "sweeps", f"{self.experiment}-{self.label}-{digest}")


_UNSAFE = re.compile(r"[^A-Za-z0-9._+=@,-]")


def _short_keys(keys: list[str]) -> dict[str, str]:
    """``model.cell`` -> ``cell`` unless two varying keys end the same way."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last, strict=True)}


def varying_keys(settings: list[dict]) -> list[str]:
    """Keys whose value differs between runs (or is missing in some), in order of appearance, the seed last."""
    keys = list(dict.fromkeys(k for d in settings for k in d))
    varying = [k for k in keys if len({d.get(k) for d in settings}) > 1 or any(k not in d for d in settings)]
    return [k for k in varying if k != SEED] + ([SEED] if SEED in varying else [])


def name_runs(settings: list[dict]) -> list[str]:
    """Names from the keys whose values vary across runs (the seed last), e.g. ``cell=gru,seed=1``."""
    varying = varying_keys(settings)
    short = _short_keys(varying)
    names = []
    for d in settings:
        name = ",".join(f"{short[k]}={d[k]}" for k in varying if k in d) or "run"
        name = _UNSAFE.sub("_", name)
        if len(name) > 120:
            name = name[:100] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
        names.append(name)
    for i, name in enumerate(names):  # sanitising may have merged two names
        if names.count(name) > 1:
            names[i] = name + "-" + hashlib.sha1(json.dumps(settings[i], sort_keys=True).encode()).hexdigest()[:6]
    return names


def plan(experiment: str, runs: list[dict], config: str | None = None, label: str | None = None) -> Plan:
    """Checks ``runs`` (override dicts) against the experiment's config and names them.

    Raises SweepError, before anything is written, on an unknown key (listing the valid ones), a
    value of the wrong type, an empty sweep or the same run twice.
    """
    base = load_config(experiment, config)
    runs = _as_runs(runs)
    if not runs:
        raise SweepError("the sweep has no runs")
    settings = []
    for d in runs:
        texts = {}
        for key, value in d.items():
            text = to_text(value)
            if text == "":
                raise SweepError(f"{key}: empty value")
            check_key(base, key, text)
            texts[key] = text
        settings.append(texts)
    seen: dict[str, int] = {}
    for i, d in enumerate(settings):
        ident = json.dumps(sorted(d.items()))
        if ident in seen:
            raise SweepError(f"runs {seen[ident] + 1} and {i + 1} are the same: {d or '(no overrides)'}")
        seen[ident] = i
    names = name_runs(settings)
    varying = [k for k in varying_keys(settings) if k != SEED]
    label = label or "-".join(_short_keys(varying).values()) or "seeds"
    train = base.get("train", ConfigDict())
    return Plan(experiment, config, [Run(n, d) for n, d in zip(names, settings, strict=True)],
                _UNSAFE.sub("_", label)[:60], train.get("best_metric", "val_loss"), train.get("best_mode", "min"))


# ----------------------------------------------------------------------------- sweep files


def load_sweep_file(experiment: str, spec: str) -> tuple[list[dict], str]:
    """``get_sweep()`` of ``experiments/<exp>/sweeps/<spec>.py`` or of the file ``spec``; and its name."""
    if spec.endswith(".py"):
        path = spec
    else:
        path = os.path.join(REPO, "experiments", experiment, "sweeps", spec + ".py")
    if not os.path.isfile(path):
        folder = os.path.join(REPO, "experiments", experiment, "sweeps")
        have = sorted(f[:-3] for f in os.listdir(folder) if f.endswith(".py") and not f.startswith("_")) \
            if os.path.isdir(folder) else []
        raise SweepError(f"--sweep {spec}: no file {path}; sweeps of {experiment}: {', '.join(have) or '(none)'}")
    name = os.path.splitext(os.path.basename(path))[0]
    module_spec = importlib.util.spec_from_file_location(f"_sweep_{name}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_sweep"):
        raise SweepError(f"--sweep {spec}: {path} has no get_sweep()")
    return _as_runs(module.get_sweep()), name
