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


def slow_bf16(frameworks) -> dict:
    """``{framework: reason}`` for each framework whose bfloat16 matmul is a slow fallback on this
    CPU (below 5% of its own float32 rate at 256^3; e.g. torch on a CPU without bf16 kernels takes
    about a minute for one 2048^3 product), so that the table skips it instead of hanging."""
    makers = {"jax": jax_runner, "torch": torch_runner}
    slow = {}
    for f in frameworks:
        rate = {}
        for dtype in (jnp.float32, jnp.bfloat16):
            run = makers[f](256, 256, 256, dtype, 4)
            t0 = time.perf_counter()
            run()
            rate[dtype] = 4 * 2 * 256**3 / (time.perf_counter() - t0) / 1e9
        if rate[jnp.bfloat16] < 0.05 * rate[jnp.float32]:
            slow[f] = (f"{f}'s bfloat16 matmul runs at {rate[jnp.bfloat16]:.2f} GF/s at 256^3 on this CPU "
                       f"({rate[jnp.float32]:.0f} GF/s in float32): no bfloat16 kernels here, skipped")
    return slow


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
    slow = slow_bf16(frameworks)
    for reason in slow.values():
        print(f"# {reason}")
    header = "| shape (M,K,N) | dtype | " + " | ".join(f"{f} GF/s" for f in frameworks)
    header += " | jax / torch |" if len(frameworks) == 2 else " |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for m, k, n in SHAPES:
        flops = 2.0 * m * k * n
        reps = max(10, int(args.flops_per_round / flops))
        for dtype in (jnp.float32, jnp.bfloat16):
            makers = {"jax": jax_runner, "torch": torch_runner}
            runners = {f: makers[f](m, k, n, dtype, reps) for f in frameworks
                       if not (dtype == jnp.bfloat16 and f in slow)}
            if not runners:
                continue
            best = {f: float("inf") for f in runners}
            for _ in range(args.rounds):
                for f, run in runners.items():
                    t0 = time.perf_counter()
                    run()
                    best[f] = min(best[f], (time.perf_counter() - t0) / reps)
            rate = {f: flops / t / 1e9 for f, t in best.items()}
            cells = [f"{rate[f]:.0f}" if f in rate else "skipped" for f in frameworks]
            row = f"| {m},{k},{n} | {jnp.dtype(dtype).name} | " + " | ".join(cells)
            if len(frameworks) == 2:
                row += f" | {rate['jax'] / rate['torch']:.2f}x |" if len(rate) == 2 else " | - |"
            else:
                row += " |"
            print(row, flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
