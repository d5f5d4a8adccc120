"""Character LM: embedding -> stacked rnn/lstm/gru -> vocabulary head at every step (N -> N)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

import seqjax
from seqjax import decoding, structures


def make_stack(cfg_model) -> seqjax.Stack:
    cell = seqjax.make_cell(cfg_model.cell, matmul_dtype=cfg_model.get("matmul_dtype"))
    return seqjax.Stack(cell, num_layers=cfg_model.num_layers,
                        dropout=cfg_model.dropout)


def init(key, cfg_model, vocab_size: int) -> dict:
    """Embedding ~ N(0, 1) and head ~ U(±1/√H) as torch.nn.Embedding / Linear do; the recurrent
    weights follow ``model.init``."""
    k_emb, k_rnn, k_w, k_b = jax.random.split(key, 4)
    H = cfg_model.hidden
    bound = 1.0 / math.sqrt(H)
    return {
        "embed": jax.random.normal(k_emb, (vocab_size, cfg_model.embed_dim)),
        "core": make_stack(cfg_model).init(k_rnn, cfg_model.embed_dim, H, init=cfg_model.init,
                                           forget_bias=cfg_model.forget_bias),
        "head": {"w": jax.random.uniform(k_w, (H, vocab_size), minval=-bound, maxval=bound),
                 "b": jax.random.uniform(k_b, (vocab_size,), minval=-bound, maxval=bound)},
    }


def embed(params, ids):
    return params["embed"][ids]


def head(params, h):
    return structures.dense(params["head"], h)


def apply(stack: seqjax.Stack, params, tokens, carry0=None, *, rng=None, train=False):
    """Logits ``(B, T, V)`` and the final carry for ``tokens`` ``(B, T)``."""
    final, ys = stack(params["core"], embed(params, tokens), carry0, rng=rng, train=train)
    return head(params, ys), final


def token_model(stack: seqjax.Stack) -> decoding.TokenModel:
    return decoding.TokenModel(embed=embed, core=stack, head=head)


def sample(stack, params, prompt_ids, length: int, key, *, temperature=1.0, top_k=None, greedy=False):
    """Continue one prompt (1-D ids) by ``length`` characters; jit-compiled per static setting."""
    carry0 = stack.initial_carry(1, params["head"]["w"].shape[0])
    fn = _sampler(stack, length, float(temperature), top_k or None, bool(greedy))
    return fn(params, carry0, jnp.asarray(prompt_ids, jnp.int32)[None], key)[0]


_CACHE: dict = {}


def _sampler(stack, length, temperature, top_k, greedy):
    key = (stack, length, temperature, top_k, greedy)
    if key not in _CACHE:
        tm = token_model(stack)
        _CACHE[key] = jax.jit(lambda p, c, prompt, k: decoding.generate(
            tm, p, c, prompt, length, k, temperature=temperature, top_k=top_k, greedy=greedy))
    return _CACHE[key]
