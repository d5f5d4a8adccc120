"""Every experiment's presets: parsed by the command line, every key settable, each passing its own checks."""

import importlib

import pytest
from ml_collections import ConfigDict, FieldReference

from seqjax.train.cli import available_presets, parse_args
from seqjax.train.config import validate

EXPERIMENTS = ("chargen", "memory", "sentiment", "seq2seq", "timeseries")
CASES = [(e, p) for e in EXPERIMENTS for p in available_presets(f"experiments.{e}.configs")]


def _leaves(config: ConfigDict, prefix=""):
    for key in config.keys():
        value = config._fields[key]  # the stored value, placeholders (FieldReference) included
        if isinstance(value, ConfigDict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def test_every_experiment_has_the_same_files():
    import os

    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments")
    for experiment in EXPERIMENTS:
        files = set(os.listdir(os.path.join(root, experiment)))
        assert {"configs", "data.py", "model.py", "task.py", "__main__.py"} <= files, experiment
        assert "default.py" in os.listdir(os.path.join(root, experiment, "configs"))


@pytest.mark.parametrize("experiment, preset", CASES)
def test_a_preset_parses_and_passes_its_checks(experiment, preset):
    config, _ = parse_args(["--config", preset], f"experiments.{experiment}.configs")
    validate(config)
    # every key can be set from the command line: no bare None (a typed placeholder may be unset)
    unset = [key for key, value in _leaves(config) if value is None and not isinstance(value, FieldReference)]
    assert not unset, f"{experiment}/{preset}: keys without a type: {unset}"
    if experiment == "chargen" and config.data.source == "file":
        config.data.text_file = "a_file.txt"  # the protocol preset takes the file from the command line
    if experiment == "timeseries" and config.data.source == "csv":
        config.data.csv = "series.csv"  # the real-series presets take the file from the command line
    importlib.import_module(f"experiments.{experiment}.data").check_config(config)
    task = importlib.import_module(f"experiments.{experiment}.task")
    if hasattr(task, "check_config"):
        task.check_config(config)
