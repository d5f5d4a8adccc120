"""unroll and Stack: variable lengths, reverse, stacks, dropout, unroll factor, bad input."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import seqjax
from seqjax import cells, recurrent

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


# ------------------------------------------------------------------ the public face


def test_bad_input_messages_describe_what_was_passed():
    cell = cells.lstm
    p = cell.init(jax.random.PRNGKey(0), 3, 5)
    # a nested list is blamed for being a list, not for a shape it does not have
    with pytest.raises(ValueError, match=r"got a list \(convert it with jnp.asarray\)"):
        seqjax.unroll(cell, p, np.ones((2, 7, 3)).tolist())
    # a params dict without b_ih names what is there and what is missing
    with pytest.raises(ValueError, match=r"have 'b_hh' but not 'b_ih'.*\['b_hh', 'w_hh', 'w_ih'\]"):
        seqjax.unroll(cell, {k: v for k, v in p.items() if k != "b_ih"}, jnp.ones((2, 7, 3)))
    with pytest.raises(ValueError, match=r"params must be a dict with 'w_ih', 'w_hh'.*got \['b_hh', 'b_ih', 'w_ih'\]"):
        seqjax.unroll(cell, {k: v for k, v in p.items() if k != "w_hh"}, jnp.ones((2, 7, 3)))
    # one cell's step given another cell's params
    gru_p = cells.gru.init(jax.random.PRNGKey(0), 3, 5)
    with pytest.raises(ValueError, match=r"lstm expects w_hh of shape \(4\*H, H\).*got w_hh \(15, 5\)"):
        cell.step(gru_p, cell.initial_carry((2,), 5), jnp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"take 3 input features; got x of shape \(2, 4\)"):
        cell.step(p, cell.initial_carry((2,), 5), jnp.ones((2, 4)))
    # Stack reports the shape the caller passed, in the caller's layout
    st = seqjax.Stack("lstm", num_layers=2)
    sp = st.init(jax.random.PRNGKey(0), 3, 5)
    with pytest.raises(ValueError, match=r"expected inputs with 3 features.*got shape \(2, 7, 4\)"):
        st(sp, jnp.ones((2, 7, 4)))
    with pytest.raises(ValueError, match=r"expected inputs with 3 features.*got shape \(7, 2, 4\)"):
        st(sp, jnp.ones((7, 2, 4)), time_major=True)
    # a layer whose params do not fit the one below
    bad = [sp[0], {"fwd": cells.lstm.init(jax.random.PRNGKey(1), 4, 5)}]
    with pytest.raises(ValueError, match=r"layer 1 \(fwd\) params take 4 input features, but layer 0 outputs 5"):
        st(bad, jnp.ones((2, 7, 3)))


def test_custom_core_with_a_scalar_carry_leaf_and_lengths():
    class Counted:
        """Counts steps in a scalar next to a per-sequence sum."""

        def step(self, params, carry, x):
            n, total = carry
            return (n + 1, total + x), total + x

    xs = jnp.ones((2, 5, 1))
    carry0 = (jnp.zeros(()), jnp.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"carry leaf \[0\] of shape \(\) has no batch axis 0 of size 2.*"
                                         r"carry_batch_axis"):
        seqjax.unroll(Counted(), None, xs, carry0, lengths=jnp.array([5, 3]))

    class SharedCount(Counted):
        def carry_batch_axis(self, carry):
            return (None, 0)

    (n, total), ys = seqjax.unroll(SharedCount(), None, xs, carry0, lengths=jnp.array([5, 3]))
    assert float(n) == 5.0  # shared by the batch: counts every step
    np.testing.assert_array_equal(total[:, 0], [5, 3])
    np.testing.assert_array_equal(ys[1, :, 0], [1, 2, 3, 0, 0])


def test_jit_of_unroll_with_a_core_of_your_own():
    xs = jnp.zeros((2, 5, 1))
    c0 = jnp.zeros((2, 1))
    # as a static argument
    final, _ = jax.jit(seqjax.unroll, static_argnums=0)(Counter(), None, xs, c0)
    np.testing.assert_array_equal(final[:, 0], [5, 5])

    # or registered as a static (hashable) type, the way seqjax's cells are
    @jax.tree_util.register_static
    @dataclasses.dataclass(frozen=True)
    class Step:
        by: float = 2.0

        def step(self, params, carry, x):
            return carry + self.by, carry

    final, ys = jax.jit(seqjax.unroll)(Step(), None, xs, c0)
    np.testing.assert_array_equal(final[:, 0], [10, 10])
    assert "static_argnums=0" in seqjax.unroll.__doc__ and "register_static" in seqjax.unroll.__doc__


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_low_precision_inputs_promote_to_the_params_dtype(name):
    """float32 params with bfloat16 or float16 inputs (and carries) compute and return float32."""
    cell = cells.make_cell(name)
    p = cell.init(jax.random.PRNGKey(0), 3, 5)
    xs = jax.random.normal(jax.random.PRNGKey(1), (2, 7, 3))
    final32, ys32 = seqjax.unroll(cell, p, xs)
    for low in (jnp.bfloat16, jnp.float16):
        x_low = xs.astype(low)
        final, ys = seqjax.unroll(cell, p, x_low)
        assert ys.dtype == jnp.float32 and all(a.dtype == jnp.float32 for a in jax.tree_util.tree_leaves(final))
        np.testing.assert_allclose(ys, seqjax.unroll(cell, p, x_low.astype(jnp.float32))[1], atol=1e-6)
        np.testing.assert_allclose(ys, ys32, atol=2e-2)
        carry_low = jax.tree_util.tree_map(lambda a, low=low: a.astype(low), cell.initial_carry((2,), 5))
        assert seqjax.unroll(cell, p, x_low, carry_low, lengths=jnp.array([7, 3]))[1].dtype == jnp.float32
        g = jax.grad(lambda x: jnp.sum(seqjax.unroll(cell, p, x)[1]))(x_low)
        assert g.dtype == low  # the gradient of an input has the input's dtype
        st = seqjax.Stack(cell, num_layers=2, bidirectional=True)
        sp = st.init(jax.random.PRNGKey(0), 3, 5)
        assert st(sp, x_low)[1].dtype == jnp.float32


def test_stack_accepts_one_unbatched_sequence():
    for bidirectional in (False, True):
        st = seqjax.Stack("lstm", num_layers=2, bidirectional=bidirectional)
        p = st.init(jax.random.PRNGKey(0), 3, 5)
        x = jax.random.normal(jax.random.PRNGKey(1), (7, 3))
        final, ys = st(p, x)
        ref_final, ref_ys = st(p, x[None])
        assert ys.shape == (7, st.output_size(5)) and final.h.shape == (2 * st.num_directions, 5)
        np.testing.assert_allclose(ys, ref_ys[0], atol=1e-6)
        np.testing.assert_allclose(final.c, ref_final.c[:, 0], atol=1e-6)
        # an unbatched initial carry and a scalar length, as torch.nn.LSTM takes them
        carry0 = jax.tree_util.tree_map(lambda a: a[:, 0] + 0.5, st.initial_carry(1, 5))
        f1, y1 = st(p, x, carry0, lengths=4)
        f2, y2 = st(p, x[None], jax.tree_util.tree_map(lambda a: a[:, None], carry0), lengths=np.array([4]))
        np.testing.assert_allclose(y1, y2[0], atol=1e-6)
        np.testing.assert_allclose(f1.h, f2.h[:, 0], atol=1e-6)
        with pytest.raises(ValueError, match=r"initial carry shaped"):
            st(p, x, st.initial_carry(1, 5))  # a batched carry for an unbatched input


def test_eager_calls_compile_once_per_static_configuration():
    """Outside jit, a Stack call and a cell unroll run as cached compiled functions: a second call
    with the same shapes and flags adds no compilation, a new flag adds one."""
    st = seqjax.Stack("lstm", num_layers=2, bidirectional=True, dropout=0.5)
    p = st.init(jax.random.PRNGKey(0), 3, 4)
    xs = jnp.ones((2, 5, 3))
    stack_cache, cell_cache = recurrent._stack_jit, recurrent._unroll_cell_jit
    n = stack_cache._cache_size()
    out = st(p, xs)
    assert stack_cache._cache_size() == n + 1
    np.testing.assert_array_equal(st(p, xs)[1], out[1])
    st(p, jnp.zeros((2, 5, 3)))
    assert stack_cache._cache_size() == n + 1  # a cache hit
    st(p, xs, train=True, rng=jax.random.PRNGKey(1))
    assert stack_cache._cache_size() == n + 2  # train is static
    m = cell_cache._cache_size()
    cp = cells.gru.init(jax.random.PRNGKey(0), 3, 4)
    for _ in range(3):
        seqjax.unroll(cells.gru, cp, xs, lengths=jnp.array([5, 2]))
    assert cell_cache._cache_size() == m + 1
    # inside a transformation the caller's trace is used, not the cache
    jax.jit(lambda x: st(p, x))(xs)
    assert stack_cache._cache_size() == n + 2
