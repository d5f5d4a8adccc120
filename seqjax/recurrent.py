"""The time loop, and the layers built on it.

:func:`unroll` is the one place where seqjax loops over time: one ``lax.scan`` for every core,
and, for the cells with a fused rule (RNN, LSTM), the fused loop of :mod:`seqjax._fast`, whose
gradient is faster. It owns variable lengths, direction, the unroll factor, where the input
projection is computed, dtype promotion, and the static switch ``fused``. :func:`bidirectional`
runs a cell both ways and :class:`Stack` builds multi-layer networks from it; neither loops over a
timestep itself. Anything with a ``step(params, carry, x) -> (carry, y)`` method is a *core* and
can be unrolled: the cells of :mod:`seqjax.cells`, a single-direction :class:`Stack`, and the
autoregressive cores of :mod:`seqjax.structures` and :mod:`seqjax.decoding`.

Linear-recurrence cells (``mingru``, ``minlstm``, ``rglru``): :func:`unroll` projects every
step's input at once, turns it into the coefficients of ``h' = a ⊙ h + b``, and evaluates that
with :func:`seqjax.scan.linear_scan` by the cell's ``scan`` method. Padded steps get ``a = 1``,
``b = 0``, which holds the state exactly as the masked loop does.

Rematerialisation: ``remat=k`` cuts the sequence into chunks of ``k`` steps and wraps each in
``jax.checkpoint``. Training then keeps only the carry at each chunk boundary (``T/k`` carries) and
recomputes one chunk's steps at a time in the backward pass: memory for the recurrence grows as
``T/k + k`` instead of ``T``, for about one more forward pass of time. The values and gradients
are those of the plain loop.

Variable-length batches: with ``lengths``, step ``t`` of sequence ``b`` is real iff
``t < lengths[b]``. On padded steps the carry is held and the output is zero. The reverse direction
starts from ``carry0`` at each sequence's own last real step, so a padded batch gives exactly the
outputs and final states each sequence would give alone.

Dtypes: a cell computes in the promoted dtype of its params, inputs and initial carry (float32
params with bfloat16 inputs compute and return float32), as Flax does.

Eager calls: outside ``jit``, a cell's :func:`unroll` and a :class:`Stack` run as one compiled
function per static configuration (cell, flags, shapes and dtypes), cached, so that calling a layer
in a notebook costs a compiled call, not a fresh trace of every step.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.interpreters import ad
from jax.interpreters import partial_eval as pe

from seqjax import _fast
from seqjax.cells import Cell, make_cell
from seqjax.scan import linear_scan

MERGE_MODES = ("concat", "sum", "mean")


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _eager(*trees) -> bool:
    """No leaf is being traced: the call runs op by op, outside any transformation."""
    return all(_is_concrete(a) for a in jax.tree_util.tree_leaves(trees))


def _forward_mode(tree) -> bool:
    """Whether forward-mode autodiff (``jax.jvp``, ``jax.jacfwd``) is applied to this call, looking
    through ``vmap``. Reverse mode (``grad``, ``vjp``, the inside of ``hessian``) is not forward
    mode, and neither is a trace whose transformations are applied later (``jax.jvp(jax.jit(f))``:
    see :func:`unroll`)."""
    for leaf in jax.tree_util.tree_leaves(tree):
        x = leaf
        while isinstance(x, jax.core.Tracer):
            if isinstance(x, ad.JVPTracer):
                # JAX's older reverse mode is a JVP with partially evaluated tangents
                return not isinstance(x.tangent, pe.JaxprTracer)
            x = getattr(x, "val", None) if type(x).__name__ == "BatchTracer" else None
    return False


def _describe(carry) -> str:
    return str(jax.tree_util.tree_map(lambda a: tuple(np.shape(a)), carry))


def _kind_of(x) -> str:
    return type(x).__name__


def default_hoist() -> bool:
    """Whether :func:`unroll` projects all timesteps' inputs with one matmul before the loop.

    That is cuDNN's recipe, kept for accelerators (not yet measured). On XLA:CPU the hoisted
    projection measured slower than projecting inside each step (benchmarks/README.md), so CPU
    keeps the per-step form.
    """
    return jax.default_backend() != "cpu"


def check_lengths(lengths, batch: int | None, T: int):
    """Validate a lengths vector: shape ``(batch,)`` (or scalar for one sequence), values in [1, T].

    Values are checked when they are concrete (numpy, or a jax array outside ``jit``); under
    ``jit`` only the shape and dtype can be checked while tracing.
    """
    if not hasattr(lengths, "shape"):
        if isinstance(lengths, (list, tuple)):
            raise ValueError(f"expected lengths as an integer array of shape {(batch,)}, got a {_kind_of(lengths)}")
        lengths = np.asarray(lengths)
    want = () if batch is None else (batch,)
    if tuple(lengths.shape) != want:
        raise ValueError(f"expected lengths of shape {want} (one per sequence), got {tuple(lengths.shape)}")
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise ValueError(f"expected integer lengths, got dtype {lengths.dtype}")
    if _is_concrete(lengths):
        arr = np.asarray(lengths)
        if arr.size and (arr.min() < 1 or arr.max() > T):
            raise ValueError(f"lengths must lie in [1, {T}] (the padded time dimension); got min {arr.min()}, "
                             f"max {arr.max()}")
    return jnp.asarray(lengths, jnp.int32)


def _check_inputs(cell: Cell, params, xs, time_major: bool) -> tuple[int, int]:
    """Validate ``xs`` against the params of the cell that reads it, in the caller's layout.
    Returns ``(input_size, hidden_size)``."""
    input_size, hidden = cell.sizes(params)
    layout = "(time, batch, features)" if time_major else "(batch, time, features)"
    if not hasattr(xs, "ndim") or not hasattr(xs, "dtype"):
        raise ValueError(f"expected inputs as an array of shape {layout} with features={input_size}, or "
                         f"(time, features) for one sequence; got a {_kind_of(xs)} (convert it with jnp.asarray)")
    if xs.ndim not in (2, 3):
        raise ValueError(f"expected inputs of shape {layout} or (time, features) for one sequence, "
                         f"features={input_size}; got shape {tuple(xs.shape)}")
    if xs.shape[-1] != input_size:
        raise ValueError(f"expected inputs with {input_size} features (the params' input size), got shape "
                         f"{tuple(xs.shape)} with {xs.shape[-1]} features")
    return input_size, hidden


def _check_carry(cell: Cell, carry0, batch_shape: tuple[int, ...], hidden: int, layout: str):
    """Validate an initial carry against the zero carry of shape ``(*batch_shape, hidden)``; an
    LSTM carry may be a plain ``(h, c)`` pair. Returns it in the cell's carry type."""
    want = jax.eval_shape(lambda: cell.initial_carry(batch_shape, hidden))
    if isinstance(want, tuple) and type(carry0) is not type(want) and isinstance(carry0, (tuple, list)) \
            and len(carry0) == len(want):
        carry0 = type(want)(*carry0)
    ok = jax.tree_util.tree_structure(carry0) == jax.tree_util.tree_structure(want) and all(
        np.shape(a) == b.shape for a, b in zip(jax.tree_util.tree_leaves(carry0), jax.tree_util.tree_leaves(want),
                                              strict=True))
    if not ok:
        raise ValueError(f"expected an initial carry shaped {_describe(want)} {layout} for {cell.name}, "
                         f"got {_describe(carry0)}")
    return carry0


