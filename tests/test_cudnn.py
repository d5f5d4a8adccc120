"""seqjax.cudnn: the packed cuDNN layout against JAX's own unpacking and lstm_ref (any backend), the
Stack / nn.LSTM option, and, on a CUDA GPU only, the cuDNN kernel itself against the scan path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import rnn

import seqjax
from seqjax import cudnn


def setup(num_layers, bidirectional, I=3, H=4, seed=0, bias=True):
    stack = seqjax.Stack("lstm", num_layers=num_layers, bidirectional=bidirectional)
    params = stack.init(jax.random.PRNGKey(seed), I, H, bias=bias)
    xs = jax.random.normal(jax.random.PRNGKey(seed + 1), (3, 7, I))
    return stack, params, xs


@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, True), (3, False)])
def test_packed_layout_matches_jax_unpacking(num_layers, bidirectional):
    _, params, _ = setup(num_layers, bidirectional)
    flat = cudnn.pack(params, bidirectional)
    assert flat.shape == (rnn.get_num_params_in_lstm(3, 4, num_layers, bidirectional),)
    assert flat.shape == (cudnn.num_params(3, 4, num_layers, bidirectional),)
    w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(flat, 3, 4, num_layers, bidirectional)
    dirs = ("fwd", "bwd") if bidirectional else ("fwd",)
    for layer, entry in enumerate(params):
        for d, direction in enumerate(dirs):
            pseudo = layer * len(dirs) + d
            for got, name in ((w_ih, "w_ih"), (w_hh, "w_hh"), (b_ih, "b_ih"), (b_hh, "b_hh")):
                np.testing.assert_array_equal(got[pseudo], entry[direction][name], err_msg=f"{name} {pseudo}")
    back = cudnn.unpack(flat, 3, 4, num_layers, bidirectional)
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(params)
    for a, b in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(params), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, True)])
def test_reference_run_of_the_packed_weights_equals_the_stack(num_layers, bidirectional):
    """Packed weights through jax.experimental.rnn.lstm_ref: outputs, final states (lengths, both
    directions) and gradients equal those of the Stack that owns the params."""
    stack, params, xs = setup(num_layers, bidirectional)
    lengths = jnp.array([7, 2, 5])
    LD = num_layers * stack.num_directions
    h0 = jax.random.normal(jax.random.PRNGKey(9), (LD, 3, 4)) * 0.5
    carry0 = seqjax.LSTMCarry(h0, -h0)

    def run(params, which):
        if which == "stack":
            return stack(params, xs, carry0, lengths=lengths)
        return cudnn.lstm(params, xs, carry0, lengths=lengths, bidirectional=bidirectional, impl="reference")

    (f_ref, y_ref), (f, y) = run(params, "stack"), run(params, "reference")
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f.h, f_ref.h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f.c, f_ref.c, rtol=1e-5, atol=1e-6)

    def loss(params, which):
        final, ys = run(params, which)
        return jnp.sum(ys ** 2) + jnp.sum(final.c)

    g_ref = jax.grad(loss)(params, "stack")
    g = jax.grad(loss)(params, "reference")  # through pack(): back to the torch-layout params
    for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(g_ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_stack_and_module_option_route_through_the_packed_path(monkeypatch):
    """Stack(cudnn=True) and nn.LSTM(cudnn=True) with the cuDNN call swapped for lstm_ref (no GPU
    here): the same outputs as the scan path, time-major and one unbatched sequence included."""
    from flax import nnx

    monkeypatch.setattr(cudnn, "STACK_IMPL", "reference")
    stack, params, xs = setup(2, True, seed=3)
    on = seqjax.Stack("lstm", num_layers=2, bidirectional=True, cudnn=True)
    lengths = jnp.array([7, 4, 1])
    for kw in (dict(lengths=lengths), dict(time_major=True)):
        x = jnp.swapaxes(xs, 0, 1) if kw.get("time_major") else xs
        (f1, y1), (f2, y2) = on(params, x, **kw), stack(params, x, **kw)
        np.testing.assert_allclose(y1, y2, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(f1.h, f2.h, rtol=1e-5, atol=1e-6)
    f1, y1 = on(params, xs[0])
    np.testing.assert_allclose(y1, stack(params, xs[0])[1], rtol=1e-5, atol=1e-6)
    assert f1.h.shape == (4, 4)
    model = seqjax.nn.LSTM(3, 4, num_layers=2, bidirectional=True, cudnn=True, rngs=nnx.Rngs(0))
    out, (h_n, c_n) = model(xs)
    np.testing.assert_allclose(out, stack(model.pure_params(), xs)[1], rtol=1e-5, atol=1e-6)
    assert h_n.shape == c_n.shape == (4, 3, 4)


def test_what_the_cudnn_path_refuses():
    if not cudnn.available():
        with pytest.raises(ValueError, match=r"the cuDNN LSTM needs a CUDA GPU backend .* the default backend is cpu"):
            stack, params, xs = setup(1, False)
            seqjax.Stack("lstm", cudnn=True)(params, xs)
    with pytest.raises(ValueError, match="cudnn=True runs the LSTM only .* got cell gru"):
        seqjax.Stack("gru", cudnn=True)
    with pytest.raises(ValueError, match=r"cannot apply dropout=0.2 between layers"):
        seqjax.Stack("lstm", num_layers=2, dropout=0.2, cudnn=True)
    with pytest.raises(ValueError, match=r"merge='sum' needs cudnn=False"):
        seqjax.Stack("lstm", bidirectional=True, merge="sum", cudnn=True)
    with pytest.raises(ValueError, match=r"remat=8 needs cudnn=False"):
        seqjax.Stack("lstm", remat=8, cudnn=True)
    with pytest.raises(ValueError, match=r"matmul_dtype='bfloat16' is not supported"):
        seqjax.Stack(seqjax.make_cell("lstm", matmul_dtype="bfloat16"), cudnn=True)
    with pytest.raises(ValueError, match=r"expected a packed LSTM vector of shape \(144,\)"):
        cudnn.unpack(jnp.zeros(10), 3, 4, 1, False)
    with pytest.raises(ValueError, match="unknown impl 'fast'"):
        cudnn.lstm(setup(1, False)[1], jnp.ones((2, 3, 3)), impl="fast")


def test_no_bias_packs_zero_biases():
    _, params, _ = setup(1, False, bias=False)
    flat = cudnn.pack(params, False)
    assert flat.shape == (cudnn.num_params(3, 4, 1, False),)
    assert not np.any(np.asarray(flat[-32:]))


@pytest.mark.skipif(not cudnn.available(), reason="needs a CUDA GPU: runs the cuDNN kernel itself")
@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, True)])
def test_cudnn_kernel_matches_the_scan_path(num_layers, bidirectional):
    stack, params, xs = setup(num_layers, bidirectional, I=16, H=32)
    lengths = jnp.array([7, 3, 5])
    on = seqjax.Stack("lstm", num_layers=num_layers, bidirectional=bidirectional, cudnn=True)
    with jax.default_matmul_precision("highest"):
        (f1, y1), (f2, y2) = on(params, xs, lengths=lengths), stack(params, xs, lengths=lengths)
        np.testing.assert_allclose(y1, y2, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(f1.c, f2.c, rtol=1e-4, atol=1e-5)
        loss = lambda p, s: jnp.sum(s(p, xs, lengths=lengths)[1] ** 2)
        for a, b in zip(jax.tree_util.tree_leaves(jax.grad(loss)(params, on)),
                        jax.tree_util.tree_leaves(jax.grad(loss)(params, stack)), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
