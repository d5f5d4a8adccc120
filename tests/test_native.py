"""seqjax.native: the compiled CPU LSTM loop (opt-in) computes what the XLA loop computes, and
falls back cleanly where it cannot be built."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import cells, native
from seqjax.recurrent import Stack, unroll

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_kernel = pytest.mark.skipif(not native.available(), reason=f"native kernel not built here: "
                                  f"{native.status()['why']}")


def _params(I, H, seed=0, bias=True):
    r = np.random.default_rng(seed)
    names = [("w_ih", (4 * H, I)), ("w_hh", (4 * H, H))] + ([("b_ih", (4 * H,)), ("b_hh", (4 * H,))] if bias else [])
    return {k: jnp.asarray(r.standard_normal(s) * 0.5, jnp.float32) for k, s in names}


def _loss_and_grads(params, xs, c0, *, lengths, reverse, time_major, on):
    def loss(p, x, c):
        final, ys = unroll(cells.make_cell("lstm"), p, x, c, lengths=lengths, reverse=reverse, time_major=time_major)
        w = jnp.arange(ys.size, dtype=ys.dtype).reshape(ys.shape) / ys.size
        return jnp.sum(jnp.sin(ys) * w) + jnp.sum(final.h * 1.3) + jnp.sum(final.c ** 2)

    with native.enabled_as(on):
        f = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
        text = f.lower(params, xs, c0).as_text()
        return f(params, xs, c0), "seqjax_lstm_fwd" in text and "seqjax_lstm_bwd" in text


@needs_kernel
@pytest.mark.parametrize("time_major", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_kernel_equals_xla_loop(time_major, reverse, padded):
    B, T, I, H = 17, 9, 5, 6  # 17 rows: split over threads unevenly
    r = np.random.default_rng(1)
    xs = jnp.asarray(r.standard_normal((T, B, I) if time_major else (B, T, I)), jnp.float32)
    c0 = cells.LSTMCarry(*(jnp.asarray(r.standard_normal((B, H)), jnp.float32) for _ in range(2)))
    lengths = jnp.asarray(r.integers(1, T + 1, B), jnp.int32) if padded else None
    kw = dict(lengths=lengths, reverse=reverse, time_major=time_major)
    got, used = _loss_and_grads(_params(I, H), xs, c0, on=True, **kw)
    want, used_xla = _loss_and_grads(_params(I, H), xs, c0, on=False, **kw)
    assert used and not used_xla
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-5)


@needs_kernel
def test_kernel_in_a_bidirectional_stack_without_biases_and_under_vmap():
    stack = Stack(cells.make_cell("lstm"), num_layers=2, bidirectional=True)
    p = stack.init(jax.random.PRNGKey(0), 3, 4, dtype=jnp.float32)
    xs = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 7, 3), jnp.float32)  # vmapped over the first axis

    def loss(p, x):
        return jnp.sum(jnp.tanh(jax.vmap(lambda xi: stack(p, xi)[1])(x)))

    outs = []
    for on in (True, False):
        with native.enabled_as(on):
            outs.append(jax.jit(jax.value_and_grad(loss))(p, xs))
    for a, b in zip(jax.tree_util.tree_leaves(outs[0]), jax.tree_util.tree_leaves(outs[1]), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-5)
    no_bias = _params(3, 4, bias=False)
    xs1 = xs[0]
    c0 = cells.LSTMCarry(jnp.zeros((5, 4)), jnp.zeros((5, 4)))
    got, used = _loss_and_grads(no_bias, xs1, c0, lengths=None, reverse=False, time_major=False, on=True)
    want, _ = _loss_and_grads(no_bias, xs1, c0, lengths=None, reverse=False, time_major=False, on=False)
    assert used
    np.testing.assert_allclose(np.asarray(got[0]), np.asarray(want[0]), rtol=2e-5)


def test_kernel_is_off_by_default_and_never_takes_float64_or_bfloat16(x64):
    cell = cells.make_cell("lstm")
    p64 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), _params(3, 4))
    xs = jnp.ones((2, 5, 3), jnp.float64)

    def text(p, x, c, on):
        with native.enabled_as(on):
            return jax.jit(jax.grad(lambda p: jnp.sum(unroll(c, p, x, time_major=False)[1]))).lower(p).as_text()

    assert "seqjax_lstm" not in text(_params(3, 4), xs.astype(jnp.float32), cell, on=False)
    assert "seqjax_lstm" not in text(p64, xs, cell, on=True)
    bf16 = cells.make_cell("lstm", matmul_dtype="bfloat16")
    assert "seqjax_lstm" not in text(_params(3, 4), xs.astype(jnp.float32), bf16, on=True)


def test_a_failed_build_falls_back_and_says_why(tmp_path):
    """A compiler that fails: status names the failure, and an LSTM asked to use the kernel runs
    the XLA loop with the same numbers, in a fresh process with an empty build cache."""
    fake = tmp_path / "c++"
    fake.write_text("#!/bin/sh\necho 'no such toolchain here' >&2\nexit 3\n")
    fake.chmod(0o755)
    script = textwrap.dedent("""
        import jax, jax.numpy as jnp
        from seqjax import cells, native
        from seqjax.recurrent import unroll
        s = native.status()
        assert not s["ok"], s
        print(s["why"])
        cell = cells.make_cell("lstm")
        p = {"w_ih": jnp.ones((8, 3)) * 0.1, "w_hh": jnp.ones((8, 2)) * 0.1}
        f = jax.jit(jax.grad(lambda p: jnp.sum(unroll(cell, p, jnp.ones((4, 2, 3)))[1])))
        assert "seqjax_lstm" not in f.lower(p).as_text()
        print(float(f(p)["w_hh"].sum()))
    """)
    env = dict(os.environ, CXX=str(fake), SEQJAX_NATIVE="1", SEQJAX_NATIVE_DIR=str(tmp_path / "cache"),
               JAX_PLATFORMS="cpu")
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    why, grad = run.stdout.strip().splitlines()[-2:]
    if native._openblas() is None:
        assert "scipy-openblas32 is not installed" in why
    else:
        assert "build failed" in why and "exit 3" in why and "no such toolchain here" in why
    assert np.isfinite(float(grad))
    assert not list((tmp_path / "cache").glob("*.so")), "a failed build left a library behind"