def _compute_dtype(*trees):
    """The promoted dtype of the floating-point leaves (float32 if there are none)."""
    dtypes = [a.dtype for a in jax.tree_util.tree_leaves(trees) if jnp.issubdtype(a.dtype, jnp.floating)]
    return jnp.result_type(*dtypes) if dtypes else jnp.dtype(jnp.float32)


def check_remat(remat) -> int:
    """A ``remat`` setting as steps per checkpointed chunk: a non-negative int, 0 (or ``None``) off."""
    if remat is None:
        return 0
    if not isinstance(remat, (int, np.integer)) or isinstance(remat, bool) or remat < 0:
        raise ValueError(f"remat must be a whole number of steps per checkpoint (0 = off), got {remat!r}")
    return int(remat)


def unroll(cell, params, xs, carry0=None, *, lengths=None, reverse: bool = False, unroll: int = 1,
           time_major: bool = False, hoist: bool | None = None, fused: bool = True, remat: int = 0):
    """Run ``cell.step`` over time. Returns ``(final_carry, ys)``.

    Args:
      cell: a :class:`~seqjax.cells.Cell`, a cell name, or any core with ``step(params, carry, x)``.
      params: the cell's params pytree.
      xs: ``(batch, time, features)``; ``(time, batch, features)`` if ``time_major``; or
        ``(time, features)`` for one unbatched sequence. Generic cores may take any pytree whose
        leaves carry the batch and time axes in that order.
      carry0: initial carry; zeros if omitted (cells only; generic cores need one).
      lengths: optional ``(batch,)`` int array of real lengths in [1, time] (a scalar when unbatched).
      reverse: run from the last real step to the first (within each sequence's length).
      unroll: steps per scan iteration (``lax.scan``'s unroll factor).
      time_major: layout of ``xs`` and ``ys``.
      hoist: compute ``W_ih x + b_ih`` for all steps before the loop; ``None`` picks per backend
        (:func:`default_hoist`).
      fused: static switch for the cells with a fused rule (RNN, LSTM). ``True`` runs them through
        :mod:`seqjax._fast`: the same outputs, with a hand-written backward pass that computes the
        weight gradients with a few big matmuls (faster training). For the linear-recurrence
        cells, ``True`` evaluates the recurrence with :func:`seqjax.scan.linear_scan` (the cell's
        ``scan`` method, its own backward rule). ``False`` runs the plain ``lax.scan`` of
        ``cell.step``, differentiated by JAX. Other cells and cores always take the scan.
      remat: ``k > 0`` checkpoints every ``k`` steps (``jax.checkpoint`` over chunks of ``k``):
        training memory for the recurrence grows with ``T/k + k`` rather than ``T``, at the cost
        of recomputing the forward pass in the backward one. 0 (the default) stores every step.

    Forward-mode autodiff (``jax.jvp``, ``jax.jacfwd``) of a function that calls ``unroll`` works
    with either setting: under forward mode the call takes the plain scan. ``jax.hessian`` works
    too. Only forward mode applied to a function that was already traced without it, such as
    ``jax.jvp(jax.jit(f))``, cannot be seen here and fails in JAX's ``custom_vjp``; build that
    ``f`` with ``fused=False``.

    Returns:
      ``final_carry`` (the state after each sequence's last real step; after its first real step
      when ``reverse``) and ``ys`` in the layout of ``xs`` (zeros at padded steps).

    A core of your own passes through ``jax.jit(unroll)`` as a static argument,
    ``jax.jit(unroll, static_argnums=0)``, or by registering its class with
    ``jax.tree_util.register_static`` (it must be hashable, e.g. a frozen dataclass).
    """
    if isinstance(cell, str):
        cell = make_cell(cell)
    if not hasattr(cell, "step"):
        raise ValueError(f"expected a cell or a core with a step(params, carry, x) method, got {_kind_of(cell)}")
    if not isinstance(unroll, int) or isinstance(unroll, bool) or unroll < 1:
        raise ValueError(f"unroll must be a positive int, got {unroll!r}")
    hoist = default_hoist() if hoist is None else bool(hoist)
    remat = check_remat(remat)

    if not isinstance(cell, Cell):
        return _unroll_core(cell, params, xs, carry0, lengths, bool(reverse), unroll, time_major, remat)

    _, hidden = _check_inputs(cell, params, xs, time_major)
    single = xs.ndim == 2
    T, B = (xs.shape[0], None) if single else xs.shape[:2] if time_major else xs.shape[1::-1]
    if carry0 is not None:
        carry0 = _check_carry(cell, carry0, () if single else (B,), hidden, f"(batch, hidden={hidden})")
    if lengths is not None:
        lengths = check_lengths(lengths, B, T)
    if single:  # one sequence: (time, features) -> (time, 1, features)
        xs, time_major = xs[:, None, :], True
        carry0 = None if carry0 is None else jax.tree_util.tree_map(lambda a: jnp.asarray(a)[None], carry0)
        lengths = None if lengths is None else jnp.reshape(lengths, (1,))
    run = _unroll_cell_jit if _eager(params, xs, carry0, lengths) else _unroll_cell
    final, ys = run(cell, params, xs, carry0, lengths, bool(reverse), unroll, time_major, hoist, bool(fused),
                    remat)
    if single:
        return jax.tree_util.tree_map(lambda a: a[0], final), ys[:, 0]
    return final, ys


