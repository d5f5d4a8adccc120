"""The fused-gradient time loop, for the cells with a fused rule (RNN and LSTM).

:func:`seqjax.recurrent.unroll` hands such a cell here unless it is called with ``fused=False``.
:func:`fused_unroll` computes what the plain ``lax.scan`` over ``cell.step`` computes (the same
:meth:`~seqjax.cells.Cell.gates`, the same masking), with its own reverse-mode rule
(``jax.custom_vjp``), the cuDNN recipe:

* forward: one loop. Each step is one matmul ``[x_t, h] @ [W_ih, W_hh]^T`` (or, with ``hoist``,
  the input projections of all steps first, then ``h @ W_hh^T`` per step), then ``cell.gates``,
  whose ``saved`` output is stored so that nothing is recomputed;
* backward: one reverse loop that computes only each step's pre-activation gradient ``g_t``
  (``cell.gates_bwd``) and the recurrent ``g_t W_hh``. The weight, bias and input gradients come
  from a few big matmuls over many rows at once (``dW_ih += X^T g``, ``dW_hh += H_prev^T g``,
  ``dX = g W_ih``), every ``chunk`` steps, instead of ``T`` thin ones inside the loop.

The loops read and write the caller's layout in place (batch-major ``(B, T, F)`` needs no
transposes), and with chunks no ``(T, B, G)`` gradient buffer exists. Why these choices, with
measurements: benchmarks/README.md.

Lengths (masking), ``reverse``, and gradients w.r.t. the initial carry are supported. A
``custom_vjp`` has no forward-mode rule; :func:`seqjax.recurrent.unroll` sends calls under
forward-mode autodiff to the plain scan instead.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from seqjax.cells import Cell, LSTMCarry, affine, matmul, mixed_dot


class Options(NamedTuple):
    """Static knobs of the fused loop (hashable); :func:`default_options` picks them per backend."""

    hoist: bool = False  # project all steps' inputs with one matmul before the loop
    chunk: int = 16  # backward: weight gradients every `chunk` steps (0: once, after the whole sweep)
    unroll: int = 1  # steps per loop iteration
    native: bool = False  # float32 LSTM on the CPU: the compiled kernel of seqjax.native runs the loops


def default_options(*, hoist: bool, unroll: int, backend: str | None = None) -> Options:
    """The options :func:`seqjax.recurrent.unroll` uses (``hoist`` already resolved per backend).

    CPU (measured): weight gradients every 16 steps, so that each chunk's gate gradients stay in
    cache and no ``(T, B, G)`` gradient buffer is allocated. Accelerators (not yet measured): the
    cuDNN recipe as it stands, one weight-gradient matmul over all ``T*B`` rows after the sweep.
    ``native``: allowed on the CPU; :func:`fused_unroll` uses it where :func:`seqjax.native.applies`
    (turned on, float32 LSTM, kernel built).
    """
    backend = backend or jax.default_backend()
    cpu = backend == "cpu"
    return Options(hoist=hoist, chunk=16 if cpu else 0, unroll=unroll, native=cpu)


def supports(cell) -> bool:
    """Whether :func:`fused_unroll` can run ``cell``: a :class:`~seqjax.cells.Cell` with a fused rule."""
    return isinstance(cell, Cell) and cell.has_fused_rule


# ------------------------------------------------------------------ helpers


def match_varying(tree, *refs):
    """Mark the leaves of ``tree`` as varying over every ``shard_map`` axis that some leaf of
    ``refs`` varies over. Buffers and zero states built inside a loop are not varying; the loop's
    outputs are, and a scan needs its carry's input and output types to agree."""
    pcast = getattr(lax, "pcast", None)
    if pcast is None or not hasattr(jax, "typeof"):  # a JAX without varying-axis types
        return tree
    axes = set()
    for leaf in jax.tree_util.tree_leaves(refs):
        axes |= _varying_axes(leaf)
    if not axes:
        return tree

    def cast(a):
        missing = tuple(sorted(axes - _varying_axes(a)))
        return pcast(a, missing, to="varying") if missing else a

    return jax.tree_util.tree_map(cast, tree)


