"""Shared test settings."""

import os
from pathlib import Path

import jax
import pytest

SHARED_DATA = Path(os.environ.get("SEQJAX_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


@pytest.fixture(autouse=True)
def strict_shapes():
    """As in equinox's suite: implicit rank promotion raises, in every test, so shape bugs fail loudly."""
    with jax.numpy_rank_promotion("raise"):
        yield


@pytest.fixture
def x64():
    """Run a test body with float64 enabled."""
    with jax.enable_x64(True):
        yield
