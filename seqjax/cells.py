"""Recurrent cells as pure functions over a params pytree.

A cell is a small frozen (hashable, jit-static) description with three pure functions:

    params = cell.init(key, input_size, hidden_size, init="torch")
    carry  = cell.initial_carry(batch_shape, hidden_size)
    carry, y = cell.step(params, carry, x)           # x: (..., input_size), y: (..., hidden_size)

The ``(carry, x)`` order means ``jax.lax.scan(functools.partial(cell.step, params), carry, xs)``
works unchanged; :func:`seqjax.recurrent.unroll` is that scan plus lengths, reverse and speed.

Parameters use PyTorch's layout and names, so ``torch.nn.LSTM`` weights load without surgery:
``w_ih`` is ``(G*H, I)``, ``w_hh`` is ``(G*H, H)``, ``b_ih`` and ``b_hh`` are ``(G*H,)``, with
G = 1 (RNN), 4 (LSTM) or 3 (GRU) gate blocks stacked in PyTorch's order.

Equations (σ is the logistic sigmoid, ⊙ the elementwise product):

RNN (``activation`` tanh or relu)::

    h' = act(W_ih x + b_ih + W_hh h + b_hh)

LSTM, gate blocks (i, f, g, o)::

    i = σ(W_ii x + b_ii + W_hi h + b_hi)      f = σ(W_if x + b_if + W_hf h + b_hf)
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)   o = σ(W_io x + b_io + W_ho h + b_ho)
    c' = f ⊙ c + i ⊙ g                        h' = o ⊙ tanh(c')

GRU, gate blocks (r, z, n). ``variant="torch"`` (cuDNN / PyTorch) applies the reset gate after the
recurrent matmul::

    r = σ(W_ir x + b_ir + W_hr h + b_hr)      z = σ(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
    h' = (1 − z) ⊙ n + z ⊙ h

``variant="cho"`` (Cho et al. 2014, as the source articles write it) applies it before::

    n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn)

Both variants keep PyTorch's meaning of z (z = 1 keeps the old state); the articles' z is 1 − z.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Params = dict[str, jax.Array]

CELL_NAMES = ("rnn", "rnn_tanh", "rnn_relu", "lstm", "gru", "gru_cho")
INIT_SCHEMES = ("torch", "xavier_orthogonal", "he_orthogonal")


class LSTMCarry(NamedTuple):
    """LSTM state: hidden ``h`` and cell ``c``, each ``(..., hidden)``."""

    h: jax.Array
    c: jax.Array


def _sigmoid(x):
    return jax.nn.sigmoid(x)


MATMUL_DTYPES = ("float32", "bfloat16")


def mixed_dot(a, b, dims, dtype: str | None = None):
    """``lax.dot_general(a, b, dims)``. With ``dtype`` (``"bfloat16"``), both operands are rounded
    to it and the products summed in their own (float32) precision: bfloat16 matmul units, float32
    result. ``None`` or ``"float32"`` keeps the operands' own precision."""
    if dtype is None or dtype == "float32":
        return jax.lax.dot_general(a, b, dims)
    out = jnp.result_type(a.dtype, b.dtype)
    return jax.lax.dot_general(a.astype(dtype), b.astype(dtype), dims, preferred_element_type=out)


def matmul(a, w, dtype: str | None = None):
    """``a @ w.T`` for ``a`` ``(..., in)`` and ``w`` ``(out, in)``, without materialising ``w.T``;
    ``dtype`` as in :func:`mixed_dot`."""
    return mixed_dot(a, w, (((a.ndim - 1,), (w.ndim - 1,)), ((), ())), dtype)


def _affine(x, w, b, dtype=None):
    """``x @ w.T + b`` for any leading shape of ``x``, with the bias broadcast explicitly."""
    y = matmul(x, w, dtype)
    return y + b.reshape((1,) * (y.ndim - 1) + b.shape)


