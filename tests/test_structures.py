"""The four I/O structures, decoding, and the nnx modules."""

import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import seqjax
from seqjax import decoding, structures
from seqjax import nn as sjnn


def test_n_to_n_head_at_every_step():
    st = seqjax.Stack("gru", num_layers=1)
    p = st.init(jax.random.PRNGKey(0), 3, 4)
    head = structures.dense_init(jax.random.PRNGKey(1), 4, 6)
    _, ys = st(p, jnp.ones((2, 5, 3)), lengths=jnp.array([5, 2]))
    logits = structures.dense(head, ys)
    assert logits.shape == (2, 5, 6)
    np.testing.assert_allclose(logits[1, 3], logits[0, 3] * 0 + head["b"], atol=1e-6)  # zero output -> bias


def test_n_to_1_pooling_respects_lengths():
    ys = jnp.arange(2 * 4 * 1, dtype=jnp.float32).reshape(2, 4, 1)
    lengths = jnp.array([4, 2])
    np.testing.assert_array_equal(structures.pool(ys, lengths, "last")[:, 0], [3, 5])
    np.testing.assert_array_equal(structures.pool(ys, lengths, "mean")[:, 0], [1.5, 4.5])
    np.testing.assert_array_equal(structures.pool(ys, lengths, "max")[:, 0], [3, 5])
    np.testing.assert_array_equal(structures.pool(ys, lengths, "first")[:, 0], [0, 4])
    with pytest.raises(ValueError, match="unknown pooling mode 'median'"):
        structures.pool(ys, lengths, "median")


@pytest.mark.parametrize("feed", ["first", "every"])
def test_one_to_many(feed):
    cell = seqjax.cells.gru
    H, Dv, steps = 5, 3, 6
    in_size = Dv if feed == "first" else Dv + Dv
    stack = seqjax.Stack(cell, num_layers=2)
    params = {"core": stack.init(jax.random.PRNGKey(0), in_size, H),
              "head": structures.dense_init(jax.random.PRNGKey(1), H, Dv)}
    readout = lambda p, h, x: structures.dense(p["head"], h)
    feedback = lambda p, out: out
    gen = structures.OneToMany(stack, feed=feed, readout=readout, feedback=feedback)
    v = jax.random.normal(jax.random.PRNGKey(2), (2, Dv))
    carry0 = stack.initial_carry(2, H)
    final, outs = jax.jit(lambda p, v: gen(p, v, carry0, steps, start=jnp.zeros((2, Dv))))(params, v)
    assert outs.shape == (2, steps, Dv)
    # the same rollout by hand, step by step
    c, prev = carry0, jnp.zeros((2, Dv))
    for t in range(steps):
        if feed == "first":
            inp = v if t == 0 else prev
        else:
            inp = jnp.concatenate([v, prev], -1)
        c, h = stack.step(params["core"], c, inp)
        prev = readout(params, h, None)
        np.testing.assert_allclose(outs[:, t], prev, atol=1e-5)


@pytest.mark.parametrize("context", structures.CONTEXT_MODES)
def test_seq2seq_contexts_and_padding(context):
    enc = seqjax.Stack("lstm", num_layers=1, bidirectional=True)
    dec = seqjax.Stack("lstm", num_layers=2)
    model = structures.Seq2Seq(enc, dec, context=context)
    H = 6
    p = model.init(jax.random.PRNGKey(0), 3, 4, H)
    src = jax.random.normal(jax.random.PRNGKey(1), (2, 7, 3))
    tgt = jax.random.normal(jax.random.PRNGKey(2), (2, 5, 4))
    src_len = jnp.array([7, 3])
    ys = model(p, src, tgt, src_lengths=src_len)
    assert ys.shape == (2, 5, model.output_size(H))
    # padding of the source never changes the decoder's outputs
    ys_alone = model(p, src[1:, :3], tgt[1:], src_lengths=jnp.array([3]))
    np.testing.assert_allclose(ys[1], ys_alone[0], atol=1e-5)
    # greedy generation with a readout/feedback pair runs under jit
    head = structures.dense_init(jax.random.PRNGKey(3), model.output_size(H), 4)
    outs = jax.jit(lambda p: model.generate(p, src, 4, start=jnp.zeros((2, 4)), src_lengths=src_len,
                                            readout=lambda y, x: structures.dense(head, y),
                                            feedback=lambda o: jnp.tanh(o)))(p)
    assert outs.shape == (2, 4, 4) and bool(jnp.all(jnp.isfinite(outs)))


