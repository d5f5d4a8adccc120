"""PyTorch parity: golden outputs committed under tests/golden (made by make_golden.py with torch),
and a live comparison when torch is importable."""

import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import interop

GOLDEN = Path(__file__).parent / "golden"
CELLS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
HAS_TORCH = importlib.util.find_spec("torch") is not None




def _compare(name, rec, dtype, atol):
    sd = {k[3:]: rec[k] for k in rec.files if k.startswith("sd.")}
    stack, params = interop.from_torch_state_dict(sd, name, dtype=dtype)
    assert stack.num_layers == 2 and stack.bidirectional
    carry0 = jnp.asarray(rec["h0"], dtype)
    if name == "lstm":
        carry0 = (carry0, jnp.asarray(rec["c0"], dtype))
    final, ys = jax.jit(lambda p, x, c, n: stack(p, x, c, lengths=n))(
        params, jnp.asarray(rec["x"], dtype), carry0, jnp.asarray(rec["lengths"]))
    np.testing.assert_allclose(np.asarray(ys), rec["out"], atol=atol, rtol=0)
    h_n = final.h if name == "lstm" else final
    np.testing.assert_allclose(np.asarray(h_n), rec["h_n"], atol=atol, rtol=0)
    if name == "lstm":
        np.testing.assert_allclose(np.asarray(final.c), rec["c_n"], atol=atol, rtol=0)
    # export round-trips exactly
    back = interop.to_torch_state_dict(params)
    assert set(back) == set(sd)
    for k in sd:
        np.testing.assert_array_equal(back[k], sd[k])


@pytest.mark.parametrize("name", CELLS)
def test_golden_float64(name, x64):
    rec = np.load(GOLDEN / f"{name}_f64.npz")
    _compare(name, rec, jnp.float64, atol=1e-10)


# float32 tolerance at T=50 (documented in the README): 1e-5 absolute; measured max 2.4e-7.
@pytest.mark.parametrize("name", CELLS)
def test_golden_float32_T50(name):
    rec = np.load(GOLDEN / f"{name}_f32_T50.npz")
    _compare(name, rec, jnp.float32, atol=1e-5)


@pytest.mark.skipif(not HAS_TORCH, reason="live comparison needs the [torch] extra (torch==2.13.0); "
                    "the golden tests above cover parity without it")
@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_live_torch(name, bidirectional, x64):
    import torch

    ctor = {"rnn_tanh": lambda **k: torch.nn.RNN(nonlinearity="tanh", **k),
            "rnn_relu": lambda **k: torch.nn.RNN(nonlinearity="relu", **k),
            "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[name]
    torch.manual_seed(3)
    m = ctor(input_size=6, hidden_size=5, num_layers=3, bidirectional=bidirectional, batch_first=True).double()
    x = torch.randn(2, 11, 6, dtype=torch.float64)
    with torch.no_grad():
        out, state = m(x)
    stack, params = interop.from_torch_module(m, dtype=jnp.float64)
    final, ys = stack(params, jnp.asarray(x.numpy()))
    np.testing.assert_allclose(np.asarray(ys), out.numpy(), atol=1e-10, rtol=0)
    h_n = state[0] if name == "lstm" else state
    np.testing.assert_allclose(np.asarray(stack.cell.carry_hidden(final)), h_n.numpy(), atol=1e-10, rtol=0)
    # export loads back into torch and reproduces the module
    m2 = ctor(input_size=6, hidden_size=5, num_layers=3, bidirectional=bidirectional, batch_first=True).double()
    m2.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in interop.to_torch_state_dict(params).items()})
    with torch.no_grad():
        out2, _ = m2(x)
    np.testing.assert_array_equal(out2.numpy(), out.numpy())
