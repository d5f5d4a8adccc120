"""Shared test settings."""

import os
from pathlib import Path

import jax
import pytest

SHARED_DATA = Path(os.environ.get("SEQJAX_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


@pytest.fixture
def x64():
    """Run a test body with float64 enabled."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def strict_shapes():
    """Like equinox's suite: implicit rank promotion raises, so shape bugs fail loudly."""
    with jax.numpy_rank_promotion("raise"):
        yield