def _reduce_to(ct, primal):
    """A cotangent summed over the ``shard_map`` axes it varies over and its primal does not, as
    JAX's own transpose of a replicated value does (a ``custom_vjp`` must match the primal's type)."""
    if not hasattr(jax, "typeof"):
        return ct
    extra = tuple(sorted(_varying_axes(ct) - _varying_axes(primal)))
    return lax.psum(ct, extra) if extra else ct


def _varying_axes(a) -> set:
    t = jax.typeof(a)
    mat = getattr(t, "manual_axis_type", None)  # jax >= 0.9; earlier: t.vma
    return set(mat.varying if mat is not None else getattr(t, "vma", ()))


def _mm_n(a, w, mm=None):
    """``a @ w`` for ``a`` (..., k) and ``w`` (k, n)."""
    return mixed_dot(a, w, (((a.ndim - 1,), (0,)), ((), ())), mm)


def _get(buf, t, axis):
    return lax.dynamic_index_in_dim(buf, t, axis, keepdims=False)


def _put(buf, val, t, axis):
    return lax.dynamic_update_index_in_dim(buf, val.astype(buf.dtype), t, axis)


def _sel(valid, new, old):
    return new if valid is None else jnp.where(valid[:, None], new, old)


def _sel_tree(valid, new, old):
    return jax.tree_util.tree_map(lambda n, o: _sel(valid, n, o), new, old)


def _time_index(i, T, reverse):
    return T - 1 - i if reverse else i


def _loop(body, init, T, unroll):
    """``T`` iterations of ``body(i, carry) -> carry`` (a scan with no per-step inputs/outputs)."""
    if T == 1:
        return body(jnp.int32(0), init)
    out, _ = lax.scan(lambda c, i: (body(i, c), None), init, jnp.arange(T, dtype=jnp.int32),
                      unroll=min(unroll, T))
    return out


def _blank(shape, dtype, seed, k: int):
    """A buffer that its loop writes in full before reading any of it; its fill value is never read.

    XLA merges identical initial values (every ``jnp.zeros`` of one shape), and a loop that updates
    a merged buffer in place then gets a copy of it of its own: one full extra pass over every
    per-step buffer of every layer (with fresh pages to fault in). The fill here is ``seed * 0 + k``,
    ``seed`` a scalar of this layer's own weights and ``k`` the buffer's number within the loop, which
    no other buffer shares, so nothing is copied."""
    fill = (lax.stop_gradient(seed).astype(jnp.float32) * 0 + k).astype(dtype)
    return jnp.full(shape, fill, dtype)


def _weights(cell, params):
    """``w_ih, w_hh`` rounded to the matmul dtype once, outside the loops."""
    mm = cell.matmul_dtype
    return tuple(params[k] if mm is None else params[k].astype(mm) for k in ("w_ih", "w_hh"))


# ------------------------------------------------------------------ forward


