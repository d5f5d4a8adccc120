"""Claim 4 of the source articles, measured: how the gradient reaching the first input shrinks
with the number of steps, for each cell at its initialisation.

    ./launch.sh python benchmarks/gradient_flow.py [--hidden 64] [--batch 32] [--seeds 3]

For each cell and T it prints the median (over seeds) of ||∂(sum of h_T)/∂x_1|| / ||∂(sum of h_T)/∂x_T||:
how much of the last step's sensitivity survives back to the first step. Products of Jacobians
with spectral radius below 1 drive the ratio towards 0 as T grows (vanishing gradients); the
LSTM's additive cell path and the GRU's update gate keep more of it.
"""

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import seqjax  # noqa: E402
from benchmarks.machine import header  # noqa: E402


def ratio(cell, T, hidden, batch, seed, init, forget_bias=0.0):
    key = jax.random.PRNGKey(seed)
    params = cell.init(key, hidden, hidden, init=init, forget_bias=forget_bias, dtype=jnp.float64)
    xs = jax.random.normal(jax.random.fold_in(key, 1), (batch, T, hidden), jnp.float64)

    def last_h(xs):
        final, _ = seqjax.unroll(cell, params, xs)
        return jnp.sum(cell.carry_hidden(final))

    g = jax.grad(last_h)(xs)
    return float(jnp.linalg.norm(g[:, 0]) / jnp.linalg.norm(g[:, -1]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--init", default="torch")
    ap.add_argument("--steps", default="10,25,50,100,200")
    args = ap.parse_args()
    Ts = [int(t) for t in args.steps.split(",")]
    columns = [("rnn_tanh", 0.0), ("gru", 0.0), ("lstm", 0.0), ("lstm", 1.0)]
    names = [n if fb == 0 else f"{n} (forget bias {fb:g})" for n, fb in columns]
    print(header(f"jax {jax.__version__}"))
    print(f"||dL/dx_1|| / ||dL/dx_T||, L = sum(h_T); float64, hidden {args.hidden}, init {args.init}, "
          f"median of {args.seeds} seeds\n")
    print("| T | " + " | ".join(names) + " |")
    print("|---:|" + "---:|" * len(names))
    for T in Ts:
        row = [np.median([ratio(seqjax.make_cell(n), T, args.hidden, args.batch, s, args.init, fb)
                          for s in range(args.seeds)]) for n, fb in columns]
        print(f"| {T} | " + " | ".join(f"{v:.2e}" for v in row) + " |", flush=True)


if __name__ == "__main__":
    with jax.enable_x64(True):  # float32 underflows to exactly 0 by T=100
        main()