@jax.tree_util.register_static  # passes through jit/vmap as a static value
@dataclasses.dataclass(frozen=True)
class Cell:
    """One recurrent cell kind. Build it with :func:`make_cell` or use the module constants."""

    kind: str  # "rnn" | "lstm" | "gru"
    activation: str = "tanh"  # rnn only: "tanh" | "relu"
    variant: str = "torch"  # gru only: "torch" | "cho"
    # "bfloat16": matmul operands rounded to bfloat16, products summed in float32; gates, state
    # and parameters stay float32 (mixed precision). None: full precision.
    matmul_dtype: str | None = None

    def __post_init__(self):
        if self.kind not in ("rnn", "lstm", "gru"):
            raise ValueError(f"unknown cell kind {self.kind!r}; expected one of 'rnn', 'lstm', 'gru'")
        if self.activation not in ("tanh", "relu"):
            raise ValueError(f"unknown RNN activation {self.activation!r}; expected 'tanh' or 'relu'")
        if self.variant not in ("torch", "cho"):
            raise ValueError(f"unknown GRU variant {self.variant!r}; expected 'torch' or 'cho'")
        if self.matmul_dtype == "float32":
            object.__setattr__(self, "matmul_dtype", None)  # one spelling, one jit cache entry
        if self.matmul_dtype not in (None, "bfloat16"):
            raise ValueError(f"unknown matmul_dtype {self.matmul_dtype!r}; expected one of {MATMUL_DTYPES}")

    # ---------------------------------------------------------------- shapes
    @property
    def num_gates(self) -> int:
        return {"rnn": 1, "lstm": 4, "gru": 3}[self.kind]

    @property
    def name(self) -> str:
        if self.kind == "rnn":
            return f"rnn_{self.activation}"
        if self.kind == "gru" and self.variant == "cho":
            return "gru_cho"
        return self.kind

    @property
    def torch_mode(self) -> str:
        """The ``mode`` string of ``torch.nn.RNNBase`` for this cell."""
        return {"rnn": f"RNN_{self.activation.upper()}", "lstm": "LSTM", "gru": "GRU"}[self.kind]

    def sizes(self, params: Params) -> tuple[int, int]:
        """``(input_size, hidden_size)`` read off a params dict, with a clear error if malformed."""
        try:
            w_ih, w_hh = params["w_ih"], params["w_hh"]
        except (KeyError, TypeError) as e:
            got = sorted(params) if isinstance(params, dict) else type(params).__name__
            raise ValueError(f"{self.name} params must be a dict with 'w_ih', 'w_hh', 'b_ih', 'b_hh'; "
                             f"got {got}") from e
        hidden = w_hh.shape[-1]
        if w_hh.shape != (self.num_gates * hidden, hidden) or w_ih.shape[0] != self.num_gates * hidden:
            raise ValueError(f"{self.name} expects w_hh of shape ({self.num_gates}*H, H) and w_ih of shape "
                             f"({self.num_gates}*H, I); got w_hh {tuple(w_hh.shape)}, w_ih {tuple(w_ih.shape)}")
        return w_ih.shape[1], hidden

    # ------------------------------------------------------------------ init
    def init(self, key: jax.Array, input_size: int, hidden_size: int, *, init: str = "torch",
             forget_bias: float = 0.0, dtype: Any = jnp.float32) -> Params:
        """Initial parameters under a named scheme.

        ``torch``: every weight and bias ~ U(−1/√H, 1/√H), as ``torch.nn.LSTM`` does.
        ``xavier_orthogonal``: each gate block of ``w_ih`` ~ Xavier-uniform U(±√(6/(I+H))),
        each H×H block of ``w_hh`` orthogonal, biases zero.
        ``he_orthogonal``: as above but ``w_ih`` blocks ~ N(0, 2/I) (He), for relu RNNs.
        ``forget_bias`` (LSTM only) is added to the forget-gate block of ``b_ih``; 1.0 is a common
        choice that keeps the cell state flowing early in training.
        """
        if init not in INIT_SCHEMES:
            raise ValueError(f"unknown initializer {init!r}; expected one of {INIT_SCHEMES}")
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(f"input_size and hidden_size must be positive, got {input_size} and {hidden_size}")
        if forget_bias and self.kind != "lstm":
            raise ValueError(f"forget_bias applies to LSTM only, got forget_bias={forget_bias} for {self.name}")
        G, H, I = self.num_gates, hidden_size, input_size
        k_ih, k_hh, k_bi, k_bh = jax.random.split(key, 4)
        if init == "torch":
            bound = 1.0 / math.sqrt(H)
            u = lambda k, shape: jax.random.uniform(k, shape, dtype, -bound, bound)
            params = {"w_ih": u(k_ih, (G * H, I)), "w_hh": u(k_hh, (G * H, H)),
                      "b_ih": u(k_bi, (G * H,)), "b_hh": u(k_bh, (G * H,))}
        else:
            if init == "xavier_orthogonal":
                lim = math.sqrt(6.0 / (I + H))
                w_ih = jax.random.uniform(k_ih, (G, H, I), dtype, -lim, lim)
            else:
                w_ih = jax.random.normal(k_ih, (G, H, I), dtype) * math.sqrt(2.0 / I)
            ortho = jax.nn.initializers.orthogonal()
            w_hh = jnp.stack([ortho(k, (H, H), dtype) for k in jax.random.split(k_hh, G)])
            params = {"w_ih": w_ih.reshape(G * H, I), "w_hh": w_hh.reshape(G * H, H),
                      "b_ih": jnp.zeros((G * H,), dtype), "b_hh": jnp.zeros((G * H,), dtype)}
        if forget_bias:
            params["b_ih"] = params["b_ih"].at[H:2 * H].add(forget_bias)
        return params

    def initial_carry(self, batch_shape: tuple[int, ...] | int, hidden_size: int, dtype: Any = jnp.float32):
        """Zero state: an ``(*batch_shape, H)`` array, or an :class:`LSTMCarry` of two for the LSTM."""
        if isinstance(batch_shape, int):
            batch_shape = (batch_shape,)
        z = jnp.zeros((*batch_shape, hidden_size), dtype)
        return LSTMCarry(z, z) if self.kind == "lstm" else z

    @staticmethod
    def carry_hidden(carry) -> jax.Array:
        """The hidden state ``h`` of a carry (the carry itself for RNN and GRU)."""
        return carry.h if isinstance(carry, LSTMCarry) else carry

    # ------------------------------------------------------------------ step
    def project_input(self, params: Params, x: jax.Array) -> jax.Array:
        """``W_ih x + b_ih`` for any leading shape; :func:`unroll` may hoist this out of the time loop."""
        return _affine(x, params["w_ih"], params["b_ih"], self.matmul_dtype)

    def step(self, params: Params, carry, x: jax.Array):
        """One timestep: ``(carry, x) -> (carry', y)`` with ``y = h'``."""
        return self.step_projected(params, carry, self.project_input(params, x))

    def step_projected(self, params: Params, carry, gx: jax.Array):
        """One timestep from an already projected input ``gx = W_ih x + b_ih``."""
        w_hh, b_hh = params["w_hh"], params["b_hh"]
        affine = functools.partial(_affine, dtype=self.matmul_dtype)
        if self.kind == "lstm":
            h, c = carry
            gates = gx + affine(h, w_hh, b_hh)
            i, f, g, o = jnp.split(gates, 4, axis=-1)
            c = _sigmoid(f) * c + _sigmoid(i) * jnp.tanh(g)
            h = _sigmoid(o) * jnp.tanh(c)
            return LSTMCarry(h, c), h
        h = carry
        if self.kind == "rnn":
            pre = gx + affine(h, w_hh, b_hh)
            h = jnp.tanh(pre) if self.activation == "tanh" else jax.nn.relu(pre)
            return h, h
        H = h.shape[-1]
        x_r, x_z, x_n = jnp.split(gx, 3, axis=-1)
        if self.variant == "torch":
            h_r, h_z, h_n = jnp.split(affine(h, w_hh, b_hh), 3, axis=-1)
            r = _sigmoid(x_r + h_r)
            z = _sigmoid(x_z + h_z)
            n = jnp.tanh(x_n + r * h_n)
        else:
            h_r, h_z = jnp.split(affine(h, w_hh[: 2 * H], b_hh[: 2 * H]), 2, axis=-1)
            r = _sigmoid(x_r + h_r)
            z = _sigmoid(x_z + h_z)
            n = jnp.tanh(x_n + affine(r * h, w_hh[2 * H:], b_hh[2 * H:]))
        h = (1.0 - z) * n + z * h
        return h, h


rnn_tanh = Cell("rnn", activation="tanh")
rnn_relu = Cell("rnn", activation="relu")
lstm = Cell("lstm")
gru = Cell("gru")
gru_cho = Cell("gru", variant="cho")

_BY_NAME = {"rnn": rnn_tanh, "rnn_tanh": rnn_tanh, "rnn_relu": rnn_relu, "lstm": lstm, "gru": gru,
            "gru_cho": gru_cho}


def make_cell(name: str | Cell, *, matmul_dtype: str | None = None) -> Cell:
    """A cell by name: ``rnn`` (= ``rnn_tanh``), ``rnn_relu``, ``lstm``, ``gru`` or ``gru_cho``.

    ``matmul_dtype="bfloat16"`` gives its mixed-precision form (see :class:`Cell`)."""
    if isinstance(name, Cell):
        cell = name
    else:
        try:
            cell = _BY_NAME[str(name).lower()]
        except KeyError:
            raise ValueError(f"unknown cell {name!r}; expected one of {CELL_NAMES}") from None
    if matmul_dtype is not None:
        cell = dataclasses.replace(cell, matmul_dtype=matmul_dtype)
    return cell


def num_params(params) -> int:
    """Total number of scalars in a params pytree."""
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
