"""Token-level encoder-decoder: embeddings -> :class:`~seqjax.structures.Seq2Seq` -> vocabulary head.

A frozen dataclass over a params pytree ``{"src_embed", "tgt_embed", "core", "head"}``::

    model = Seq2SeqModel.from_config(config.model, src_vocab=11, tgt_vocab=38)
    params = model.init(key)
    logits = model(params, src, src_lengths, tgt_in)                   # teacher forcing, (B, M, V)
    ids = model.greedy(params, src, src_lengths, steps=12, bos_id=1)    # autoregressive, (B, steps)

The encoder (optionally bidirectional) reads the source embeddings; the decoder reads the
previous target token's embedding plus the context (``model.context``: ``last`` = ``h_N``,
``transform`` = ``g(h_N)``, ``pool`` = ``g(h_1..h_N)``, ``attention``); the head maps the
decoder's ``concat(h_t, c_t)`` to logits over the target vocabulary. Embeddings are N(0, 1), as
``torch.nn.Embedding`` initialises them, and the head is Xavier-initialised.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from seqjax import structures
from seqjax.cells import CELL_NAMES, INIT_SCHEMES, MATMUL_DTYPES, make_cell
from seqjax.recurrent import Stack
from seqjax.scan import SCAN_CHOICES


@dataclasses.dataclass(frozen=True)
class Seq2SeqModel:
    src_vocab: int
    tgt_vocab: int
    context: str = "attention"
    cell: str = "gru"
    embed_dim: int = 32
    hidden: int = 128
    num_layers: int = 1  # in the encoder and in the decoder
    bidirectional: bool = True  # the encoder
    init_scheme: str = "torch"  # config key `init`; a seqjax.cells scheme
    matmul_dtype: str = "float32"  # float32 | bfloat16 (recurrent matmuls; see seqjax.cells.Cell)
    scan: str = "auto"  # linear-recurrence cells: the evaluation over time (seqjax.scan)
    remat: int = 0  # the encoder: jax.checkpoint every `remat` steps (0 = off)

    def __post_init__(self):
        def need(ok: bool, field: str, what: str):
            if not ok:
                key = "init" if field == "init_scheme" else field
                raise ValueError(f"config.model.{key}={getattr(self, field)!r}: {what}")

        need(self.context in structures.CONTEXT_MODES, "context",
             f"expected one of {', '.join(structures.CONTEXT_MODES)}")
        need(self.cell in CELL_NAMES, "cell", f"expected one of {', '.join(CELL_NAMES)}")
        need(self.init_scheme in INIT_SCHEMES, "init_scheme", f"expected one of {', '.join(INIT_SCHEMES)}")
        need(self.matmul_dtype in MATMUL_DTYPES, "matmul_dtype", f"expected one of {', '.join(MATMUL_DTYPES)}")
        for field in ("embed_dim", "hidden", "num_layers"):
            value = getattr(self, field)
            need(isinstance(value, int) and not isinstance(value, bool) and value >= 1, field,
                 "expected an integer >= 1")
        need(isinstance(self.bidirectional, bool), "bidirectional", "expected true or false")
        need(self.scan in SCAN_CHOICES, "scan", f"expected one of {', '.join(SCAN_CHOICES)}")
        need(isinstance(self.remat, int) and not isinstance(self.remat, bool) and self.remat >= 0, "remat",
             "expected an integer >= 0 (steps per checkpoint; 0 = off)")

    @classmethod
    def from_config(cls, cfg_model, src_vocab: int, tgt_vocab: int) -> Seq2SeqModel:
        m = cfg_model
        return cls(src_vocab=src_vocab, tgt_vocab=tgt_vocab, context=m.context, cell=m.cell,
                   embed_dim=m.embed_dim, hidden=m.hidden, num_layers=m.num_layers,
                   bidirectional=m.bidirectional, init_scheme=m.init, matmul_dtype=m.matmul_dtype, scan=m.scan,
                   remat=m.remat)

    @property
    def core(self) -> structures.Seq2Seq:
        cell = make_cell(self.cell, matmul_dtype=self.matmul_dtype, scan=self.scan)
        # the decoder steps one token at a time (its own loop), so remat is for the encoder
        encoder = Stack(cell, num_layers=self.num_layers, bidirectional=self.bidirectional, remat=self.remat)
        return structures.Seq2Seq(encoder, Stack(cell, num_layers=self.num_layers), context=self.context)

    def init(self, key: jax.Array) -> dict:
        k_src, k_tgt, k_core, k_head = jax.random.split(key, 4)
        E, H = self.embed_dim, self.hidden
        core = self.core
        return {
            "src_embed": jax.random.normal(k_src, (self.src_vocab, E)),
            "tgt_embed": jax.random.normal(k_tgt, (self.tgt_vocab, E)),
            "core": core.init(k_core, E, E, H, init=self.init_scheme),
            "head": structures.dense_init(k_head, core.output_size(H), self.tgt_vocab),
        }

    def __call__(self, params, src, src_lengths, tgt_in):
        """Teacher-forced logits ``(B, M, V)`` for the target inputs ``tgt_in`` ``(B, M)``.

        No target lengths are passed: the decoder runs left to right, so the padding after a
        target's last token cannot change the logits at its real steps, and the loss masks the rest.
        """
        ys = self.core(params["core"], params["src_embed"][src], params["tgt_embed"][tgt_in],
                       src_lengths=src_lengths)
        return structures.dense(params["head"], ys)

    def greedy(self, params, src, src_lengths, steps: int, bos_id: int):
        """Greedy decoding: ids ``(B, steps)``; each step's argmax is the next step's input.

        Decoding runs all ``steps`` for every sequence; cut each at its first end token."""
        B = src.shape[0]
        start = jnp.broadcast_to(params["tgt_embed"][bos_id], (B, params["tgt_embed"].shape[1]))
        return self.core.generate(
            params["core"], params["src_embed"][src], steps, start=start, src_lengths=src_lengths,
            readout=lambda y, _x: jnp.argmax(structures.dense(params["head"], y), axis=-1).astype(jnp.int32),
            feedback=lambda ids: params["tgt_embed"][ids])
