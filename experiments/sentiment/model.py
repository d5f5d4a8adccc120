"""The sentiment classifier (N -> 1): embedding -> recurrent stack -> pooling -> dense -> sigmoid.

A frozen dataclass over a params pytree::

    model = SentimentModel.from_config(config.model, vocab_size=config.data.vocab_size)
    params = model.init(key)                    # {"embed": (V, E), "rnn": [...], "head": {...}}
    logits = model(params, tokens, lengths)     # (batch,); p(positive) = sigmoid(logit)

``tokens`` is ``(batch, time)`` int ids padded with PAD (0) after each review and ``lengths`` the
real lengths. Padded steps never reach the result: the stack holds its carry there, ``last``
reads the final states, and ``mean``/``max`` pool over real steps only. So a review gives the
same logit alone or in any padded batch.

Pooling (``model.pooling``):

* ``last``: the top layer's final state, :meth:`seqjax.Stack.top_hidden`. For a bidirectional
  stack that concatenates the forward state after the last real word with the backward state
  after the first word, so both directions have read the whole review.
* ``mean`` / ``max``: over the top layer's outputs at real steps (:func:`seqjax.structures.pool`).

The embedding has ``vocab_size`` rows (``config.data.vocab_size``, like Keras'
``Embedding(10000, 32)``), so every parameter shape follows from the config alone and a
checkpoint can be restored before any data is read.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.cells import CELL_NAMES, INIT_SCHEMES, MATMUL_DTYPES, make_cell
from seqjax.recurrent import Stack
from seqjax.scan import SCAN_CHOICES
from seqjax.structures import dense, dense_init, pool

POOLINGS = ("last", "mean", "max")
CELLS = CELL_NAMES
EMBED_SCALE = 0.05  # embeddings ~ U(-0.05, 0.05), Keras' Embedding default


@dataclasses.dataclass(frozen=True)
class SentimentModel:
    vocab_size: int
    embed_dim: int = 32
    hidden: int = 32
    cell: str = "lstm"
    num_layers: int = 1
    bidirectional: bool = True
    pooling: str = "last"
    dropout: float = 0.0
    init_scheme: str = "xavier_orthogonal"  # config key `init`; a seqjax.cells scheme
    forget_bias: float = 1.0  # LSTM only: added to the forget gate (Keras' unit_forget_bias)
    matmul_dtype: str = "float32"  # float32 | bfloat16 (recurrent matmuls; see seqjax.cells.Cell)
    scan: str = "auto"  # linear-recurrence cells: the evaluation over time (seqjax.scan)
    remat: int = 0  # jax.checkpoint every `remat` steps (0 = off)

    def __post_init__(self):
        def need(ok: bool, field: str, what: str):
            if not ok:
                key = "init" if field == "init_scheme" else field
                raise ValueError(f"config.model.{key}={getattr(self, field)!r}: {what}")

        def positive_int(v):
            return isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= 1

        need(positive_int(self.vocab_size) and self.vocab_size >= 2, "vocab_size", "expected an integer >= 2")
        for field in ("embed_dim", "hidden", "num_layers"):
            need(positive_int(getattr(self, field)), field, "expected an integer >= 1")
        need(str(self.cell).lower() in CELLS, "cell", f"expected one of {', '.join(CELLS)}")
        need(self.pooling in POOLINGS, "pooling", f"expected one of {', '.join(POOLINGS)}")
        need(isinstance(self.bidirectional, bool), "bidirectional", "expected true or false")
        need(isinstance(self.dropout, int | float) and 0.0 <= self.dropout < 1.0, "dropout",
             "expected a rate in [0, 1)")
        need(self.matmul_dtype in MATMUL_DTYPES, "matmul_dtype", f"expected one of {', '.join(MATMUL_DTYPES)}")
        need(self.init_scheme in INIT_SCHEMES, "init_scheme", f"expected one of {', '.join(INIT_SCHEMES)}")
        need(self.scan in SCAN_CHOICES, "scan", f"expected one of {', '.join(SCAN_CHOICES)}")
        need(isinstance(self.remat, int) and not isinstance(self.remat, bool) and self.remat >= 0, "remat",
             "expected an integer >= 0 (steps per checkpoint; 0 = off)")

    @classmethod
    def from_config(cls, cfg_model, vocab_size: int) -> SentimentModel:
        """The model of a config's ``model`` section (keys as in ``configs/default.py``)."""
        m = cfg_model
        return cls(vocab_size=vocab_size, embed_dim=m.embed_dim, hidden=m.hidden, cell=m.cell,
                   num_layers=m.num_layers, bidirectional=m.bidirectional, pooling=m.pooling,
                   dropout=float(m.dropout), init_scheme=m.init, forget_bias=float(m.forget_bias),
                   matmul_dtype=m.matmul_dtype, scan=m.scan, remat=m.remat)

    @property
    def stack(self) -> Stack:
        return Stack(make_cell(self.cell, matmul_dtype=self.matmul_dtype, scan=self.scan), self.num_layers,
                     self.bidirectional, "concat", self.dropout, remat=self.remat)

    @property
    def features(self) -> int:
        """Width of the pooled vector the head reads."""
        return self.stack.output_size(self.hidden)

    def init(self, key: jax.Array) -> dict:
        k_embed, k_rnn, k_head = jax.random.split(key, 3)
        stack = self.stack
        forget = self.forget_bias if stack.cell.kind == "lstm" else 0.0
        return {
            "embed": jax.random.uniform(k_embed, (self.vocab_size, self.embed_dim), jnp.float32,
                                        -EMBED_SCALE, EMBED_SCALE),
            "rnn": stack.init(k_rnn, self.embed_dim, self.hidden, init=self.init_scheme, forget_bias=forget),
            "head": dense_init(k_head, self.features, 1),
        }

    def __call__(self, params: dict, tokens: jax.Array, lengths: jax.Array, *, rng: jax.Array | None = None,
                 train: bool = False) -> jax.Array:
        """Logits ``(batch,)`` of the positive class for ``tokens (batch, time)``."""
        if np.ndim(tokens) != 2:
            raise ValueError(f"expected tokens of shape (batch, time), got {tuple(np.shape(tokens))}")
        if tuple(np.shape(lengths)) != (np.shape(tokens)[0],):
            raise ValueError(f"expected lengths of shape ({np.shape(tokens)[0]},) for tokens of shape "
                             f"{tuple(np.shape(tokens))}, got {tuple(np.shape(lengths))}")
        drop = train and self.dropout > 0
        if drop and rng is None:
            raise ValueError("model.dropout > 0 needs an rng when train=True")
        rng_stack, rng_head = jax.random.split(rng) if drop else (None, None)
        x = jnp.take(params["embed"], tokens, axis=0)  # (B, T, E)
        final, ys = self.stack(params["rnn"], x, lengths=lengths, rng=rng_stack, train=train)
        if self.pooling == "last":
            h = self.stack.top_hidden(final)
        else:
            h = pool(ys, lengths, self.pooling)
        if drop:
            keep = jax.random.bernoulli(rng_head, 1.0 - self.dropout, h.shape)
            h = jnp.where(keep, h / (1.0 - self.dropout), 0.0)
        return dense(params["head"], h)[:, 0]
