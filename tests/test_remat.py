"""remat=k (jax.checkpoint every k steps): values and gradients unchanged, memory smaller."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import seqjax
from seqjax import cells


def data(B=3, T=10, I=3, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=(B, T, I))), jnp.array([10, 4, 7])


@pytest.mark.parametrize("name", ["lstm", "gru", "mingru"])  # fused loop, plain scan, linear scan
def test_gradients_unchanged(name, x64):
    cell = cells.make_cell(name)
    p = cell.init(jax.random.PRNGKey(0), 3, 4, dtype=jnp.float64)
    xs, lengths = data()
    h0 = cell.initial_carry((3,), 4, jnp.float64)
    h0 = jax.tree_util.tree_map(lambda a: a + 0.1, h0)
    w = jnp.asarray(np.random.default_rng(1).normal(size=(3, 10, 4)))

    def loss(p, xs, h0, remat, time_major):
        total = 0.0
        for reverse in (False, True):
            x = jnp.swapaxes(xs, 0, 1) if time_major else xs
            final, ys = seqjax.unroll(cell, p, x, h0, lengths=lengths, reverse=reverse, remat=remat,
                                      time_major=time_major)
            ys = jnp.swapaxes(ys, 0, 1) if time_major else ys
            total = total + jnp.sum(w * ys) + sum(jnp.sum(jnp.cos(a)) for a in jax.tree_util.tree_leaves(final))
        return total

    @jax.jit
    def run(p, xs, h0):
        vg = jax.value_and_grad(loss, (0, 1, 2))
        # k = 3 and 4 leave a shorter last chunk; batch-major and time-major
        return vg(p, xs, h0, 0, False), [vg(p, xs, h0, k, tm) for k, tm in ((3, False), (4, True))]

    (want_v, want_g), got = run(p, xs, h0)
    for v, g in got:
        np.testing.assert_allclose(v, want_v, rtol=1e-12)
        for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(want_g), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_a_core_of_your_own_and_a_stack(x64):
    """remat on a generic core (a unidirectional Stack used as a core) and on Stack layers."""
    stack = seqjax.Stack("gru", num_layers=2)
    p = stack.init(jax.random.PRNGKey(0), 3, 4, dtype=jnp.float64)
    xs, lengths = data()
    carry0 = stack.initial_carry(3, 4, jnp.float64)

    def loss(p, remat):
        _, ys = seqjax.unroll(stack, p, xs, carry0, lengths=lengths, remat=remat)
        _, ys2 = seqjax.Stack("gru", num_layers=2, remat=remat)(p, xs, lengths=lengths)
        return jnp.sum(ys ** 2) + jnp.sum(jnp.sin(ys2))

    g = jax.jit(jax.value_and_grad(loss), static_argnums=1)
    (v0, g0), (v1, g1) = g(p, 0), g(p, 3)
    np.testing.assert_allclose(v1, v0, rtol=1e-12)
    for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g0), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def temp_bytes(remat, T=512):
    cell = cells.gru
    p = cell.init(jax.random.PRNGKey(0), 8, 32)
    xs = jnp.ones((4, T, 8))
    loss = lambda p: jnp.sum(seqjax.unroll(cell, p, xs, remat=remat)[1] ** 2)
    return jax.jit(jax.grad(loss)).lower(p).compile().memory_analysis().temp_size_in_bytes


def test_memory_grows_with_chunks_not_steps():
    """The compiled training step's scratch memory, from XLA's memory analysis."""
    full, chunked = temp_bytes(0), temp_bytes(32)
    assert chunked * 4 < full, (full, chunked)


def test_the_modules_and_bad_values():
    from flax import nnx

    gru = seqjax.nn.GRU(3, 4, remat=5, rngs=nnx.Rngs(0))
    assert gru.stack.remat == 5
    out, _ = gru(jnp.ones((2, 12, 3)))
    ref = seqjax.Stack("gru")(gru.pure_params(), jnp.ones((2, 12, 3)))[1]
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
    for bad in (-1, 2.5, True, "8"):
        with pytest.raises(ValueError, match=r"remat must be a whole number of steps per checkpoint \(0 = off\)"):
            seqjax.unroll("gru", cells.gru.init(jax.random.PRNGKey(0), 3, 4), jnp.ones((2, 5, 3)), remat=bad)
    with pytest.raises(ValueError, match="remat must be a whole number"):
        seqjax.Stack("lstm", remat=-2)
