"""The time loop, and the layers built on it.

:func:`unroll` is the one place where seqjax loops over time (the library's only ``lax.scan``, apart
from the fused loops of :mod:`seqjax._fast` that it hands LSTM and RNN cells to for their faster
gradient; see :func:`fused_gradients`). It owns variable lengths, direction, the unroll factor and
where the input projection is computed.
:class:`Stack` builds bidirectional and multi-layer networks from it and loops over no timestep
itself. Anything with a ``step(params, carry, x) -> (carry, y)`` method is a *core* and can be
unrolled: the cells of :mod:`seqjax.cells`, a single-direction :class:`Stack`, and the
autoregressive cores of :mod:`seqjax.structures` and :mod:`seqjax.decoding`.

Variable-length batches: with ``lengths``, step ``t`` of sequence ``b`` is real iff
``t < lengths[b]``. On padded steps the carry is held and the output is zero. The reverse direction
starts from ``carry0`` at each sequence's own last real step, so a padded batch gives exactly the
outputs and final states each sequence would give alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import _fast
from seqjax.cells import Cell, LSTMCarry, make_cell

MERGE_MODES = ("concat", "sum", "mean")


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _describe(carry) -> str:
    return str(jax.tree_util.tree_map(lambda a: tuple(np.shape(a)), carry))


def default_hoist() -> bool:
    """Whether :func:`unroll` projects all timesteps' inputs with one matmul before the scan.

    That is cuDNN's recipe, kept for accelerators (not measured here). On XLA:CPU the hoisted
    projection measured slower than projecting inside each step, 129 vs 77 ms for an LSTM forward
    pass at (B, T, I, H) = (64, 128, 128, 256) (benchmarks/README.md), so CPU keeps the per-step
    form.
    """
    return jax.default_backend() != "cpu"


_FUSED_GRADIENTS = [True]


@contextlib.contextmanager
def fused_gradients(enabled: bool = True):
    """Choose, while tracing, how :func:`unroll` differentiates the built-in cells.

    On (the default), RNN and LSTM cells run through :func:`seqjax._fast.fused_unroll`: same
    outputs, but a hand-written backward pass that computes the weight gradients with a few big
    matmuls over many timesteps instead of one thin matmul per step (the cuDNN recipe; measured in
    benchmarks/README.md). The GRU measured no faster that way and keeps the plain scan. Off,
    :func:`unroll` is a plain ``lax.scan`` over ``cell.step`` differentiated by JAX autodiff. Turn
    it off to use forward-mode autodiff (``jax.jvp``, ``jax.jacfwd``, ``jax.hessian``) through a
    recurrent layer, which a ``custom_vjp`` does not support::

        with seqjax.recurrent.fused_gradients(False):
            jax.jvp(f, primals, tangents)

    The setting is read when a function is traced, so wrap the first call (the trace) of a jitted
    function, not later calls that hit its cache.
    """
    old = _FUSED_GRADIENTS[0]
    _FUSED_GRADIENTS[0] = bool(enabled)
    try:
        yield
    finally:
        _FUSED_GRADIENTS[0] = old


def check_lengths(lengths, batch: int | None, T: int):
    """Validate a lengths vector: shape ``(batch,)`` (or scalar for one sequence), values in [1, T].

    Values are checked when they are concrete (numpy, or a jax array outside ``jit``); under
    ``jit`` only the shape and dtype can be checked while tracing.
    """
    lengths = lengths if isinstance(lengths, jax.Array) else np.asarray(lengths)
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


def _check_cell_inputs(cell: Cell, params, xs, carry0, time_major: bool):
    input_size, hidden = cell.sizes(params)
    if not hasattr(xs, "ndim") or xs.ndim not in (2, 3):
        shape = tuple(np.shape(xs))
        layout = "(time, batch, features)" if time_major else "(batch, time, features)"
        raise ValueError(f"expected inputs of shape {layout} or (time, features) for one sequence, "
                         f"features={input_size}; got shape {shape}")
    if xs.shape[-1] != input_size:
        raise ValueError(f"expected inputs with {input_size} features (the params' input size), got shape "
                         f"{tuple(xs.shape)} with {xs.shape[-1]} features")
    if carry0 is not None:
        batch = () if xs.ndim == 2 else (xs.shape[1] if time_major else xs.shape[0],)
        want = cell.initial_carry(batch, hidden)
        got_struct = jax.tree_util.tree_structure(carry0)
        ok = got_struct == jax.tree_util.tree_structure(want) or (
            cell.kind == "lstm" and isinstance(carry0, tuple) and len(carry0) == 2)
        if ok:
            ok = all(np.shape(a) == b.shape for a, b in zip(jax.tree_util.tree_leaves(carry0),
                                                             jax.tree_util.tree_leaves(want), strict=True))
        if not ok:
            raise ValueError(f"expected an initial carry shaped {_describe(want)} (batch, hidden={hidden}) for "
                             f"{cell.name}, got {_describe(carry0)}")
        if cell.kind == "lstm":
            carry0 = LSTMCarry(*carry0)
    return hidden, carry0


def unroll(cell, params, xs, carry0=None, *, lengths=None, reverse: bool = False, unroll: int = 1,
           time_major: bool = False, hoist: bool | None = None):
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

    Returns:
      ``final_carry`` (the state after each sequence's last real step; after its first real step
      when ``reverse``) and ``ys`` in the layout of ``xs`` (zeros at padded steps).
    """
    if isinstance(cell, str):
        cell = make_cell(cell)
    if not hasattr(cell, "step"):
        raise ValueError(f"expected a cell or a core with a step(params, carry, x) method, got {type(cell).__name__}")
    if not isinstance(unroll, int) or unroll < 1:
        raise ValueError(f"unroll must be a positive int, got {unroll!r}")
    is_cell = isinstance(cell, Cell)

    single = False
    if is_cell:
        hidden, carry0 = _check_cell_inputs(cell, params, xs, carry0, time_major)
        if xs.ndim == 2:  # one sequence: (time, features) -> (time, 1, features)
            single, xs, time_major = True, xs[:, None, :], True
            if carry0 is not None:
                carry0 = jax.tree_util.tree_map(lambda a: a[None], carry0)
            if lengths is not None:
                lengths = jnp.reshape(check_lengths(lengths, None, xs.shape[0]), (1,))
    elif carry0 is None:
        raise ValueError(f"carry0 is required to unroll a generic core ({type(cell).__name__})")

    leaves = jax.tree_util.tree_leaves(xs)
    if not leaves:
        raise ValueError("unroll needs at least one input array to know the number of steps")
    T, B = leaves[0].shape[:2] if time_major else leaves[0].shape[1::-1]

    if carry0 is None:
        carry0 = cell.initial_carry((B,), hidden, dtype=xs.dtype)
    if lengths is not None and not single:
        lengths = check_lengths(lengths, B, T)

    if hoist is None:
        hoist = default_hoist()
    if is_cell and _FUSED_GRADIENTS[0] and _fast.supports(cell) and cell.kind in _fast.DEFAULT_KINDS:
        # the cuDNN-style loop with its own backward pass, reading either layout in place
        final, ys = _fast.fused_unroll(cell, params, xs, carry0, lengths, reverse=reverse, time_major=time_major,
                                       opts=_fast.default_options(hoist=bool(hoist), unroll=unroll))
        if single:
            return jax.tree_util.tree_map(lambda a: a[0], final), ys[:, 0]
        return final, ys

    xs_t = xs if time_major else jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1), xs)
    if is_cell and hoist:
        xs_t = cell.project_input(params, xs_t)
        step = cell.step_projected
    else:
        step = cell.step

    axes = carry_batch_axes(cell, carry0) if lengths is not None else None

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

            new_carry = jax.tree_util.tree_map(keep, new_carry, carry, axes)
            y = jax.tree_util.tree_map(lambda a: keep(a, jnp.zeros_like(a)), y)
        return new_carry, y

    final, ys = jax.lax.scan(body, carry0, (xs_t, jnp.arange(T)), reverse=reverse, unroll=unroll)

    if single:
        return jax.tree_util.tree_map(lambda a: a[0], final), jax.tree_util.tree_map(lambda a: a[:, 0], ys)
    if not time_major:
        ys = jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1), ys)
    return final, ys


