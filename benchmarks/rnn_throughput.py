"""RNN throughput: seqjax against torch.nn and Flax nnx.RNN, in one process, interleaved.

    .venv/bin/python benchmarks/rnn_throughput.py                      # default shapes, all cells
    .venv/bin/python benchmarks/rnn_throughput.py --quick              # tiny smoke run (seconds)
    .venv/bin/python benchmarks/rnn_throughput.py --cells lstm --shapes 64,128,128,256 --repeats 15 \
        --seqjax-variants default,scan --json /tmp/lstm.json

For every shape ``(B, T, I, H)``, cell and mode it builds one single-layer, unidirectional,
batch-first network per competitor on the same float32 inputs and times

* ``train``: forward + backward, the gradient of ``mean(ys**2)`` w.r.t. all parameters and the
  inputs (``jax.value_and_grad`` / ``loss.backward()``), and
* ``forward``: the outputs only (``torch.inference_mode()`` for PyTorch),

reported as tokens per second (``B*T`` per call). Competitors are timed round-robin: each round
runs every competitor once, so load from other processes hits all of them alike. Every callable
is compiled and warmed up first, and JAX results are ``block_until_ready``'d. The table gives the
median (and best) over rounds and each median's ratio to PyTorch's.

seqjax variants (``--seqjax-variants``): ``default`` (what :func:`seqjax.unroll` picks on this
backend), ``scan`` (the plain ``lax.scan`` differentiated by JAX autodiff, ``fused=False``),
``hoist`` / ``nohoist`` (default, with the input projection forced before / inside the loop).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import seqjax  # noqa: E402
from benchmarks.machine import cpu_model  # noqa: E402

DEFAULT_SHAPES = "64,128,128,256;128,200,64,128"
QUICK_SHAPES = "4,12,8,16"
CELLS = ("lstm", "gru", "rnn")
MODES = ("train", "forward")


# ------------------------------------------------------------------ competitors
# Each builder returns {mode: callable()} where one call runs one step and waits for the result.


def _seqjax(cell_name, B, T, I, H, variant):
    cell = seqjax.make_cell(cell_name)
    params = cell.init(jax.random.PRNGKey(0), I, H)
    xs = jax.random.normal(jax.random.PRNGKey(1), (B, T, I), jnp.float32)
    kw = {"hoist": True} if variant == "hoist" else {"hoist": False} if variant == "nohoist" else {}
    kw["fused"] = variant != "scan"

    def run(p, x):
        return seqjax.unroll(cell, p, x, **kw)[1]

    def loss(p, x):
        return jnp.mean(run(p, x) ** 2)

    return _compiled(run, loss, params, xs)


def _compiled(run, loss, params, xs):
    """Jitted, compiled and warmed train (value and grad) and forward calls on fixed inputs."""
    train = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    fwd = jax.jit(run)
    jax.block_until_ready(train(params, xs))
    jax.block_until_ready(fwd(params, xs))
    return {"train": lambda: jax.block_until_ready(train(params, xs)),
            "forward": lambda: jax.block_until_ready(fwd(params, xs))}


def _flax(cell_name, B, T, I, H):
    from flax import nnx

    ctor = {"lstm": nnx.OptimizedLSTMCell, "gru": nnx.GRUCell, "rnn": nnx.SimpleCell}[cell_name]
    model = nnx.RNN(ctor(I, H, rngs=nnx.Rngs(0)))
    # a fixed zero carry: letting nnx.RNN draw one would mutate its rng state inside jit
    carry0 = model.cell.initialize_carry((B, I), rngs=nnx.Rngs(1))
    graphdef, state, rest = nnx.split(model, nnx.Param, ...)
    xs = jax.random.normal(jax.random.PRNGKey(1), (B, T, I), jnp.float32)

    def run(s, x):
        return nnx.merge(graphdef, s, rest)(x, initial_carry=carry0)

    def loss(s, x):
        return jnp.mean(run(s, x) ** 2)

    return _compiled(run, loss, state, xs)


def _torch(cell_name, B, T, I, H):
    import torch

    ctor = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell_name]
    torch.manual_seed(0)
    mod = ctor(I, H, batch_first=True)
    x = torch.randn(B, T, I, requires_grad=True)

    def train():
        mod.zero_grad(set_to_none=True)
        x.grad = None
        out, _ = mod(x)
        loss = out.pow(2).mean()
        loss.backward()
        return loss.item()

    def fwd():
        with torch.inference_mode():
            out, _ = mod(x)
        return out

    return {"train": train, "forward": fwd}


# ------------------------------------------------------------------ timing


def _time_round_robin(fns: dict, repeats: int, warmup: int, pause: float) -> dict:
    for f in fns.values():
        for _ in range(warmup):
            f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            if pause:
                time.sleep(pause)
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return times


def _machine(torch_threads) -> dict:
    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "jax_backend": jax.default_backend(),
            "jax_devices": [str(d) for d in jax.devices()], "python": platform.python_version(),
            "jax": jax.__version__, "torch_threads": torch_threads,
            "xla_flags": os.environ.get("XLA_FLAGS", "")}
    try:
        import flax
        info["flax"] = flax.__version__
    except ImportError:
        pass
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default=None,
                    help=f"';'-separated B,T,I,H tuples (default {DEFAULT_SHAPES!r})")
    ap.add_argument("--cells", default=",".join(CELLS), help="comma list of lstm,gru,rnn")
    ap.add_argument("--modes", default=",".join(MODES), help="comma list of train,forward")
    ap.add_argument("--frameworks", default="seqjax,torch,flax", help="comma list of seqjax,torch,flax")
    ap.add_argument("--seqjax-variants", default="default",
                    help="comma list of default,scan,hoist,nohoist (see the module docstring)")
    ap.add_argument("--repeats", type=int, default=10, help="timed rounds per shape/cell/mode")
    ap.add_argument("--warmup", type=int, default=2, help="untimed calls after compiling")
    ap.add_argument("--pause", type=float, default=0.02, help="seconds of sleep before each timed call")
    ap.add_argument("--torch-threads", type=int, default=os.cpu_count(),
                    help="torch.set_num_threads (default: all cores of this machine)")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run: one small shape, 3 rounds")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)

    if args.quick:
        shapes_s, args.repeats, args.warmup = args.shapes or QUICK_SHAPES, min(args.repeats, 3), 1
    else:
        shapes_s = args.shapes or DEFAULT_SHAPES
    shapes = [tuple(int(v) for v in s.split(",")) for s in shapes_s.split(";") if s.strip()]
    if any(len(s) != 4 for s in shapes):
        ap.error(f"--shapes takes ';'-separated B,T,I,H tuples, got {shapes_s!r}")
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    variants = [v.strip() for v in args.seqjax_variants.split(",") if v.strip()]
    for name, got, ok in (("cells", cells, CELLS), ("modes", modes, MODES),
                          ("frameworks", frameworks, ("seqjax", "torch", "flax")),
                          ("seqjax-variants", variants, ("default", "scan", "hoist", "nohoist"))):
        bad = [g for g in got if g not in ok]
        if bad:
            ap.error(f"unknown {name} {bad}; expected some of {list(ok)}")

    torch_threads = None
    if "torch" in frameworks:
        try:
            import torch
            torch.set_num_threads(args.torch_threads)
            torch_threads = torch.get_num_threads()
        except ImportError:
            print("torch is not importable: skipping the PyTorch competitor", file=sys.stderr)
            frameworks.remove("torch")

    machine = _machine(torch_threads)
    load0 = os.getloadavg()
    print(f"# machine: {machine['cpu']}, {machine['cores']} cores, jax {machine['jax']} "
          f"({machine['jax_backend']}), flax {machine.get('flax', '-')}, torch {machine.get('torch', '-')} "
          f"with torch.set_num_threads({torch_threads})" + (f", XLA_FLAGS={machine['xla_flags']!r}"
                                                           if machine["xla_flags"] else ""))
    print(f"# float32, single layer, batch-first; {args.repeats} interleaved rounds, median (best); "
          f"load average at start {load0[0]:.2f}", flush=True)

    results = []
    for (B, T, I, H) in shapes:
        for cell in cells:
            comp = {}
            for v in variants:
                label = "seqjax" if v == "default" else f"seqjax[{v}]"
                comp[label] = _seqjax(cell, B, T, I, H, v)
            if "torch" in frameworks:
                comp["torch"] = _torch(cell, B, T, I, H)
            if "flax" in frameworks:
                comp["flax"] = _flax(cell, B, T, I, H)
            if "seqjax" not in frameworks:
                comp = {k: v for k, v in comp.items() if not k.startswith("seqjax")}
            for mode in modes:
                fns = {k: v[mode] for k, v in comp.items()}
                times = _time_round_robin(fns, args.repeats, args.warmup, args.pause)
                med = {k: statistics.median(v) for k, v in times.items()}
                for k, v in times.items():
                    results.append({"framework": k, "cell": cell, "mode": mode, "B": B, "T": T, "I": I, "H": H,
                                    "median_ms": med[k] * 1e3, "best_ms": min(v) * 1e3,
                                    "ktok_s": B * T / med[k] / 1e3, "best_ktok_s": B * T / min(v) / 1e3,
                                    "vs_torch": (med["torch"] / med[k]) if "torch" in med else None,
                                    "times_ms": [t * 1e3 for t in v]})
                print(f"#   done {cell} {mode} (B,T,I,H)=({B},{T},{I},{H})", file=sys.stderr, flush=True)

    load1 = os.getloadavg()
    order = {"seqjax": 0, "torch": 9, "flax": 10}
    lines = ["", "| shape (B,T,I,H) | cell | mode | framework | ktok/s median (best) | ms/step median | vs torch |",
             "|---|---|---|---|---:|---:|---:|"]
    for r in sorted(results, key=lambda r: (r["B"], r["T"], r["I"], r["H"], cells.index(r["cell"]),
                                             modes.index(r["mode"]), order.get(r["framework"], 1))):
        ratio = "-" if r["vs_torch"] is None else f"{r['vs_torch']:.2f}x"
        lines.append(f"| {r['B']},{r['T']},{r['I']},{r['H']} | {r['cell']} | {r['mode']} | {r['framework']} | "
                     f"{r['ktok_s']:.1f} ({r['best_ktok_s']:.1f}) | {r['median_ms']:.1f} | {ratio} |")
    print("\n".join(lines))
    print(f"\n# load average at end {load1[0]:.2f} (this machine is shared: compare ratios, not absolutes)")
    ncores = os.cpu_count() or 1
    if max(load0[0], load1[0]) > ncores + 0.5:  # this run alone keeps about `ncores` busy
        print(f"# WARNING: load average above {ncores} cores: other processes competed for the CPU. torch's OpenMP "
              "threads slow down far more than XLA's under contention, so ratios from this run overstate seqjax. "
              "Rerun on a quiet machine.")

    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "args": vars(args), "load_start": load0,
                                               "load_end": load1, "results": results}, indent=1))
        print(f"# wrote {args.json}")


if __name__ == "__main__":
    main()
