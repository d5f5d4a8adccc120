"""The fused-gradient path (seqjax/_fast.py) against the plain scan differentiated by JAX autodiff,
the static switch ``fused``, and forward-mode autodiff through the default path.

Both compute the same function; only the backward pass differs. Gradients are compared in float64
to 1e-10 w.r.t. params, inputs and the initial carry, with and without lengths, in both
directions and layouts, under jit and vmap.
"""

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import seqjax
from seqjax import _fast

T, B, I, H = 7, 3, 4, 5
LENGTHS = np.array([7, 2, 5], np.int32)
CELLS = ["lstm", "gru", "rnn_tanh", "rnn_relu"]
FUSED = ["lstm", "rnn_tanh", "rnn_relu"]  # the cells with a fused rule


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
    run = lambda p, x, c: seqjax.unroll(cell, p, x, c, fused=False, **kw)
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


@pytest.mark.parametrize("name", FUSED)
@pytest.mark.parametrize("opts", [
    _fast.Options(chunk=0),  # one weight-gradient matmul after the whole sweep
    _fast.Options(chunk=3),  # chunks that do not divide T (a remainder chunk of 1)
    _fast.Options(chunk=2, unroll=2),
    _fast.Options(hoist=True, chunk=16),  # chunk > T
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


@pytest.mark.parametrize("name", FUSED)
def test_forward_identical_to_scan(name, x64):
    cell, params, xs, carry0, _ = _setup(name)
    for kw in (dict(), dict(lengths=LENGTHS, reverse=True), dict(hoist=True)):
        ref = seqjax.unroll(cell, params, xs, carry0, fused=False, **kw)
        _assert_close(seqjax.unroll(cell, params, xs, carry0, **kw), ref, atol=1e-13)


def test_cells_without_biases(x64):
    cell = seqjax.lstm
    params = cell.init(jax.random.PRNGKey(0), I, H, bias=False, dtype=jnp.float64)
    assert sorted(params) == ["w_hh", "w_ih"]
    _, _, xs, carry0, w = _setup("lstm")
    ref_val, ref_grad = _reference(cell, params, xs, carry0, w, lengths=LENGTHS)
    run = lambda p, x, c: seqjax.unroll(cell, p, x, c, lengths=LENGTHS)
    val, grad = jax.jit(jax.value_and_grad(_loss(run, w), argnums=(0, 1, 2)))(params, xs, carry0)
    np.testing.assert_allclose(val, ref_val, atol=1e-12, rtol=0)
    assert sorted(grad[0]) == ["w_hh", "w_ih"]
    _assert_close(grad, ref_grad)
    # with zero biases, the cell without biases computes the same function
    zero_b = dict(params, b_ih=jnp.zeros(4 * H, jnp.float64), b_hh=jnp.zeros(4 * H, jnp.float64))
    _assert_close(seqjax.unroll(cell, params, xs, carry0), seqjax.unroll(cell, zero_b, xs, carry0), atol=1e-14)


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
    params = seqjax.Stack("lstm", num_layers=2, bidirectional=True).init(jax.random.PRNGKey(0), I, H,
                                                                        dtype=jnp.float64)
    xs = jax.random.normal(jax.random.PRNGKey(1), (B, T, I), jnp.float64)

    def loss(stack):
        def f(p, x):
            final, ys = stack(p, x, lengths=LENGTHS)
            return jnp.sum(jnp.cos(ys)) + jnp.sum(final.c ** 2)
        return f

    ref = jax.grad(loss(seqjax.Stack("lstm", 2, True, fused=False)), argnums=(0, 1))(params, xs)
    _assert_close(jax.jit(jax.grad(loss(seqjax.Stack("lstm", 2, True)), argnums=(0, 1)))(params, xs), ref)


def test_float32_close_to_autodiff():
    cell, params, xs, carry0, w = _setup("lstm", jnp.float32)
    ref_val, ref_grad = _reference(cell, params, xs, carry0, w, lengths=LENGTHS)
    run = lambda p, x, c: seqjax.unroll(cell, p, x, c, lengths=LENGTHS)
    val, grad = jax.jit(jax.value_and_grad(_loss(run, w), argnums=(0, 1, 2)))(params, xs, carry0)
    np.testing.assert_allclose(val, ref_val, rtol=1e-5)
    _assert_close(grad, ref_grad, atol=1e-4)


# ------------------------------------------------------------------ the static switch


def _has_custom_vjp(fn, *args) -> int:
    return str(jax.make_jaxpr(fn)(*args)).count("custom_vjp_call")


def test_fused_is_a_static_argument_two_functions_in_one_program(x64):
    """Each call decides for itself: one jitted program holds a fused and an unfused unroll, and
    their gradients agree."""
    cell, params, xs, carry0, w = _setup("lstm")

    def both(p, x, c):
        g_fused = jax.grad(_loss(lambda p, x, c: seqjax.unroll(cell, p, x, c), w))(p, x, c)
        g_scan = jax.grad(_loss(lambda p, x, c: seqjax.unroll(cell, p, x, c, fused=False), w))(p, x, c)
        return g_fused, g_scan

    assert _has_custom_vjp(lambda p, x, c: seqjax.unroll(cell, p, x, c), params, xs, carry0) == 1
    assert _has_custom_vjp(lambda p, x, c: seqjax.unroll(cell, p, x, c, fused=False), params, xs, carry0) == 0
    pair = lambda p, x, c: (seqjax.unroll(cell, p, x, c)[1], seqjax.unroll(cell, p, x, c, fused=False)[1])
    assert _has_custom_vjp(pair, params, xs, carry0) == 1
    g_fused, g_scan = jax.jit(both)(params, xs, carry0)
    _assert_close(g_fused, g_scan)
    # the same switch on a Stack and on the nnx modules
    stack_p = seqjax.Stack("lstm", 2).init(jax.random.PRNGKey(0), I, H, dtype=jnp.float64)
    for fused, count in ((True, 2), (False, 0)):
        st = seqjax.Stack("lstm", 2, fused=fused)
        assert _has_custom_vjp(lambda p, x, st=st: st(p, x)[1], stack_p, xs) == count
    from flax import nnx
    mod = seqjax.nn.LSTM(I, H, num_layers=2, fused=False, rngs=nnx.Rngs(0))
    assert mod.stack.fused is False
    assert _has_custom_vjp(lambda x: mod(x)[0], xs) == 0


@pytest.mark.parametrize("name", FUSED)
def test_forward_mode_through_the_default_path(name, x64):
    """jvp, jacfwd and hessian work on the default (fused) path and agree with the plain scan."""
    cell, params, xs, carry0, _ = _setup(name)
    tangent = jax.random.normal(jax.random.PRNGKey(7), xs.shape, xs.dtype)

    def f(fused):
        return lambda x: seqjax.unroll(cell, params, x, carry0, lengths=LENGTHS, fused=fused)[1]

    ref = jax.jvp(f(False), (xs,), (tangent,))
    _assert_close(jax.jvp(f(True), (xs,), (tangent,)), ref)
    _assert_close(jax.jit(lambda x, t: jax.jvp(f(True), (x,), (t,)))(xs, tangent), ref)
    _assert_close(jax.vmap(lambda x, t: jax.jvp(f(True), (x,), (t,)))(xs[None], tangent[None]),
                  jax.tree_util.tree_map(lambda a: a[None], ref))
    x1 = xs[:1, :3]
    last = lambda fused: lambda x: seqjax.unroll(cell, params, x, fused=fused)[1][0, -1]
    _assert_close(jax.jacfwd(last(True))(x1), jax.jacrev(last(False))(x1))
    scalar = lambda fused: lambda x: jnp.sum(jnp.sin(seqjax.unroll(cell, params, x, fused=fused)[1]))
    _assert_close(jax.hessian(scalar(True))(x1), jax.hessian(scalar(False))(x1))
    # through a Stack, in both directions
    st = seqjax.Stack(cell, 2, bidirectional=True)
    sp = st.init(jax.random.PRNGKey(5), I, H, dtype=jnp.float64)
    g = lambda fused: lambda x: dataclasses.replace(st, fused=fused)(sp, x, lengths=LENGTHS)[1]
    _assert_close(jax.jvp(g(True), (xs,), (tangent,)), jax.jvp(g(False), (xs,), (tangent,)))


def test_forward_mode_over_an_already_traced_function_needs_the_switch(x64):
    """jax.jvp(jax.jit(f)) traces f before forward mode is applied: the unroll inside cannot see it,
    and JAX refuses the custom_vjp; fused=False is the documented way."""
    cell, params, xs, carry0, _ = _setup("lstm")
    f = lambda fused: jax.jit(lambda x: seqjax.unroll(cell, params, x, carry0, fused=fused)[1])
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(f(True), (xs,), (xs,))
    _, tangent = jax.jvp(f(False), (xs,), (xs,))
    assert tangent.shape == (B, T, H)
    assert "fused=False" in seqjax.unroll.__doc__ and "jax.jvp(jax.jit(f))" in seqjax.unroll.__doc__


def test_gru_has_no_fused_rule(x64):
    assert not _fast.supports(seqjax.gru_cho) and not _fast.supports(seqjax.gru) and _fast.supports(seqjax.lstm)
    cell, params, xs, carry0, w = _setup("gru")
    assert _has_custom_vjp(lambda p, x, c: seqjax.unroll(cell, p, x, c), params, xs, carry0) == 0
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
    assert seqjax.make_cell("gru", matmul_dtype=jnp.float32) == seqjax.make_cell("gru")
    assert seqjax.make_cell("gru", matmul_dtype="bfloat16").matmul_dtype == "bfloat16"
    # the dtype object is accepted as well as its name, and gives the same (hashable) cell
    assert seqjax.make_cell("lstm", matmul_dtype=jnp.bfloat16) == seqjax.make_cell("lstm", matmul_dtype="bfloat16")
    assert seqjax.Cell("lstm", matmul_dtype=np.dtype(jnp.bfloat16)).matmul_dtype == "bfloat16"
    with pytest.raises(ValueError, match=r"unknown matmul_dtype 'float16'"):
        seqjax.make_cell("lstm", matmul_dtype=jnp.float16)
    with pytest.raises(ValueError, match=r"unknown matmul_dtype 'float16'; expected one of \('float32', 'bfloat16'\)"):
        seqjax.make_cell("lstm", matmul_dtype="float16")
