"""Recurrent cells as pure functions over a params pytree.

A cell is a small frozen (hashable, jit-static) description with three pure functions:

    params = cell.init(key, input_size, hidden_size, init="torch")
    carry  = cell.initial_carry(batch_shape, hidden_size)
    carry, y = cell.step(params, carry, x)           # x: (..., input_size), y: (..., hidden_size)

The ``(carry, x)`` order means ``jax.lax.scan(functools.partial(cell.step, params), carry, xs)``
works unchanged; :func:`seqjax.recurrent.unroll` is that scan plus lengths, reverse and speed.

Parameters use PyTorch's layout and names, so ``torch.nn.LSTM`` weights load without surgery:
``w_ih`` is ``(G*H, I)``, ``w_hh`` is ``(G*H, H)``, ``b_ih`` and ``b_hh`` are ``(G*H,)``, with
G = 1 (RNN), 4 (LSTM) or 3 (GRU) gate blocks stacked in PyTorch's order. A params dict without
the two biases is a cell without biases (``torch.nn.LSTM(..., bias=False)``).

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

Linear-recurrence cells. Their gates read only the input, so the whole input projection
``u = W_ih x + b_ih`` (``w_ih`` ``(G*H, I)``, ``b_ih`` ``(G*H,)``; no ``w_hh``, no ``b_hh``) is
computed for all steps at once, and what remains is the elementwise recurrence
``h' = a ⊙ h + b`` of :mod:`seqjax.scan`, evaluated as ``scan`` says (``auto``, ``sequential``,
``chunked``, ``associative``). ``step`` is the same recurrence one step at a time, for decoding.

minGRU (Feng et al. 2024, "Were RNNs All We Needed?"), gate blocks (z, h̃)::

    z = σ(u_z)        h' = (1 − z) ⊙ h + z ⊙ u_h̃

minLSTM (same paper), gate blocks (f, i, h̃), the two gates normalised to sum to one::

    f = σ(u_f)   i = σ(u_i)   h' = f/(f+i) ⊙ h + i/(f+i) ⊙ u_h̃

computed as ``f/(f+i) = σ(log f − log i)`` with ``log σ(u) = −softplus(−u)``, so that two
saturated gates give no 0/0.

RG-LRU (De et al. 2024, Griffin), gate blocks (r, i, v), and ``a_param`` ``(H,)`` (Λ)::

    r = σ(u_r)   i = σ(u_i)   log a = −c r softplus(−Λ)   (a = σ(Λ)^(c r), c = 8)
    h' = a ⊙ h + sqrt(1 − a²) ⊙ (i ⊙ u_v)

Griffin feeds the RG-LRU a width-H input from a linear layer in front of it; here that layer is the
third block (``u_v``), so input and hidden sizes may differ. ``Λ`` starts so that ``a^c`` is
uniform in [0.9, 0.999], as in the paper. ``1 − a²`` is computed as ``−expm1(2 log a)``.

Initialisation of these cells: ``torch`` draws ``w_ih`` and ``b_ih`` from U(±1/√I), as
``torch.nn.Linear(I, G*H)`` does; ``xavier_orthogonal`` and ``he_orthogonal`` draw ``w_ih`` as for
the classic cells (there is no recurrent matrix to make orthogonal) with zero biases.

The fused rule. A cell whose gates are a function of one pre-activation
``a = W_ih x + b_ih + W_hh h + b_hh`` (the RNN and the LSTM) writes that function once, as
:meth:`Cell.gates`, and its derivative once, as :meth:`Cell.gates_bwd`. ``step`` is the two
matmuls followed by ``gates``; the fused time loop of :mod:`seqjax._fast` does the matmuls its own
way (one ``[x, h] @ [W_ih, W_hh]^T`` per step, weight gradients over many steps at once) and calls
the same two methods for everything else.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from seqjax.scan import SCAN_CHOICES

Params = dict[str, jax.Array]

CELL_NAMES = ("rnn", "rnn_tanh", "rnn_relu", "lstm", "gru", "gru_cho", "mingru", "minlstm", "rglru")
LINEAR_KINDS = ("mingru", "minlstm", "rglru")  # gates read the input only: h' = a ⊙ h + b
KINDS = ("rnn", "lstm", "gru", *LINEAR_KINDS)
RGLRU_C = 8.0  # the RG-LRU's fixed exponent scale c
INIT_SCHEMES = ("torch", "xavier_orthogonal", "he_orthogonal")
MATMUL_DTYPES = ("float32", "bfloat16")
_WEIGHTS = ("w_ih", "w_hh")
_BIASES = ("b_ih", "b_hh")


class LSTMCarry(NamedTuple):
    """LSTM state: hidden ``h`` and cell ``c``, each ``(..., hidden)``."""

    h: jax.Array
    c: jax.Array


def matmul_dtype_name(value) -> str | None:
    """The one spelling of a ``matmul_dtype``: ``None`` (full precision) or ``"bfloat16"``.

    Accepts ``None``, ``"float32"``, ``"bfloat16"`` and the dtype objects (``jnp.bfloat16``)."""
    if value is None:
        return None
    try:
        name = jnp.dtype(value).name
    except TypeError:
        name = None
    if name not in MATMUL_DTYPES:
        shown = value if isinstance(value, str) else getattr(value, "__name__", value)
        raise ValueError(f"unknown matmul_dtype {shown!r}; expected one of {MATMUL_DTYPES}")
    return None if name == "float32" else name


def mixed_dot(a, b, dims, dtype: str | None = None):
    """``lax.dot_general(a, b, dims)``. With ``dtype`` (``"bfloat16"``), both operands are rounded
    to it and the products summed in their own (float32) precision: bfloat16 matmul units, float32
    result. ``None`` keeps the operands' own precision."""
    if dtype is None:
        return lax.dot_general(a, b, dims)
    out = jnp.result_type(a.dtype, b.dtype)
    return lax.dot_general(a.astype(dtype), b.astype(dtype), dims, preferred_element_type=out)


