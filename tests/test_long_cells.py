"""The linear-recurrence cells (mingru, minlstm, rglru): equations, every evaluation against the
step loop, padding, gradients against autodiff of the step form, layers, modules, bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import seqjax
from seqjax import cells
from seqjax.scan import METHODS

LINEAR = ["mingru", "minlstm", "rglru"]


def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_step(name, p, h, x):
    """The papers' equations written out, one gate block at a time."""
    W, b = np.asarray(p["w_ih"]), np.asarray(p["b_ih"])
    H = h.shape[-1]
    u = [W[k * H:(k + 1) * H] @ x + b[k * H:(k + 1) * H] for k in range(W.shape[0] // H)]
    if name == "mingru":
        z = sig(u[0])
        return (1 - z) * h + z * u[1]
    if name == "minlstm":
        f, i = sig(u[0]), sig(u[1])
        return f / (f + i) * h + i / (f + i) * u[2]
    r, i = sig(u[0]), sig(u[1])
    a = sig(np.asarray(p["a_param"])) ** (8.0 * r)
    return a * h + np.sqrt(1 - a * a) * (i * u[2])


def params(name, I=3, H=4, seed=1, dtype=jnp.float64):
    cell = cells.make_cell(name)
    p = cell.init(jax.random.PRNGKey(seed), I, H, init="xavier_orthogonal", dtype=dtype)
    p["b_ih"] = p["b_ih"] + 0.3  # non-zero biases
    return p


def inputs(B=3, T=13, I=3, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(B, T, I)))


@pytest.mark.parametrize("name", LINEAR)
def test_step_matches_the_papers_equations(name, x64):
    cell, p = cells.make_cell(name), params(name)
    xs = np.random.default_rng(0).normal(size=(6, 3))
    h, h_np = cell.initial_carry((), 4, jnp.float64), np.zeros(4)
    for t in range(6):
        h, y = cell.step(p, h, jnp.asarray(xs[t]))
        h_np = numpy_step(name, p, h_np, xs[t])
        np.testing.assert_allclose(y, h_np, rtol=0, atol=1e-12)


def step_loop(cell, p, xs, lengths, reverse):
    """``cell.step`` one sequence and one step at a time, each within its own length."""
    B, T, _ = xs.shape
    H = cell.sizes(p)[1]
    ys, finals = np.zeros((B, T, H)), np.zeros((B, H))
    step = jax.jit(cell.step)
    for s in range(B):
        h = cell.initial_carry((), H, jnp.float64)
        L = int(lengths[s])
        for t in (range(L - 1, -1, -1) if reverse else range(L)):
            h, y = step(p, h, xs[s, t])
            ys[s, t] = y
        finals[s] = h
    return finals, ys


@pytest.mark.parametrize("name", LINEAR)
def test_every_evaluation_matches_the_step_loop(name, x64):
    p, xs, lengths = params(name), inputs(), jnp.array([13, 5, 9])
    for reverse in (False, True):
        want_final, want_ys = step_loop(cells.make_cell(name), p, xs, lengths, reverse)
        for method in METHODS:
            cell = cells.make_cell(name, scan=method)
            final, ys = seqjax.unroll(cell, p, xs, lengths=lengths, reverse=reverse)
            np.testing.assert_allclose(ys, want_ys, rtol=0, atol=1e-12, err_msg=f"{method} reverse={reverse}")
            np.testing.assert_allclose(final, want_final, rtol=0, atol=1e-12)


def test_padded_batch_equals_each_sequence_alone(x64):
    p, xs, lengths = params("minlstm"), inputs(), [13, 5, 9]
    h0 = jnp.asarray(np.random.default_rng(5).normal(size=(3, 4)))
    for reverse in (False, True):
        alone = [seqjax.unroll(cells.minlstm, p, xs[s, :L], h0[s], reverse=reverse) for s, L in enumerate(lengths)]
        for method in METHODS:
            cell = cells.make_cell("minlstm", scan=method)
            final, ys = seqjax.unroll(cell, p, xs, h0, lengths=jnp.array(lengths), reverse=reverse)
            for s, L in enumerate(lengths):
                np.testing.assert_allclose(ys[s, :L], alone[s][1], rtol=0, atol=1e-12, err_msg=method)
                np.testing.assert_allclose(final[s], alone[s][0], rtol=0, atol=1e-12, err_msg=method)
                assert not np.any(np.asarray(ys[s, L:]))  # padded steps give zeros


# every evaluation for one cell; one each for the others, whose part is their coefficients
# (the evaluations' own gradient rule: tests/test_scan.py)
@pytest.mark.parametrize("name, methods", [("mingru", METHODS), ("minlstm", ["chunked"]), ("rglru", ["associative"])])
def test_gradients_match_autodiff_of_the_step_form(name, methods, x64):
    p, xs, lengths = params(name), inputs(T=10), jnp.array([10, 4, 7])
    h0 = jnp.asarray(np.random.default_rng(6).normal(size=(3, 4)))
    w = jnp.asarray(np.random.default_rng(7).normal(size=(3, 10, 4)))

    def loss(p, xs, h0, cell, fused):  # both directions, so that one compile checks both
        total = 0.0
        for reverse in (False, True):
            final, ys = seqjax.unroll(cell, p, xs, h0, lengths=lengths, reverse=reverse, fused=fused)
            total = total + jnp.sum(w * ys) + jnp.sum(jnp.sin(final))
        return total

    @jax.jit
    def all_grads(p, xs, h0):
        g = jax.grad(loss, (0, 1, 2))
        # fused=False: JAX differentiates the lax.scan of cell.step
        return g(p, xs, h0, cells.make_cell(name), False), [
            g(p, xs, h0, cells.make_cell(name, scan=m), True) for m in methods]

    want, got = all_grads(p, xs, h0)
    for method, g_m in zip(methods, got, strict=True):
        for g, r in zip(jax.tree_util.tree_leaves(g_m), jax.tree_util.tree_leaves(want), strict=True):
            np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-11, err_msg=method)


