"""Long sequences: training throughput and peak memory of classic and parallel-scan cells, in one run.

    .venv/bin/python benchmarks/long_sequences.py                    # T = 256, 1024, 4096 at B=16, I=H=256
    .venv/bin/python benchmarks/long_sequences.py --quick            # tiny smoke run (seconds)
    .venv/bin/python benchmarks/long_sequences.py --T 4096 --repeats 5 --json /tmp/long.json
    .venv/bin/python benchmarks/long_sequences.py --variants lstm,lstm:cudnn,mingru,torch:lstm   # a GPU check

For each sequence length T it builds every variant on the same float32 inputs ``(B, T, I)`` and
times one training step: the value and gradient of ``mean(ys**2)`` with respect to the parameters
and the inputs (as inside a model, where the layer below needs ``dL/dx``), one single-layer,
unidirectional layer of width H. Variants are timed round-robin (each round runs every variant
once, so load from other processes hits all alike) after compiling and one warm-up call; the table
gives the median over rounds as tokens per second (``B*T`` per step) and each one's ratio to the
GRU's. Memory is XLA's account of the compiled step (``memory_analysis()``): ``temp``, the scratch
the step allocates (where the saved activations live), and ``peak``, an upper bound on what it
holds at once: inputs + outputs + scratch, less the buffers it reuses.

Variants:

* ``gru``, ``lstm``: :func:`seqjax.unroll`'s default path (the LSTM's fused loop, the GRU's
  ``lax.scan``); ``gru+remat``: the GRU with ``remat=--remat`` (checkpoint every k steps);
* ``mingru:M``, ``minlstm:M`` for M in sequential, chunked, associative (:mod:`seqjax.scan`);
  ``mingru`` alone is ``scan="auto"``, what this backend picks;
* ``mingru-floor``: what minGRU cannot avoid, timed in two parts and added: its input projection,
  gate elementwise work and loss with the recurrence replaced by one elementwise op (forward and
  backward), plus the bare elementwise recurrence over arrays of the same shape, forward and
  backward (:func:`seqjax.scan.linear_scan`, sequential);
* ``lstm:cudnn``: the LSTM through cuDNN (:mod:`seqjax.cudnn`; CUDA GPUs only);
* ``torch:lstm``, ``torch:gru``: ``torch.nn.LSTM`` / ``GRU`` (cuDNN on a CUDA device), if torch
  is installed; peak memory from ``torch.cuda.max_memory_allocated`` on a GPU, not shown on a CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import seqjax  # noqa: E402
from benchmarks.machine import header, load_average, load_warning  # noqa: E402
from seqjax import cudnn  # noqa: E402
from seqjax.scan import METHODS, linear_scan  # noqa: E402

DEFAULT_VARIANTS = ("gru", "lstm", "gru+remat", *(f"{c}:{m}" for c in ("mingru", "minlstm") for m in METHODS),
                    "mingru-floor")
MiB = 1 << 20


# ------------------------------------------------------------------ variants
# Each builder returns (step, memory): step() runs one training step and waits for it; memory is
# {"peak": bytes, "temp": bytes} or None.


def _compiled(loss, params, xs):
    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    compiled = step.lower(params, xs).compile()
    m = compiled.memory_analysis()
    memory = None if m is None else {"peak": _peak(m), "temp": int(m.temp_size_in_bytes)}
    jax.block_until_ready(compiled(params, xs))
    return (lambda: jax.block_until_ready(compiled(params, xs))), memory


def _peak(m) -> int:
    """Everything the compiled step holds at once, at most: its inputs, outputs and scratch (less the
    buffers it reuses for outputs). XLA:CPU's own ``peak_memory_in_bytes`` does not count the scratch."""
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)


def _inputs(B, T, I):
    return jax.random.normal(jax.random.PRNGKey(1), (B, T, I), jnp.float32)