def matmul(a, w, dtype: str | None = None):
    """``a @ w.T`` for ``a`` ``(..., in)`` and ``w`` ``(out, in)``, without materialising ``w.T``;
    ``dtype`` as in :func:`mixed_dot`."""
    return mixed_dot(a, w, (((a.ndim - 1,), (w.ndim - 1,)), ((), ())), dtype)


def affine(x, w, b=None, dtype: str | None = None):
    """``x @ w.T + b`` for any leading shape of ``x``, the bias broadcast explicitly (``b`` may be
    ``None``: no bias)."""
    y = matmul(x, w, dtype)
    return y if b is None else y + b.reshape((1,) * (y.ndim - 1) + b.shape)


def _shape(a) -> tuple:
    return tuple(getattr(a, "shape", ()))


@jax.tree_util.register_static  # passes through jit/vmap as a static value
@dataclasses.dataclass(frozen=True)
class Cell:
    """One recurrent cell kind. Build it with :func:`make_cell` or use the module constants."""

    kind: str  # "rnn" | "lstm" | "gru" | "mingru" | "minlstm" | "rglru"
    activation: str = "tanh"  # rnn only: "tanh" | "relu"
    variant: str = "torch"  # gru only: "torch" | "cho"
    # "bfloat16" (or jnp.bfloat16): matmul operands rounded to bfloat16, products summed in
    # float32; gates, state and parameters keep their dtype (mixed precision). None: full precision.
    matmul_dtype: str | None = None
    # linear-recurrence cells only: how unroll evaluates h' = a ⊙ h + b over a sequence
    # ("auto" picks per backend, seqjax.scan.default_method)
    scan: str = "auto"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown cell kind {self.kind!r}; expected one of {', '.join(map(repr, KINDS))}")
        if self.activation not in ("tanh", "relu"):
            raise ValueError(f"unknown RNN activation {self.activation!r}; expected 'tanh' or 'relu'")
        if self.variant not in ("torch", "cho"):
            raise ValueError(f"unknown GRU variant {self.variant!r}; expected 'torch' or 'cho'")
        if self.scan not in SCAN_CHOICES:
            raise ValueError(f"unknown scan {self.scan!r}; expected one of {SCAN_CHOICES}")
        if self.scan != "auto" and not self.is_linear:
            raise ValueError(f"scan={self.scan!r} applies to the linear-recurrence cells ({', '.join(LINEAR_KINDS)}), "
                             f"not {self.name}")
        # one spelling per precision, so that equal cells hash alike (one jit cache entry)
        object.__setattr__(self, "matmul_dtype", matmul_dtype_name(self.matmul_dtype))

    # ---------------------------------------------------------------- shapes
    @property
    def num_gates(self) -> int:
        return {"rnn": 1, "lstm": 4, "gru": 3, "mingru": 2, "minlstm": 3, "rglru": 3}[self.kind]

    @property
    def is_linear(self) -> bool:
        """Whether the gates read only the input, leaving ``h' = a ⊙ h + b`` (minGRU, minLSTM, RG-LRU)."""
        return self.kind in LINEAR_KINDS

    @property
    def name(self) -> str:
        if self.kind == "rnn":
            return f"rnn_{self.activation}"
        if self.kind == "gru" and self.variant == "cho":
            return "gru_cho"
        return self.kind

    @property
    def has_fused_rule(self) -> bool:
        """Whether :meth:`gates` / :meth:`gates_bwd` exist, i.e. the gates are a function of one
        summed pre-activation (RNN, LSTM; not the GRU, whose reset gate splits ``W_hn h``)."""
        return self.kind in ("rnn", "lstm")

    def sizes(self, params: Params) -> tuple[int, int]:
        """``(input_size, hidden_size)`` read off a params dict, with a clear error if malformed."""
        if self.is_linear:
            return self._linear_sizes(params)
        if not isinstance(params, dict) or any(k not in params for k in _WEIGHTS):
            got = sorted(params) if isinstance(params, dict) else type(params).__name__
            raise ValueError(f"{self.name} params must be a dict with 'w_ih', 'w_hh' (and 'b_ih', 'b_hh' "
                             f"unless the cell has no biases); got {got}")
        has = [k in params for k in _BIASES]
        if any(has) and not all(has):
            missing = [k for k, h in zip(_BIASES, has, strict=True) if not h][0]
            raise ValueError(f"{self.name} params have {_BIASES[has.index(True)]!r} but not {missing!r}: give "
                             f"both biases, or neither for a cell without biases; got {sorted(params)}")
        w_ih, w_hh = _shape(params["w_ih"]), _shape(params["w_hh"])
        G = self.num_gates
        if len(w_hh) != 2 or len(w_ih) != 2 or w_hh[0] != G * w_hh[1] or w_ih[0] != w_hh[0]:
            raise ValueError(f"{self.name} expects w_hh of shape ({G}*H, H) and w_ih of shape ({G}*H, I); "
                             f"got w_hh {w_hh}, w_ih {w_ih}")
        for k in _BIASES:
            if k in params and _shape(params[k]) != (w_hh[0],):
                raise ValueError(f"{self.name} expects {k} of shape ({G}*H,) = ({w_hh[0]},), got {_shape(params[k])}")
        return w_ih[1], w_hh[1]

    def _linear_sizes(self, params: Params) -> tuple[int, int]:
        G = self.num_gates
        needed = ("w_ih", "a_param") if self.kind == "rglru" else ("w_ih",)
        allowed = {*needed, "b_ih"}
        if not isinstance(params, dict) or any(k not in params for k in needed) or set(params) - allowed:
            got = sorted(params) if isinstance(params, dict) else type(params).__name__
            raise ValueError(f"{self.name} params must be a dict with {', '.join(map(repr, needed))} (and 'b_ih' "
                             f"unless the cell has no bias); got {got}")
        w_ih = _shape(params["w_ih"])
        if len(w_ih) != 2 or w_ih[0] % G or w_ih[0] == 0:
            raise ValueError(f"{self.name} expects w_ih of shape ({G}*H, I); got {w_ih}")
        H = w_ih[0] // G
        want = {"b_ih": (G * H,), "a_param": (H,)}
        for k, shape in want.items():
            if k in params and _shape(params[k]) != shape:
                raise ValueError(f"{self.name} expects {k} of shape {shape} (hidden size {H}), got {_shape(params[k])}")
        return w_ih[1], H

    # ------------------------------------------------------------------ init
    def init(self, key: jax.Array, input_size: int, hidden_size: int, *, init: str = "torch",
             forget_bias: float = 0.0, bias: bool = True, dtype: Any = jnp.float32) -> Params:
        """Initial parameters under a named scheme.

        ``torch``: every weight and bias ~ U(−1/√H, 1/√H), as ``torch.nn.LSTM`` does.
        ``xavier_orthogonal``: each gate block of ``w_ih`` ~ Xavier-uniform U(±√(6/(I+H))),
        each H×H block of ``w_hh`` orthogonal, biases zero.
        ``he_orthogonal``: as above but ``w_ih`` blocks ~ N(0, 2/I) (He), for relu RNNs.
        ``forget_bias`` (LSTM only) is added to the forget-gate block of ``b_ih``; 1.0 is a common
        choice that keeps the cell state flowing early in training. ``bias=False`` leaves out
        ``b_ih`` and ``b_hh``, like ``torch.nn.LSTM(..., bias=False)``.
        """
        if init not in INIT_SCHEMES:
            raise ValueError(f"unknown initializer {init!r}; expected one of {INIT_SCHEMES}")
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(f"input_size and hidden_size must be positive, got {input_size} and {hidden_size}")
        if forget_bias and self.kind != "lstm":
            raise ValueError(f"forget_bias applies to LSTM only, got forget_bias={forget_bias} for {self.name}")
        if forget_bias and not bias:
            raise ValueError(f"forget_bias={forget_bias} needs the biases; got bias=False")
        G, H, I = self.num_gates, hidden_size, input_size
        k_ih, k_hh, k_bi, k_bh = jax.random.split(key, 4)
        if self.is_linear:
            return self._linear_init(k_ih, k_bi, k_hh, I, H, init, bias, dtype)
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
        if not bias:
            del params["b_ih"], params["b_hh"]
        return params

    def _linear_init(self, k_w, k_b, k_a, I, H, init, bias, dtype) -> Params:
        G = self.num_gates
        if init == "torch":  # as torch.nn.Linear(I, G*H)
            bound = 1.0 / math.sqrt(I)
            params = {"w_ih": jax.random.uniform(k_w, (G * H, I), dtype, -bound, bound),
                      "b_ih": jax.random.uniform(k_b, (G * H,), dtype, -bound, bound)}
        else:
            if init == "xavier_orthogonal":
                lim = math.sqrt(6.0 / (I + H))
                w = jax.random.uniform(k_w, (G * H, I), dtype, -lim, lim)
            else:
                w = jax.random.normal(k_w, (G * H, I), dtype) * math.sqrt(2.0 / I)
            params = {"w_ih": w, "b_ih": jnp.zeros((G * H,), dtype)}
        if self.kind == "rglru":
            # a^c uniform in [0.9, 0.999]; a_param is its logit: log a - log(1 - a)
            a = jax.random.uniform(k_a, (H,), jnp.float32, 0.9, 0.999) ** (1.0 / RGLRU_C)
            params["a_param"] = (jnp.log(a) - jnp.log1p(-a)).astype(dtype)
        if not bias:
            del params["b_ih"]
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

    def _as_carry(self, carry):
        """An LSTM carry given as a plain ``(h, c)`` pair becomes an :class:`LSTMCarry`."""
        if self.kind == "lstm" and not isinstance(carry, LSTMCarry):
            if not (isinstance(carry, (tuple, list)) and len(carry) == 2):
                raise ValueError(f"an lstm carry is a pair (h, c); got {type(carry).__name__}")
            carry = LSTMCarry(*carry)
        return carry

    # ------------------------------------------------------------------ step
    def project_input(self, params: Params, x: jax.Array) -> jax.Array:
        """``W_ih x + b_ih`` for any leading shape; :func:`unroll` may hoist this out of the time loop."""
        return affine(x, params["w_ih"], params.get("b_ih"), self.matmul_dtype)

    def step(self, params: Params, carry, x: jax.Array):
        """One timestep: ``(carry, x) -> (carry', y)`` with ``y = h'``."""
        input_size, hidden = self.sizes(params)
        carry = self._as_carry(carry)
        if _shape(x)[-1:] != (input_size,):
            raise ValueError(f"{self.name} params take {input_size} input features; got x of shape {_shape(x)}")
        h = self.carry_hidden(carry)
        if _shape(h)[-1:] != (hidden,):
            raise ValueError(f"{self.name} params have hidden size {hidden}; got a carry of shape {_shape(h)}")
        return self.step_projected(params, carry, self.project_input(params, x))

    def step_projected(self, params: Params, carry, gx: jax.Array):
        """One timestep from an already projected input ``gx = W_ih x + b_ih``."""
        if self.is_linear:
            a, b = self.coefficients(params, gx)
            h = a * carry + b
            return h, h
        w_hh, b_hh, mm = params["w_hh"], params.get("b_hh"), self.matmul_dtype
        carry = self._as_carry(carry)
        h = self.carry_hidden(carry)
        if self.has_fused_rule:
            new, y, _ = self.gates(carry, gx + affine(h, w_hh, b_hh, mm))
            return new, y
        H = h.shape[-1]
        x_r, x_z, x_n = jnp.split(gx, 3, axis=-1)
        if self.variant == "torch":
            h_r, h_z, h_n = jnp.split(affine(h, w_hh, b_hh, mm), 3, axis=-1)
            r = jax.nn.sigmoid(x_r + h_r)
            z = jax.nn.sigmoid(x_z + h_z)
            n = jnp.tanh(x_n + r * h_n)
        else:
            b_rz, b_n = (None, None) if b_hh is None else (b_hh[: 2 * H], b_hh[2 * H:])
            h_r, h_z = jnp.split(affine(h, w_hh[: 2 * H], b_rz, mm), 2, axis=-1)
            r = jax.nn.sigmoid(x_r + h_r)
            z = jax.nn.sigmoid(x_z + h_z)
            n = jnp.tanh(x_n + affine(r * h, w_hh[2 * H:], b_n, mm))
        h = (1.0 - z) * n + z * h
        return h, h

    # --------------------------------------------------- linear recurrence
    def coefficients(self, params: Params, gx: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(a, b)`` of ``h' = a ⊙ h + b`` from the projected input ``gx = W_ih x + b_ih``
        ``(..., G*H)``, for any leading shape (linear-recurrence cells)."""
        if not self.is_linear:
            raise ValueError(f"{self.name} is not a linear-recurrence cell: its gates read h")
        if self.kind == "mingru":
            u_z, u_h = jnp.split(gx, 2, axis=-1)
            z = jax.nn.sigmoid(u_z)
            return 1.0 - z, z * u_h
        if self.kind == "minlstm":
            u_f, u_i, u_h = jnp.split(gx, 3, axis=-1)
            # f/(f+i) = sigmoid(log f - log i), log sigmoid(u) = -softplus(-u)
            a = jax.nn.sigmoid(jax.nn.softplus(-u_i) - jax.nn.softplus(-u_f))
            return a, (1.0 - a) * u_h
        u_r, u_i, u_v = jnp.split(gx, 3, axis=-1)
        lam = params["a_param"].astype(gx.dtype)
        log_a = -RGLRU_C * jax.nn.sigmoid(u_r) * jax.nn.softplus(-lam).reshape((1,) * (gx.ndim - 1) + lam.shape)
        a = jnp.exp(log_a)
        # sqrt(1 - a^2), its argument kept off zero so that the derivative stays finite
        tiny = jnp.finfo(gx.dtype).tiny
        scale = jnp.sqrt(jnp.maximum(-jnp.expm1(2.0 * log_a), tiny))
        return a, scale * (jax.nn.sigmoid(u_i) * u_v)

    # ------------------------------------------------------------ fused rule
    @staticmethod
    def carry_state(carry):
        """The part of a carry besides ``h``: the LSTM's ``c``, ``None`` for the others."""
        return carry.c if isinstance(carry, LSTMCarry) else None

    def gates(self, carry, pre: jax.Array):
        """The gates from the summed pre-activation ``pre = W_ih x + b_ih + W_hh h + b_hh``
        (RNN and LSTM). Returns ``(carry', y, saved)``, where ``saved = (residuals,
        carry_state(carry))`` is what :meth:`gates_bwd` needs of this step besides ``y``: the
        LSTM's activated gates and old ``c``; nothing for the RNN."""
        if self.kind == "rnn":
            h = jnp.tanh(pre) if self.activation == "tanh" else jax.nn.relu(pre)
            return h, h, (None, None)
        if self.kind != "lstm":
            raise ValueError(f"{self.name} has no fused rule: its gates are not a function of one pre-activation")
        H = pre.shape[-1] // 4
        # all four gates in one elementwise pass: sigmoid(a) = (1 + tanh(a / 2)) / 2
        is_g = _g_block(pre.shape, H)
        t = jnp.tanh(jnp.where(is_g, pre, 0.5 * pre))
        acts = jnp.where(is_g, t, 0.5 * t + 0.5)
        i, f, g, o = jnp.split(acts, 4, axis=-1)
        c = f * carry.c + i * g
        h = o * jnp.tanh(c)
        return LSTMCarry(h, c), h, (acts, carry.c)

    def gates_bwd(self, saved, y, state, d_carry, dy, recurrent: Callable[[jax.Array], jax.Array]):
        """The derivative of :meth:`gates`. ``y`` and ``state`` (``carry_state(carry')``) are what
        the step produced; ``d_carry`` and ``dy`` are the gradients of ``carry'`` and ``y``.
        Returns ``(d_pre, d_carry_old)``. ``recurrent(d_pre)`` is ``d_pre @ W_hh``, the part of the
        old ``h``'s gradient that goes through the recurrent matmul; the caller owns that matmul.
        A backward sweep gets the ``state`` of the step before from ``saved[1]``."""
        if self.kind == "rnn":
            dh = d_carry + dy
            d_pre = dh * (1 - y * y) if self.activation == "tanh" else jnp.where(y > 0, dh, 0.0)
            return d_pre, recurrent(d_pre)
        acts, c_prev = saved
        H = acts.shape[-1] // 4
        i, f, g, o = jnp.split(acts, 4, axis=-1)
        tc = jnp.tanh(state)
        dh = d_carry.h + dy
        dc = d_carry.c + dh * o * (1 - tc * tc)
        # one elementwise pass: d sigmoid = a (1 - a), d tanh = 1 - a^2
        deriv = jnp.where(_g_block(acts.shape, H), 1 - acts * acts, acts * (1 - acts))
        d_pre = jnp.concatenate([dc, dc, dc, dh], axis=-1) * jnp.concatenate([g, c_prev, i, tc], axis=-1) * deriv
        return d_pre, LSTMCarry(recurrent(d_pre), dc * f)


def _g_block(shape, H):
    """True on the LSTM's ``g`` gate block (columns 2H..3H) of a ``(..., 4H)`` array."""
    col = lax.broadcasted_iota(jnp.int32, shape, len(shape) - 1)
    return (col >= 2 * H) & (col < 3 * H)


rnn_tanh = Cell("rnn", activation="tanh")
rnn_relu = Cell("rnn", activation="relu")
lstm = Cell("lstm")
gru = Cell("gru")
gru_cho = Cell("gru", variant="cho")
mingru = Cell("mingru")
minlstm = Cell("minlstm")
rglru = Cell("rglru")

_BY_NAME = {"rnn": rnn_tanh, "rnn_tanh": rnn_tanh, "rnn_relu": rnn_relu, "lstm": lstm, "gru": gru,
            "gru_cho": gru_cho, "mingru": mingru, "minlstm": minlstm, "rglru": rglru}


def make_cell(name: str | Cell, *, matmul_dtype: Any = None, scan: str | None = None) -> Cell:
    """A cell by name: ``rnn`` (= ``rnn_tanh``), ``rnn_relu``, ``lstm``, ``gru``, ``gru_cho``,
    ``mingru``, ``minlstm`` or ``rglru``.

    ``matmul_dtype="bfloat16"`` (or ``jnp.bfloat16``) gives its mixed-precision form (see :class:`Cell`).
    ``scan`` (linear-recurrence cells) picks the evaluation over time: ``auto``, ``sequential``,
    ``chunked`` or ``associative`` (:mod:`seqjax.scan`); ``None`` keeps the cell's own."""
    if isinstance(name, Cell):
        cell = name
    else:
        try:
            cell = _BY_NAME[str(name).lower()]
        except KeyError:
            raise ValueError(f"unknown cell {name!r}; expected one of {CELL_NAMES}") from None
    if matmul_dtype is not None:
        cell = dataclasses.replace(cell, matmul_dtype=matmul_dtype)
    if scan is not None and scan != cell.scan:
        if scan != "auto" and not cell.is_linear:
            raise ValueError(f"scan={scan!r} applies to the linear-recurrence cells ({', '.join(LINEAR_KINDS)}), "
                             f"not {cell.name}")
        cell = dataclasses.replace(cell, scan=scan)
    return cell
