"""Cells: equations against a plain numpy loop, init schemes, transforms (jit/vmap/grad), bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import seqjax
from seqjax import cells

NAMES = ["rnn_tanh", "rnn_relu", "lstm", "gru", "gru_cho"]


def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_step(name, p, carry, x):
    """The equations written out independently, one gate block at a time."""
    p = {k: np.asarray(v) for k, v in p.items()}
    W, U, b, c = p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"]
    H = U.shape[1]
    blk = lambda M, k: M[k * H:(k + 1) * H]
    if name.startswith("rnn"):
        pre = W @ x + b + U @ carry + c
        h = np.tanh(pre) if name == "rnn_tanh" else np.maximum(pre, 0)
        return h, h
    if name == "lstm":
        h, cc = carry
        gate = lambda k: blk(W, k) @ x + blk(b, k) + blk(U, k) @ h + blk(c, k)
        i, f, g, o = sig(gate(0)), sig(gate(1)), np.tanh(gate(2)), sig(gate(3))
        cc = f * cc + i * g
        h = o * np.tanh(cc)
        return (h, cc), h
    h = carry
    r = sig(blk(W, 0) @ x + blk(b, 0) + blk(U, 0) @ h + blk(c, 0))
    z = sig(blk(W, 1) @ x + blk(b, 1) + blk(U, 1) @ h + blk(c, 1))
    if name == "gru":
        n = np.tanh(blk(W, 2) @ x + blk(b, 2) + r * (blk(U, 2) @ h + blk(c, 2)))
    else:
        n = np.tanh(blk(W, 2) @ x + blk(b, 2) + blk(U, 2) @ (r * h) + blk(c, 2))
    h = (1 - z) * n + z * h
    return h, h


@pytest.mark.parametrize("name", NAMES)
def test_step_matches_numpy_loop(name, x64):
    cell = cells.make_cell(name)
    p = cell.init(jax.random.PRNGKey(1), 3, 4, init="xavier_orthogonal", dtype=jnp.float64)
    p = jax.tree_util.tree_map(lambda a: a + 0.1, p)  # non-zero biases
    xs = np.random.default_rng(0).normal(size=(6, 3))
    carry = cell.initial_carry((), 4, jnp.float64)
    np_carry = (np.zeros(4), np.zeros(4)) if name == "lstm" else np.zeros(4)
    final, ys = seqjax.unroll(cell, p, jnp.asarray(xs))
    for t in range(6):
        np_carry, y = numpy_step(name, p, np_carry, xs[t])
        carry, y2 = cell.step(p, carry, jnp.asarray(xs[t]))
        np.testing.assert_allclose(y2, y, atol=1e-12)
        np.testing.assert_allclose(ys[t], y, atol=1e-12)
    np.testing.assert_allclose(cell.carry_hidden(final), np_carry[0] if name == "lstm" else np_carry, atol=1e-12)


def test_param_counts_match_the_articles_claim():
    size = lambda p: sum(a.size for a in jax.tree_util.tree_leaves(p))
    counts = {n: size(cells.make_cell(n).init(jax.random.PRNGKey(0), 32, 32)) for n in ["rnn", "lstm", "gru"]}
    assert counts["lstm"] == 4 * counts["rnn"]
    assert counts["gru"] == 3 * counts["rnn"]


def test_init_schemes():
    key = jax.random.PRNGKey(0)
    H, I = 16, 8
    p = cells.lstm.init(key, I, H, init="torch")
    bound = 1 / math.sqrt(H)
    for v in p.values():
        assert float(jnp.max(jnp.abs(v))) <= bound
    q = cells.lstm.init(key, I, H, init="xavier_orthogonal", forget_bias=1.0)
    for k in range(4):
        blockT = q["w_hh"][k * H:(k + 1) * H]
        np.testing.assert_allclose(blockT @ blockT.T, np.eye(H), atol=1e-5)
    np.testing.assert_array_equal(q["b_ih"][H:2 * H], np.ones(H))
    np.testing.assert_array_equal(q["b_ih"][:H], np.zeros(H))
    np.testing.assert_array_equal(q["b_hh"], np.zeros(4 * H))
    assert float(jnp.max(jnp.abs(q["w_ih"]))) <= math.sqrt(6 / (I + H))
    he = cells.rnn_relu.init(key, 400, 8, init="he_orthogonal")
    assert abs(float(jnp.std(he["w_ih"])) - math.sqrt(2 / 400)) < 0.01


@pytest.mark.parametrize("name", NAMES)
def test_jit_vmap_grad(name):
    cell = cells.make_cell(name)
    p = cell.init(jax.random.PRNGKey(0), 3, 5)
    xs = jax.random.normal(jax.random.PRNGKey(1), (4, 7, 3))
    # vmap a single-example unroll over the batch == the batched unroll
    single = lambda x: seqjax.unroll(cell, p, x)[1]
    np.testing.assert_allclose(jax.vmap(single)(xs), seqjax.unroll(cell, p, xs)[1], atol=1e-6)
    # jit gives the same numbers
    np.testing.assert_allclose(jax.jit(single)(xs[0]), single(xs[0]), atol=1e-6)
    # gradient against central finite differences, in one weight
    loss = lambda q: jnp.sum(seqjax.unroll(cell, q, xs)[1] ** 2)
    g = jax.grad(loss)(p)
    eps = 1e-3
    bump = lambda s: jax.tree_util.tree_map(lambda a: a, {**p, "w_hh": p["w_hh"].at[0, 1].add(s)})
    fd = (loss(bump(eps)) - loss(bump(-eps))) / (2 * eps)
    assert abs(float(g["w_hh"][0, 1]) - float(fd)) < 2e-2 * max(1.0, abs(float(fd)))


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown cell 'lstn'.*expected one of"):
        cells.make_cell("lstn")
    with pytest.raises(ValueError, match="unknown initializer 'glorot'"):
        cells.lstm.init(jax.random.PRNGKey(0), 3, 4, init="glorot")
    with pytest.raises(ValueError, match="forget_bias applies to LSTM only"):
        cells.gru.init(jax.random.PRNGKey(0), 3, 4, forget_bias=1.0)
    with pytest.raises(ValueError, match="unknown merge mode 'avg'"):
        seqjax.Stack("lstm", merge="avg")


def test_cells_and_stacks_pass_through_jit_as_static_values():
    p = cells.gru.init(jax.random.PRNGKey(0), 3, 4)
    xs = jnp.ones((2, 5, 3))
    np.testing.assert_allclose(jax.jit(seqjax.unroll)(cells.gru, p, xs)[1], seqjax.unroll(cells.gru, p, xs)[1],
                               atol=1e-6)
    st = seqjax.Stack("lstm", num_layers=2)
    q = st.init(jax.random.PRNGKey(0), 3, 4)
    out = jax.jit(lambda s, q, x: s(q, x)[1])(st, q, xs)
    assert out.shape == (2, 5, 4)
