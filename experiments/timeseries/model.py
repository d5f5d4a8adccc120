"""Forecasting models: a recurrent :class:`~seqjax.recurrent.Stack` and a linear head, wired in one
of four input/output structures. A frozen dataclass over a params pytree ``{"rnn": [...], "head": {w, b}}``.

A window has inputs ``x = series[t-L : t]`` (``(B, L, F)``, feature 0 is the target) and targets
``y = series[t : t+H]`` (``(B, H, 1)``), all z-scored. Every structure forecasts ``(B, H)``:

* ``n_to_1``: N → 1. The last step's state → ``series[t]``; needs ``horizon == 1``.
* ``n_to_n``: N → N on the inputs' clock. Step ``s`` is trained to give ``series[s+1 : s+1+H]`` (a
  denser signal: every step has a target); the forecast is the last step's ``H`` outputs.
* ``direct``: N → 1 with an ``H``-wide head: the last state → all of ``y`` at once.
* ``autoregressive``: the one-step model, teacher forced over ``series[t-L : t+H]`` (next value at
  every step). Forecast: step 1 from the last state, then a 1 → N rollout that feeds each prediction
  back as the next input (:class:`~seqjax.structures.OneToMany`, one :func:`~seqjax.recurrent.unroll`).

All train on the MSE of scaled values.

``skip`` (``n_to_1`` and ``direct`` only) adds a naive forecast, computed from the scaled inputs, to the
head's output, so the network learns a correction to it: ``last`` repeats ``x[t-1]`` (persistence),
``seasonal`` takes the value one ``period`` back (seasonal naive; needs ``lookback >= period``).

``n_to_n`` and ``autoregressive`` build their per-step targets from the window itself (the inputs'
target column followed by ``y``), so no target ever leaves the window's own span.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from seqjax.cells import CELL_NAMES, INIT_SCHEMES, MATMUL_DTYPES, make_cell
from seqjax.recurrent import Stack
from seqjax.structures import OneToMany, dense, dense_init

STRUCTURES = ("n_to_1", "n_to_n", "direct", "autoregressive")
SKIPS = ("none", "last", "seasonal")


@dataclasses.dataclass(frozen=True)
class Forecaster:
    """A recurrent forecaster; hashable, so it can be closed over by jitted functions."""

    structure: str
    horizon: int
    num_features: int = 1
    cell: str = "lstm"
    hidden: int = 32
    num_layers: int = 1
    dropout: float = 0.0
    init_scheme: str = "torch"
    forget_bias: float = 0.0
    skip: str = "none"
    period: int = 0
    matmul_dtype: str = "float32"  # float32 | bfloat16 (recurrent matmuls; see seqjax.cells.Cell)

    def __post_init__(self):
        if self.structure not in STRUCTURES:
            raise ValueError(f"unknown structure {self.structure!r}; expected one of {STRUCTURES}")
        for name in ("horizon", "num_features", "hidden", "num_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.cell not in CELL_NAMES:
            raise ValueError(f"unknown cell {self.cell!r}; expected one of {CELL_NAMES}")
        if self.matmul_dtype not in MATMUL_DTYPES:
            raise ValueError(f"unknown matmul_dtype {self.matmul_dtype!r}; expected one of {MATMUL_DTYPES}")
        if self.init_scheme not in INIT_SCHEMES:
            raise ValueError(f"unknown init {self.init_scheme!r}; expected one of {INIT_SCHEMES}")
        if self.structure == "n_to_1" and self.horizon != 1:
            raise ValueError(f"structure 'n_to_1' forecasts one step, but horizon={self.horizon}; use "
                             "'direct' (all steps from the last state), 'n_to_n' or 'autoregressive'")
        if self.skip not in SKIPS:
            raise ValueError(f"unknown skip {self.skip!r}; expected one of {SKIPS}")
        if self.skip != "none" and self.structure not in ("n_to_1", "direct"):
            raise ValueError(f"skip={self.skip!r} is for the structures 'n_to_1' and 'direct', "
                             f"not {self.structure!r}")
        if self.skip == "seasonal" and (not isinstance(self.period, int) or self.period < 1):
            raise ValueError(f"skip='seasonal' needs a period >= 1, got {self.period!r}")
        if self.structure == "autoregressive" and self.num_features != 1:
            raise ValueError("structure 'autoregressive' feeds its predictions back as the next input, so "
                             f"it needs a univariate series; this one has {self.num_features} features "
                             "(covariates have no forecast to feed back)")

    @property
    def stack(self) -> Stack:
        return Stack(make_cell(self.cell, matmul_dtype=self.matmul_dtype), self.num_layers, dropout=self.dropout)

    @property
    def head_size(self) -> int:
        return self.horizon if self.structure in ("direct", "n_to_n") else 1

    def init(self, key: jax.Array) -> dict:
        k_rnn, k_head = jax.random.split(key)
        forget_bias = self.forget_bias if self.cell == "lstm" else 0.0
        return {"rnn": self.stack.init(k_rnn, self.num_features, self.hidden, init=self.init_scheme,
                                       forget_bias=forget_bias),
                "head": dense_init(k_head, self.hidden, self.head_size)}

    # ------------------------------------------------------------------ pieces
    def _check(self, inputs, targets=None):
        if inputs.ndim != 3 or inputs.shape[-1] != self.num_features:
            raise ValueError(f"expected inputs of shape (batch, lookback, {self.num_features}), "
                             f"got {tuple(inputs.shape)}")
        if targets is not None and (targets.ndim != 3 or targets.shape[1:] != (self.horizon, 1)
                                    or targets.shape[0] != inputs.shape[0]):
            raise ValueError(f"expected targets of shape ({inputs.shape[0]}, {self.horizon}, 1), "
                             f"got {tuple(targets.shape)}")

    def naive(self, inputs) -> jax.Array:
        """The ``skip`` forecast ``(B, horizon)`` from scaled inputs (zeros for ``skip='none'``)."""
        B, L = inputs.shape[:2]
        if self.skip == "none":
            return jnp.zeros((B, self.horizon), inputs.dtype)
        if self.skip == "last":
            return jnp.broadcast_to(inputs[:, -1:, 0], (B, self.horizon))
        if L < self.period:
            raise ValueError(f"skip='seasonal' needs lookback >= period={self.period}, got lookback {L}")
        h = jnp.arange(1, self.horizon + 1)
        return inputs[:, L - 1 + h - self.period * ((h + self.period - 1) // self.period), 0]

    def _skip(self, inputs, out):
        return out if self.skip == "none" else out + self.naive(inputs)

    def _run(self, params, xs, rng=None, train=False):
        return self.stack(params["rnn"], xs, rng=rng, train=train)

    def _teacher(self, inputs, targets):
        """The window's target column end to end: ``series[t-L : t+H]``, ``(B, L+H)``."""
        return jnp.concatenate([inputs[..., 0], targets[..., 0]], axis=1)

    def rollout(self, params, carry, first: jax.Array, steps: int) -> jax.Array:
        """1 → N: from ``carry`` (after the lookback) and the step-1 forecast ``first`` ``(B, 1)``,
        predict ``steps`` more values, each fed back as the next input. Returns ``(B, steps)``."""
        gen = OneToMany(self.stack, feed="first",
                        readout=lambda p, h, _x: dense(p["head"], h),
                        feedback=lambda _p, out: out)
        _, outs = gen({"core": params["rnn"], "head": params["head"]}, first, carry, steps, start=first)
        return outs[..., 0]

    # ------------------------------------------------------------------ public
    def objective(self, params, inputs, targets, *, rng=None, train: bool = False):
        """``(prediction, target)`` of the training objective, equal shapes; MSE is taken over them."""
        self._check(inputs, targets)
        if self.structure in ("n_to_1", "direct"):
            _, ys = self._run(params, inputs, rng, train)
            return self._skip(inputs, dense(params["head"], ys[:, -1])), targets[..., 0]
        series = self._teacher(inputs, targets)
        if self.structure == "n_to_n":
            L, H = inputs.shape[1], self.horizon
            idx = jnp.arange(L)[:, None] + 1 + jnp.arange(H)[None, :]  # step s -> series[s+1 : s+1+H]
            _, ys = self._run(params, inputs, rng, train)
            return dense(params["head"], ys), series[:, idx]
        _, ys = self._run(params, series[:, :-1, None], rng, train)  # autoregressive: next value everywhere
        return dense(params["head"], ys)[..., 0], series[:, 1:]

    def forecast(self, params, inputs) -> jax.Array:
        """The ``(B, horizon)`` forecast (scaled units) from ``(B, lookback, F)`` inputs."""
        self._check(inputs)
        final, ys = self._run(params, inputs)
        out = self._skip(inputs, dense(params["head"], ys[:, -1]))  # (B, head_size)
        if self.structure != "autoregressive" or self.horizon == 1:
            return out
        return jnp.concatenate([out, self.rollout(params, final, out, self.horizon - 1)], axis=1)


def from_config(cfg_model, horizon: int, num_features: int, period: int = 0) -> Forecaster:
    """A :class:`Forecaster` from ``config.model`` (keys as in ``configs/default.py``)."""
    m = cfg_model
    return Forecaster(structure=m.structure, horizon=int(horizon), num_features=int(num_features), cell=m.cell,
                      hidden=m.hidden, num_layers=m.num_layers, dropout=float(m.dropout), init_scheme=m.init,
                      forget_bias=float(m.forget_bias), skip=m.skip, period=int(period),
                      matmul_dtype=m.matmul_dtype)