def _forward(cell, opts, reverse, axis, params, xs, carry0, lengths, save):
    """Returns ``(final, ys, saved)``; ``xs`` has time on ``axis`` (0 or 1), batch on the other,
    and ``saved`` holds :meth:`Cell.gates`' ``saved`` of every step (``None`` unless ``save``;
    with ``opts.native``, the kernel's own residuals ``(acts, cs)``, always)."""
    if opts.native:
        return _native_forward(reverse, axis, params, xs, carry0, lengths)
    T, B = xs.shape[axis], xs.shape[1 - axis]
    mm = cell.matmul_dtype
    dt = cell.carry_hidden(carry0).dtype
    w_ih, w_hh = _weights(cell, params)
    b_ih, b_hh = params.get("b_ih"), params.get("b_hh")
    G, H = w_hh.shape
    if opts.hoist:
        gxs = affine(xs, w_ih, b_ih, mm)

        def pre_at(t, h):
            return _get(gxs, t, axis) + affine(h, w_hh, b_hh, mm)
    else:
        w_cat = jnp.concatenate([w_ih, w_hh], axis=1)
        b_cat = None if b_ih is None else b_ih + b_hh

        def pre_at(t, h):
            return affine(jnp.concatenate([_get(xs, t, axis).astype(dt), h], axis=-1), w_cat, b_cat, mm)

    seed, count = params["w_hh"].reshape(-1)[0], iter(range(1 << 20))

    def per_step(feat, dtype):  # a (T, B, feat) buffer in the layout of xs, every step written
        return _blank((T, B, feat) if axis == 0 else (B, T, feat), dtype, seed, next(count))

    bufs = {"ys": per_step(H, dt)}
    if save:
        spec = jax.eval_shape(lambda c, a: cell.gates(c, a)[2], carry0, jax.ShapeDtypeStruct((B, G), dt))
        bufs["saved"] = jax.tree_util.tree_map(lambda s: per_step(s.shape[-1], s.dtype), spec)
    bufs = match_varying(bufs, xs, params, carry0, lengths)

    def body(i, state):
        carry, bufs = state
        t = _time_index(i, T, reverse)
        valid = None if lengths is None else t < lengths
        new, y, saved = cell.gates(carry, pre_at(t, cell.carry_hidden(carry)))
        bufs = dict(bufs)
        if save:
            bufs["saved"] = jax.tree_util.tree_map(lambda b, v: _put(b, v, t, axis), bufs["saved"], saved)
        bufs["ys"] = _put(bufs["ys"], _sel(valid, y, jnp.zeros_like(y)), t, axis)
        return _sel_tree(valid, new, carry), bufs

    final, bufs = _loop(body, (carry0, bufs), T, opts.unroll)
    return final, bufs["ys"], bufs.get("saved")


def _lengths_or_full(lengths, T, B):
    return jnp.full((B,), T, jnp.int32) if lengths is None else lengths.astype(jnp.int32)