_unroll = unroll  # the name `unroll` is also a keyword argument below


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

    Returns ``((final_fwd, final_bwd), ys)``; ``carry0`` is ``None`` or a ``(fwd, bwd)`` pair.
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
    applied to each layer's output except the last, in training only.
    """

    cell: Cell
    num_layers: int = 1
    bidirectional: bool = False
    merge: str = "concat"
    dropout: float = 0.0

    carry_batch_axis = 1  # as a core (see step), the carry is (num_layers, batch, hidden)

    def __post_init__(self):
        object.__setattr__(self, "cell", make_cell(self.cell))
        if not isinstance(self.num_layers, int) or self.num_layers < 1:
            raise ValueError(f"num_layers must be a positive int, got {self.num_layers!r}")
        if self.merge not in MERGE_MODES:
            raise ValueError(f"unknown merge mode {self.merge!r}; expected one of {MERGE_MODES}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def output_size(self, hidden_size: int) -> int:
        return hidden_size * (2 if self.bidirectional and self.merge == "concat" else 1)

    def init(self, key, input_size: int, hidden_size: int, *, init: str = "torch", forget_bias: float = 0.0,
             dtype: Any = jnp.float32) -> list[dict]:
        layers = []
        keys = jax.random.split(key, self.num_layers * 2)
        in_size = input_size
        for layer in range(self.num_layers):
            p = {"fwd": self.cell.init(keys[2 * layer], in_size, hidden_size, init=init,
                                       forget_bias=forget_bias, dtype=dtype)}
            if self.bidirectional:
                p["bwd"] = self.cell.init(keys[2 * layer + 1], in_size, hidden_size, init=init,
                                          forget_bias=forget_bias, dtype=dtype)
            layers.append(p)
            in_size = self.output_size(hidden_size)
        return layers

    def initial_carry(self, batch_size: int, hidden_size: int, dtype: Any = jnp.float32):
        """Zero state in PyTorch's layout ``(num_layers * num_directions, batch, hidden)``."""
        return self.cell.initial_carry((self.num_layers * self.num_directions, batch_size), hidden_size, dtype)

    def _check_params(self, params):
        if not isinstance(params, (list, tuple)) or len(params) != self.num_layers:
            n = len(params) if isinstance(params, (list, tuple)) else type(params).__name__
            raise ValueError(f"expected params for {self.num_layers} layer(s) (a list from Stack.init), got {n}")
        want = {"fwd", "bwd"} if self.bidirectional else {"fwd"}
        for i, p in enumerate(params):
            if not isinstance(p, dict) or set(p) != want:
                got = sorted(p) if isinstance(p, dict) else type(p).__name__
                raise ValueError(f"layer {i} params must have keys {sorted(want)} "
                                 f"(bidirectional={self.bidirectional}), got {got}")

    def __call__(self, params, xs, carry0=None, *, lengths=None, rng=None, train: bool = False,
                 unroll: int = 1, time_major: bool = False, hoist: bool | None = None):
        """Run all layers. Returns ``(final_carry, ys)``; see the class docstring for layouts."""
        self._check_params(params)
        cell, D, L = self.cell, self.num_directions, self.num_layers
        _, hidden = cell.sizes(params[0]["fwd"])
        if not hasattr(xs, "ndim") or xs.ndim != 3:
            layout = "(time, batch, features)" if time_major else "(batch, time, features)"
            raise ValueError(f"expected inputs of shape {layout}, got {tuple(np.shape(xs))}")
        B = xs.shape[1] if time_major else xs.shape[0]
        if carry0 is not None:
            want = self.initial_carry(B, hidden)
            if jax.tree_util.tree_structure(carry0) != jax.tree_util.tree_structure(want) and not (
                    cell.kind == "lstm" and isinstance(carry0, tuple) and len(carry0) == 2):
                raise ValueError(f"expected an initial carry shaped {_describe(want)}, got {_describe(carry0)}")
            if cell.kind == "lstm":
                carry0 = LSTMCarry(*carry0)
            for a, b in zip(jax.tree_util.tree_leaves(carry0), jax.tree_util.tree_leaves(want), strict=True):
                if np.shape(a) != b.shape:
                    raise ValueError(f"expected an initial carry shaped {_describe(want)} "
                                     f"(num_layers*num_directions, batch, hidden), got {_describe(carry0)}")
        if train and self.dropout > 0 and L > 1 and rng is None:
            raise ValueError("Stack(dropout>0) needs an rng when train=True")
        h = xs if time_major else jnp.swapaxes(xs, 0, 1)
        finals = []
        kw = dict(lengths=lengths, unroll=unroll, time_major=True, hoist=hoist)
        for layer, p in enumerate(params):
            c0 = None if carry0 is None else [jax.tree_util.tree_map(lambda a, i=layer * D + d: a[i], carry0)
                                             for d in range(D)]
            f_fwd, y = _unroll(cell, p["fwd"], h, None if c0 is None else c0[0], **kw)
            finals.append(f_fwd)
            if self.bidirectional:
                f_bwd, y_b = _unroll(cell, p["bwd"], h, None if c0 is None else c0[1], reverse=True, **kw)
                finals.append(f_bwd)
                y = merge(y, y_b, self.merge)
            if train and self.dropout > 0 and layer < L - 1:
                keep = jax.random.bernoulli(jax.random.fold_in(rng, layer), 1.0 - self.dropout, y.shape)
                y = jnp.where(keep, y / (1.0 - self.dropout), 0.0).astype(y.dtype)
            h = y
        final = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *finals)
        ys = h if time_major else jnp.swapaxes(h, 0, 1)
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
