"""The fused-gradient path (seqjax/_fast.py) against the plain scan differentiated by JAX autodiff.

Both compute the same function; only the backward pass differs. Gradients are compared in float64
to 1e-10 w.r.t. params, inputs and the initial carry, with and without lengths, in both
directions and layouts, under jit and vmap.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import seqjax
from seqjax import _fast, recurrent

pytestmark = pytest.mark.usefixtures("strict_shapes")

T, B, I, H = 7, 3, 4, 5
LENGTHS = np.array([7, 2, 5], np.int32)
CELLS = ["lstm", "gru", "rnn_tanh", "rnn_relu"]


def _setup(name, dtype=jnp.float64):
    cell = seqjax.make_cell(name)
    params = cell.init(jax.random.PRNGKey(0), I, H, dtype=dtype)
    xs = jax.random.normal(jax.random.PRNGKey(1), (B, T, I), dtype)
    keys = iter(jax.random.split(jax.random.PRNGKey(2), 2))
    carry0 = jax.tree_util.tree_map(lambda a: jax.random.normal(next(keys), a.shape, a.dtype),
                                    cell.initial_carry((B,), H, dtype))
    w = jax.random.normal(jax.random.PRNGKey(3), (B, T, H), dtype)
    return cell, params, xs, carry0, w


def _loss(run, w):
    def f(params, xs, carry0):
        final, ys = run(params, xs, carry0)
        tail = sum(jnp.sum(jnp.sin(a)) for a in jax.tree_util.tree_leaves(final))
        return jnp.sum(ys * w) + tail
    return f


def _assert_close(a, b, atol=1e-10):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0)


def _reference(cell, params, xs, carry0, w, **kw):
    with recurrent.fused_gradients(False):
        run = lambda p, x, c: seqjax.unroll(cell, p, x, c, **kw)
        return jax.value_and_grad(_loss(run, w), argnums=(0, 1, 2))(params, xs, carry0)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("reverse,use_lengths", list(itertools.product([False, True], [False, True])))
def test_grad_matches_autodiff(name, reverse, use_lengths, x64):
    cell, params, xs, carry0, w = _setup(name)
    kw = dict(lengths=LENGTHS if use_lengths else None, reverse=reverse)
    ref_val, ref_grad = _reference(cell, params, xs, carry0, w, **kw)
    run = lambda p, x, c: seqjax.unroll(cell, p, x, c, **kw)
    val, grad = jax.jit(jax.value_and_grad(_loss(run, w), argnums=(0, 1, 2)))(params, xs, carry0)
    np.testing.assert_allclose(val, ref_val, atol=1e-12, rtol=0)
    _assert_close(grad, ref_grad)


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("opts", [
    _fast.Options(chunk=0),  # one weight-gradient matmul after the whole sweep
    _fast.Options(chunk=3),  # chunks that do not divide T (a remainder chunk of 1)
    _fast.Options(chunk=2, unroll=2, save_xh=True),
    _fast.Options(hoist=True, chunk=16),  # chunk > T
    _fast.Options(fuse=False, tanh_sigmoid=False),
])
@pytest.mark.parametrize("time_major", [False, True])
def test_options_and_layouts(name, opts, time_major, x64):
    cell, params, xs, carry0, w = _setup(name)
    ref_val, ref_grad = _reference(cell, params, xs, carry0, w, lengths=LENGTHS, reverse=True)
    lay = (lambda a: jnp.swapaxes(a, 0, 1)) if time_major else (lambda a: a)

    def run(p, x, c):
        final, ys = _fast.fused_unroll(cell, p, lay(x), c, jnp.asarray(LENGTHS), reverse=True, opts=opts,
                                       time_major=time_major)
        return final, lay(ys)

    val, grad = jax.jit(jax.value_and_grad(_loss(run, w), argnums=(0, 1, 2)))(params, xs, carry0)
    np.testing.assert_allclose(val, ref_val, atol=1e-12, rtol=0)
    _assert_close(grad, ref_grad)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_forward_identical_to_scan(name, x64):
    cell, params, xs, carry0, _ = _setup(name)
    for kw in (dict(), dict(lengths=LENGTHS, reverse=True), dict(hoist=True)):
        with recurrent.fused_gradients(False):
            ref = seqjax.unroll(cell, params, xs, carry0, **kw)
        _assert_close(seqjax.unroll(cell, params, xs, carry0, **kw), ref, atol=1e-13)


@pytest.mark.parametrize("name", ["lstm", "rnn_tanh"])
def test_vmap_and_unbatched(name, x64):
    """vmap over single sequences (the unbatched (T, I) form) gives the batched gradients."""
    cell, params, xs, carry0, w = _setup(name)
    ref_val, ref_grad = _reference(cell, params, xs, carry0, w, lengths=LENGTHS)

    def one(p, x, c, n, wb):
        final, ys = seqjax.unroll(cell, p, x, c, lengths=n)
        return jnp.sum(ys * wb) + sum(jnp.sum(jnp.sin(a)) for a in jax.tree_util.tree_leaves(final))

    def total(p, x, c):
        return jnp.sum(jax.vmap(one, in_axes=(None, 0, 0, 0, 0))(p, x, c, jnp.asarray(LENGTHS), w))

    val, grad = jax.jit(jax.value_and_grad(total, argnums=(0, 1, 2)))(params, xs, carry0)
    np.testing.assert_allclose(val, ref_val, atol=1e-12, rtol=0)
    _assert_close(grad, ref_grad)


def test_stack_bidirectional_grads(x64):
    stack = seqjax.Stack("lstm", num_layers=2, bidirectional=True)
    params = stack.init(jax.random.PRNGKey(0), I, H, dtype=jnp.float64)
    xs = jax.random.normal(jax.random.PRNGKey(1), (B, T, I), jnp.float64)

    def loss(p, x):
        final, ys = stack(p, x, lengths=LENGTHS)
        return jnp.sum(jnp.cos(ys)) + jnp.sum(final.c ** 2)

    with recurrent.fused_gradients(False):
        ref = jax.grad(loss, argnums=(0, 1))(params, xs)
    _assert_close(jax.jit(jax.grad(loss, argnums=(0, 1)))(params, xs), ref)


def test_float32_close_to_autodiff():
    cell, params, xs, carry0, w = _setup("lstm", jnp.float32)
    ref_val, ref_grad = _reference(cell, params, xs, carry0, w, lengths=LENGTHS)
    run = lambda p, x, c: seqjax.unroll(cell, p, x, c, lengths=LENGTHS)
    val, grad = jax.jit(jax.value_and_grad(_loss(run, w), argnums=(0, 1, 2)))(params, xs, carry0)
    np.testing.assert_allclose(val, ref_val, rtol=1e-5)
    _assert_close(grad, ref_grad, atol=1e-4)


def test_forward_mode_needs_the_switch(x64):
    cell, params, xs, carry0, _ = _setup("lstm")
    f = lambda x: seqjax.unroll(cell, params, x, carry0)[1]
    with pytest.raises(TypeError):
        jax.jvp(f, (xs,), (jnp.ones_like(xs),))
    with recurrent.fused_gradients(False):
        _, tangent = jax.jvp(f, (xs,), (jnp.ones_like(xs),))
    assert tangent.shape == (B, T, H)


def test_cho_gru_uses_the_scan(x64):
    assert not _fast.supports(seqjax.gru_cho) and _fast.supports(seqjax.gru)
    assert "gru" not in _fast.DEFAULT_KINDS  # measured no faster on CPU: unroll keeps the scan
    cell, params, xs, carry0, w = _setup("gru_cho")
    jax.grad(_loss(lambda p, x, c: seqjax.unroll(cell, p, x, c), w))(params, xs, carry0)
    jax.jvp(lambda x: seqjax.unroll(cell, params, x, carry0)[1], (xs,), (xs,))  # forward mode works


# ------------------------------------------------------------------ mixed precision (matmul_dtype)


def _mixed_setup(name):
    cell = seqjax.make_cell(name, matmul_dtype="bfloat16")
    params = cell.init(jax.random.PRNGKey(0), 16, 32)
    xs = jax.random.normal(jax.random.PRNGKey(1), (4, 20, 16))
    carry0 = cell.initial_carry((4,), 32)
    w = jax.random.normal(jax.random.PRNGKey(3), (4, 20, 32))
    return cell, params, xs, carry0, w


@pytest.mark.parametrize("name", CELLS)
def test_bfloat16_matmuls_stay_close_to_float32(name):
    """bf16 operands with float32 sums: gradients within ~1% of float32's, yet not equal to them
    (the option does change the arithmetic), and the fused rule agrees with autodiff of the scan."""
    cell, params, xs, carry0, w = _mixed_setup(name)
    full = seqjax.make_cell(name)
    kw = dict(lengths=np.array([20, 9, 14, 1], np.int32))
    grad = jax.jit(jax.value_and_grad(_loss(lambda p, x, c: seqjax.unroll(cell, p, x, c, **kw), w), argnums=(0, 1)))
    val, g = grad(params, xs, carry0)
    ref_val, ref_g = _reference(full, params, xs, carry0, w, **kw)
    scan_val, scan_g = _reference(cell, params, xs, carry0, w, **kw)
    assert val.dtype == jnp.float32
    for a, b, c in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(ref_g[:2]),
                       jax.tree_util.tree_leaves(scan_g[:2]), strict=True):
        assert a.dtype == jnp.float32
        scale = float(jnp.max(jnp.abs(b)))
        assert float(jnp.max(jnp.abs(a - b))) < 2e-2 * scale
        assert float(jnp.max(jnp.abs(a - c))) < 2e-2 * scale
    assert not np.array_equal(np.asarray(val), np.asarray(ref_val))


def test_bfloat16_reaches_the_compiled_matmuls():
    cell, params, xs, carry0, w = _mixed_setup("lstm")
    f = jax.jit(jax.grad(_loss(lambda p, x, c: seqjax.unroll(cell, p, x, c), w)))
    hlo = f.lower(params, xs, carry0).as_text()
    assert "bf16" in hlo
    plain = jax.jit(jax.grad(_loss(lambda p, x, c: seqjax.unroll(seqjax.make_cell("lstm"), p, x, c), w)))
    assert "bf16" not in plain.lower(params, xs, carry0).as_text()


def test_matmul_dtype_names():
    assert seqjax.make_cell("gru", matmul_dtype="float32") == seqjax.make_cell("gru")
    assert seqjax.make_cell("gru", matmul_dtype="bfloat16").matmul_dtype == "bfloat16"
    with pytest.raises(ValueError, match=r"unknown matmul_dtype 'float16'; expected one of \('float32', 'bfloat16'\)"):
        seqjax.make_cell("lstm", matmul_dtype="float16")