def _native_forward(reverse, axis, params, xs, carry0, lengths):
    """:func:`_forward` on the compiled kernel: the whole recurrence in one custom call, each step's
    ``[x_t, h] @ [W_ih, W_hh]^T`` (plus the biases) one sgemm, as in the XLA loop without ``hoist``."""
    from seqjax import native  # imported on use: `python -m seqjax.native` runs it as a script

    T, B = xs.shape[axis], xs.shape[1 - axis]
    w_hh = params["w_hh"]
    b = params["b_ih"] + params["b_hh"] if "b_ih" in params else jnp.zeros(w_hh.shape[:1], w_hh.dtype)
    ys, h, c, acts, cs = native.lstm_forward(xs, params["w_ih"], w_hh, b, carry0.h, carry0.c,
                                             _lengths_or_full(lengths, T, B), reverse=reverse, batch_major=axis == 1)
    return LSTMCarry(h, c), ys, (acts, cs)


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

    Both are viewed as 2-D rows first (free for contiguous buffers, where a two-axis contraction
    would make XLA:CPU transpose the operands), and the narrow operand goes first, the faster
    order on XLA:CPU (benchmarks/README.md)."""
    a2, g2 = a.reshape(-1, a.shape[-1]), g.reshape(-1, g.shape[-1])
    return mixed_dot(a2, g2, (((0,), (0,)), ((), ())), mm)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _fused(cell, opts, reverse, axis, params, xs, carry0, lengths):
    final, ys, _ = _forward(cell, opts, reverse, axis, params, xs, carry0, lengths, save=False)
    return final, ys


def _fused_fwd(cell, opts, reverse, axis, params, xs, carry0, lengths):
    final, ys, saved = _forward(cell, opts, reverse, axis, params, xs, carry0, lengths, save=True)
    return (final, ys), (params, xs, carry0, lengths, final, ys, saved)


def _fused_bwd(cell, opts, reverse, axis, res, cts):
    params, xs, carry0, lengths, final, ys, saved = res
    d_final, dys = cts
    T, B, I = xs.shape[axis], xs.shape[1 - axis], xs.shape[-1]
    dt, mm = ys.dtype, cell.matmul_dtype
    w_ih, w_hh = _weights(cell, params)
    G = w_hh.shape[0]
    hprev = _h_prev(ys, cell.carry_hidden(carry0), lengths, reverse, axis)  # for the weight gradients
    dys = dys.astype(dt)
    refs = (dys, xs, params, carry0, lengths)
    if opts.native:
        from seqjax import native

        acts, cs = saved
        d_pre, dh0, dc0 = native.lstm_backward(w_hh, acts, cs, carry0.c, dys, d_final.h.astype(dt),
                                               d_final.c.astype(dt), _lengths_or_full(lengths, T, B),
                                               reverse=reverse, batch_major=axis == 1)
        return _finish(params, xs, carry0, _all_grads(d_pre, xs, hprev, w_ih, mm), LSTMCarry(dh0, dc0))

    def recurrent(g):
        return _mm_n(g, w_hh, mm)

    def step(state, t, valid):
        """One backward step: the step's pre-activation gradient; the gradient of the carry the
        step started from, and that carry's state (the one the step before produced)."""
        d_carry, after = state
        saved_t = jax.tree_util.tree_map(lambda b: _get(b, t, axis), saved)
        g, d_prev = cell.gates_bwd(saved_t, _get(ys, t, axis), after, d_carry, _get(dys, t, axis), recurrent)
        # unmasked: on a padded step the forward held the carry, so saved_t[1] is what it held
        return _sel(valid, g, jnp.zeros_like(g)), (_sel_tree(valid, d_prev, d_carry), saved_t[1])

    K = T if not opts.chunk else min(opts.chunk, T)

    def sweep(i0, size, state):
        """Steps ``i0 .. i0+size-1`` of the backward sweep: ``(state, g of the chunk, t_lo)``."""
        # the sweep runs against the forward direction; t_lo is the chunk's earliest timestep
        t_lo = i0 if reverse else T - i0 - size

        def inner(k, c):
            state, gbuf = c
            t = _time_index(i0 + k, T, not reverse)
            valid = None if lengths is None else t < lengths
            g, state = step(state, t, valid)
            return state, _put(gbuf, g, t - t_lo, axis)

        gbuf = match_varying(_blank((size, B, G) if axis == 0 else (B, size, G), dt, seed, 0), *refs)
        state, gbuf = _loop(inner, (state, gbuf), size, opts.unroll)
        return state, gbuf, t_lo

    def grads(gbuf, t_lo, acc):
        """A chunk's weight and bias gradients added to ``acc`` (``None``: the first chunk, which
        starts them), and its input gradient written into ``acc``'s buffer."""
        size = gbuf.shape[axis]
        x_c = lax.dynamic_slice_in_dim(xs, t_lo, size, axis).astype(dt)
        h_c = lax.dynamic_slice_in_dim(hprev, t_lo, size, axis)
        new = (_sum_outer_t(gbuf, x_c, mm), _sum_outer_t(gbuf, h_c, mm), jnp.sum(gbuf, axis=(0, 1)))
        if acc is None:  # every chunk writes its part of dx_buf, so it starts blank
            dx_buf = match_varying(_blank(xs.shape, dt, seed, 1), *refs)
        else:
            dx_buf = acc[3]
            new = tuple(a + n for a, n in zip(acc[:3], new, strict=True))
        dx_c = _mm_n(gbuf.reshape(-1, G), w_ih, mm).reshape(gbuf.shape[:2] + (I,))
        dx_buf = lax.dynamic_update_slice_in_dim(dx_buf, dx_c.astype(dx_buf.dtype), t_lo, axis)
        return (*new, dx_buf)

    # acc = (x^T g, h_prev^T g, sum of g, dX): dW_ih^T, dW_hh^T, the bias gradient and the input gradient.
    # The first chunk swept starts the sums, so that no zero buffer is shared with another layer's.
    seed = params["w_hh"].reshape(-1)[0]
    n_full, rem = divmod(T, K)
    state = (jax.tree_util.tree_map(lambda a: a.astype(dt), d_final), cell.carry_state(final))
    acc, done = None, 0
    if rem:
        state, g, t_lo = sweep(0, rem, state)
        acc = grads(g, t_lo, acc)
    if acc is None or n_full == 1:
        state, g, t_lo = sweep(rem, K, state)
        acc, done = grads(g, t_lo, acc), 1
    if n_full - done == 1:
        state, g, t_lo = sweep(rem + done * K, K, state)
        acc = grads(g, t_lo, acc)
    elif n_full - done > 1:
        def body(c, carry):
            state, acc = carry
            state, g, t_lo = sweep(rem + (done + c) * K, K, state)
            return state, grads(g, t_lo, acc)
        state, acc = _loop(body, (state, match_varying(acc, *refs)), n_full - done, 1)
    return _finish(params, xs, carry0, acc, state[0])


