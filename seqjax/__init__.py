"""seqjax: recurrent networks as pure JAX functions.

    import seqjax
    cell = seqjax.lstm
    params = cell.init(key, input_size=8, hidden_size=16)
    final, ys = seqjax.unroll(cell, params, xs, lengths=lengths)

Modules: :mod:`seqjax.cells`, :mod:`seqjax.recurrent` (``unroll``, ``Stack``), :mod:`seqjax.scan`
(the linear recurrence behind ``mingru``, ``minlstm``, ``rglru``),
:mod:`seqjax.structures`, :mod:`seqjax.decoding`, :mod:`seqjax.interop` and :mod:`seqjax.nn`
(Flax ``nnx`` modules, imported on first use).
"""

import importlib

from seqjax import cells, decoding, interop, recurrent, scan, structures
from seqjax.cells import Cell, LSTMCarry, gru, gru_cho, lstm, make_cell, mingru, minlstm, rglru, rnn_relu, rnn_tanh
from seqjax.recurrent import Stack, bidirectional, unroll
from seqjax.scan import linear_scan

__version__ = "0.1.0"

__all__ = ["cells", "recurrent", "scan", "structures", "decoding", "interop", "nn", "Cell", "LSTMCarry",
           "make_cell", "rnn_tanh", "rnn_relu", "lstm", "gru", "gru_cho", "mingru", "minlstm", "rglru", "unroll",
           "bidirectional", "Stack", "linear_scan"]


def __getattr__(name):
    # seqjax.nn needs Flax's nnx, which takes a moment to import: load it on first use
    if name == "nn":
        return importlib.import_module("seqjax.nn")
    raise AttributeError(f"module 'seqjax' has no attribute {name!r}")
