"""Presets for ``python -m experiments.timeseries --config NAME``: default, elec_equip, tiny."""
