"""Flax ``nnx`` modules over the same pure functions, for use inside other Flax models.

    lstm = seqjax.nn.LSTM(32, 64, num_layers=2, bidirectional=True, dropout=0.1, rngs=nnx.Rngs(0))
    out, (h_n, c_n) = lstm(x, lengths=lengths)     # out: (B, T, 128); h_n, c_n: (4, B, 64)

Like ``torch.nn.LSTM`` they return ``(outputs, final_state)`` with the final state in the
``(num_layers * num_directions, batch, hidden)`` layout (no batch axis for one unbatched
``(time, features)`` sequence), and they name their weights as torch does (``weight_ih_l0``,
``bias_hh_l1_reverse``, ...; no biases with ``bias=False``). The math is
:class:`seqjax.recurrent.Stack`; these classes only hold the parameters. ``model.train()`` /
``model.eval()`` switch dropout, whose masks come from the ``dropout`` stream of the ``rngs``
(the default stream if there is none), as ``nnx.Dropout`` draws them.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from seqjax.cells import Cell, LSTMCarry, make_cell
from seqjax.recurrent import Stack

_FIELDS = (("weight_ih", "w_ih"), ("weight_hh", "w_hh"), ("bias_ih", "b_ih"), ("bias_hh", "b_hh"))


class Recurrent(nnx.Module):
    """A multi-layer, optionally bidirectional recurrent network of any seqjax cell."""

    def __init__(self, cell: str | Cell, in_features: int, hidden_features: int, *, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, merge: str = "concat", init: str = "torch",
                 forget_bias: float = 0.0, bias: bool = True, dtype=jnp.float32, matmul_dtype=None,
                 scan: str | None = None, fused: bool = True, remat: int = 0, deterministic: bool = False,
                 rngs: nnx.Rngs):
        self.stack = Stack(make_cell(cell, matmul_dtype=matmul_dtype, scan=scan), num_layers, bidirectional, merge,
                           dropout, fused=fused, remat=remat)
        self.in_features, self.hidden_features = in_features, hidden_features
        self.deterministic = deterministic
        self.bias = bias
        params = self.stack.init(rngs.params(), in_features, hidden_features, init=init,
                                 forget_bias=forget_bias, bias=bias, dtype=dtype)
        for layer, entry in enumerate(params):
            for direction, p in entry.items():
                suffix = "_reverse" if direction == "bwd" else ""
                for torch_name, ours in self._fields():
                    setattr(self, f"{torch_name}_l{layer}{suffix}", nnx.Param(p[ours]))
        # rngs["dropout"] falls back to the default stream, as nnx.Dropout's does
        self.rngs = rngs["dropout"].fork() if dropout > 0 else nnx.data(None)

    def _fields(self):
        if self.stack.cell.is_linear:  # an input projection only (and the RG-LRU's a_param)
            fields = (_FIELDS[0], _FIELDS[2]) if self.bias else (_FIELDS[0],)
            return fields + ((("a_param", "a_param"),) if self.stack.cell.kind == "rglru" else ())
        return _FIELDS if self.bias else _FIELDS[:2]

    @property
    def out_features(self) -> int:
        return self.stack.output_size(self.hidden_features)

    def pure_params(self) -> list[dict]:
        """The parameters as the list-of-dicts pytree that :class:`Stack` takes."""
        out = []
        for layer in range(self.stack.num_layers):
            entry = {}
            for direction, suffix in (("fwd", ""), ("bwd", "_reverse"))[: self.stack.num_directions]:
                entry[direction] = {ours: getattr(self, f"{t}_l{layer}{suffix}")[...] for t, ours in self._fields()}
            out.append(entry)
        return out

    def initial_carry(self, batch_size: int, dtype=jnp.float32):
        return self.stack.initial_carry(batch_size, self.hidden_features, dtype)

    def __call__(self, x, carry0=None, *, lengths=None, deterministic: bool | None = None, rngs=None,
                 unroll: int = 1, time_major: bool = False):
        """Returns ``(outputs, final_state)``; ``x`` is ``(batch, time, in_features)``, or
        ``(time, in_features)`` for one sequence."""
        deterministic = self.deterministic if deterministic is None else deterministic
        train = not deterministic and self.stack.dropout > 0 and self.stack.num_layers > 1
        key = None
        if train:
            stream = rngs["dropout"] if isinstance(rngs, nnx.Rngs) else rngs if rngs is not None else self.rngs
            if stream is None:
                raise ValueError("dropout > 0 in training needs rngs: pass rngs=nnx.Rngs(dropout=...) to the "
                                 "constructor or the call, or call model.eval()")
            key = stream() if callable(stream) else stream
        final, ys = self.stack(self.pure_params(), x, carry0, lengths=lengths, rng=key, train=train,
                               unroll=unroll, time_major=time_major)
        if isinstance(final, LSTMCarry):
            final = (final.h, final.c)
        return ys, final


class RNN(Recurrent):
    """Elman RNN, ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``; ``nonlinearity`` is tanh or relu."""

    def __init__(self, in_features: int, hidden_features: int, *, nonlinearity: str = "tanh", **kw):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"unknown nonlinearity {nonlinearity!r}; expected 'tanh' or 'relu'")
        super().__init__(f"rnn_{nonlinearity}", in_features, hidden_features, **kw)


class LSTM(Recurrent):
    """LSTM with PyTorch's gate order (i, f, g, o); final state is ``(h_n, c_n)``."""

    def __init__(self, in_features: int, hidden_features: int, **kw):
        super().__init__("lstm", in_features, hidden_features, **kw)


class GRU(Recurrent):
    """GRU with PyTorch's equations; ``variant="cho"`` applies the reset gate before the matmul."""

    def __init__(self, in_features: int, hidden_features: int, *, variant: str = "torch", **kw):
        super().__init__("gru" if variant == "torch" else Cell("gru", variant=variant), in_features,
                         hidden_features, **kw)


class MinGRU(Recurrent):
    """minGRU, ``h' = (1 − z) ⊙ h + z ⊙ h̃`` with ``z`` and ``h̃`` from the input only (a parallel-scan
    cell: see :mod:`seqjax.scan`); ``scan`` picks the evaluation."""

    def __init__(self, in_features: int, hidden_features: int, **kw):
        super().__init__("mingru", in_features, hidden_features, **kw)


class MinLSTM(Recurrent):
    """minLSTM, forget and input gates from the input only, normalised to sum to one."""

    def __init__(self, in_features: int, hidden_features: int, **kw):
        super().__init__("minlstm", in_features, hidden_features, **kw)


class RGLRU(Recurrent):
    """The RG-LRU of Griffin, with an input projection in front (see :mod:`seqjax.cells`)."""

    def __init__(self, in_features: int, hidden_features: int, **kw):
        super().__init__("rglru", in_features, hidden_features, **kw)
