"""The LSTM on cuDNN, through ``jax.experimental.rnn``, for seqjax's torch-layout parameters.

    stack = seqjax.Stack("lstm", num_layers=2, bidirectional=True, cudnn=True)   # or nn.LSTM(..., cudnn=True)
    final, ys = stack(params, xs, lengths=lengths)      # the same params, outputs and states as cudnn=False

On a CUDA GPU, ``jax.experimental.rnn.lstm`` runs a whole multi-layer, optionally bidirectional
LSTM as one cuDNN call, forward and backward. It takes one flat weight vector in cuDNN's packed
layout; :func:`pack` builds it from a :class:`~seqjax.recurrent.Stack`'s params (and
:func:`unpack` goes back). Each direction of each layer is a *pseudo-layer*, ordered layer by layer
with the forward direction first (``fwd0, bwd0, fwd1, bwd1, ...``); the vector holds every
pseudo-layer's ``W_ih`` then ``W_hh`` (row-major, gate blocks i, f, g, o as in PyTorch and seqjax),
followed by every pseudo-layer's ``b_ih`` then ``b_hh``. ``lengths`` becomes cuDNN's
``seq_lengths``; outputs at padded steps are zero and the reverse direction starts at each
sequence's last real step, as in seqjax.

What the cuDNN path does not do, and says so: dropout between layers (cuDNN would draw its own
masks, outside JAX's random keys), merge modes other than ``concat``, bfloat16 matmuls, ``remat``
(cuDNN keeps its own reserve space for the backward pass), forward-mode autodiff, sequences longer
than cuDNN allows (PyTorch reports 65,535 steps), and any backend but CUDA. On ROCm, MIOpen orders
the gates differently; this module packs for cuDNN only. It is off by default: whether it pays
against the ``lax.scan`` path is measured by ``benchmarks/gpu_check.sh``.

On any machine, :func:`lstm` with ``impl="reference"`` runs the same packed vector through
``jax.experimental.rnn.lstm_ref`` (JAX's own unpacking and a ``lax.scan`` LSTM): the layout and the
lengths handling are tested that way on the CPU.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from seqjax.cells import LSTMCarry

IMPLS = ("auto", "cudnn", "reference")
# what Stack(cudnn=True) runs; tests on machines without a GPU set it to "reference"
STACK_IMPL = "auto"


def available() -> bool:
    """Whether the cuDNN LSTM can run here: the default backend is a CUDA GPU and JAX has its kernels."""
    if jax.default_backend() != "gpu":
        return False
    try:
        from jax._src.lib import gpu_rnn
    except ImportError:
        return False
    return gpu_rnn is not None and getattr(gpu_rnn, "cudnn_rnn_lowering", None) is not None


def _pseudo_layers(params, bidirectional: bool) -> list[dict]:
    dirs = ("fwd", "bwd") if bidirectional else ("fwd",)
    return [layer[d] for layer in params for d in dirs]


def _biases(p, dtype):
    G = p["w_hh"].shape[0]
    zeros = jnp.zeros((G,), dtype)
    return p.get("b_ih", zeros), p.get("b_hh", zeros)


def pack(params, bidirectional: bool) -> jax.Array:
    """The flat cuDNN weight vector of a :class:`~seqjax.recurrent.Stack`'s LSTM params.

    A stack without biases (``bias=False``) packs zero biases: cuDNN's LSTM always has both."""
    layers = _pseudo_layers(params, bidirectional)
    dtype = layers[0]["w_ih"].dtype
    weights = [p[k].reshape(-1) for p in layers for k in ("w_ih", "w_hh")]
    biases = [b for p in layers for b in _biases(p, dtype)]
    return jnp.concatenate(weights + biases)


def num_params(input_size: int, hidden_size: int, num_layers: int, bidirectional: bool) -> int:
    """Length of the packed vector."""
    D, H = (2 if bidirectional else 1), hidden_size
    total = 0
    for layer in range(num_layers):
        i = input_size if layer == 0 else D * H
        total += D * (4 * H * i + 4 * H * H + 8 * H)
    return total


