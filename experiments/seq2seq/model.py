"""Token-level encoder-decoder: embeddings → :class:`~seqjax.structures.Seq2Seq` → vocabulary head.

    model = make_model(config.model)
    params = init(key, model, config.model, src_vocab, tgt_vocab)
    logits = apply(model, params, src, src_lengths, tgt_in)                   # teacher forcing
    ids = greedy(model, params, src, src_lengths, steps)                       # autoregressive

The encoder (optionally bidirectional) reads the source embeddings; the decoder reads the
previous target token's embedding plus the context (``model.context``: ``last`` = ``h_N``,
``transform`` = ``g(h_N)``, ``pool`` = ``g(h_1..h_N)``, ``attention``); the head maps the
decoder's ``concat(h_t, c_t)`` to logits over the target vocabulary.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import seqjax
from seqjax import structures


def make_model(cfg_model) -> structures.Seq2Seq:
    cell = seqjax.make_cell(cfg_model.cell, matmul_dtype=cfg_model.get("matmul_dtype"))
    encoder = seqjax.Stack(cell, num_layers=cfg_model.layers, bidirectional=cfg_model.bidirectional)
    decoder = seqjax.Stack(cell, num_layers=cfg_model.layers)
    return structures.Seq2Seq(encoder, decoder, context=cfg_model.context)


def init(key, model: structures.Seq2Seq, cfg_model, src_vocab: int, tgt_vocab: int) -> dict:
    """Embeddings ~ N(0, 1) (as ``torch.nn.Embedding``), a Xavier head, and ``Seq2Seq.init``."""
    k_src, k_tgt, k_core, k_head = jax.random.split(key, 4)
    E, H = cfg_model.embed_dim, cfg_model.hidden
    return {
        "src_embed": jax.random.normal(k_src, (src_vocab, E)),
        "tgt_embed": jax.random.normal(k_tgt, (tgt_vocab, E)),
        "core": model.init(k_core, E, E, H, init=cfg_model.init),
        "head": structures.dense_init(k_head, model.output_size(H), tgt_vocab),
    }


def apply(model: structures.Seq2Seq, params, src, src_lengths, tgt_in):
    """Teacher-forced logits ``(B, M, V)`` for the target inputs ``tgt_in`` ``(B, M)``.

    No target lengths are passed: the decoder runs left to right, so padding after a target's
    last real token cannot change the logits at its real steps; the loss masks the rest. (Passing
    ``tgt_lengths`` to ``Seq2Seq`` currently fails: ``unroll`` masks the decoder's ``(layers, batch,
    H)`` carry with a ``(batch, 1, 1)`` mask.)
    """
    ys = model(params["core"], params["src_embed"][src], params["tgt_embed"][tgt_in], src_lengths=src_lengths)
    return structures.dense(params["head"], ys)


def greedy(model: structures.Seq2Seq, params, src, src_lengths, steps: int, bos_id: int):
    """Greedy decoding: ids ``(B, steps)``; each step's argmax is the next step's input.

    Decoding runs all ``steps`` (static) for every sequence; cut each at its first end token.
    """
    B = src.shape[0]
    start = jnp.broadcast_to(params["tgt_embed"][bos_id], (B, params["tgt_embed"].shape[1]))
    return model.generate(
        params["core"], params["src_embed"][src], steps, start=start, src_lengths=src_lengths,
        readout=lambda y, _x: jnp.argmax(structures.dense(params["head"], y), axis=-1).astype(jnp.int32),
        feedback=lambda ids: params["tgt_embed"][ids])
