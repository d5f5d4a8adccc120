"""chargen protocol training steps, seqjax vs PyTorch, timed side by side in one process.

    TORCH=1 ./launch.sh python benchmarks/chargen_step.py            # ratios vs torch
    ./launch.sh python benchmarks/chargen_step.py --quick            # seqjax only, seconds

The end-to-end protocol runs (README results table) take 7-11 minutes each, and on a shared
machine the speed drifts by 20% over that time, so their tokens/s are only comparable roughly.
This script times the same work in alternating rounds, so drift hits every competitor alike. Each
competitor trains on the protocol's set-up (embedding 64, 2-layer LSTM(256), batch 32 random
128-character windows, Adam 2e-3, clip-norm 5). A step includes drawing its batch:

* `seqjax`: the trainer's jitted `train_step` (`seqjax.train.state`), fed by chargen's data (`data.train[s]`);
* `seqjax[bf16]`: the same with `model.matmul_dtype=bfloat16`;
* `torch`: the loop of `benchmarks/chargen_torch_reference.py`;
* `torch[bf16]`: the same under `torch.autocast("cpu", torch.bfloat16)`;
* `seqjax+NAME` (``--variants NAME,...``): the float32 step with one lever of :data:`VARIANTS` on.

With ``--memory`` it prints the step's peak memory instead of timing it: seqjax's from XLA's
memory analysis of the compiled step (arguments + temporaries + outputs - donated aliases), and for
both libraries the growth of a fresh subprocess's peak RSS over 5 steps after 2 warm-up steps (Linux:
the peak is reset through ``/proc/self/clear_refs`` first, then read as ``VmHWM``). The RSS growth
is what a step allocates beyond what stays resident between steps (parameters, Adam state, and
whatever the allocator keeps from the warm-up steps), so it compares the two libraries' working
sets; XLA's figure is the compiled step's own total.

It prints the CPU model first (ratios differ by machine), then ktok/s per competitor (median and
best round) and each one's ratio to `torch`. A competitor that cannot run on this machine (on some
CPUs oneDNN has no bfloat16 LSTM primitive, so `torch[bf16]` fails) is skipped with the reason
printed, and the others are still timed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from functools import partial

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks.baseline import Remote  # noqa: E402
from benchmarks.machine import header, load_average, load_warning  # noqa: E402
from experiments.chargen import data as chargen_data  # noqa: E402
from experiments.chargen.configs.protocol import get_config  # noqa: E402
from experiments.chargen.task import CharGenTask  # noqa: E402
from seqjax import native  # noqa: E402
from seqjax.train.state import Placement, init_state, make_optimizer, make_train_step  # noqa: E402

VARIANTS = {  # a lever measured against the default step: its config overrides
    "wavefront": {"model.wavefront": True},  # both layers in one time loop (Stack(wavefront=True))
    "native": {"native": True},  # the LSTM loops in seqjax.native's compiled kernel (opt-in)
}


class SeqjaxStep:
    """The trainer's jitted protocol train step on chargen's data; ``overrides`` are config keys
    (``{"model.matmul_dtype": "bfloat16"}``). ``run(n)`` trains ``n`` steps, each drawing its batch."""

    def __init__(self, text_file: str, overrides: dict | None = None):
        config = get_config()
        config.data.source, config.data.text_file = ("file", text_file) if text_file else ("embedded", "")
        overrides = dict(overrides or {})
        use_native = overrides.pop("native", False)
        if use_native and not native.available():
            raise RuntimeError(f"the native kernel is not available: {native.status()['why']}")
        for key, value in overrides.items():
            section, name = key.split(".")
            config[section][name] = value
        self.config = config
        self.data = chargen_data.load(config)
        self.task = CharGenTask(config, self.data.metadata)
        optimizer = make_optimizer(config.train)
        self.placement = Placement()
        self.step_fn = jax.jit(make_train_step(self.task, optimizer), donate_argnums=(0,))
        self.state = jax.jit(partial(init_state, self.task, optimizer, batch_size=config.train.batch_size))(
            jax.random.PRNGKey(0))
        self.key, self.counter = jax.random.PRNGKey(1), 0
        # traced here: with the kernel if this competitor asks for it, else as SEQJAX_NATIVE says
        with native.enabled_as(use_native or native.enabled()):
            self.step_fn = self.step_fn.lower(self.state, self.batch(), self.key).compile()

    def batch(self):
        return self.placement.put_batch(self.data.train[self.counter])

    def run(self, n: int):
        for _ in range(n):
            self.state, _ = self.step_fn(self.state, self.batch(), self.key)
            self.counter += 1
        jax.block_until_ready(self.state)

    def compiled(self):
        """The compiled step (for its HLO and memory analysis)."""
        return self.step_fn


def seqjax_competitor(text_file: str, matmul_dtype: str):
    step = SeqjaxStep(text_file, {"model.matmul_dtype": matmul_dtype})
    return step.run, step.task.vocab.size, step.data.train_ids


def seqjax_run(text_file: str, overrides: dict):
    """``run(n)`` of a :class:`SeqjaxStep` (what a ``--baseline`` child builds from its own tree)."""
    return SeqjaxStep(text_file, overrides).run


def torch_competitor(vocab_size: int, train_ids: np.ndarray, bf16: bool):
    import torch

    from benchmarks.chargen_torch_reference import CharLSTM

    torch.manual_seed(0)
    model = CharLSTM(vocab_size)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    train = np.asarray(train_ids, np.int64)
    T, B = 128, 32

    def run(n):
        for _ in range(n):
            starts = rng.integers(0, len(train) - T, size=B)
            chunk = torch.from_numpy(train[starts[:, None] + np.arange(T + 1)[None, :]])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(chunk[:, :-1])
            loss = loss_fn(logits.float().reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()

    return run


def _mb(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def seqjax_memory(step: SeqjaxStep) -> dict:
    """XLA's memory analysis of the compiled step: bytes per kind and their peak."""
    m = step.compiled().memory_analysis()
    parts = {"arguments": m.argument_size_in_bytes, "outputs": m.output_size_in_bytes,
             "temporaries": m.temp_size_in_bytes, "aliased": m.alias_size_in_bytes}
    parts["peak"] = parts["arguments"] + parts["temporaries"] + parts["outputs"] - parts["aliased"]
    return parts


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _rss_growth(run) -> int:
    """Bytes by which 5 calls of ``run(1)`` raise this process's peak RSS over its RSS before them
    (Linux: the peak is reset first through ``/proc/self/clear_refs``)."""
    run(2)  # compile / warm up: first-call allocations are not the step's
    import gc

    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _rss_kib("VmRSS")
    for _ in range(5):
        run(1)
    return (_rss_kib("VmHWM") - before) * 1024