def unpack(flat, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool) -> list[dict]:
    """The inverse of :func:`pack`: a Stack's params (with biases) from a packed vector."""
    D, H = (2 if bidirectional else 1), hidden_size
    want = num_params(input_size, H, num_layers, bidirectional)
    if tuple(jnp.shape(flat)) != (want,):
        raise ValueError(f"expected a packed LSTM vector of shape ({want},) for input {input_size}, hidden {H}, "
                         f"{num_layers} layer(s), bidirectional={bidirectional}; got {tuple(jnp.shape(flat))}")
    shapes = []
    for layer in range(num_layers):
        i = input_size if layer == 0 else D * H
        shapes += [((4 * H, i), (4 * H, H))] * D
    pos, mats = 0, []
    for s_ih, s_hh in shapes:
        w = []
        for s in (s_ih, s_hh):
            n = s[0] * s[1]
            w.append(flat[pos:pos + n].reshape(s))
            pos += n
        mats.append(w)
    pseudo = []
    for w_ih, w_hh in mats:
        b_ih, b_hh = flat[pos:pos + 4 * H], flat[pos + 4 * H:pos + 8 * H]
        pos += 8 * H
        pseudo.append({"w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh})
    dirs = ("fwd", "bwd") if bidirectional else ("fwd",)
    return [{d: pseudo[layer * D + k] for k, d in enumerate(dirs)} for layer in range(num_layers)]


def lstm(params, xs, carry0=None, *, lengths=None, bidirectional: bool = False, time_major: bool = False,
         impl: str = "auto", precision=None):
    """A multi-layer LSTM as one cuDNN call. Returns ``(LSTMCarry(h_n, c_n), ys)`` as a
    :class:`~seqjax.recurrent.Stack` does: states ``(num_layers * num_directions, batch, hidden)``,
    ``ys`` in the layout of ``xs`` with the directions concatenated.

    ``params``: a Stack's LSTM params; ``xs`` ``(batch, time, features)`` (``time_major``: time
    first); ``carry0`` an ``LSTMCarry`` / ``(h, c)`` pair in the states' layout, zeros if omitted;
    ``lengths`` ``(batch,)`` in [1, time]. ``impl``: ``cudnn`` (a CUDA GPU), ``reference``
    (``jax.experimental.rnn.lstm_ref``, any backend, for tests), ``auto`` (cuDNN, with a clear error
    where it cannot run). ``precision``: passed to cuDNN (``None`` lets it use TF32 where the GPU
    has it; ``jax.lax.Precision.HIGHEST`` asks for full float32)."""
    from jax.experimental import rnn

    if impl not in IMPLS:
        raise ValueError(f"unknown impl {impl!r}; expected one of {IMPLS}")
    if impl == "auto":
        if not available():
            raise ValueError(f"the cuDNN LSTM needs a CUDA GPU backend (jax.experimental.rnn); the default backend "
                             f"is {jax.default_backend()}. Use cudnn=False here")
        impl = "cudnn"
    num_layers = len(params)
    I, H = params[0]["fwd"]["w_ih"].shape[1], params[0]["fwd"]["w_hh"].shape[1]
    D = 2 if bidirectional else 1
    x = jnp.swapaxes(xs, 0, 1) if time_major else xs
    B, T = x.shape[:2]
    dtype = params[0]["fwd"]["w_ih"].dtype
    x = x.astype(dtype)
    if carry0 is None:
        h0 = c0 = jnp.zeros((num_layers * D, B, H), dtype)
    else:
        h0, c0 = (jnp.asarray(a, dtype) for a in carry0)
    seq_lengths = jnp.full((B,), T, jnp.int32) if lengths is None else jnp.asarray(lengths, jnp.int32)
    flat = pack(params, bidirectional)
    if impl == "cudnn":
        ys, h_n, c_n = rnn.lstm(x, h0, c0, flat, seq_lengths, input_size=I, hidden_size=H, num_layers=num_layers,
                                dropout=0.0, bidirectional=bidirectional, precision=precision)
    else:
        w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(flat, I, H, num_layers, bidirectional)
        ys, h_n, c_n = rnn.lstm_ref(x, h0, c0, w_ih, w_hh, b_ih, b_hh, seq_lengths, I, H, num_layers, 0.0,
                                    bidirectional)
    return LSTMCarry(h_n, c_n), (jnp.swapaxes(ys, 0, 1) if time_major else ys)


def check_stack(stack) -> None:
    """Why a :class:`~seqjax.recurrent.Stack` with ``cudnn=True`` cannot run on cuDNN, as a ValueError."""
    cell = stack.cell
    if cell.kind != "lstm":
        raise ValueError(f"cudnn=True runs the LSTM only (jax.experimental.rnn); got cell {cell.name}")
    if cell.matmul_dtype is not None:
        raise ValueError(f"cudnn=True takes float32 weights; matmul_dtype={cell.matmul_dtype!r} is not supported there")
    if stack.dropout > 0:
        raise ValueError(f"cudnn=True cannot apply dropout={stack.dropout} between layers: cuDNN would draw the masks "
                         "itself, outside JAX's random keys. Use cudnn=False with dropout")
    if stack.merge != "concat":
        raise ValueError(f"cudnn=True concatenates the two directions; merge={stack.merge!r} needs cudnn=False")
    if stack.remat:
        raise ValueError(f"cudnn=True keeps cuDNN's own state for the backward pass; remat={stack.remat} needs "
                         "cudnn=False")
