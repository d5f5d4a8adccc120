"""Matmul throughput of the two engines underneath the RNN benchmarks: XLA:CPU and PyTorch.

    ./launch.sh python benchmarks/matmul_engines.py             # JAX only
    TORCH=1 ./launch.sh python benchmarks/matmul_engines.py     # side by side with torch

An LSTM training step is mostly matmuls: (B, I+H) x (I+H, 4H) per forward step, (B, 4H) x (4H, H)
per backward step, and a few tall ones for the weight gradients. This script times exactly those
shapes (the chargen protocol's: B=32, I=64, H=256), plus a large square one, in float32 and with
bfloat16 operands (float32 sums). It shows how much of a gap between seqjax and torch.nn.LSTM
comes from the GEMM library rather than from the recurrent code.

JAX runs ``reps`` dependent matmuls inside one jitted loop, so no dispatch cost is counted. Torch runs
them from Python, which adds a few microseconds per call; that overhead is part of torch's number.
Rounds alternate between the frameworks. The figure is the best round, in GFLOP/s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.machine import header as machine_header  # noqa: E402

SHAPES = [(2048, 2048, 2048), (4096, 256, 1024), (32, 320, 1024), (32, 512, 1024), (32, 1024, 256)]


def jax_runner(m, k, n, dtype, reps):
    a = jnp.asarray(np.random.default_rng(0).standard_normal((m, k)), dtype)
    b = jnp.asarray(np.random.default_rng(1).standard_normal((k, n)), dtype)

    def body(i, acc):  # the scale keeps XLA from hoisting the product out of the loop
        scaled = a * (1.0 + i.astype(dtype) * 1e-9)
        return acc + lax.dot(scaled, b, preferred_element_type=jnp.float32)

    f = jax.jit(lambda: lax.fori_loop(0, reps, body, jnp.zeros((m, n), jnp.float32)))
    f().block_until_ready()
    return lambda: f().block_until_ready()


def torch_runner(m, k, n, dtype, reps):
    import torch

    tdt = {jnp.float32: torch.float32, jnp.bfloat16: torch.bfloat16}[dtype]
    a = torch.randn(m, k).to(tdt)
    b = torch.randn(k, n).to(tdt)

    def run():
        with torch.inference_mode():
            for _ in range(reps):
                (a @ b)

    run()
    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--flops-per-round", type=float, default=2e9, help="work per timed round, per shape")
    args = ap.parse_args()
    try:
        import torch

        frameworks = ["jax", "torch"]
        versions = (f"jax {jax.__version__} ({jax.default_backend()}), torch {torch.__version__} "
                    f"({torch.get_num_threads()} threads)")
    except ImportError:
        frameworks = ["jax"]
        versions = f"jax {jax.__version__} ({jax.default_backend()}); torch not installed (TORCH=1 adds it)"
    print(machine_header(versions))
    header = "| shape (M,K,N) | dtype | " + " | ".join(f"{f} GF/s" for f in frameworks)
    header += " | jax / torch |" if len(frameworks) == 2 else " |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for m, k, n in SHAPES:
        flops = 2.0 * m * k * n
        reps = max(10, int(args.flops_per_round / flops))
        for dtype in (jnp.float32, jnp.bfloat16):
            runners = {"jax": jax_runner(m, k, n, dtype, reps)}
            if "torch" in frameworks:
                runners["torch"] = torch_runner(m, k, n, dtype, reps)
            best = {f: float("inf") for f in runners}
            for _ in range(args.rounds):
                for f, run in runners.items():
                    t0 = time.perf_counter()
                    run()
                    best[f] = min(best[f], (time.perf_counter() - t0) / reps)
            rate = {f: flops / t / 1e9 for f, t in best.items()}
            row = f"| {m},{k},{n} | {jnp.dtype(dtype).name} | " + " | ".join(f"{rate[f]:.0f}" for f in runners)
            row += f" | {rate['jax'] / rate['torch']:.2f}x |" if "torch" in rate else " |"
            print(row, flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