_unroll = unroll  # the name `unroll` is also a keyword argument below


def _unroll_cell(cell: Cell, params, xs, carry0, lengths, reverse, unroll, time_major, hoist, fused, remat=0):
    """A checked, batched cell unroll: promotes dtypes, fills the zero carry, picks the loop."""
    dtype = _compute_dtype(params, xs, carry0)
    xs = xs.astype(dtype) if xs.dtype != dtype else xs
    if carry0 is None:
        carry0 = cell.initial_carry((xs.shape[1 if time_major else 0],), cell.sizes(params)[1], dtype)
    else:
        carry0 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), carry0)
    carry0 = _fast.match_varying(carry0, params, xs, lengths)  # under shard_map
    forward_mode = _forward_mode((params, xs, carry0))
    if fused and _fast.supports(cell) and not forward_mode:
        opts = _fast.default_options(hoist=hoist, unroll=unroll)

        def run(xs, carry0, lengths):
            return _fast.fused_unroll(cell, params, xs, carry0, lengths, reverse=reverse, time_major=time_major,
                                      opts=opts)
    elif fused and cell.is_linear:
        def run(xs, carry0, lengths):
            return _linear_unroll(cell, params, xs, carry0, lengths, reverse=reverse, unroll=unroll,
                                  time_major=time_major, custom_grad=not forward_mode)
    else:
        def run(xs, carry0, lengths):
            return _scan(cell, params, xs, carry0, lengths, reverse=reverse, unroll=unroll, time_major=time_major,
                         hoist=hoist)
    if remat:
        return _rematerialised(run, xs, carry0, lengths, reverse=reverse, time_major=time_major, k=remat)
    return run(xs, carry0, lengths)