def _memory_child(kind: str, text_file: str, overrides: dict):
    """In a fresh process: the peak RSS growth of 5 steps of ``kind`` (seqjax or torch)."""
    step = SeqjaxStep(text_file, overrides)
    if kind == "torch":
        import torch

        torch.set_num_threads(torch.get_num_threads())
        run = torch_competitor(step.task.vocab.size, step.data.train_ids, bf16=False)
        del step
    else:
        run = step.run
    print(f"RSS_GROWTH {_rss_growth(run)}")


def _child_growth(kind: str, text_file: str, overrides: dict) -> str:
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (f"import sys; sys.path.insert(0, {root!r}); from benchmarks.chargen_step import _memory_child; "
            f"_memory_child({kind!r}, {text_file!r}, {overrides!r})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    line = [x for x in out.stdout.splitlines() if x.startswith("RSS_GROWTH")]
    if out.returncode or not line:
        return f"skipped: {(out.stderr.strip().splitlines() or ['no output'])[-1]}"
    return _mb(int(line[0].split()[1]))


def report_memory(args, variants):
    print(header(f"jax {jax.__version__}"), flush=True)
    print("\n| competitor | XLA memory analysis: peak (arguments, temporaries, outputs, aliased) | "
          "peak RSS growth over 5 steps |\n|---|---:|---:|")
    for name, overrides in [("seqjax", {})] + [(f"seqjax+{v}", VARIANTS[v]) for v in variants]:
        m = seqjax_memory(SeqjaxStep(args.text, overrides))
        detail = ", ".join(_mb(m[k]) for k in ("arguments", "temporaries", "outputs", "aliased"))
        print(f"| {name} | {_mb(m['peak'])} ({detail}) | {_child_growth('seqjax', args.text, overrides)} |", flush=True)
    if not args.no_torch:
        print(f"| torch | - | {_child_growth('torch', args.text, {})} |")


def _reason(e: BaseException) -> str:
    """The first line of an exception, for a one-line "skipped" note."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--text", default="", help="a UTF-8 text file (default: the embedded corpus)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10, help="steps per competitor per round")
    ap.add_argument("--quick", action="store_true", help="2 rounds of 2 steps")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-bf16", action="store_true", help="leave out the two bfloat16 competitors")
    ap.add_argument("--variants", default="", help=f"comma list of {', '.join(VARIANTS)}: also time the "
                    "float32 step with that lever on")
    ap.add_argument("--memory", action="store_true", help="print the step's peak memory (seqjax, the --variants, "
                    "torch) instead of timing it")
    ap.add_argument("--baseline", action="append", default=[], metavar="REV",
                    help="also time seqjax (float32) as of this git commit, side by side (repeatable)")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.steps = 2, 2
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"--variants: expected names from {', '.join(VARIANTS)}, got {', '.join(unknown)}")
    if args.memory:
        report_memory(args, variants)
        return
    builders = {}
    seqjax_run, vocab_size, train_ids = seqjax_competitor(args.text, "float32")
    builders["seqjax"] = lambda: seqjax_run
    for rev in args.baseline:
        builders[f"seqjax@{rev}"] = lambda rev=rev: Remote(rev, __file__, "seqjax_run", args.text, {})
    for v in variants:
        builders[f"seqjax+{v}"] = lambda v=v: SeqjaxStep(args.text, VARIANTS[v]).run
    if not args.no_bf16:
        builders["seqjax[bf16]"] = lambda: seqjax_competitor(args.text, "bfloat16")[0]
    versions = f"jax {jax.__version__}"
    if not args.no_torch:
        try:
            import torch

            builders["torch"] = lambda: torch_competitor(vocab_size, train_ids, bf16=False)
            if not args.no_bf16:
                builders["torch[bf16]"] = lambda: torch_competitor(vocab_size, train_ids, bf16=True)
            versions += f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
        except ImportError:
            versions += "; torch not installed (TORCH=1 adds it), so no ratios"
    load0 = load_average()
    print(header(versions), flush=True)
    competitors = {}
    for name, build in builders.items():  # build, compile and warm up; a competitor that fails is skipped
        try:
            run = build()
            run(2)
        except Exception as e:  # noqa: BLE001 - any failure of a competitor's library skips that competitor
            print(f"skipped {name}: it cannot run on this machine ({_reason(e)})", flush=True)
            continue
        competitors[name] = run
    tokens = args.steps * 32 * 128
    rates: dict[str, list[float]] = {name: [] for name in competitors}
    for _ in range(args.rounds):
        for name, run in competitors.items():
            t0 = time.perf_counter()
            took = run(args.steps)  # a --baseline competitor times itself, in its own process
            took = took if isinstance(run, Remote) else time.perf_counter() - t0
            rates[name].append(tokens / took / 1e3)
    load1 = load_average()
    base = statistics.median(rates["torch"]) if "torch" in rates else None
    print(f"\n{args.rounds} interleaved rounds of {args.steps} steps per competitor")
    print("\n| competitor | ktok/s median (best) | vs torch |\n|---|---:|---:|")
    for name, r in rates.items():
        ratio = f"{statistics.median(r) / base:.2f}x" if base else "-"
        print(f"| {name} | {statistics.median(r):.1f} ({max(r):.1f}) | {ratio} |")
    print(f"\n# load average at end: {load1:.2f}")
    warning = load_warning(load0, load1)
    if warning:
        print(warning)


if __name__ == "__main__":
    main()
