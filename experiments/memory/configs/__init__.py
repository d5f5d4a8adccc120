"""Presets for ``python -m experiments.memory --config NAME``: default (adding), copy, tagging, tiny."""