def _seqjax(name, B, T, I, H, remat):
    base, _, method = name.partition(":")
    if base == "gru+remat":
        cell, kw = seqjax.gru, {"remat": remat}
    else:
        cell, kw = seqjax.make_cell(base, scan=method or None), {}
    params = cell.init(jax.random.PRNGKey(0), I, H)
    return _compiled(lambda p, x: jnp.mean(seqjax.unroll(cell, p, x, **kw)[1] ** 2), params, _inputs(B, T, I))


def _cudnn_lstm(B, T, I, H):
    stack = seqjax.Stack("lstm", cudnn=True)
    params = stack.init(jax.random.PRNGKey(0), I, H)
    return _compiled(lambda p, x: jnp.mean(stack(p, x)[1] ** 2), params, _inputs(B, T, I))


def _floor(B, T, I, H):
    """The two parts of minGRU's floor, each compiled; one step runs both."""
    cell = seqjax.mingru
    params = cell.init(jax.random.PRNGKey(0), I, H)

    def no_recurrence(p, x):  # projection, gates, loss; the recurrence replaced by one elementwise op
        a, b = cell.coefficients(p, cell.project_input(p, x))
        return jnp.mean((a + b) ** 2)

    proj, m1 = _compiled(no_recurrence, params, _inputs(B, T, I))
    k = jax.random.split(jax.random.PRNGKey(2), 2)
    a = jax.nn.sigmoid(jax.random.normal(k[0], (T, B, H)))
    b = jax.random.normal(k[1], (T, B, H))
    h0 = jnp.zeros((B, H))
    bare = jax.jit(jax.value_and_grad(lambda a, b: jnp.mean(linear_scan(a, b, h0, method="sequential") ** 2), (0, 1)))
    bare = bare.lower(a, b).compile()
    jax.block_until_ready(bare(a, b))
    m2 = bare.memory_analysis()
    parts = {"projection": proj, "scan": lambda: jax.block_until_ready(bare(a, b))}
    memory = None if m1 is None else {"peak": max(m1["peak"], _peak(m2)),
                                      "temp": max(m1["temp"], int(m2.temp_size_in_bytes))}
    return parts, memory


def _torch(cell_name, B, T, I, H):
    import torch

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    mod = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell_name](I, H, batch_first=True).to(dev)
    x = torch.randn(B, T, I, device=dev, requires_grad=True)

    def step():
        mod.zero_grad(set_to_none=True)
        x.grad = None
        loss = mod(x)[0].pow(2).mean()
        loss.backward()
        if dev == "cuda":
            torch.cuda.synchronize()
        return loss.item()

    memory = None
    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
        step()
        memory = {"peak": int(torch.cuda.max_memory_allocated()), "temp": None}
    step()
    return step, memory


def build(name, B, T, I, H, remat):
    if name == "mingru-floor":
        return _floor(B, T, I, H)
    if name == "lstm:cudnn":
        return _cudnn_lstm(B, T, I, H)
    if name.startswith("torch:"):
        return _torch(name.split(":", 1)[1], B, T, I, H)
    return _seqjax(name, B, T, I, H, remat)


def available(name) -> str | None:
    """Why a variant cannot run here (None if it can)."""
    if name == "lstm:cudnn" and not cudnn.available():
        return f"needs a CUDA GPU (backend: {jax.default_backend()})"
    if name.startswith("torch:"):
        try:
            import torch  # noqa: F401
        except ImportError:
            return "torch is not installed"
    return None


# ------------------------------------------------------------------ timing


def time_round_robin(steps: dict, repeats: int) -> dict:
    """Median seconds per step for every variant; a dict of parts counts as their sum."""
    flat = {}
    for name, s in steps.items():
        for part, f in (s.items() if isinstance(s, dict) else [(None, s)]):
            flat[(name, part)] = f
    times = {k: [] for k in flat}
    for _ in range(repeats):
        for k, f in flat.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    out = {}
    for (name, part), ts in times.items():
        med = statistics.median(ts)
        entry = out.setdefault(name, {"seconds": 0.0, "parts": {}})
        entry["seconds"] += med
        if part is not None:
            entry["parts"][part] = med
    return out


