"""Presets for ``python -m experiments.sentiment --config NAME``: default, keras_baseline, bilstm, tiny."""

from ml_collections import ConfigDict

from experiments.sentiment.data import DEFAULTS as DATA_DEFAULTS


def data_section(**choices) -> ConfigDict:
    """A ``data`` section holding every key of ``load_sentiment`` (so each can be overridden
    from the command line), with the preset's ``choices`` over the documented defaults."""
    unknown = sorted(set(choices) - set(DATA_DEFAULTS))
    if unknown:
        raise KeyError(f"unknown data key(s) {unknown}; see experiments/sentiment/data.py")
    return ConfigDict({**DATA_DEFAULTS, **choices})