def _token_model(V=7, E=4, H=8, layers=2):
    stack = seqjax.Stack("lstm", num_layers=layers)
    params = {"emb": jax.random.normal(jax.random.PRNGKey(0), (V, E)),
              "core": stack.init(jax.random.PRNGKey(1), E, H),
              "head": structures.dense_init(jax.random.PRNGKey(2), H, V)}
    model = decoding.TokenModel(embed=lambda p, ids: p["emb"][ids], core=stack,
                                head=lambda p, h: structures.dense(p["head"], h))
    return model, params, stack


def test_greedy_equals_argmax_loop_and_sampling_rules():
    model, params, stack = _token_model()
    prompt = jnp.array([[1, 2, 3], [4, 4, 0]])
    carry0 = stack.initial_carry(2, 8)
    toks = jax.jit(lambda p, k: decoding.generate(model, p, carry0, prompt, 5, k, greedy=True))(
        params, jax.random.PRNGKey(0))
    seq = prompt
    for _ in range(5):  # recompute from scratch each step: argmax of the last logits
        _, logits = decoding.warm_up(model, params, carry0, seq)
        seq = jnp.concatenate([seq, jnp.argmax(logits, -1)[:, None].astype(seq.dtype)], 1)
    np.testing.assert_array_equal(toks, seq[:, 3:])
    # top_k=1 sampling is greedy; samples stay inside the vocabulary
    k1 = decoding.generate(model, params, carry0, prompt, 5, jax.random.PRNGKey(3), top_k=1)
    np.testing.assert_array_equal(k1, toks)
    s = decoding.generate(model, params, carry0, prompt, 50, jax.random.PRNGKey(4), temperature=2.0, top_k=3)
    assert s.shape == (2, 50) and int(s.min()) >= 0 and int(s.max()) < 7
    with pytest.raises(ValueError, match="temperature must be > 0"):
        decoding.generate(model, params, carry0, prompt, 5, jax.random.PRNGKey(0), temperature=0.0)


def test_top_k_masks_all_but_k():
    logits = jnp.array([[0.0, 5.0, 4.0, -1.0]])
    draws = jax.vmap(lambda k: decoding.sample_logits(k, logits, top_k=2))(jax.random.split(jax.random.PRNGKey(0), 200))
    assert set(np.unique(np.asarray(draws))) <= {1, 2}


def test_beam_search_width1_is_greedy_and_scores_are_logprobs():
    model, params, stack = _token_model()
    prompt = jnp.array([[1, 2], [3, 0]])
    carry0 = stack.initial_carry(2, 8)
    greedy = decoding.generate(model, params, carry0, prompt, 4, jax.random.PRNGKey(0), greedy=True)
    ids, scores = decoding.beam_search(model, params, carry0, prompt, 4, 1)
    np.testing.assert_array_equal(ids[:, 0], greedy)
    ids, scores = jax.jit(lambda p: decoding.beam_search(model, p, carry0, prompt, 4, 3))(params)
    assert ids.shape == (2, 3, 4)
    assert bool(jnp.all(scores[:, :-1] >= scores[:, 1:]))  # best first
    # a beam's score is the log-probability of its tokens under the model
    seq = jnp.concatenate([prompt, ids[:, 0]], 1)
    _, hs = seqjax.unroll(stack, params["core"], model.embed(params, seq[:, :-1]), carry0)
    logp = jax.nn.log_softmax(model.head(params, hs), -1)
    manual = jnp.take_along_axis(logp[:, 1:], seq[:, 2:, None], -1)[..., 0].sum(-1)
    np.testing.assert_allclose(scores[:, 0], manual, atol=1e-4)


def test_nnx_modules_match_pure_functions():
    m = sjnn.LSTM(3, 5, num_layers=2, bidirectional=True, dropout=0.3, rngs=nnx.Rngs(0, dropout=1))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 6, 3))
    m.eval()
    out, (h, c) = m(x, lengths=jnp.array([6, 4]))
    final, ys = m.stack(m.pure_params(), x, lengths=jnp.array([6, 4]))
    np.testing.assert_array_equal(out, ys)
    assert out.shape == (2, 6, 10) and h.shape == c.shape == (4, 2, 5)
    params = nnx.state(m, nnx.Param)
    assert sum(x.size for x in jax.tree_util.tree_leaves(params)) == sum(
        x.size for x in jax.tree_util.tree_leaves(m.pure_params()))
    assert m.weight_ih_l1_reverse[...].shape == (20, 10)  # torch's names and shapes
    m.train()
    out_train, _ = m(x)
    assert not np.allclose(out_train, m(x, deterministic=True)[0])
    # gradients flow through nnx.grad
    g = nnx.grad(lambda mod: jnp.sum(mod(x, deterministic=True)[0] ** 2))(m)
    assert float(jnp.abs(g.weight_hh_l0[...]).sum()) > 0
    for cls, kw in [(sjnn.GRU, {}), (sjnn.GRU, {"variant": "cho"}), (sjnn.RNN, {"nonlinearity": "relu"})]:
        mod = cls(3, 4, rngs=nnx.Rngs(0), **kw)
        o, hn = mod(x)
        assert o.shape == (2, 6, 4) and hn.shape == (1, 2, 4)