# positions: cell, reverse, unroll, time_major, hoist, fused, remat are static
_unroll_cell_jit = jax.jit(_unroll_cell, static_argnums=(0, 5, 6, 7, 8, 9, 10))


def _linear_unroll(cell: Cell, params, xs, carry0, lengths, *, reverse, unroll, time_major, custom_grad):
    """A linear-recurrence cell over a batch: all input projections at once, then the elementwise
    recurrence by the cell's ``scan`` method. Padded steps get ``a = 1, b = 0`` (the state is held)
    and a zero output, as in the masked loop."""
    xs_t = xs if time_major else jnp.swapaxes(xs, 0, 1)
    a, b = cell.coefficients(params, cell.project_input(params, xs_t))
    valid = None
    if lengths is not None:
        valid = (jnp.arange(xs_t.shape[0])[:, None] < lengths[None, :])[..., None]
        a = jnp.where(valid, a, jnp.ones_like(a))
        b = jnp.where(valid, b, jnp.zeros_like(b))
    hs = linear_scan(a, b, carry0, reverse=reverse, method=cell.scan, unroll=unroll, custom_grad=custom_grad)
    final = hs[0] if reverse else hs[-1]
    ys = hs if valid is None else jnp.where(valid, hs, jnp.zeros_like(hs))
    return final, (ys if time_major else jnp.swapaxes(ys, 0, 1))


def _rematerialised(run, xs, carry0, lengths, *, reverse, time_major, k):
    """``run(xs, carry0, lengths) -> (final, ys)`` over chunks of ``k`` steps, each chunk under
    ``jax.checkpoint``: the backward pass keeps the carries between chunks and recomputes each
    chunk's inside. ``xs`` may be any pytree whose leaves have time on axis 0 (``time_major``) or 1.
    The last ``T mod k`` steps (the first ones run, when ``reverse``) are one shorter chunk."""
    ax = 0 if time_major else 1
    T = jax.tree_util.tree_leaves(xs)[0].shape[ax]
    if k >= T:
        return run(xs, carry0, lengths)
    n, rem = divmod(T, k)
    tmap = jax.tree_util.tree_map
    main = tmap(lambda a: jax.lax.slice_in_dim(a, 0, n * k, axis=ax), xs) if rem else xs
    # chunks on a leading axis: (n, k, B, ...) or, batch-major, (n, B, k, ...)
    chunks = tmap(lambda a: jnp.moveaxis(a.reshape(a.shape[:ax] + (n, k) + a.shape[ax + 1:]), ax, 0), main)

    @jax.checkpoint
    def body(carry, inp):
        xs_c, offset = inp
        return run(xs_c, carry, None if lengths is None else lengths - offset)

    def run_tail(carry):
        tail = tmap(lambda a: jax.lax.slice_in_dim(a, n * k, T, axis=ax), xs)
        return run(tail, carry, None if lengths is None else lengths - n * k)

    carry = carry0
    if rem and reverse:  # the reverse direction meets the last steps first
        carry, ys_tail = run_tail(carry)
    carry, ys = jax.lax.scan(body, carry, (chunks, jnp.arange(n, dtype=jnp.int32) * k), reverse=reverse)
    if rem and not reverse:
        carry, ys_tail = run_tail(carry)
    ys = tmap(lambda a: jnp.moveaxis(a, 0, ax).reshape(a.shape[1:ax + 1] + (n * k,) + a.shape[ax + 2:]), ys)
    if rem:
        ys = tmap(lambda a, b: jnp.concatenate([a, b], axis=ax), ys, ys_tail)
    return carry, ys


