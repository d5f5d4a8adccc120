"""Import and export ``torch.nn.RNN / LSTM / GRU`` weights.

seqjax keeps PyTorch's gate order and bias split, so conversion is renaming:
``weight_ih_l{k}[_reverse]`` ↔ ``params[k]["fwd" | "bwd"]["w_ih"]`` and likewise for ``w_hh``,
``b_ih``, ``b_hh``. Nothing here imports torch: tensors are read with ``.detach().cpu().numpy()``
when they have it, and export returns writable numpy arrays (``{k: torch.from_numpy(v)}`` loads
them). A module built with ``bias=False`` has no bias keys, and neither have its params: the round
trip gives back exactly the keys that came in.
"""

from __future__ import annotations

import re

import jax.numpy as jnp
import numpy as np

from seqjax.cells import Cell, make_cell
from seqjax.recurrent import Stack

_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?$")
_NAMES = {"weight_ih": "w_ih", "weight_hh": "w_hh", "bias_ih": "b_ih", "bias_hh": "b_hh"}
_TORCH_MODES = {"RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu", "LSTM": "lstm", "GRU": "gru"}


def _to_numpy(t) -> np.ndarray:
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()
    return np.asarray(t)


def from_torch_state_dict(state_dict, cell: str | Cell, *, dtype=None) -> tuple[Stack, list[dict]]:
    """Params for a :class:`~seqjax.recurrent.Stack` from an ``nn.RNN/LSTM/GRU`` state_dict.

    The number of layers and directions is read off the keys. Without bias keys (``bias=False``)
    the params have no biases either. Returns ``(stack, params)``; ``stack`` has no dropout (set it
    with ``dataclasses.replace``).
    """
    cell = make_cell(cell)
    layers: dict[tuple[int, str], dict] = {}
    for key, value in state_dict.items():
        m = _KEY.match(key)
        if not m:
            if key.startswith("weight_hr"):
                raise ValueError("LSTM projections (proj_size > 0) are not supported; got key " + key)
            raise ValueError(f"unexpected key {key!r} in a torch RNN state_dict; expected keys like "
                             "'weight_ih_l0', 'bias_hh_l1_reverse'")
        name, layer, rev = m.group(1), int(m.group(2)), bool(m.group(3))
        arr = _to_numpy(value)
        layers.setdefault((layer, "bwd" if rev else "fwd"), {})[_NAMES[name]] = jnp.asarray(arr, dtype)
    if not layers:
        raise ValueError("empty state_dict: expected nn.RNN/LSTM/GRU weights")
    num_layers = 1 + max(k[0] for k in layers)
    bidirectional = any(k[1] == "bwd" for k in layers)
    params = []
    for layer in range(num_layers):
        entry = {}
        for direction in ("fwd", "bwd") if bidirectional else ("fwd",):
            p = layers.get((layer, direction))
            if p is None or "w_ih" not in p or "w_hh" not in p:
                raise ValueError(f"state_dict lacks the weights of layer {layer} ({direction}); "
                                 f"found {sorted(f'{k[0]}/{k[1]}' for k in layers)}")
            try:
                cell.sizes(p)  # validates the gate count against the cell, and the biases
            except ValueError as e:
                raise ValueError(f"layer {layer} ({direction}) of the state_dict: {e}") from None
            entry[direction] = dict(sorted(p.items()))
        params.append(entry)
    return Stack(cell, num_layers=num_layers, bidirectional=bidirectional), params


def from_torch_module(module, *, dtype=None) -> tuple[Stack, list[dict]]:
    """``(stack, params)`` from a live ``torch.nn.RNN``/``LSTM``/``GRU`` module (dropout kept)."""
    mode = getattr(module, "mode", None)
    if mode not in _TORCH_MODES:
        raise ValueError(f"expected a torch.nn.RNN, LSTM or GRU module, got {type(module).__name__}")
    if getattr(module, "proj_size", 0):
        raise ValueError("LSTM projections (proj_size > 0) are not supported")
    stack, params = from_torch_state_dict(module.state_dict(), _TORCH_MODES[mode], dtype=dtype)
    return Stack(stack.cell, stack.num_layers, stack.bidirectional, dropout=float(module.dropout)), params


def to_torch_state_dict(params: list[dict]) -> dict[str, np.ndarray]:
    """The ``nn.RNN/LSTM/GRU`` state_dict (writable numpy arrays) for a Stack's params."""
    out = {}
    for layer, entry in enumerate(params):
        for direction, p in entry.items():
            suffix = "_reverse" if direction == "bwd" else ""
            for torch_name, ours in _NAMES.items():
                if ours in p:
                    out[f"{torch_name}_l{layer}{suffix}"] = np.array(p[ours])  # a copy: jax's views are read-only
    return out