@pytest.mark.parametrize("layers", [1, 2])
def test_seq2seq_target_lengths_hold_the_decoder_state(layers):
    # the decoder's carry is (layers, batch, H): masking must find the batch on axis 1
    enc = seqjax.Stack("gru", num_layers=1)
    dec = seqjax.Stack("lstm", num_layers=layers)
    model = structures.Seq2Seq(enc, dec, context="attention")
    p = model.init(jax.random.PRNGKey(0), 3, 4, 5)
    src = jax.random.normal(jax.random.PRNGKey(1), (layers, 6, 3))  # batch == layers on purpose
    tgt = jax.random.normal(jax.random.PRNGKey(2), (layers, 5, 4))
    full = model(p, src, tgt)
    short = model(p, src, tgt, tgt_lengths=jnp.array([5, 2][:layers]))
    np.testing.assert_allclose(short[0], full[0], atol=1e-6)
    if layers == 2:
        np.testing.assert_allclose(short[1, :2], full[1, :2], atol=1e-6)
        np.testing.assert_array_equal(short[1, 2:], 0.0)


def test_stack_as_a_core_with_lengths_holds_each_layer():
    st = seqjax.Stack("gru", num_layers=2)
    p = st.init(jax.random.PRNGKey(0), 3, 4)
    xs = jax.random.normal(jax.random.PRNGKey(1), (2, 6, 3))
    carry0 = st.initial_carry(2, 4)
    final, ys = seqjax.unroll(st, p, xs, carry0, lengths=jnp.array([6, 3]))
    ref_final, ref_ys = st(p, xs, lengths=jnp.array([6, 3]))
    np.testing.assert_allclose(ys, ref_ys, atol=1e-6)
    np.testing.assert_allclose(final, ref_final, atol=1e-6)


def test_nnx_module_bfloat16_matmuls():
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 6, 3))
    full = sjnn.LSTM(3, 5, num_layers=2, rngs=nnx.Rngs(0))
    mixed = sjnn.LSTM(3, 5, num_layers=2, matmul_dtype="bfloat16", rngs=nnx.Rngs(0))
    assert mixed.stack.cell.matmul_dtype == "bfloat16" and full.stack.cell.matmul_dtype is None
    a, b = full(x)[0], mixed(x)[0]
    assert b.dtype == jnp.float32 and mixed.weight_ih_l0[...].dtype == jnp.float32
    assert not np.array_equal(a, b)
    np.testing.assert_allclose(a, b, atol=2e-2)


def test_nnx_dropout_uses_the_default_stream():
    """Like nnx.Dropout, rngs=nnx.Rngs(0) (no 'dropout' stream) is enough to train with dropout."""
    m = sjnn.LSTM(3, 5, num_layers=2, dropout=0.5, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 6, 3))
    a, _ = m(x)
    b, _ = m(x)
    assert not np.allclose(a, b)  # a fresh mask per call
    loss = lambda mod: jnp.sum(mod(x)[0] ** 2)
    g = nnx.grad(loss)(m)
    assert float(jnp.abs(g.weight_hh_l0[...]).sum()) > 0
    m.eval()
    np.testing.assert_array_equal(m(x)[0], m(x)[0])


def test_nnx_modules_take_one_unbatched_sequence_and_no_biases():
    m = sjnn.GRU(3, 5, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (6, 3))
    out, h_n = m(x)
    ref_out, ref_h = m(x[None])
    assert out.shape == (6, 10) and h_n.shape == (4, 5)
    np.testing.assert_allclose(out, ref_out[0], atol=1e-6)
    np.testing.assert_allclose(h_n, ref_h[:, 0], atol=1e-6)
    nb = sjnn.LSTM(3, 5, bias=False, rngs=nnx.Rngs(0))
    assert not hasattr(nb, "bias_ih_l0") and sorted(nb.pure_params()[0]["fwd"]) == ["w_hh", "w_ih"]
    assert nb(x)[0].shape == (6, 5)


def test_bare_import_gives_every_module():
    """`import seqjax` alone gives seqjax.nn, .structures, .decoding and .interop (a fresh process,
    since this one has imported them already)."""
    code = ("import seqjax\n"
            "from flax import nnx\n"
            "m = seqjax.nn.LSTM(3, 4, rngs=nnx.Rngs(0))\n"
            "print(seqjax.structures.pool.__name__, seqjax.decoding.generate.__name__,"
            " seqjax.interop.from_torch_module.__name__, type(m).__name__)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["pool", "generate", "from_torch_module", "LSTM"]