def _unroll_core(core, params, xs, carry0, lengths, reverse, unroll, time_major, remat=0):
    """Unroll a generic core (anything with ``step``)."""
    if carry0 is None:
        raise ValueError(f"carry0 is required to unroll a generic core ({_kind_of(core)})")
    leaves = jax.tree_util.tree_leaves(xs)
    if not leaves:
        raise ValueError("unroll needs at least one input array to know the number of steps")
    if any(np.ndim(a) < 2 for a in leaves):
        raise ValueError(f"expected every input leaf to have batch and time axes, got shapes {_describe(xs)}")
    T, B = np.shape(leaves[0])[:2] if time_major else np.shape(leaves[0])[1::-1]
    if lengths is not None:
        lengths = check_lengths(lengths, B, T)
        _check_batch_axes(core, carry0, B)

    def run(xs, carry0, lengths):
        return _scan(core, params, xs, carry0, lengths, reverse=reverse, unroll=unroll, time_major=time_major,
                     hoist=False)
    if remat:
        return _rematerialised(run, xs, carry0, lengths, reverse=reverse, time_major=time_major, k=remat)
    return run(xs, carry0, lengths)


def _scan(core, params, xs, carry0, lengths, *, reverse, unroll, time_major, hoist):
    """The ``lax.scan`` over ``core.step``, with masking; ``hoist`` (cells) projects the inputs first."""
    leaves = jax.tree_util.tree_leaves(xs)
    T = leaves[0].shape[0 if time_major else 1]
    xs_t = xs if time_major else jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1), xs)
    if hoist and isinstance(core, Cell):
        xs_t = core.project_input(params, xs_t)
        step = core.step_projected
    else:
        step = core.step
    axes = None if lengths is None else jax.tree_util.tree_structure(carry0).flatten_up_to(
        carry_batch_axes(core, carry0))

    def body(carry, inp):
        x_t, t = inp
        new_carry, y = step(params, carry, x_t)
        if lengths is not None:
            valid = t < lengths

            def keep(new, old, axis=0):
                if axis is None:  # a leaf shared by the whole batch (e.g. a step counter)
                    return new
                shape = [1] * new.ndim
                shape[axis] = valid.shape[0]
                return jnp.where(valid.reshape(shape), new, old)

            treedef = jax.tree_util.tree_structure(new_carry)
            new_carry = treedef.unflatten([keep(n, o, a) for n, o, a in zip(
                treedef.flatten_up_to(new_carry), treedef.flatten_up_to(carry), axes, strict=True)])
            y = jax.tree_util.tree_map(lambda a: keep(a, jnp.zeros_like(a)), y)
        return new_carry, y

    final, ys = jax.lax.scan(body, carry0, (xs_t, jnp.arange(T)), reverse=reverse, unroll=unroll)
    if not time_major:
        ys = jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1), ys)
    return final, ys


def carry_batch_axes(core, carry):
    """Where the batch axis sits in each leaf of ``core``'s carry (a pytree of ints like ``carry``).

    Cells keep it first. A core may say otherwise with a ``carry_batch_axis`` attribute: an int for
    every leaf (a :class:`Stack` carry is ``(layers, batch, H)``: axis 1), or a function of the
    carry returning a pytree of ints, ``None`` for leaves shared by the whole batch.
    """
    axis = getattr(core, "carry_batch_axis", 0)
    if callable(axis):
        return axis(carry)
    return jax.tree_util.tree_map(lambda _: axis, carry)