def _all_grads(d_pre, xs, hprev, w_ih, mm):
    """``(x^T g, h_prev^T g, sum of g, dX)`` from every step's pre-activation gradient at once."""
    d_xs = _mm_n(d_pre.reshape(-1, d_pre.shape[-1]), w_ih, mm).reshape(xs.shape)
    return (_sum_outer_t(d_pre, xs.astype(d_pre.dtype), mm), _sum_outer_t(d_pre, hprev, mm),
            jnp.sum(d_pre, axis=(0, 1)), d_xs)


def _finish(params, xs, carry0, acc, d_carry):
    """The cotangents of ``_fused``'s arguments from the summed gradients ``acc`` and ``d_carry``."""
    acc_x, acc_h, acc_b, d_xs = acc
    full = {"w_ih": acc_x.T, "w_hh": acc_h.T, "b_ih": acc_b, "b_hh": acc_b}
    cts = ({k: full[k] for k in params}, d_xs, d_carry)
    cts = jax.tree_util.tree_map(lambda d, a: _reduce_to(d.astype(a.dtype), a), cts, (params, xs, carry0))
    return (*cts, None)


_fused.defvjp(_fused_fwd, _fused_bwd)


def fused_unroll(cell: Cell, params, xs, carry0, lengths, *, reverse: bool, opts: Options,
                 time_major: bool = True):
    """``xs`` ``(T, B, I)`` (or ``(B, T, I)`` with ``time_major=False``); ``carry0`` given, in the
    compute dtype; ``lengths`` ``(B,)`` int32 or ``None``. Returns ``(final_carry, ys)`` with ``ys``
    in the layout of ``xs``, exactly like the plain scan in :func:`seqjax.recurrent.unroll`."""
    p = {k: params[k] for k in ("w_ih", "w_hh", "b_ih", "b_hh") if k in params}
    if opts.native:
        from seqjax import native

        varying = any(_varying_axes(a) for a in jax.tree_util.tree_leaves((p, xs, carry0))) if hasattr(
            jax, "typeof") else False  # the kernel's outputs carry no shard_map axis types
        opts = opts._replace(native=not varying and native.applies(cell, xs, p, carry0))
    return _fused(cell, opts, bool(reverse), 0 if time_major else 1, p, xs, carry0, lengths)


# ------------------------------------------------------------------ layer wavefront


