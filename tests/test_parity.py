"""PyTorch parity: golden outputs committed under tests/golden (made by make_golden.py with torch),
and a live comparison when torch is importable."""

import importlib.util
import warnings
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
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the documented recipe, torch.from_numpy(v), must not warn
        m2.load_state_dict({k: torch.from_numpy(v) for k, v in interop.to_torch_state_dict(params).items()})
    with torch.no_grad():
        out2, _ = m2(x)
    np.testing.assert_array_equal(out2.numpy(), out.numpy())


def test_export_is_writable_and_round_trips_exactly_what_came_in():
    rng = np.random.default_rng(0)
    with_bias = {"weight_ih_l0": rng.normal(size=(8, 3)), "weight_hh_l0": rng.normal(size=(8, 2)),
                 "bias_ih_l0": rng.normal(size=(8,)), "bias_hh_l0": rng.normal(size=(8,))}
    no_bias = {k: v for k, v in with_bias.items() if k.startswith("weight")}  # torch's bias=False
    for sd in (with_bias, no_bias):
        stack, params = interop.from_torch_state_dict(sd, "lstm")
        back = interop.to_torch_state_dict(params)
        assert set(back) == set(sd)
        for k, v in back.items():
            assert v.flags.writeable, k
            np.testing.assert_allclose(v, sd[k], rtol=1e-6)
    _, params = interop.from_torch_state_dict(no_bias, "lstm")
    assert sorted(params[0]["fwd"]) == ["w_hh", "w_ih"]
    # a cell without biases computes the cell with zero biases
    zero = [{"fwd": dict(params[0]["fwd"], b_ih=jnp.zeros(8), b_hh=jnp.zeros(8))}]
    x = jnp.asarray(rng.normal(size=(2, 5, 3)), jnp.float32)
    np.testing.assert_allclose(stack(params, x)[1], stack(zero, x)[1], atol=1e-6)
    half = dict(no_bias, bias_ih_l0=with_bias["bias_ih_l0"])
    with pytest.raises(ValueError, match=r"layer 0 \(fwd\) of the state_dict: lstm params have 'b_ih' but not 'b_hh'"):
        interop.from_torch_state_dict(half, "lstm")


@pytest.mark.skipif(not HAS_TORCH, reason="needs the [torch] extra (torch==2.13.0); "
                    "test_export_is_writable_and_round_trips_exactly_what_came_in covers the keys without it")
def test_live_torch_without_biases_loads_strictly(x64):
    import torch

    m = torch.nn.GRU(4, 3, num_layers=2, bias=False, batch_first=True).double()
    stack, params = interop.from_torch_module(m, dtype=jnp.float64)
    x = torch.randn(2, 6, 4, dtype=torch.float64)
    with torch.no_grad():
        out, _ = m(x)
    np.testing.assert_allclose(np.asarray(stack(params, jnp.asarray(x.numpy()))[1]), out.numpy(), atol=1e-10)
    fresh = torch.nn.GRU(4, 3, num_layers=2, bias=False, batch_first=True).double()
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in interop.to_torch_state_dict(params).items()},
                          strict=True)