def _check_batch_axes(core, carry, batch: int):
    """With ``lengths``, every carry leaf must have the batch on its axis (or be marked shared)."""
    paths = jax.tree_util.tree_flatten_with_path(carry)[0]
    axes = jax.tree_util.tree_structure(carry).flatten_up_to(carry_batch_axes(core, carry))
    for (path, leaf), axis in zip(paths, axes, strict=True):
        shape = tuple(np.shape(leaf))
        if axis is not None and not (-len(shape) <= axis < len(shape) and shape[axis] == batch):
            raise ValueError(
                f"with lengths, unroll holds each carry leaf on padded steps, along its batch axis; carry leaf "
                f"{jax.tree_util.keystr(path) or '(the carry)'} of shape {shape} has no batch axis {axis} of size "
                f"{batch}. Give {_kind_of(core)} a carry_batch_axis: an int, or a function of the carry returning "
                "one per leaf (None for a leaf shared by the whole batch, like a step counter)")


def merge(fwd: jax.Array, bwd: jax.Array, mode: str) -> jax.Array:
    """Combine the two directions' outputs: ``concat`` (2H features), ``sum`` or ``mean`` (H)."""
    if mode == "concat":
        return jnp.concatenate([fwd, bwd], axis=-1)
    if mode == "sum":
        return fwd + bwd
    if mode == "mean":
        return 0.5 * (fwd + bwd)
    raise ValueError(f"unknown merge mode {mode!r}; expected one of {MERGE_MODES}")


def bidirectional(cell, params_fwd, params_bwd, xs, carry0=None, *, lengths=None, merge_mode="concat", **kw):
    """Run a cell forwards and backwards (within lengths) and merge the outputs.

    Returns ``((final_fwd, final_bwd), ys)``; ``carry0`` is ``None`` or a ``(fwd, bwd)`` pair;
    ``kw`` are :func:`unroll`'s other keyword arguments.
    """
    c_f, c_b = (None, None) if carry0 is None else carry0
    final_f, y_f = _unroll(cell, params_fwd, xs, c_f, lengths=lengths, **kw)
    final_b, y_b = _unroll(cell, params_bwd, xs, c_b, lengths=lengths, reverse=True, **kw)
    return (final_f, final_b), merge(y_f, y_b, merge_mode)


