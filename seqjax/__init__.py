"""seqjax: recurrent networks as pure JAX functions.

    import seqjax
    cell = seqjax.cells.lstm
    params = cell.init(key, input_size=8, hidden_size=16)
    final, ys = seqjax.unroll(cell, params, xs, lengths=lengths)
"""

from seqjax import cells, recurrent
from seqjax.cells import Cell, LSTMCarry, gru, gru_cho, lstm, make_cell, rnn_relu, rnn_tanh
from seqjax.recurrent import Stack, bidirectional, unroll

__version__ = "0.1.0"

__all__ = ["cells", "recurrent", "Cell", "LSTMCarry", "make_cell", "rnn_tanh", "rnn_relu", "lstm", "gru",
           "gru_cho", "unroll", "bidirectional", "Stack"]