@pytest.mark.parametrize("name", LINEAR)
def test_finite_at_16384_steps(name):
    """float32, values and gradients, weights scaled up so that gates saturate. (Every evaluation
    at this length: tests/test_scan.py; the cells' part is their coefficients.)"""
    p = jax.tree_util.tree_map(lambda a: a * 4.0, params(name, I=2, H=2, dtype=jnp.float32))
    xs = jax.random.normal(jax.random.PRNGKey(0), (1, 16384, 2))
    cell = cells.make_cell(name, scan="sequential")
    value, grads = jax.jit(jax.value_and_grad(lambda p: jnp.mean(seqjax.unroll(cell, p, xs)[1] ** 2)))(p)
    assert math.isfinite(float(value))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))


def test_bidirectional_multilayer_stack_and_remat(x64):
    """A 2-layer bidirectional minGRU Stack: each evaluation, with remat, equals the step form."""
    xs, lengths = inputs(T=9), jnp.array([9, 3, 6])
    ref = seqjax.Stack("mingru", num_layers=2, bidirectional=True, fused=False)
    p = ref.init(jax.random.PRNGKey(0), 3, 4, dtype=jnp.float64)
    want_final, want_ys = ref(p, xs, lengths=lengths)
    assert want_ys.shape == (3, 9, 8) and want_final.shape == (4, 3, 4)
    for method, remat in (("sequential", 0), ("chunked", 4), ("associative", 0)):
        if True:
            stack = seqjax.Stack(cells.make_cell("mingru", scan=method), num_layers=2, bidirectional=True,
                                 remat=remat)
            final, ys = stack(p, xs, lengths=lengths)
            np.testing.assert_allclose(ys, want_ys, rtol=0, atol=1e-12)
            np.testing.assert_allclose(final, want_final, rtol=0, atol=1e-12)


def test_nn_modules_hold_torch_style_names_and_run():
    from flax import nnx

    model = seqjax.nn.RGLRU(3, 5, num_layers=2, rngs=nnx.Rngs(0))
    names = sorted(k for k in vars(model) if "_l" in k)
    assert names == ["a_param_l0", "a_param_l1", "bias_ih_l0", "bias_ih_l1", "weight_ih_l0", "weight_ih_l1"]
    out, h_n = model(jnp.ones((2, 7, 3)), lengths=jnp.array([7, 2]))
    assert out.shape == (2, 7, 5) and h_n.shape == (2, 2, 5)
    # the module's math is the Stack's, with the module's parameters
    final, ys = model.stack(model.pure_params(), jnp.ones((2, 7, 3)), lengths=jnp.array([7, 2]))
    np.testing.assert_allclose(out, ys)
    mg = seqjax.nn.MinGRU(3, 4, bias=False, scan="chunked", remat=3, rngs=nnx.Rngs(1))
    assert mg.stack.cell.scan == "chunked" and mg.stack.remat == 3
    assert not any(k.startswith("bias_") for k in vars(mg))
    assert mg(jnp.ones((7, 3)))[0].shape == (7, 4)
    assert seqjax.nn.MinLSTM(3, 4, rngs=nnx.Rngs(2)).weight_ih_l0.shape == (12, 3)