@jax.tree_util.register_static  # passes through jit/vmap as a static value
@dataclasses.dataclass(frozen=True)
class Stack:
    """A multi-layer, optionally bidirectional recurrent network, like ``torch.nn.LSTM``.

    Params are a list with one dict per layer, ``{"fwd": cell_params}`` plus ``"bwd"`` when
    bidirectional. Final states use PyTorch's ``(num_layers * num_directions, batch, hidden)``
    layout, ordered layer by layer with the forward direction first. Dropout (rate ``dropout``) is
    applied to each layer's output except the last, in training only. ``fused`` and ``remat``
    are :func:`unroll`'s, for every layer (each layer checkpoints its own chunks). ``wavefront=True``
    (unidirectional RNN/LSTM stacks without dropout or remat) runs all layers in one time loop, layer
    ``l`` at step ``t - l``, each layer then with its own fused backward sweep (the same results;
    reverse mode only; off by default, benchmarks/README.md has its speed). ``cudnn=True``
    (LSTM only) runs all layers as one cuDNN call on a CUDA GPU, with the same params and results
    (:mod:`seqjax.cudnn`; off by default).
    """

    cell: Cell
    num_layers: int = 1
    bidirectional: bool = False
    merge: str = "concat"
    dropout: float = 0.0
    fused: bool = True
    remat: int = 0
    cudnn: bool = False
    wavefront: bool = False

    carry_batch_axis = 1  # as a core (see step), the carry is (num_layers, batch, hidden)

    def __post_init__(self):
        object.__setattr__(self, "cell", make_cell(self.cell))
        if not isinstance(self.num_layers, int) or self.num_layers < 1:
            raise ValueError(f"num_layers must be a positive int, got {self.num_layers!r}")
        if self.merge not in MERGE_MODES:
            raise ValueError(f"unknown merge mode {self.merge!r}; expected one of {MERGE_MODES}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        object.__setattr__(self, "remat", check_remat(self.remat))
        if self.wavefront:
            why = ("it needs a unidirectional stack, got bidirectional=True" if self.bidirectional else
                   f"it needs dropout=0 between layers, got dropout={self.dropout}" if self.dropout > 0 else
                   f"it cannot checkpoint, so it needs remat=0, got remat={self.remat}" if self.remat else
                   "it cannot run on cuDNN, got cudnn=True" if self.cudnn else
                   "it runs the fused loop, so it needs fused=True, got fused=False" if not self.fused else
                   f"its cell must have a fused rule (rnn or lstm), got {self.cell.name}"
                   if not self.cell.has_fused_rule else None)
            if why:
                raise ValueError(f"Stack(wavefront=True): {why}")
        if self.cudnn:
            from seqjax import cudnn

            cudnn.check_stack(self)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def output_size(self, hidden_size: int) -> int:
        return hidden_size * (2 if self.bidirectional and self.merge == "concat" else 1)

    def init(self, key, input_size: int, hidden_size: int, *, init: str = "torch", forget_bias: float = 0.0,
             bias: bool = True, dtype: Any = jnp.float32) -> list[dict]:
        """Params for every layer and direction; the arguments are those of :meth:`Cell.init`."""
        layers = []
        keys = jax.random.split(key, self.num_layers * 2)
        in_size = input_size
        for layer in range(self.num_layers):
            kw = dict(init=init, forget_bias=forget_bias, bias=bias, dtype=dtype)
            p = {"fwd": self.cell.init(keys[2 * layer], in_size, hidden_size, **kw)}
            if self.bidirectional:
                p["bwd"] = self.cell.init(keys[2 * layer + 1], in_size, hidden_size, **kw)
            layers.append(p)
            in_size = self.output_size(hidden_size)
        return layers

    def initial_carry(self, batch_size: int, hidden_size: int, dtype: Any = jnp.float32):
        """Zero state in PyTorch's layout ``(num_layers * num_directions, batch, hidden)``."""
        return self.cell.initial_carry((self.num_layers * self.num_directions, batch_size), hidden_size, dtype)

    def _check_params(self, params) -> int:
        """Validate every layer's params, and that each layer reads what the one below gives.
        Returns the hidden size."""
        if not isinstance(params, (list, tuple)) or len(params) != self.num_layers:
            n = len(params) if isinstance(params, (list, tuple)) else _kind_of(params)
            raise ValueError(f"expected params for {self.num_layers} layer(s) (a list from Stack.init), got {n}")
        want = {"fwd", "bwd"} if self.bidirectional else {"fwd"}
        hidden = None
        for i, p in enumerate(params):
            if not isinstance(p, dict) or set(p) != want:
                got = sorted(p) if isinstance(p, dict) else _kind_of(p)
                raise ValueError(f"layer {i} params must have keys {sorted(want)} "
                                 f"(bidirectional={self.bidirectional}), got {got}")
            for d in sorted(want, reverse=True):
                try:
                    in_size, h = self.cell.sizes(p[d])
                except ValueError as e:
                    raise ValueError(f"layer {i} ({d}): {e}") from None
                hidden = h if hidden is None else hidden
                if h != hidden:
                    raise ValueError(f"layer {i} ({d}) params have hidden size {h}; layer 0 has {hidden}")
                if i > 0 and in_size != self.output_size(hidden):
                    raise ValueError(f"layer {i} ({d}) params take {in_size} input features, but layer {i - 1} "
                                     f"outputs {self.output_size(hidden)} (hidden {hidden}, "
                                     f"bidirectional={self.bidirectional}, merge={self.merge!r})")
        return hidden

    def __call__(self, params, xs, carry0=None, *, lengths=None, rng=None, train: bool = False,
                 unroll: int = 1, time_major: bool = False, hoist: bool | None = None):
        """Run all layers. Returns ``(final_carry, ys)``; see the class docstring for layouts.

        ``xs`` is ``(batch, time, features)`` (``(time, batch, features)`` if ``time_major``), or
        ``(time, features)`` for one sequence, whose carries then have no batch axis:
        ``(num_layers * num_directions, hidden)``."""
        hidden = self._check_params(params)
        _check_inputs(self.cell, params[0]["fwd"], xs, time_major)
        single = xs.ndim == 2
        T, B = (xs.shape[0], None) if single else xs.shape[:2] if time_major else xs.shape[1::-1]
        LD = self.num_layers * self.num_directions
        if carry0 is not None:
            carry0 = _check_carry(self.cell, carry0, (LD,) if single else (LD, B), hidden,
                                  "(num_layers*num_directions, batch, hidden)")
        if lengths is not None:
            lengths = check_lengths(lengths, B, T)
        if train and self.dropout > 0 and self.num_layers > 1 and rng is None:
            raise ValueError("Stack(dropout>0) needs an rng when train=True")
        if not isinstance(unroll, int) or isinstance(unroll, bool) or unroll < 1:
            raise ValueError(f"unroll must be a positive int, got {unroll!r}")
        hoist = default_hoist() if hoist is None else bool(hoist)
        if single:
            xs, time_major = xs[:, None, :], True
            carry0 = None if carry0 is None else jax.tree_util.tree_map(lambda a: jnp.asarray(a)[:, None], carry0)
            lengths = None if lengths is None else jnp.reshape(lengths, (1,))
        run = _stack_jit if _eager(params, xs, carry0, lengths, rng) else _run_stack
        final, ys = run(self, params, xs, carry0, lengths, rng, bool(train), unroll, time_major, hoist)
        if single:
            return jax.tree_util.tree_map(lambda a: a[:, 0], final), ys[:, 0]
        return final, ys

    def top_hidden(self, final_carry) -> jax.Array:
        """The last layer's final hidden state(s), directions concatenated: ``(batch, D*hidden)``."""
        h = Cell.carry_hidden(final_carry)
        D = self.num_directions
        return jnp.concatenate([h[-D + d] for d in range(D)], axis=-1)

    # A unidirectional stack is itself a core: one timestep through every layer.
    def step(self, params, carry, x):
        """One timestep through all layers (unidirectional, no dropout): carry ``(L, batch, H)``."""
        if self.bidirectional:
            raise ValueError("a bidirectional Stack has no single-step form; it needs the whole sequence")
        new = []
        for layer, p in enumerate(params):
            c, x = self.cell.step(p["fwd"], jax.tree_util.tree_map(lambda a, i=layer: a[i], carry), x)
            new.append(c)
        return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *new), x


