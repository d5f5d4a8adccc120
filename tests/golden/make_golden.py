"""Regenerate the PyTorch golden outputs used by tests/test_parity.py.

    TORCH=1 ./launch.sh python tests/golden/make_golden.py

Needs the [torch] extra (torch==2.13.0). For each torch recurrent module (RNN tanh/relu, LSTM,
GRU), two layers, bidirectional, it records the state_dict, a variable-length padded batch, a
non-zero initial state, and torch's outputs (through pack_padded_sequence) and final states, in
float64, plus a float32 run at T=50 for the float32 tolerance check.
"""

from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

HERE = Path(__file__).parent
MODULES = {"rnn_tanh": lambda **k: torch.nn.RNN(nonlinearity="tanh", **k),
           "rnn_relu": lambda **k: torch.nn.RNN(nonlinearity="relu", **k),
           "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def record(name, dtype, T, seed):
    torch.manual_seed(seed)
    B, I, H, L = 4, 5, 7, 2
    m = MODULES[name](input_size=I, hidden_size=H, num_layers=L, bidirectional=True, batch_first=True)
    m = m.to(dtype)
    x = torch.randn(B, T, I, dtype=dtype)
    lengths = torch.tensor([T, max(1, T // 3), T - 1, 1])
    h0 = 0.5 * torch.randn(L * 2, B, H, dtype=dtype)
    c0 = 0.5 * torch.randn(L * 2, B, H, dtype=dtype)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        out, state = m(packed, (h0, c0) if name == "lstm" else h0)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
    rec = {"x": x.numpy(), "lengths": lengths.numpy(), "h0": h0.numpy(), "out": out.numpy()}
    if name == "lstm":
        rec.update(c0=c0.numpy(), h_n=state[0].numpy(), c_n=state[1].numpy())
    else:
        rec["h_n"] = state.numpy()
    for k, v in m.state_dict().items():
        rec["sd." + k] = v.numpy()
    return rec


if __name__ == "__main__":
    for name in MODULES:
        np.savez_compressed(HERE / f"{name}_f64.npz", **record(name, torch.float64, T=9, seed=0))
        np.savez_compressed(HERE / f"{name}_f32_T50.npz", **record(name, torch.float32, T=50, seed=1))
        print("wrote", name)