def _wave_forward(cell, opts, params, xs, carry0, lengths, save):
    """All layers of a unidirectional stack in one loop of ``T + L - 1`` iterations, time-major:
    iteration ``s`` runs layer ``l`` at step ``t = s - l``. Layer ``l`` reads layer ``l - 1``'s
    output at ``t``, which is that layer's hidden state at the start of the iteration wherever step
    ``t`` is real for layer ``l`` (a padded step holds the state, and layer ``l`` drops its result
    there). So every hidden state is multiplied once per iteration, by ``[W_hh(l); W_ih(l+1)]``.
    Returns ``(finals, ys, saved)``, per layer, with each layer's outputs and ``gates``' saved."""
    L, (T, B) = len(params), xs.shape[:2]
    mm, dt = cell.matmul_dtype, cell.carry_hidden(carry0[0]).dtype
    G, H = params[0]["w_hh"].shape
    ws = [_weights(cell, p) for p in params]
    w = [jnp.concatenate([ws[i][1]] + ([ws[i + 1][0]] if i + 1 < L else []), axis=0) for i in range(L)]
    b = [None if "b_ih" not in p else p["b_ih"] + p["b_hh"] for p in params]
    gx0 = affine(xs.astype(dt), ws[0][0], b[0], mm)
    seed, count = params[0]["w_hh"].reshape(-1)[0], iter(range(1 << 20))
    bufs = {"ys": [_blank((T, B, H), dt, seed, next(count)) for _ in range(L)]}
    if save:
        spec = jax.eval_shape(lambda c, a: cell.gates(c, a)[2], carry0[0], jax.ShapeDtypeStruct((B, G), dt))
        bufs["saved"] = [jax.tree_util.tree_map(lambda s: _blank((T, B, s.shape[-1]), s.dtype, seed, next(count)),
                                                spec) for _ in range(L)]
    bufs = match_varying(bufs, xs, params, carry0, lengths)

    def put(buf, val, t, inside):  # outside 0..T-1 the clamped slot keeps what it holds
        tc = jnp.clip(t, 0, T - 1)
        return _put(buf, jnp.where(inside, val.astype(buf.dtype), _get(buf, tc, 0)), tc, 0)

    def body(s, state):
        carries, bufs = state
        proj = [matmul(cell.carry_hidden(c), w[i], mm) for i, c in enumerate(carries)]
        new, bufs = [], {k: list(v) for k, v in bufs.items()}
        for i in range(L):
            t = s - i
            inside = (t >= 0) & (t < T)
            pre = proj[i][:, :G] + (_get(gx0, jnp.clip(t, 0, T - 1), 0) if i == 0 else proj[i - 1][:, G:])
            if i > 0 and b[i] is not None:
                pre = pre + b[i][None, :]
            c, y, saved = cell.gates(carries[i], pre)
            valid = jnp.broadcast_to(inside, (B,)) if lengths is None else inside & (t < lengths)
            bufs["ys"][i] = put(bufs["ys"][i], _sel(valid, y, jnp.zeros_like(y)), t, inside)
            if save:
                bufs["saved"][i] = jax.tree_util.tree_map(lambda bf, v, t=t, inside=inside: put(bf, v, t, inside),
                                                          bufs["saved"][i], saved)
            new.append(_sel_tree(valid, c, carries[i]))
        return new, bufs

    finals, bufs = _loop(body, (list(carry0), bufs), T + L - 1, opts.unroll)
    return finals, bufs["ys"], bufs.get("saved")


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _wave(cell, opts, params, xs, carry0, lengths):
    finals, ys, _ = _wave_forward(cell, opts, params, xs, carry0, lengths, save=False)
    return finals, ys[-1]


def _wave_fwd(cell, opts, params, xs, carry0, lengths):
    finals, ys, saved = _wave_forward(cell, opts, params, xs, carry0, lengths, save=True)
    return (finals, ys[-1]), (params, xs, carry0, lengths, finals, ys, saved)


def _wave_bwd(cell, opts, res, cts):
    """Each layer's own fused backward sweep, top layer first; a layer's input gradient is the
    output gradient of the layer below."""
    params, xs, carry0, lengths, finals, ys, saved = res
    d_finals, dy = cts
    L = len(params)
    d_params, d_carry0 = [None] * L, [None] * L
    for i in reversed(range(L)):
        x_i = xs if i == 0 else ys[i - 1]
        res_i = (params[i], x_i, carry0[i], lengths, finals[i], ys[i], saved[i])
        d_params[i], dy, d_carry0[i], _ = _fused_bwd(cell, opts, False, 0, res_i, (d_finals[i], dy))
    return d_params, dy, d_carry0, None


_wave.defvjp(_wave_fwd, _wave_bwd)


def wavefront_unroll(cell: Cell, params: list, xs, carry0: list, lengths, *, opts: Options):
    """A unidirectional stack of ``len(params)`` layers in one time loop (see :func:`_wave_forward`),
    with each layer's fused backward. ``xs`` ``(T, B, I)`` time-major, ``carry0`` a list of per-layer
    carries in the compute dtype. Returns ``(per-layer final carries, top layer's ys)``, exactly
    what the layers run one after another through :func:`fused_unroll` give."""
    p = [{k: q[k] for k in ("w_ih", "w_hh", "b_ih", "b_hh") if k in q} for q in params]
    return _wave(cell, opts._replace(native=False), p, xs, list(carry0), lengths)  # its own XLA loop