def _run_stack(stack: Stack, params, xs, carry0, lengths, rng, train, unroll, time_major, hoist):
    """The layers of a checked, batched :class:`Stack` call."""
    if stack.cudnn:
        from seqjax import cudnn

        return cudnn.lstm(params, xs, carry0, lengths=lengths, bidirectional=stack.bidirectional,
                          time_major=time_major, impl=cudnn.STACK_IMPL)
    D = stack.num_directions
    h = xs if time_major else jnp.swapaxes(xs, 0, 1)
    if stack.wavefront:
        final, h = _wavefront(stack, params, h, carry0, lengths, unroll)
        return final, (h if time_major else jnp.swapaxes(h, 0, 1))
    kw = dict(lengths=lengths, unroll=unroll, time_major=True, hoist=hoist, fused=stack.fused, remat=stack.remat)
    finals = []
    for layer, p in enumerate(params):
        c0 = None if carry0 is None else [jax.tree_util.tree_map(lambda a, i=layer * D + d: a[i], carry0)
                                         for d in range(D)]
        if stack.bidirectional:
            f, y = bidirectional(stack.cell, p["fwd"], p["bwd"], h, c0, merge_mode=stack.merge, **kw)
            finals.extend(f)
        else:
            f, y = _unroll(stack.cell, p["fwd"], h, None if c0 is None else c0[0], **kw)
            finals.append(f)
        if train and stack.dropout > 0 and layer < stack.num_layers - 1:
            keep = jax.random.bernoulli(jax.random.fold_in(rng, layer), 1.0 - stack.dropout, y.shape)
            y = jnp.where(keep, y / (1.0 - stack.dropout), 0.0).astype(y.dtype)
        h = y
    final = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *finals)
    return final, (h if time_major else jnp.swapaxes(h, 0, 1))


def _wavefront(stack: Stack, params, xs, carry0, lengths, unroll):
    """The layers of a ``wavefront`` stack (time-major ``xs``) in :func:`seqjax._fast.wavefront_unroll`."""
    cell, L = stack.cell, stack.num_layers
    T, B = xs.shape[:2]
    ps = [p["fwd"] for p in params]
    dt = _compute_dtype(ps, xs, carry0)
    if carry0 is None:
        carry0 = cell.initial_carry((L, B), ps[0]["w_hh"].shape[1], dt)
    carries = [jax.tree_util.tree_map(lambda a, i=i: a[i].astype(dt), carry0) for i in range(L)]
    carries = _fast.match_varying(carries, ps, xs, lengths)
    opts = _fast.default_options(hoist=True, unroll=unroll)
    finals, ys = _fast.wavefront_unroll(cell, ps, xs, carries, lengths, opts=opts)
    return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *finals), ys


# positions: stack, train, unroll, time_major, hoist are static
_stack_jit = jax.jit(_run_stack, static_argnums=(0, 6, 7, 8, 9))
