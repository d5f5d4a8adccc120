"""unroll and Stack: variable lengths, reverse, stacks, dropout, unroll factor, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import seqjax
from seqjax import cells

NAMES = ["rnn_tanh", "lstm", "gru", "gru_cho"]


class Counter:
    """A toy core: the carry counts steps, the output is carry + x (Haiku-style exact check)."""

    def step(self, params, carry, x):
        return carry + 1, carry + x


def test_toy_core_exact_numbers():
    xs = jnp.zeros((2, 5, 1))
    final, ys = seqjax.unroll(Counter(), None, xs, jnp.zeros((2, 1)), lengths=jnp.array([5, 3]))
    np.testing.assert_array_equal(final[:, 0], [5, 3])
    np.testing.assert_array_equal(ys[:, :, 0], [[0, 1, 2, 3, 4], [0, 1, 2, 0, 0]])
    final, ys = seqjax.unroll(Counter(), None, xs, jnp.zeros((2, 1)), lengths=jnp.array([5, 3]), reverse=True)
    np.testing.assert_array_equal(ys[:, :, 0], [[4, 3, 2, 1, 0], [2, 1, 0, 0, 0]])


@pytest.mark.parametrize("name,hoist", [(n, False) for n in NAMES] + [("lstm", True)])
def test_padded_batch_equals_each_sequence_alone(name, hoist, x64):
    cell = cells.make_cell(name)
    stack = seqjax.Stack(cell, num_layers=2, bidirectional=True)
    p = stack.init(jax.random.PRNGKey(0), 4, 6, dtype=jnp.float64)
    xs = jax.random.normal(jax.random.PRNGKey(1), (4, 9, 4), jnp.float64)
    lengths = jnp.array([9, 1, 5, 8])
    junk = xs.at[1, 1:].set(1e3).at[2, 5:].set(-1e3)  # garbage in the padding must not matter
    final, ys = stack(p, junk, lengths=lengths, hoist=hoist)
    for b, L in enumerate(np.asarray(lengths)):
        f1, y1 = stack(p, xs[b:b + 1, :L], hoist=hoist)
        np.testing.assert_allclose(ys[b, :L], y1[0], atol=1e-12)
        np.testing.assert_array_equal(ys[b, L:], 0.0)
        for a, c in zip(jax.tree_util.tree_leaves(final), jax.tree_util.tree_leaves(f1), strict=True):
            np.testing.assert_allclose(a[:, b], c[:, 0], atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_reverse_is_flip_of_forward(name, x64):
    cell = cells.make_cell(name)
    p = cell.init(jax.random.PRNGKey(0), 3, 5, dtype=jnp.float64)
    xs = jax.random.normal(jax.random.PRNGKey(1), (2, 7, 3), jnp.float64)
    f_r, y_r = seqjax.unroll(cell, p, xs, reverse=True)
    f_f, y_f = seqjax.unroll(cell, p, xs[:, ::-1])
    np.testing.assert_allclose(y_r, y_f[:, ::-1], atol=1e-12)


def test_layouts_and_unroll_factor():
    cell = cells.lstm
    p = cell.init(jax.random.PRNGKey(0), 3, 5)
    xs = jax.random.normal(jax.random.PRNGKey(1), (2, 7, 3))
    _, ys = seqjax.unroll(cell, p, xs)
    _, ys_tm = seqjax.unroll(cell, p, jnp.swapaxes(xs, 0, 1), time_major=True, unroll=3)
    np.testing.assert_allclose(jnp.swapaxes(ys_tm, 0, 1), ys, atol=1e-5)


def test_stack_merge_modes_and_torch_state_layout():
    for merge, width in [("concat", 10), ("sum", 5), ("mean", 5)]:
        st = seqjax.Stack("gru", num_layers=2, bidirectional=True, merge=merge)
        p = st.init(jax.random.PRNGKey(0), 3, 5)
        final, ys = st(p, jnp.ones((2, 4, 3)))
        assert ys.shape == (2, 4, width) and final.shape == (4, 2, 5)
        assert st.top_hidden(final).shape == (2, 10)
    st = seqjax.Stack("lstm", num_layers=2)
    final, _ = st(st.init(jax.random.PRNGKey(0), 3, 5), jnp.ones((2, 4, 3)))
    assert final.h.shape == final.c.shape == (2, 2, 5)


def test_dropout_between_layers_only_in_training():
    st = seqjax.Stack("lstm", num_layers=2, dropout=0.5)
    p = st.init(jax.random.PRNGKey(0), 3, 8)
    xs = jax.random.normal(jax.random.PRNGKey(1), (2, 6, 3))
    _, a = st(p, xs)
    _, b = st(p, xs, train=True, rng=jax.random.PRNGKey(2))
    _, c = st(p, xs, train=True, rng=jax.random.PRNGKey(3))
    assert not np.allclose(a, b) and not np.allclose(b, c)
    # a one-layer stack has no "between": dropout never applies
    one = seqjax.Stack("lstm", num_layers=1, dropout=0.5)
    q = one.init(jax.random.PRNGKey(0), 3, 8)
    np.testing.assert_array_equal(one(q, xs)[1], one(q, xs, train=True, rng=jax.random.PRNGKey(2))[1])
    with pytest.raises(ValueError, match="needs an rng"):
        st(p, xs, train=True)


def test_bad_input_messages():
    cell = cells.lstm
    p = cell.init(jax.random.PRNGKey(0), 3, 5)
    with pytest.raises(ValueError, match=r"expected inputs of shape \(batch, time, features\).*got shape \(7,\)"):
        seqjax.unroll(cell, p, jnp.ones((7,)))
    with pytest.raises(ValueError, match=r"expected inputs with 3 features.*got shape \(2, 7, 4\)"):
        seqjax.unroll(cell, p, jnp.ones((2, 7, 4)))
    with pytest.raises(ValueError, match=r"expected an initial carry shaped.*got"):
        seqjax.unroll(cell, p, jnp.ones((2, 7, 3)), (jnp.zeros((3, 5)), jnp.zeros((3, 5))))
    with pytest.raises(ValueError, match=r"expected an initial carry shaped"):
        seqjax.unroll(cell, p, jnp.ones((2, 7, 3)), (jnp.zeros((2, 6)), jnp.zeros((2, 6))))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 7\].*max 8"):
        seqjax.unroll(cell, p, jnp.ones((2, 7, 3)), lengths=np.array([3, 8]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 7\].*min 0"):
        seqjax.unroll(cell, p, jnp.ones((2, 7, 3)), lengths=np.array([0, 2]))
    with pytest.raises(ValueError, match=r"expected lengths of shape \(2,\).*got \(3,\)"):
        seqjax.unroll(cell, p, jnp.ones((2, 7, 3)), lengths=np.array([1, 2, 3]))
    # errors are raised while tracing, inside jit too
    with pytest.raises(ValueError, match="expected inputs with 3 features"):
        jax.jit(lambda x: seqjax.unroll(cell, p, x))(jnp.ones((2, 7, 4)))
    st = seqjax.Stack("gru", num_layers=2)
    with pytest.raises(ValueError, match=r"expected params for 2 layer"):
        st(st.init(jax.random.PRNGKey(0), 3, 5)[:1], jnp.ones((2, 7, 3)))
    with pytest.raises(ValueError, match=r"initial carry shaped \{?.*\(2, 2, 5\)"):
        st(st.init(jax.random.PRNGKey(0), 3, 5), jnp.ones((2, 7, 3)), jnp.zeros((1, 2, 5)))