def _fmt_mib(b):
    return "-" if b is None else f"{b / MiB:,.1f}"


def run(Ts, B, I, H, variants, repeats, remat):
    results = []
    for T in Ts:
        steps, memory, skipped = {}, {}, {}
        for name in variants:
            why = available(name)
            if why:
                skipped[name] = why
                continue
            steps[name], memory[name] = build(name, B, T, I, H, remat)
        timed = time_round_robin(steps, repeats)
        ref = timed.get("gru", {}).get("seconds")
        floor = timed.get("mingru-floor", {}).get("seconds")
        print(f"\n## T = {T}   (B={B}, I={I}, H={H}; median of {repeats} rounds; remat k={remat})")
        print(f"{'variant':22s} {'s/step':>8s} {'ktok/s':>9s} {'x GRU':>7s} {'x floor':>8s} {'peak MiB':>9s} "
              f"{'temp MiB':>9s}")
        for name in variants:
            if name in skipped:
                print(f"{name:22s} skipped: {skipped[name]}")
                continue
            s = timed[name]["seconds"]
            mem = memory[name] or {}
            row = {"T": T, "B": B, "I": I, "H": H, "variant": name, "seconds": s, "tokens_per_s": B * T / s,
                   "x_gru": None if not ref else ref / s, "x_floor": None if not floor else s / floor,
                   "peak_bytes": mem.get("peak"), "temp_bytes": mem.get("temp"), "parts": timed[name]["parts"]}
            results.append(row)
            xg = "-" if row["x_gru"] is None else f"{row['x_gru']:.2f}"
            xf = "-" if row["x_floor"] is None or not name.startswith("mingru") else f"{row['x_floor']:.2f}"
            print(f"{name:22s} {s:8.3f} {B * T / s / 1e3:9.1f} {xg:>7s} {xf:>8s} {_fmt_mib(mem.get('peak')):>9s} "
                  f"{_fmt_mib(mem.get('temp')):>9s}")
            if row["parts"]:
                print(f"{'':22s} parts: " + ", ".join(f"{k} {v:.3f} s" for k, v in row["parts"].items()))
        sys.stdout.flush()
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--T", default="256,1024,4096", help="comma list of sequence lengths")
    ap.add_argument("--B", type=int, default=16, help="batch size")
    ap.add_argument("--I", type=int, default=256, help="input features")
    ap.add_argument("--H", type=int, default=256, help="hidden units")
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help="comma list (see the module docstring)")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds")
    ap.add_argument("--remat", type=int, default=64, help="steps per checkpoint for gru+remat")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run: T=64, B=2, I=H=16, 2 rounds")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    try:
        Ts = [int(t) for t in args.T.split(",")]
    except ValueError:
        ap.error(f"--T expects a comma list of integers, got {args.T!r}")
    B, I, H, repeats = args.B, args.I, args.H, args.repeats
    if args.quick:
        Ts, B, I, H, repeats = [64], 2, 16, 16, 2
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    known = {*DEFAULT_VARIANTS, "mingru", "minlstm", "rglru", "lstm:cudnn", "torch:lstm", "torch:gru",
             *(f"rglru:{m}" for m in METHODS)}
    bad = [v for v in variants if v not in known]
    if bad:
        ap.error(f"unknown variant(s) {', '.join(bad)}; expected some of {', '.join(sorted(known))}")
    if min(Ts) < 1 or min(B, I, H, repeats) < 1:
        ap.error("--T, --B, --I, --H and --repeats must be positive")
    devices = ", ".join(str(d) for d in jax.devices())
    print(header(f"jax {jax.__version__}, backend {jax.default_backend()} ({devices})"))
    start = load_average()
    results = run(Ts, B, I, H, variants, repeats, args.remat)
    warn = load_warning(start, load_average())
    if warn:
        print(warn)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": header(), "rows": results}, indent=1))


if __name__ == "__main__":
    main()
