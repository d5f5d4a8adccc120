"""The elementwise linear recurrence ``h_t = a_t ⊙ h_{t-1} + b_t``, evaluated three ways.

The cells whose gates read only the input (``mingru``, ``minlstm``, ``rglru`` in
:mod:`seqjax.cells`) reduce to this recurrence once their input projections are computed for all
steps at once. What is left is cheap elementwise work, and it can be evaluated in several orders
that give the same numbers (up to rounding):

``sequential``
    one ``lax.scan`` over time, one multiply-add per step. Least arithmetic, ``T`` dependent steps.
``chunked``
    time is cut into chunks of ``chunk`` steps. All chunks run their local recurrence side by side
    (from a zero state, also keeping the running product of the ``a``), then one short scan passes
    the state from chunk to chunk, and one elementwise pass adds each chunk's incoming state:
    ``chunk + T/chunk`` dependent steps, about twice the arithmetic.
``associative``
    ``lax.associative_scan`` with the composition ``(a1, b1) then (a2, b2) = (a1 a2, a2 b1 + b2)``:
    ``O(log T)`` depth, ``O(T log T)``-ish memory traffic. The form parallel hardware likes.

All three work in linear space. The decays ``a`` lie in [0, 1] for every cell here, so their
running products can only shrink towards zero, which is also the exact limit: nothing overflows
and nothing is divided, and the sequences stay finite at any length (the tests run ``T = 16384``).
Where a cell's coefficients need care (minLSTM's normalised gates, the RG-LRU's ``a^(c r)`` and
``sqrt(1 - a^2)``), the cell computes them from logarithms (:mod:`seqjax.cells`).

Gradients. The recurrence is linear in ``h``, so its backward pass is the same recurrence run the
other way: with ``g_t = dL/dh_t + a_{t+1} g_{t+1}`` (the incoming gradient, accumulated backwards
in time), ``dL/db_t = g_t``, ``dL/da_t = g_t h_{t-1}`` and ``dL/dh_0 = a_1 g_1``. :func:`linear_scan`
has that rule as a ``jax.custom_vjp``, evaluated by the same method as the forward pass; it saves
``a`` and the states, nothing else.

Which method is fastest depends on the hardware, so :func:`default_method` picks per backend from
measurements (``benchmarks/long_sequences.py``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

METHODS = ("sequential", "chunked", "associative")
SCAN_CHOICES = ("auto", *METHODS)
DEFAULT_CHUNK = 64


def default_method(backend: str | None = None) -> str:
    """The evaluation ``scan="auto"`` resolves to on ``backend`` (the default backend if omitted).

    CPU: ``sequential``. Measured in ``benchmarks/long_sequences.py`` at (B, T, H) = (16, 4096,
    256): the parallel forms do more arithmetic and memory traffic than the two cores can hide.
    GPU and TPU: ``associative``, the parallel form, provisional until ``benchmarks/gpu_check.sh``
    has measured the three side by side there.
    """
    backend = backend or jax.default_backend()
    return "sequential" if backend == "cpu" else "associative"


def resolve_method(method: str | None) -> str:
    """``method`` checked, with ``None`` / ``"auto"`` resolved by :func:`default_method`."""
    if method is None or method == "auto":
        return default_method()
    if method not in METHODS:
        raise ValueError(f"unknown scan {method!r}; expected one of {SCAN_CHOICES}")
    return method


def linear_scan(a, b, h0, *, reverse: bool = False, method: str | None = "auto", chunk: int = DEFAULT_CHUNK,
                unroll: int = 1, custom_grad: bool = True):
    """All states of ``h_t = a_t ⊙ h_{t-1} + b_t`` (time on axis 0).

    Args:
      a, b: ``(T, ...)`` arrays of one shape; ``a`` is the decay, ``b`` the input.
      h0: ``(...)``, the state before the first step.
      reverse: run from ``t = T-1`` down to 0: ``h_t = a_t ⊙ h_{t+1} + b_t``, ``h0`` after the end.
      method: ``sequential``, ``chunked``, ``associative`` or ``auto`` (:func:`default_method`).
      chunk: steps per chunk of the chunked method.
      unroll: the sequential scan's unroll factor.
      custom_grad: use the hand-written reverse-mode rule (module docstring). ``False`` lets JAX
        differentiate the evaluation itself, which forward-mode autodiff (``jax.jvp``) needs.

    Returns ``hs`` of the shape of ``a``: ``hs[t]`` is the state after step ``t``.
    """
    method = resolve_method(method)
    if jnp.shape(a) != jnp.shape(b) or jnp.ndim(a) < 1 or jnp.shape(h0) != jnp.shape(a)[1:]:
        raise ValueError(f"linear_scan expects a and b of one shape (T, ...) and h0 of shape (...); got a "
                         f"{jnp.shape(a)}, b {jnp.shape(b)}, h0 {jnp.shape(h0)}")
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    if not isinstance(unroll, int) or isinstance(unroll, bool) or unroll < 1:
        raise ValueError(f"unroll must be a positive int, got {unroll!r}")
    opts = (bool(reverse), method, chunk, unroll)
    if custom_grad:
        return _linear_scan(opts, a, b, h0)
    return _evaluate(opts, a, b, h0)


# ------------------------------------------------------------------ evaluations


def _evaluate(opts, a, b, h0):
    reverse, method, chunk, unroll = opts
    if method == "sequential":
        return _sequential(a, b, h0, reverse, unroll)
    # the parallel forms start from zero: fold h0 into the first step's input
    first = a.shape[0] - 1 if reverse else 0
    b = b.at[first].add(a[first] * h0)
    if reverse:  # evaluate on time-flipped arrays; the flips are cheap next to the scan
        a, b = a[::-1], b[::-1]
    hs = _chunked(a, b, chunk) if method == "chunked" else _associative(a, b)
    return hs[::-1] if reverse else hs


def _sequential(a, b, h0, reverse, unroll):
    def step(h, ab):
        h = ab[0] * h + ab[1]
        return h, h

    _, hs = lax.scan(step, h0, (a, b), reverse=reverse, unroll=min(unroll, max(a.shape[0], 1)))
    return hs


def _compose(first, second):
    """Two steps of the recurrence as one: ``(a1, b1)`` followed by ``(a2, b2)``."""
    a1, b1 = first
    a2, b2 = second
    return a1 * a2, a2 * b1 + b2


def _associative(a, b):
    _, hs = lax.associative_scan(_compose, (a, b), axis=0)
    return hs


def _chunked(a, b, chunk):
    """Forward recurrence from a zero state, by chunks (see the module docstring)."""
    T = a.shape[0]
    C = min(chunk, T)
    n = -(-T // C)
    pad = n * C - T
    if pad:  # steps with a = 1, b = 0 change nothing
        widths = [(0, pad)] + [(0, 0)] * (a.ndim - 1)
        a = jnp.pad(a, widths, constant_values=1)
        b = jnp.pad(b, widths)
    rest = a.shape[1:]
    # (C, n, ...): step j of every chunk side by side
    a_c = jnp.swapaxes(a.reshape((n, C) + rest), 0, 1)
    b_c = jnp.swapaxes(b.reshape((n, C) + rest), 0, 1)

    def local(carry, ab):
        prod, h = carry
        a_j, b_j = ab
        prod, h = prod * a_j, a_j * h + b_j
        return (prod, h), (prod, h)

    zeros = jnp.zeros((n,) + rest, a.dtype)
    (prod_end, h_end), (prods, hl) = lax.scan(local, (jnp.ones_like(zeros), zeros), (a_c, b_c))

    # the state entering each chunk: a scan over the chunks' end-to-end (decay, input)
    def across(h, pe):
        p, e = pe
        return p * h + e, h

    _, h_in = lax.scan(across, jnp.zeros(rest, a.dtype), (prod_end, h_end))
    hs = hl + prods * h_in[None]
    hs = jnp.swapaxes(hs, 0, 1).reshape((n * C,) + rest)
    return hs[:T] if pad else hs


# ------------------------------------------------------------------ gradient


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _linear_scan(opts, a, b, h0):
    return _evaluate(opts, a, b, h0)


def _linear_scan_fwd(opts, a, b, h0):
    hs = _evaluate(opts, a, b, h0)
    return hs, (a, hs, h0)


def _shift(x, fill, reverse):
    """``x`` moved one step along time, ``fill`` entering: ``x[t-1]`` at ``t`` (``x[t+1]`` if reverse)."""
    fill = jnp.expand_dims(fill, 0)
    return jnp.concatenate([x[1:], fill] if reverse else [fill, x[:-1]], axis=0)


def _linear_scan_bwd(opts, res, dhs):
    reverse = opts[0]
    a, hs, h0 = res
    # g_t = dhs_t + a_{t+1} g_{t+1}: the same recurrence, the other way, with the decays one step on
    a_next = _shift(a, jnp.zeros_like(h0), not reverse)
    g = _evaluate((not reverse, *opts[1:]), a_next, dhs.astype(a.dtype), jnp.zeros_like(h0))
    h_prev = _shift(hs, h0, reverse)
    first = a.shape[0] - 1 if reverse else 0
    return g * h_prev, g, a[first] * g[first]


_linear_scan.defvjp(_linear_scan_fwd, _linear_scan_bwd)
