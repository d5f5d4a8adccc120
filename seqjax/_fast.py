"""Fused-gradient time loop for the built-in cells (RNN, LSTM, torch-variant GRU).

:func:`seqjax.recurrent.unroll` hands a :class:`~seqjax.cells.Cell` here. :func:`fused_unroll`
computes what the plain ``lax.scan`` over ``cell.step`` computes (same equations, same masking),
but with its own reverse-mode rule (``jax.custom_vjp``), the cuDNN recipe:

* forward: one loop that also saves each step's gate activations, so nothing is recomputed;
* backward: one reverse loop that computes only the per-step gate gradients ``g_t`` and the
  recurrent ``g_t W_hh``; the weight, bias and input gradients come from a few big matmuls over
  many rows at once (``dW_ih += X^T g``, ``dW_hh += H_prev^T g``, ``dX = g W_ih``) instead of
  ``T`` thin ones inside the loop, which is what autodiff of the scan does.

On XLA:CPU every temporary buffer is fresh memory (page faults, ~2 us per 4 KiB page on the
benchmark machine), so the loops read and write the caller's layout in place (batch-major
``(B, T, F)`` needs no transposes), and the weight gradients are taken every ``chunk`` steps so
that no ``(T, B, 4H)`` gradient buffer exists. Measurements: benchmarks/README.md.

Lengths (masking), ``reverse``, and gradients w.r.t. the initial carry are supported. A
``custom_vjp`` cannot be differentiated in forward mode; see
:func:`seqjax.recurrent.fused_gradients` to switch this path off.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from seqjax.cells import Cell, LSTMCarry, mixed_dot


class Options(NamedTuple):
    """Static knobs of the fused loop (hashable). :func:`default_options` picks them per backend;
    the CPU choices were measured with benchmarks/rnn_throughput.py (see benchmarks/README.md)."""

    hoist: bool = False  # project all steps' inputs with one matmul before the loop
    fuse: bool = True  # forward: one matmul [x, h] @ [W_ih, W_hh]^T per step (LSTM, RNN; not with hoist)
    save_xh: bool = False  # forward saves [x_t, h_prev] rows (else h_prev is rebuilt from the outputs)
    tanh_sigmoid: bool = True  # LSTM: all four gates in one elementwise pass, sigmoid(x) = (1 + tanh(x/2)) / 2
    chunk: int = 16  # backward: weight gradients every `chunk` steps (0: once, after the whole sweep)
    unroll: int = 1  # steps per loop iteration


def default_options(*, hoist: bool, unroll: int, backend: str | None = None) -> Options:
    """The options :func:`seqjax.recurrent.unroll` uses (``hoist`` already resolved per backend).

    CPU (measured): weight gradients every 16 steps, so each chunk's gate gradients stay in cache
    and no ``(T, B, 4H)`` gradient buffer is allocated (XLA:CPU page-faults its whole temporary
    arena on every call). Accelerators (not measured here): the cuDNN recipe as it stands, one
    weight-gradient matmul over all ``T*B`` rows after the sweep.
    """
    backend = backend or jax.default_backend()
    return Options(hoist=hoist, chunk=16 if backend == "cpu" else 0, unroll=unroll)


# The kinds that unroll() routes here by default: on the 2-core CPU the fused GRU measured no
# faster than autodiff of the scan (benchmarks/README.md), so the GRU keeps the plain scan, which
# also keeps forward-mode autodiff. fused_unroll itself supports every kind in supports().
DEFAULT_KINDS = ("lstm", "rnn")


def supports(cell) -> bool:
    """The cells with a fused rule: all but the Cho GRU (its reset gate sits inside the matmul)."""
    return isinstance(cell, Cell) and not (cell.kind == "gru" and cell.variant == "cho")


def _mm(a, w, mm=None):
    """``a @ w.T`` for ``a`` (..., in) and ``w`` (out, in), without materialising ``w.T``."""
    return mixed_dot(a, w, (((a.ndim - 1,), (1,)), ((), ())), mm)


def _mm_n(a, w, mm=None):
    """``a @ w`` for ``a`` (..., k) and ``w`` (k, n)."""
    return mixed_dot(a, w, (((a.ndim - 1,), (0,)), ((), ())), mm)


def _row(b, like_ndim):
    return b.reshape((1,) * (like_ndim - 1) + b.shape)


def _affine(a, w, b, mm=None):
    """``a @ w.T + b``, the bias broadcast explicitly (the tests forbid rank promotion)."""
    y = _mm(a, w, mm)
    return y + _row(b, y.ndim)


def _get(buf, t, axis):
    return lax.dynamic_index_in_dim(buf, t, axis, keepdims=False)


def _put(buf, val, t, axis):
    return lax.dynamic_update_index_in_dim(buf, val.astype(buf.dtype), t, axis)


def _sel(valid, new, old):
    return new if valid is None else jnp.where(valid[:, None], new, old)


def _time_index(i, T, reverse):
    return T - 1 - i if reverse else i


def _loop(body, init, T, unroll):
    """``T`` iterations of ``body(i, carry) -> carry`` (a scan with no per-step inputs/outputs)."""
    if T == 1:
        return body(jnp.int32(0), init)
    out, _ = lax.scan(lambda c, i: (body(i, c), None), init, jnp.arange(T, dtype=jnp.int32),
                      unroll=min(unroll, T))
    return out


# ------------------------------------------------------------------ forward


def _forward(cell, opts, reverse, axis, params, xs, carry0, lengths, save):
    """Returns ``(final, ys, residuals)``; ``xs`` has time on ``axis`` (0 or 1), batch on the other."""
    T = xs.shape[axis]
    B = xs.shape[1 - axis]
    H = params["w_hh"].shape[1]
    kind = cell.kind
    dt = jnp.result_type(xs.dtype, params["w_hh"].dtype)
    fuse = opts.fuse and not opts.hoist and kind != "gru"  # the GRU needs W_hn h apart
    mm = cell.matmul_dtype
    # weights are rounded to the matmul dtype once, outside the loop
    w_ih, w_hh = (params[k] if mm is None else params[k].astype(mm) for k in ("w_ih", "w_hh"))
    w_cat = jnp.concatenate([w_ih, w_hh], axis=1) if fuse else None
    b_cat = params["b_ih"] + params["b_hh"]
    gxs = _affine(xs, w_ih, params["b_ih"], mm) if opts.hoist else None

    def shape_t(feat):  # a per-sequence buffer in the layout of xs
        return (T, B, feat) if axis == 0 else (B, T, feat)

    bufs = {"ys": jnp.zeros(shape_t(H), dt)}
    if save:
        if kind in ("lstm", "gru"):
            bufs["acts"] = jnp.zeros(shape_t(4 * H), dt)  # lstm: i f g o; gru: r z n (W_hn h + b_hn)
        if kind == "lstm":
            bufs["c_prev"] = jnp.zeros(shape_t(H), dt)
        if opts.save_xh:
            bufs["xh"] = jnp.zeros(shape_t(xs.shape[-1] + H), dt)
    sigmoid = jax.nn.sigmoid

    def body(i, carry):
        state, bufs = carry
        t = _time_index(i, T, reverse)
        valid = None if lengths is None else t < lengths
        h = state[0] if kind == "lstm" else state
        xh = jnp.concatenate([_get(xs, t, axis).astype(dt), h], axis=-1) if fuse or (save and opts.save_xh) else None
        bufs = dict(bufs)
        if save and opts.save_xh:
            bufs["xh"] = _put(bufs["xh"], xh, t, axis)
        if fuse:
            gsum, gx, gh = _affine(xh, w_cat, b_cat, mm), None, None
        else:
            gx = _get(gxs, t, axis) if opts.hoist else _affine(_get(xs, t, axis), w_ih, params["b_ih"], mm)
            gh = _affine(h, w_hh, params["b_hh"], mm)
            gsum = gx + gh if kind != "gru" else None
        if kind == "lstm":
            c = state[1]
            if opts.tanh_sigmoid:
                # one elementwise pass over all four gates: sigmoid(x) = (1 + tanh(x / 2)) / 2
                col = lax.broadcasted_iota(jnp.int32, gsum.shape, gsum.ndim - 1)
                is_g = (col >= 2 * H) & (col < 3 * H)
                a = jnp.tanh(jnp.where(is_g, gsum, 0.5 * gsum))
                acts = jnp.where(is_g, a, 0.5 * a + 0.5)
                i_, f_, g_, o_ = jnp.split(acts, 4, axis=-1)
            else:
                i_, f_, g_, o_ = jnp.split(gsum, 4, axis=-1)
                i_, f_, o_, g_ = sigmoid(i_), sigmoid(f_), sigmoid(o_), jnp.tanh(g_)
                acts = jnp.concatenate([i_, f_, g_, o_], axis=-1) if save else None
            c1 = f_ * c + i_ * g_
            h1 = o_ * jnp.tanh(c1)
            if save:
                bufs["acts"] = _put(bufs["acts"], acts, t, axis)
                bufs["c_prev"] = _put(bufs["c_prev"], c, t, axis)
            new = (_sel(valid, h1, h), _sel(valid, c1, c))
        elif kind == "gru":
            x_r, x_z, x_n = jnp.split(gx, 3, axis=-1)
            h_r, h_z, h_n = jnp.split(gh, 3, axis=-1)
            r = sigmoid(x_r + h_r)
            z = sigmoid(x_z + h_z)
            n = jnp.tanh(x_n + r * h_n)
            h1 = (1.0 - z) * n + z * h
            if save:
                bufs["acts"] = _put(bufs["acts"], jnp.concatenate([r, z, n, h_n], axis=-1), t, axis)
            new = _sel(valid, h1, h)
        else:
            h1 = jnp.tanh(gsum) if cell.activation == "tanh" else jax.nn.relu(gsum)
            new = _sel(valid, h1, h)
        bufs["ys"] = _put(bufs["ys"], _sel(valid, h1, jnp.zeros_like(h1)), t, axis)
        return new, bufs

    state0 = tuple(carry0) if kind == "lstm" else carry0
    final, bufs = _loop(body, (state0, bufs), T, opts.unroll)
    if kind == "lstm":
        final = LSTMCarry(*final)
    return final, bufs.pop("ys"), bufs


# ------------------------------------------------------------------ backward


def _h_prev(ys, h0, lengths, reverse, axis):
    """The hidden state each step started from, in the layout of ``ys``, rebuilt from the outputs."""
    T = ys.shape[axis]
    h0e = jnp.expand_dims(h0, axis)
    rest = lax.slice_in_dim(ys, 1, T, axis=axis) if reverse else lax.slice_in_dim(ys, 0, T - 1, axis=axis)
    shifted = jnp.concatenate([rest, h0e] if reverse else [h0e, rest], axis=axis)
    if lengths is None or not reverse:
        # forward: a real step t > 0 always follows a real step, whose output is its state
        return shifted
    # reverse: the first real step (t = length - 1) starts from h0, not from the zero output at t+1
    t = jnp.arange(T)
    prev_valid = (t[:, None] + 1 < lengths[None, :])  # (T, B)
    if axis == 1:
        prev_valid = prev_valid.T
    return jnp.where(prev_valid[..., None], shifted, h0e)


def _sum_outer_t(g, a, mm=None):
    """``sum_{t,b} a[t,b]^T g[t,b]``, shape ``(F, G)``: one matmul over all rows of a chunk.

    Both are reshaped to 2-D rows first (free for contiguous buffers; XLA:CPU would transpose
    the operands of a two-axis contraction), and the narrow operand goes first: on XLA:CPU
    ``a^T g`` measured 1.2-1.45x faster than ``g^T a`` (benchmarks/README.md)."""
    a2, g2 = a.reshape(-1, a.shape[-1]), g.reshape(-1, g.shape[-1])
    return mixed_dot(a2, g2, (((0,), (0,)), ((), ())), mm)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _fused(cell, opts, reverse, axis, params, xs, carry0, lengths):
    final, ys, _ = _forward(cell, opts, reverse, axis, params, xs, carry0, lengths, save=False)
    return final, ys


def _fused_fwd(cell, opts, reverse, axis, params, xs, carry0, lengths):
    final, ys, res = _forward(cell, opts, reverse, axis, params, xs, carry0, lengths, save=True)
    return (final, ys), (params, xs, carry0, lengths, final, ys, res)


def _fused_bwd(cell, opts, reverse, axis, saved, cts):
    params, xs, carry0, lengths, final, ys, res = saved
    d_final, dys = cts
    kind = cell.kind
    T, B, I = xs.shape[axis], xs.shape[1 - axis], xs.shape[-1]
    H = params["w_hh"].shape[1]
    dt = ys.dtype
    mm = cell.matmul_dtype
    w_ih, w_hh = (params[k] if mm is None else params[k].astype(mm) for k in ("w_ih", "w_hh"))
    h0 = carry0[0] if kind == "lstm" else carry0
    if opts.save_xh:
        xh = res["xh"]
        hprev = None
    else:
        hprev = _h_prev(ys, h0, lengths, reverse, axis)
        xh = None

    def get_hprev(t):
        return _get(xh, t, axis)[:, I:] if xh is not None else _get(hprev, t, axis)

    # Each kind's step turns the carry's gradient into the step's gate gradient g_t (rows of
    # ``(B, G)``) and the carry gradient one step earlier. Then, per chunk of steps,
    # dW_ih += x^T g, dW_hh += h_prev^T g, dx = g W_x, over all the chunk's rows at once.
    if kind == "lstm":
        dstate0 = (d_final[0].astype(dt), d_final[1].astype(dt), final.c)
        w_x = w_ih

        def step(dstate, t, valid):
            dh, dc, c_cur = dstate
            acts, c_prev, dy = _get(res["acts"], t, axis), _get(res["c_prev"], t, axis), _get(dys, t, axis)
            i_, f_, g_, o_ = jnp.split(acts, 4, axis=-1)
            dh_tot = dh + _sel(valid, dy, jnp.zeros_like(dy))
            tc = jnp.tanh(c_cur)
            dc_tot = dc + dh_tot * o_ * (1 - tc * tc)
            if opts.tanh_sigmoid:
                # the four gates in one elementwise pass: d(sigmoid) = a(1-a), d(tanh) = 1-a^2
                col = lax.broadcasted_iota(jnp.int32, acts.shape, acts.ndim - 1)
                is_g = (col >= 2 * H) & (col < 3 * H)
                deriv = jnp.where(is_g, 1 - acts * acts, acts * (1 - acts))
                g = (jnp.concatenate([dc_tot, dc_tot, dc_tot, dh_tot], axis=-1)
                     * jnp.concatenate([g_, c_prev, i_, tc], axis=-1) * deriv)
            else:
                g = jnp.concatenate([dc_tot * g_ * i_ * (1 - i_), dc_tot * c_prev * f_ * (1 - f_),
                                     dc_tot * i_ * (1 - g_ * g_), dh_tot * tc * o_ * (1 - o_)], axis=-1)
            g = _sel(valid, g, jnp.zeros_like(g))
            return g, (_sel(valid, _mm_n(g, w_hh, mm), dh), _sel(valid, dc_tot * f_, dc), c_prev)
    elif kind == "rnn":
        dstate0 = d_final.astype(dt)
        w_x = w_ih

        def step(dh, t, valid):
            y, dy = _get(ys, t, axis), _get(dys, t, axis)
            dh_tot = dh + _sel(valid, dy, jnp.zeros_like(dy))
            g = dh_tot * (1 - y * y) if cell.activation == "tanh" else jnp.where(y > 0, dh_tot, 0)
            g = _sel(valid, g, jnp.zeros_like(g))
            return g, _sel(valid, _mm_n(g, w_hh, mm), dh)
    else:  # gru, torch variant: the n gate's x and h parts differ (the reset gate is after the matmul)
        # g = [dr dz dn dhn], 4H wide: the pre-activation gradients, dhn = dn * r being that of
        # W_hn h + b_hn. [dr dz dhn] @ W_hh is the recurrent gradient; a zero block turns g into dx.
        dstate0 = d_final.astype(dt)
        w_x = jnp.concatenate([w_ih, jnp.zeros((H, I), w_ih.dtype)], axis=0)  # (4H, I): g @ w_x = dx

        def step(dh, t, valid):
            acts, h_prev, dy = _get(res["acts"], t, axis), get_hprev(t), _get(dys, t, axis)
            r, z, n, h_n = jnp.split(acts, 4, axis=-1)
            dh_tot = dh + _sel(valid, dy, jnp.zeros_like(dy))
            dn = dh_tot * (1 - z) * (1 - n * n)
            dz = dh_tot * (h_prev - n) * z * (1 - z)
            dr = dn * h_n * r * (1 - r)
            dhn = dn * r
            g = _sel(valid, jnp.concatenate([dr, dz, dn, dhn], axis=-1), 0.0)
            dh_new = _mm_n(jnp.concatenate([dr, dz, dhn], axis=-1), w_hh, mm) + dh_tot * z
            return g, _sel(valid, dh_new, dh)

    G = w_x.shape[0]
    K = T if not opts.chunk else min(opts.chunk, T)

    def sweep(i0, size, dstate):
        """Steps ``i0 .. i0+size-1`` of the backward sweep: ``(dstate, g of the chunk, t_lo)``."""
        # the sweep runs against the forward direction; t_lo is the chunk's earliest timestep
        t_lo = i0 if reverse else T - i0 - size
        gshape = (size, B, G) if axis == 0 else (B, size, G)

        def inner(k, c):
            dstate, gbuf = c
            t = _time_index(i0 + k, T, not reverse)
            valid = None if lengths is None else t < lengths
            g, dstate = step(dstate, t, valid)
            return dstate, _put(gbuf, g, t - t_lo, axis)

        dstate, gbuf = _loop(inner, (dstate, jnp.zeros(gshape, dt)), size, opts.unroll)
        return dstate, gbuf, t_lo

    def grads(gbuf, t_lo, acc):
        """Add a chunk's weight and bias gradients to ``acc``; write its input gradient."""
        acc_x, acc_b, dx_buf = acc
        size = gbuf.shape[axis]
        if xh is not None:
            acc_x = acc_x + _sum_outer_t(gbuf, lax.dynamic_slice_in_dim(xh, t_lo, size, axis), mm)
        else:
            x_c = lax.dynamic_slice_in_dim(xs, t_lo, size, axis).astype(dt)
            h_c = lax.dynamic_slice_in_dim(hprev, t_lo, size, axis)
            acc_x = acc_x + jnp.concatenate([_sum_outer_t(gbuf, x_c, mm), _sum_outer_t(gbuf, h_c, mm)], axis=0)
        acc_b = acc_b + jnp.sum(gbuf, axis=(0, 1))
        dx_c = _mm_n(gbuf.reshape(-1, G), w_x, mm).reshape(gbuf.shape[:2] + (I,))
        dx_buf = lax.dynamic_update_slice_in_dim(dx_buf, dx_c.astype(dx_buf.dtype), t_lo, axis)
        return acc_x, acc_b, dx_buf

    # acc_x gathers [x, h_prev]^T g: rows :I are dW_ih^T, rows I: are dW_hh^T
    acc = (jnp.zeros((I + H, G), dt), jnp.zeros((G,), dt), jnp.zeros(xs.shape, dt))
    n_full, rem = divmod(T, K)
    dstate = dstate0
    if rem:
        dstate, g, t_lo = sweep(0, rem, dstate)
        acc = grads(g, t_lo, acc)
    if n_full == 1:
        dstate, g, t_lo = sweep(rem, K, dstate)
        acc = grads(g, t_lo, acc)
    elif n_full > 1:
        def body(c, carry):
            dstate, acc = carry
            dstate, g, t_lo = sweep(rem + c * K, K, dstate)
            return dstate, grads(g, t_lo, acc)
        dstate, acc = _loop(body, (dstate, acc), n_full, 1)
    acc_x, acc_b, d_xs = acc

    d_w_ih, d_w_hh = acc_x[:I].T, acc_x[I:].T
    if kind == "gru":
        d_params = {"w_ih": d_w_ih[: 3 * H], "w_hh": jnp.concatenate([d_w_hh[: 2 * H], d_w_hh[3 * H:]], axis=0),
                    "b_ih": acc_b[: 3 * H], "b_hh": jnp.concatenate([acc_b[: 2 * H], acc_b[3 * H:]])}
    else:
        d_params = {"w_ih": d_w_ih, "w_hh": d_w_hh, "b_ih": acc_b, "b_hh": acc_b}
    d_carry0 = LSTMCarry(dstate[0], dstate[1]) if kind == "lstm" else dstate
    return _finish(params, d_params, xs, d_xs, carry0, d_carry0)


def _finish(params, d_params, xs, d_xs, carry0, d_carry0):
    d_params = {k: d_params[k].astype(params[k].dtype) for k in params}
    d_carry0 = jax.tree_util.tree_map(lambda d, a: d.astype(a.dtype), d_carry0, carry0)
    return d_params, d_xs.astype(xs.dtype), d_carry0, None


_fused.defvjp(_fused_fwd, _fused_bwd)


def fused_unroll(cell: Cell, params, xs, carry0, lengths, *, reverse: bool, opts: Options,
                 time_major: bool = True):
    """``xs`` ``(T, B, I)`` (or ``(B, T, I)`` with ``time_major=False``); ``carry0`` given;
    ``lengths`` ``(B,)`` int32 or ``None``. Returns ``(final_carry, ys)`` with ``ys`` in the
    layout of ``xs``, exactly like the plain scan in :func:`seqjax.recurrent.unroll`."""
    p = {k: params[k] for k in ("w_ih", "w_hh", "b_ih", "b_hh")}
    if cell.kind == "lstm":
        carry0 = LSTMCarry(*carry0)
    return _fused(cell, opts, bool(reverse), 0 if time_major else 1, p, xs, carry0, lengths)
