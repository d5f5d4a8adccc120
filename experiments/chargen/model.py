"""Character LM (N -> N): embedding -> stacked recurrent layers (any seqjax cell) -> vocabulary head at every step.

A frozen dataclass over a params pytree ``{"embed": (V, E), "core": [...], "head": {w, b}}``::

    model = CharLM.from_config(config.model, vocab_size=85)
    params = model.init(key)
    logits, final = model(params, tokens)                 # (B, T, V) and the final carry
    ids = model.sample(params, prompt_ids, 300, key, temperature=0.8, top_k=20)

The embedding is N(0, 1) and the head U(±1/√H), as ``torch.nn.Embedding`` and ``Linear``
initialise them; the recurrent weights follow ``model.init``.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp

from seqjax import decoding, structures
from seqjax.cells import CELL_NAMES, INIT_SCHEMES, MATMUL_DTYPES, make_cell
from seqjax.recurrent import Stack
from seqjax.scan import SCAN_CHOICES


@dataclasses.dataclass(frozen=True)
class CharLM:
    vocab_size: int
    embed_dim: int = 64
    hidden: int = 256
    cell: str = "lstm"
    num_layers: int = 2
    dropout: float = 0.0  # between layers
    init_scheme: str = "torch"  # config key `init`; a seqjax.cells scheme
    forget_bias: float = 0.0  # added to the LSTM forget gate
    matmul_dtype: str = "float32"  # float32 | bfloat16 (recurrent matmuls; see seqjax.cells.Cell)
    scan: str = "auto"  # linear-recurrence cells: the evaluation over time (seqjax.scan)
    remat: int = 0  # jax.checkpoint every `remat` steps (0 = off)
    wavefront: bool = False  # all layers in one time loop (seqjax.recurrent.Stack)

    def __post_init__(self):
        def need(ok: bool, field: str, what: str):
            if not ok:
                key = "init" if field == "init_scheme" else field
                raise ValueError(f"config.model.{key}={getattr(self, field)!r}: {what}")

        for field in ("vocab_size", "embed_dim", "hidden", "num_layers"):
            value = getattr(self, field)
            need(isinstance(value, int) and not isinstance(value, bool) and value >= 1, field,
                 "expected an integer >= 1")
        need(self.cell in CELL_NAMES, "cell", f"expected one of {', '.join(CELL_NAMES)}")
        need(self.init_scheme in INIT_SCHEMES, "init_scheme", f"expected one of {', '.join(INIT_SCHEMES)}")
        need(self.matmul_dtype in MATMUL_DTYPES, "matmul_dtype", f"expected one of {', '.join(MATMUL_DTYPES)}")
        need(0.0 <= self.dropout < 1.0, "dropout", "expected a rate in [0, 1)")
        need(self.scan in SCAN_CHOICES, "scan", f"expected one of {', '.join(SCAN_CHOICES)}")
        need(isinstance(self.remat, int) and not isinstance(self.remat, bool) and self.remat >= 0, "remat",
             "expected an integer >= 0 (steps per checkpoint; 0 = off)")
        need(isinstance(self.wavefront, bool), "wavefront", "expected true or false")
        if self.wavefront:
            try:
                self.stack  # noqa: B018 - builds the Stack, which says what a wavefront cannot run
            except ValueError as e:
                raise ValueError(f"config.model.wavefront=True: {e}") from None

    @classmethod
    def from_config(cls, cfg_model, vocab_size: int) -> CharLM:
        return cls(vocab_size=vocab_size, embed_dim=cfg_model.embed_dim, hidden=cfg_model.hidden,
                   cell=cfg_model.cell, num_layers=cfg_model.num_layers, dropout=float(cfg_model.dropout),
                   init_scheme=cfg_model.init, forget_bias=float(cfg_model.forget_bias),
                   matmul_dtype=cfg_model.matmul_dtype, scan=cfg_model.scan, remat=cfg_model.remat,
                   wavefront=cfg_model.get("wavefront", False))

    @property
    def stack(self) -> Stack:
        return Stack(make_cell(self.cell, matmul_dtype=self.matmul_dtype, scan=self.scan), num_layers=self.num_layers,
                     dropout=self.dropout, remat=self.remat, wavefront=self.wavefront)

    def init(self, key: jax.Array) -> dict:
        k_emb, k_rnn, k_w, k_b = jax.random.split(key, 4)
        bound = 1.0 / math.sqrt(self.hidden)
        V = self.vocab_size
        return {
            "embed": jax.random.normal(k_emb, (V, self.embed_dim)),
            "core": self.stack.init(k_rnn, self.embed_dim, self.hidden, init=self.init_scheme,
                                    forget_bias=self.forget_bias),
            "head": {"w": jax.random.uniform(k_w, (self.hidden, V), minval=-bound, maxval=bound),
                     "b": jax.random.uniform(k_b, (V,), minval=-bound, maxval=bound)},
        }

    def initial_carry(self, batch_size: int):
        return self.stack.initial_carry(batch_size, self.hidden)

    def embed(self, params, ids):
        return params["embed"][ids]

    def head(self, params, h):
        return structures.dense(params["head"], h)

    def __call__(self, params, tokens, carry0=None, *, rng=None, train: bool = False):
        """Logits ``(B, T, V)`` and the final carry for ``tokens`` ``(B, T)``."""
        final, ys = self.stack(params["core"], self.embed(params, tokens), carry0, rng=rng, train=train)
        return self.head(params, ys), final

    def sample(self, params, prompt_ids, length: int, key, *, temperature: float = 1.0, top_k: int | None = None,
               greedy: bool = False) -> jax.Array:
        """Continues one prompt (1-D ids) by ``length`` characters: ids ``(length,)``."""
        prompt = jnp.asarray(prompt_ids, jnp.int32)[None]
        return _generate(self, params, prompt, key, length=length, temperature=float(temperature),
                         top_k=top_k or None, greedy=bool(greedy))[0]


@partial(jax.jit, static_argnames=("model", "length", "temperature", "top_k", "greedy"))
def _generate(model: CharLM, params, prompt, key, *, length, temperature, top_k, greedy):
    token_model = decoding.TokenModel(embed=model.embed, core=model.stack, head=model.head)
    return decoding.generate(token_model, params, model.initial_carry(prompt.shape[0]), prompt, length, key,
                             temperature=temperature, top_k=top_k, greedy=greedy)
