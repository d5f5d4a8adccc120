"""The memory tasks' model: a recurrent stack over the inputs and a dense readout.

A frozen dataclass over a params pytree ``{"rnn": [...], "head": {w, b}}``::

    model = MemoryModel.from_config(config.model, layout(config.data))
    params = model.init(key)
    out = model(params, inputs)                 # adding: (B,); copy / tagging: logits (B, K, classes)
    norms = model.hidden_grad_norms(params, inputs, loss_fn)   # (T,): mean over the batch of ||dl/dh_t||

The adding task reads the top layer's final state (both directions' for a bidirectional stack,
:meth:`seqjax.Stack.top_hidden`); copy and tagging read the top layer's outputs at the scored
steps ``layout.readout``. The head is Xavier-initialised with a zero bias.

``hidden_grad_norms`` measures how the gradient reaches back in time: it adds a zero "nudge"
``delta_t`` to each step's hidden state, ``h_t <- h_t + delta_t``, and differentiates the loss
with respect to it, which gives ``dL/dh_t`` (the total derivative, through every later step).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from experiments.memory.data import Layout
from seqjax.cells import CELL_NAMES, INIT_SCHEMES, MATMUL_DTYPES, Cell, LSTMCarry, make_cell
from seqjax.recurrent import Stack, unroll
from seqjax.scan import SCAN_CHOICES
from seqjax.structures import dense, dense_init


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class _Nudged:
    """A core that runs ``cell`` and adds ``delta_t`` to the new hidden state: ``x_t = (input, delta)``."""

    cell: Cell

    def step(self, params, carry, x):
        x, delta = x
        carry, _ = self.cell.step(params, carry, x)
        if isinstance(carry, LSTMCarry):
            carry = LSTMCarry(carry.h + delta, carry.c)
            return carry, carry.h
        return carry + delta, carry + delta


@dataclasses.dataclass(frozen=True)
class MemoryModel:
    layout: Layout
    cell: str = "lstm"
    hidden: int = 64
    num_layers: int = 1
    bidirectional: bool = False
    init_scheme: str = "xavier_orthogonal"  # config key `init`; a seqjax.cells scheme
    forget_bias: float = 1.0  # LSTM only
    matmul_dtype: str = "float32"
    scan: str = "auto"  # linear-recurrence cells: the evaluation over time (seqjax.scan)
    remat: int = 0  # jax.checkpoint every `remat` steps (0 = off)

    def __post_init__(self):
        def need(ok: bool, field: str, what: str):
            if not ok:
                key = "init" if field == "init_scheme" else field
                raise ValueError(f"config.model.{key}={getattr(self, field)!r}: {what}")

        need(self.cell in CELL_NAMES, "cell", f"expected one of {', '.join(CELL_NAMES)}")
        need(self.init_scheme in INIT_SCHEMES, "init_scheme", f"expected one of {', '.join(INIT_SCHEMES)}")
        need(self.matmul_dtype in MATMUL_DTYPES, "matmul_dtype", f"expected one of {', '.join(MATMUL_DTYPES)}")
        for field in ("hidden", "num_layers"):
            value = getattr(self, field)
            need(isinstance(value, int) and not isinstance(value, bool) and value >= 1, field,
                 "expected an integer >= 1")
        need(isinstance(self.bidirectional, bool), "bidirectional", "expected true or false")
        need(self.scan in SCAN_CHOICES, "scan", f"expected one of {', '.join(SCAN_CHOICES)}")
        need(isinstance(self.remat, int) and not isinstance(self.remat, bool) and self.remat >= 0, "remat",
             "expected an integer >= 0 (steps per checkpoint; 0 = off)")

    @classmethod
    def from_config(cls, m, lay: Layout) -> MemoryModel:
        return cls(layout=lay, cell=m.cell, hidden=m.hidden, num_layers=m.num_layers,
                   bidirectional=m.bidirectional, init_scheme=m.init, forget_bias=float(m.forget_bias),
                   matmul_dtype=m.matmul_dtype, scan=m.scan, remat=m.remat)

    @property
    def stack(self) -> Stack:
        return Stack(make_cell(self.cell, matmul_dtype=self.matmul_dtype, scan=self.scan), self.num_layers,
                     self.bidirectional, remat=self.remat)

    @property
    def outputs(self) -> int:
        return self.layout.classes or 1

    def init(self, key: jax.Array) -> dict:
        k_rnn, k_head = jax.random.split(key)
        stack = self.stack
        forget = self.forget_bias if stack.cell.kind == "lstm" else 0.0
        head = dense_init(k_head, stack.output_size(self.hidden), self.outputs)
        head = {"w": head["w"], "b": jnp.zeros_like(head["b"])}
        return {"rnn": stack.init(k_rnn, self.layout.features, self.hidden, init=self.init_scheme,
                                  forget_bias=forget),
                "head": head}

    def readout(self, params, final, ys):
        """The prediction from the stack's final carry and outputs (see the module docstring)."""
        if self.layout.readout is None:
            return dense(params["head"], self.stack.top_hidden(final))[:, 0]
        start, stop = self.layout.readout
        return dense(params["head"], ys[:, start:stop])

    def __call__(self, params, inputs):
        """Predictions for ``inputs`` ``(B, T, F)``: adding ``(B,)``, copy / tagging logits ``(B, K, classes)``."""
        final, ys = self.stack(params["rnn"], inputs)
        return self.readout(params, final, ys)

    def hidden_grad_norms(self, params, inputs, loss_fn) -> jax.Array:
        """``(T,)``: the mean over the batch of ``||d loss_b / d h_t||`` for each step ``t``.

        ``loss_fn(prediction) -> (B,)`` per-example losses. Needs a one-layer unidirectional model
        (the hidden state ``h_t`` is then one vector per step)."""
        if self.num_layers != 1 or self.bidirectional:
            raise ValueError("the gradient probe needs model.num_layers=1 and model.bidirectional=false; "
                             f"this model has {self.num_layers} layer(s), bidirectional={self.bidirectional}")
        cell, p = self.stack.cell, params["rnn"][0]["fwd"]
        inputs = inputs.astype(jnp.result_type(*jax.tree.leaves(params)))  # float64 params: float64 throughout
        B, T, _ = inputs.shape

        def total(delta):
            carry0 = cell.initial_carry((B,), self.hidden, inputs.dtype)
            final, ys = unroll(_Nudged(cell), p, (inputs, delta), carry0, remat=self.remat)
            final = jax.tree.map(lambda a: a[None], final)  # as a Stack's (layers, batch, H) carry
            return jnp.sum(loss_fn(self.readout(params, final, ys)))

        grads = jax.grad(total)(jnp.zeros((B, T, self.hidden), inputs.dtype))
        return jnp.mean(jnp.linalg.norm(grads, axis=-1), axis=0)
