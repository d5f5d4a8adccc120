"""Stack(wavefront=True): one time loop for all layers, the same numbers as the layer-by-layer Stack."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import cells
from seqjax.recurrent import Stack


def _run(stack, p, xs, c0, lengths, time_major=False):
    def loss(p, xs, c0):
        final, ys = stack(p, xs, c0, lengths=lengths, time_major=time_major)
        w = jnp.arange(ys.size, dtype=ys.dtype).reshape(ys.shape) / ys.size
        return jnp.sum(ys * w) + sum(jnp.sum(jnp.sin(a)) for a in jax.tree_util.tree_leaves(final)), (final, ys)

    (_, out), grads = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(p, xs, c0)
    return out, grads


@pytest.mark.parametrize("name,layers,padded", [("lstm", 2, False), ("lstm", 3, True), ("rnn_tanh", 2, True),
                                                ("lstm", 1, True)])
def test_wavefront_equals_plain_stack(name, layers, padded, x64):
    B, T, I, H = 3, 7, 4, 5
    cell = cells.make_cell(name)
    plain, wave = Stack(cell, num_layers=layers), Stack(cell, num_layers=layers, wavefront=True)
    p = plain.init(jax.random.PRNGKey(0), I, H, dtype=jnp.float64)
    xs = jax.random.normal(jax.random.PRNGKey(1), (B, T, I), jnp.float64)
    c0 = jax.tree_util.tree_map(lambda a: jax.random.normal(jax.random.PRNGKey(2), a.shape, a.dtype),
                                plain.initial_carry(B, H, jnp.float64))
    lengths = jnp.array([7, 4, 1]) if padded else None
    want, want_g = _run(plain, p, xs, c0, lengths)
    got, got_g = _run(wave, p, xs, c0, lengths)
    for a, b in zip(jax.tree_util.tree_leaves((got, got_g)), jax.tree_util.tree_leaves((want, want_g)), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)
    if padded:  # padded steps give zero outputs, as in the plain stack
        assert float(jnp.max(jnp.abs(got[1][2, 1:]))) == 0.0


def test_wavefront_time_major_and_zero_carry(x64):
    cell = cells.make_cell("lstm")
    plain, wave = Stack(cell, num_layers=2), Stack(cell, num_layers=2, wavefront=True)
    p = plain.init(jax.random.PRNGKey(3), 3, 4, dtype=jnp.float64)
    xs = jax.random.normal(jax.random.PRNGKey(4), (6, 2, 3), jnp.float64)
    f0, y0 = plain(p, xs, time_major=True)
    f1, y1 = wave(p, xs, time_major=True)
    np.testing.assert_allclose(np.asarray(y1), np.asarray(y0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(f1.c), np.asarray(f0.c), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kw,why", [
    (dict(bidirectional=True), "unidirectional"),
    (dict(dropout=0.1), "dropout"),
    (dict(remat=4), "remat"),
    (dict(cell="gru"), "fused rule"),
    (dict(fused=False), "fused=True"),
])
def test_wavefront_rejects_what_it_cannot_run(kw, why):
    kw = {"cell": "lstm", "num_layers": 2, **kw}
    with pytest.raises(ValueError, match=why):
        Stack(kw.pop("cell"), wavefront=True, **kw)


def test_chargen_wavefront_gives_the_same_logits_and_rejects_dropout(x64):
    from experiments.chargen.model import CharLM

    tokens = jax.random.randint(jax.random.PRNGKey(5), (2, 9), 0, 11)
    base = CharLM(vocab_size=11, embed_dim=3, hidden=4, num_layers=2)
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), base.init(jax.random.PRNGKey(6)))
    want = base(params, tokens)[0]
    got = CharLM(vocab_size=11, embed_dim=3, hidden=4, num_layers=2, wavefront=True)(params, tokens)[0]
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match=r"config\.model\.wavefront=True: .*dropout"):
        CharLM(vocab_size=11, num_layers=2, dropout=0.2, wavefront=True)
