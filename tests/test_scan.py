"""seqjax.scan: every evaluation of h_t = a_t h_{t-1} + b_t against a Python loop, its gradient rule
against autodiff of the loop, stability at T=16384, and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import scan

METHODS = list(scan.METHODS)


def loop(a, b, h0, reverse=False):
    """The recurrence written out, one step at a time (numpy)."""
    a, b = np.asarray(a), np.asarray(b)
    h, out = np.asarray(h0), np.zeros_like(a)
    for t in (range(a.shape[0] - 1, -1, -1) if reverse else range(a.shape[0])):
        h = a[t] * h + b[t]
        out[t] = h
    return out


def data(T, shape=(3, 5), seed=0, low=0.0, high=1.0):
    rng = np.random.default_rng(seed)
    a = rng.uniform(low, high, (T, *shape))
    b = rng.normal(size=(T, *shape))
    h0 = rng.normal(size=shape)
    return jnp.asarray(a), jnp.asarray(b), jnp.asarray(h0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("reverse", [False, True])
def test_every_method_matches_a_step_loop(method, reverse, x64):
    a, b, h0 = data(37)
    want = loop(a, b, h0, reverse)
    for chunk in (1, 5, 64) if method == "chunked" else (5,):  # 37 is no multiple of 5: a padded last chunk
        got = jax.jit(lambda a, b, h0, c=chunk: scan.linear_scan(a, b, h0, reverse=reverse, method=method,
                                                                 chunk=c))(a, b, h0)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=f"chunk={chunk}")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("reverse", [False, True])
def test_gradient_rule_matches_autodiff_of_the_loop(method, reverse, x64):
    a, b, h0 = data(23, seed=1)
    w = jnp.asarray(np.random.default_rng(2).normal(size=a.shape))

    def loss(a, b, h0, custom):
        hs = scan.linear_scan(a, b, h0, reverse=reverse, method=method if custom else "sequential", chunk=4,
                              custom_grad=custom)
        return jnp.sum(w * hs) + jnp.sum(hs ** 2)

    grad = jax.jit(jax.grad(loss, (0, 1, 2)), static_argnums=3)
    got, want = grad(a, b, h0, True), grad(a, b, h0, False)
    for g, r, name in zip(got, want, "a b h0".split(), strict=True):
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-11, err_msg=name)


@pytest.mark.parametrize("method", METHODS)
def test_finite_at_16384_steps(method):
    """Decays near 0 and near 1 in float32: products underflow to zero, never to inf or nan."""
    T = 16384
    a, b, h0 = data(T, shape=(2, 4), seed=3)
    a = jnp.concatenate([a[:, :, :2] * 1e-3, 1.0 - a[:, :, 2:] * 1e-4], axis=-1).astype(jnp.float32)
    b, h0 = b.astype(jnp.float32), h0.astype(jnp.float32)
    f = lambda a, b: scan.linear_scan(a, b, h0, method=method)
    hs, vjp = jax.vjp(jax.jit(f), a, b)  # forward and backward each compiled once
    assert bool(jnp.all(jnp.isfinite(hs)))
    np.testing.assert_allclose(hs, loop(a, b, h0), rtol=1e-3, atol=1e-3)
    grads = vjp(2 * hs)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)


def test_forward_mode_through_the_evaluation(x64):
    a, b, h0 = data(9)
    da = jnp.ones_like(a) * 0.1
    f = jax.jit(lambda a: scan.linear_scan(a, b, h0, method="associative", custom_grad=False))
    _, tangent = jax.jit(lambda a, da: jax.jvp(f, (a,), (da,)))(a, da)
    eps = 1e-6
    numeric = (f(a + eps * da) - f(a - eps * da)) / (2 * eps)
    np.testing.assert_allclose(tangent, numeric, atol=1e-7)


def test_vmap_and_jit(x64):
    a, b, h0 = data(12, shape=(4, 2, 3))
    batched = jax.jit(jax.vmap(lambda a, b, h: scan.linear_scan(a, b, h, method="chunked", chunk=5), in_axes=(1, 1, 0),
                               out_axes=1))(a, b, h0)
    np.testing.assert_allclose(batched, loop(a, b, h0), atol=1e-12)


def test_default_method_per_backend():
    assert scan.default_method("cpu") == "sequential"
    assert scan.default_method("gpu") in scan.METHODS
    assert scan.resolve_method("auto") == scan.default_method()
    assert scan.resolve_method("chunked") == "chunked"


def test_bad_input():
    a, b, h0 = data(5)
    with pytest.raises(ValueError, match=r"unknown scan 'fast'; expected one of \('auto', 'sequential'"):
        scan.linear_scan(a, b, h0, method="fast")
    with pytest.raises(ValueError, match=r"a and b of one shape .* got a \(5, 3, 5\), b \(4, 3, 5\), h0 \(3, 5\)"):
        scan.linear_scan(a, b[:4], h0)
    with pytest.raises(ValueError, match=r"h0 of shape"):
        scan.linear_scan(a, b, h0[0])
    with pytest.raises(ValueError, match="chunk must be a positive int, got 0"):
        scan.linear_scan(a, b, h0, method="chunked", chunk=0)
