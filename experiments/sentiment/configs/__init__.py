"""Presets for ``python -m experiments.sentiment --config NAME``: default, keras_baseline, bilstm, tiny."""