def test_prefix_then_steps_equals_the_whole_sequence(x64):
    """Decoding: unroll a prompt (parallel evaluation), then continue step by step."""
    cell = cells.make_cell("minlstm", scan="associative")
    p, xs = params("minlstm"), inputs(B=2, T=12)
    final_all, ys_all = seqjax.unroll(cell, p, xs)
    h, _ = seqjax.unroll(cell, p, xs[:, :5])
    for t in range(5, 12):
        h, y = cell.step(p, h, xs[:, t])
        np.testing.assert_allclose(y, ys_all[:, t], atol=1e-12)
    np.testing.assert_allclose(h, final_all, atol=1e-12)


def test_forward_mode_and_hessian(x64):
    """Forward mode takes the plain scan (no custom_vjp there); the values are the same."""
    cell, p, xs = cells.make_cell("minlstm", scan="chunked"), params("minlstm"), inputs(B=1, T=6)
    f = lambda s: jnp.sum(seqjax.unroll(cell, p, xs * s)[1] ** 2)
    eps = 1e-6
    d1, d2 = jax.jit(lambda s: (jax.jacfwd(f)(s), jax.hessian(f)(s)))(1.0)
    np.testing.assert_allclose(d1, (f(1 + eps) - f(1 - eps)) / (2 * eps), rtol=1e-6)
    np.testing.assert_allclose(d2, (f(1 + 1e-4) - 2 * f(1.0) + f(1 - 1e-4)) / 1e-8, rtol=1e-4)


def test_mixed_precision_and_no_bias():
    cell = cells.make_cell("mingru", matmul_dtype="bfloat16")
    p = cell.init(jax.random.PRNGKey(0), 3, 4, bias=False)
    assert set(p) == {"w_ih"}
    _, ys = seqjax.unroll(cell, p, jnp.ones((2, 5, 3)))
    assert ys.dtype == jnp.float32
    exact = seqjax.unroll(cells.mingru, p, jnp.ones((2, 5, 3)))[1]
    assert 0 < float(jnp.max(jnp.abs(ys - exact))) < 1e-2


def test_rglru_init_puts_a_to_the_c_in_the_papers_range():
    p = cells.rglru.init(jax.random.PRNGKey(0), 3, 256)
    a_c = jax.nn.sigmoid(p["a_param"]) ** cells.RGLRU_C
    assert 0.9 <= float(a_c.min()) and float(a_c.max()) <= 0.999 + 1e-6
    assert float(a_c.max()) - float(a_c.min()) > 0.05  # spread over the range, not one value


def test_bad_input():
    with pytest.raises(ValueError, match=r"scan='chunked' applies to the linear-recurrence cells .* not lstm"):
        cells.make_cell("lstm", scan="chunked")
    with pytest.raises(ValueError, match=r"unknown scan 'fast'; expected one of"):
        cells.make_cell("mingru", scan="fast")
    with pytest.raises(ValueError, match=r"mingru params must be a dict with 'w_ih' .* got \['b_hh', 'w_hh', 'w_ih'\]"):
        gru_params = cells.gru.init(jax.random.PRNGKey(0), 3, 4)
        cells.mingru.sizes({k: v for k, v in gru_params.items() if k != "b_ih"})
    with pytest.raises(ValueError, match=r"rglru params must be a dict with 'w_ih', 'a_param'"):
        cells.rglru.sizes({"w_ih": jnp.zeros((12, 3))})
    with pytest.raises(ValueError, match=r"minlstm expects w_ih of shape \(3\*H, I\); got \(10, 3\)"):
        cells.minlstm.sizes({"w_ih": jnp.zeros((10, 3))})
    with pytest.raises(ValueError, match=r"mingru expects b_ih of shape \(8,\) \(hidden size 4\), got \(6,\)"):
        cells.mingru.sizes({"w_ih": jnp.zeros((8, 3)), "b_ih": jnp.zeros(6)})
    with pytest.raises(ValueError, match=r"expected inputs with 3 features"):
        seqjax.unroll("mingru", params("mingru", dtype=jnp.float32), jnp.ones((2, 5, 4)))
