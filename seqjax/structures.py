"""The four input/output structures of recurrent networks, as small composable pieces.

=========  ==========================================  ===============================================
structure  examples                                    here
=========  ==========================================  ===============================================
N → N      tagging, char LM, per-step forecasts        :func:`dense` applied to every step's output
N → 1      classification, one-step forecasting        :func:`pool` (last valid step, mean, max)
1 → N      generation from one vector (captioning)     :class:`OneToMany` (vector fed first or every step)
N → M      translation, summarisation                  :class:`Seq2Seq` (context ``h_N``, ``g(h_N)``,
                                                       ``g(h_1..h_N)``, or attention)
=========  ==========================================  ===============================================

Every piece respects ``lengths``: padded steps never change a result.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from seqjax.cells import Cell, LSTMCarry
from seqjax.recurrent import Stack, carry_batch_axes, check_lengths, unroll

POOL_MODES = ("last", "mean", "max", "first")
CONTEXT_MODES = ("last", "transform", "pool", "attention")


# ----------------------------------------------------------------------------- dense heads
def dense_init(key, in_features: int, out_features: int, dtype: Any = jnp.float32) -> dict:
    """A linear layer ``{"w": (in, out), "b": (out,)}`` with Xavier-uniform weights, zero bias."""
    lim = math.sqrt(6.0 / (in_features + out_features))
    return {"w": jax.random.uniform(key, (in_features, out_features), dtype, -lim, lim),
            "b": jnp.zeros((out_features,), dtype)}


def dense(params: dict, x: jax.Array) -> jax.Array:
    """``x @ w + b`` over any leading shape (an N→N head when ``x`` is ``(batch, time, H)``)."""
    y = x @ params["w"]
    return y + params["b"].reshape((1,) * (y.ndim - 1) + params["b"].shape)


# ----------------------------------------------------------------------------- masks and pooling
def sequence_mask(lengths: jax.Array, T: int) -> jax.Array:
    """``(batch, T)`` boolean mask, True at real steps."""
    return jnp.arange(T)[None, :] < jnp.asarray(lengths)[:, None]


def pool(ys: jax.Array, lengths: jax.Array | None = None, mode: str = "last") -> jax.Array:
    """N → 1: summarise ``(batch, time, H)`` outputs into ``(batch, H)``.

    ``last``: the output at each sequence's last real step; ``first``: step 0; ``mean``/``max``
    over real steps only. For a bidirectional network, ``last`` takes the forward half at the last
    step but the backward half has then read only one token; use :meth:`Stack.top_hidden` on the
    final carry to get both directions' full summaries.
    """
    if mode not in POOL_MODES:
        raise ValueError(f"unknown pooling mode {mode!r}; expected one of {POOL_MODES}")
    if ys.ndim != 3:
        raise ValueError(f"expected outputs of shape (batch, time, features), got {tuple(ys.shape)}")
    B, T, _ = ys.shape
    if lengths is None:
        lengths = jnp.full((B,), T, jnp.int32)
    else:
        lengths = check_lengths(lengths, B, T)
    if mode == "first":
        return ys[:, 0]
    if mode == "last":
        return jnp.take_along_axis(ys, (lengths - 1)[:, None, None], axis=1)[:, 0]
    mask = sequence_mask(lengths, T)[:, :, None]
    if mode == "mean":
        return jnp.sum(jnp.where(mask, ys, 0.0), axis=1) / lengths[:, None].astype(ys.dtype)
    return jnp.max(jnp.where(mask, ys, -jnp.inf), axis=1)


# ----------------------------------------------------------------------------- 1 -> N
@dataclasses.dataclass(frozen=True)
class OneToMany:
    """1 → N: a conditional generator driven by one vector ``v``.

    ``feed="first"``: the input at step 0 is ``v``; later inputs are ``feedback(params, out)`` of
    the previous step's output (zeros if there is no feedback). ``feed="every"``: each step's input
    is ``concat(v, feedback(prev_out))`` (just ``v`` without feedback; the feedback of step 0 is the
    one of ``start``). ``readout(params, h, x_t)`` turns the hidden state into the step's output
    ``out`` (e.g. logits → a sampled token, or a regression value); ``x_t`` is the per-step extra
    input given to :meth:`__call__` (random keys when sampling, else ``None``).

    The params are ``{"core": stack_or_cell_params, "head": ..., "v": (batch, Dv)}``; ``v`` travels
    in the params so that the whole rollout is one :func:`~seqjax.recurrent.unroll`.
    """

    core: Stack | Cell
    feed: str = "first"
    readout: Callable | None = None
    feedback: Callable | None = None

    def __post_init__(self):
        if self.feed not in ("first", "every"):
            raise ValueError(f"unknown feed mode {self.feed!r}; expected 'first' or 'every'")

    def _input(self, params, t, prev_out):
        v = params["v"]
        fb = None if self.feedback is None else self.feedback(params, prev_out)
        if self.feed == "every":
            return v if fb is None else jnp.concatenate([v, fb], axis=-1)
        if fb is None:
            fb = jnp.zeros_like(v)
        return jnp.where(t == 0, v, fb)

    def carry_batch_axis(self, carry):
        return (None, carry_batch_axes(self.core, carry[1]), 0)

    def step(self, params, carry, x):
        t, core_carry, prev_out = carry
        inp = self._input(params, t, prev_out)
        core_carry, h = self.core.step(params["core"], core_carry, inp)
        out = h if self.readout is None else self.readout(params, h, x)
        return (t + 1, core_carry, out), out

    def __call__(self, params, v, carry0, steps: int, *, start=None, step_inputs=None, unroll_factor: int = 1):
        """Roll out ``steps`` steps. Returns ``(final_core_carry, outputs (batch, steps, ...))``.

        ``start`` is the "previous output" seen at step 0 (e.g. a start token); needed when
        ``feedback`` is given. ``step_inputs`` is an optional pytree with leading
        ``(batch, steps)`` axes passed to ``readout`` as ``x_t``.
        """
        if v.ndim != 2:
            raise ValueError(f"expected the conditioning vector of shape (batch, features), got {tuple(v.shape)}")
        B = v.shape[0]
        if self.feedback is not None and start is None:
            raise ValueError("OneToMany with feedback needs a start value (the output before step 0)")
        if start is None:
            start = jnp.zeros((B, 0), v.dtype)
        xs = step_inputs if step_inputs is not None else jnp.zeros((B, steps, 0), v.dtype)
        full = dict(params, v=v)
        (_, final, _), outs = unroll(self, full, xs, (jnp.zeros((), jnp.int32), carry0, start),
                                     unroll=unroll_factor)
        return final, outs


# ----------------------------------------------------------------------------- N -> M
def _attention(params, h, memory, mask):
    """Luong "general" attention: scores ``memory · (W_a h)``, masked softmax over source steps."""
    q = h @ params["w_a"]  # (B, Hm)
    scores = jnp.einsum("bth,bh->bt", memory, q)
    scores = jnp.where(mask, scores, -1e30)
    weights = jax.nn.softmax(scores, axis=-1)
    return jnp.einsum("bt,bth->bh", weights, memory), weights


@dataclasses.dataclass(frozen=True)
class _Decoder:
    """The decoder as a core: context fed at every step, attention recomputed per step."""

    stack: Stack
    attention: bool

    def carry_batch_axis(self, carry):
        return (carry_batch_axes(self.stack, carry[0]), 0)

    def step(self, params, carry, x):
        dec_carry, context = carry
        if self.attention:
            h_top = Cell.carry_hidden(dec_carry)[-1]
            context, _ = _attention(params, h_top, params["memory"], params["mask"])
        dec_carry, h = self.stack.step(params["dec"], dec_carry, jnp.concatenate([x, context], axis=-1))
        return (dec_carry, context), jnp.concatenate([h, context], axis=-1)


@dataclasses.dataclass(frozen=True)
class Seq2Seq:
    """N → M: an encoder (N → 1) and a decoder (1 → M) joined by a context vector.

    ``context``:
      * ``last``: ``c = h_N`` (the encoder's final hidden state, directions concatenated);
      * ``transform``: ``c = tanh(W h_N + b)``;
      * ``pool``: ``c = tanh(W mean(h_1..h_N) + b)``, a summary of all states;
      * ``attention``: ``c_t`` is recomputed at every decoder step from all encoder states
        (Luong general attention against the decoder's previous top hidden state), the remedy
        for a fixed-length ``c`` losing information on long inputs.

    The decoder starts from ``tanh(W_init c + b)`` (all layers) and gets ``c`` concatenated to
    its input at every step (Cho et al. 2014). Outputs are ``concat(h_t, c_t)`` per target step.
    """

    encoder: Stack
    decoder: Stack
    context: str = "last"

    def __post_init__(self):
        if self.context not in CONTEXT_MODES:
            raise ValueError(f"unknown context mode {self.context!r}; expected one of {CONTEXT_MODES}")
        if self.decoder.bidirectional:
            raise ValueError("the decoder generates left to right; it cannot be bidirectional")

    def context_size(self, hidden: int) -> int:
        return self.encoder.num_directions * hidden

    def output_size(self, hidden: int) -> int:
        return hidden + self.context_size(hidden)

    def init(self, key, src_features: int, tgt_features: int, hidden: int, *, init: str = "torch") -> dict:
        C = self.context_size(hidden)
        k = jax.random.split(key, 5)
        p = {"enc": self.encoder.init(k[0], src_features, hidden, init=init),
             "dec": self.decoder.init(k[1], tgt_features + C, hidden, init=init),
             "init": dense_init(k[2], C, hidden)}
        if self.context in ("transform", "pool"):
            p["ctx"] = dense_init(k[3], C, C)
        if self.context == "attention":
            p["w_a"] = jax.random.normal(k[4], (hidden, C)) / math.sqrt(hidden)
        return p

    def encode(self, params, src, src_lengths=None):
        """Returns ``(context (B, C), memory (B, T, C), mask (B, T))``."""
        final, memory = self.encoder(params["enc"], src, lengths=src_lengths)
        B, T, _ = memory.shape
        mask = sequence_mask(src_lengths, T) if src_lengths is not None else jnp.ones((B, T), bool)
        if self.context == "pool":
            c = jnp.tanh(dense(params["ctx"], pool(memory, src_lengths, "mean")))
        else:
            c = self.encoder.top_hidden(final)
            if self.context == "transform":
                c = jnp.tanh(dense(params["ctx"], c))
        return c, memory, mask

    def _start(self, params, c):
        h0 = jnp.tanh(dense(params["init"], c))
        h0 = jnp.broadcast_to(h0[None], (self.decoder.num_layers, *h0.shape))
        if self.decoder.cell.kind == "lstm":
            return LSTMCarry(h0, jnp.zeros_like(h0))
        return h0

    def _core(self, params, c, memory, mask):
        core = _Decoder(self.decoder, self.context == "attention")
        cp = dict(params, memory=memory, mask=mask)
        return core, cp, (self._start(params, c), c)

    def __call__(self, params, src, tgt_inputs, *, src_lengths=None, tgt_lengths=None):
        """Teacher-forced decoding: ``tgt_inputs`` (B, M, F) are the previous target tokens'
        features. Returns ``(B, M, output_size)`` decoder outputs (zeros past ``tgt_lengths``)."""
        c, memory, mask = self.encode(params, src, src_lengths)
        core, cp, carry0 = self._core(params, c, memory, mask)
        _, ys = unroll(core, cp, tgt_inputs, carry0, lengths=tgt_lengths)
        return ys

    def generate(self, params, src, steps: int, *, start, readout: Callable, feedback: Callable,
                 src_lengths=None, step_inputs=None):
        """Autoregressive decoding: ``out_t = readout(y_t, x_t)``, next input ``feedback(out_t)``.

        ``start`` is the input features at step 0 (e.g. a start token's embedding). Returns the
        outputs ``(B, steps, ...)``.
        """
        c, memory, mask = self.encode(params, src, src_lengths)
        core, cp, carry0 = self._core(params, c, memory, mask)
        B = src.shape[0]
        xs = step_inputs if step_inputs is not None else jnp.zeros((B, steps, 0))

        @dataclasses.dataclass(frozen=True)
        class _Loop:
            def step(self, p, carry, x_t):
                inner, inp = carry
                inner, y = core.step(p, inner, inp)
                out = readout(y, x_t)
                return (inner, feedback(out)), out

        _, outs = unroll(_Loop(), cp, xs, (carry0, start))
        return outs
