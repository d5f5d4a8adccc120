"""The source articles' claims, measured: ``./launch.sh claims [--quick]`` regenerates docs/claims.md.

    ./launch.sh claims                      # every study, then docs/claims.md and docs/claims/*.png
    ./launch.sh claims --quick --out /tmp/c --root /tmp/c/runs   # the same pipeline on tiny settings
    python -m experiments.claims --parallel 2 --seeds 3          # the options: --help

Each claim is stated as the articles state it, measured (figures over seeds, each with the
command that reproduces it) and judged: confirmed, qualified or refuted, by a rule written in
experiments/claim_sections.py and printed beside the verdict, computed from the numbers. Nothing in docs/claims.md
is written by hand.

The measurements are sweeps (:mod:`seqjax.sweep`, its Python API) of the experiments, kept under
``--root`` (default ``runs/claims``): a rerun skips every finished run, so an interrupted
generation resumes where it stopped, and the document can be rewritten from finished sweeps in
seconds. Step times come from ``benchmarks/rnn_throughput.py`` and from the runs' own
``metrics.jsonl``. The figures are also written, with the sweep configuration each was read
from, to ``claims.json`` beside the document.

This driver lives with the experiments, not in the ``seqjax`` library: it runs every experiment
and knows the articles, and nothing a researcher imports should depend on either.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import signal
import sys
import time

from experiments.claim_sections import (
    Claim,
    Comparison,
    Context,
    Scale,
    claim_bidirectional,
    claim_choice,
    claim_clipping,
    claim_gradients,
    claim_memory,
    claim_params,
    claim_speed,
    equal_hidden,
    plural,
    run_benchmark,
)
from seqjax import sweep as sw
from seqjax.sweep.spec import REPO

# ----------------------------------------------------------------------------- how big each study is


def _full() -> Scale:
    from experiments.memory.sweeps import clipping, lags

    memory = dict(experiment="memory", config="default", metric="test_skill", mode="max", lstm_hidden=64)
    comparisons = (
        Comparison("memory: adding, lag 200", overrides={"data.lag": 200}, long_range=True, **memory),
        Comparison("memory: copy, lag 50", overrides={"data.task": "copy", "data.lag": 50}, long_range=True,
                   **memory),
        Comparison("chargen: 1 layer, 64-character windows", "chargen", None,
                   {"model.num_layers": 1, "data.seq_len": 64, "data.eval_windows": 128, "sample.every": 0,
                    "train.steps": 400, "train.eval_every": 200, "train.checkpoint_every": 200},
                   "val_loss", "min", False, 128),
        Comparison("sentiment: generated reviews (bidirectional)", "sentiment", None, {}, "test_loss", "min",
                   False, 32),
        Comparison("seq2seq: spell 1-3 digit numbers", "seq2seq", "tiny", {}, "val_loss", "min", False, 32),
        Comparison("timeseries: Mackey-Glass, 1 step", "timeseries", "tiny", {}, "val_loss", "min", False, 16),
    )
    return Scale("full", 3, "default", {}, dict(lags.LAGS), clipping.get_sweep(), 5, {}, comparisons,
                 ("--frameworks", "seqjax", "--modes", "train", "--repeats", "10"), 1.5)


def _quick() -> Scale:
    memory_set = {"model.hidden": 8, "train.steps": 30, "train.log_every": 10, "train.eval_every": 30,
                  "train.checkpoint_every": 30, "data.val_size": 32, "data.test_size": 32, "eval.batch_size": 32}
    clip = {"model.cell": "rnn", "data.lag": 8, "train.optimizer": "sgd", "train.momentum": 0.9,
            "train.learning_rate": 0.1}
    memory = dict(experiment="memory", config="tiny", metric="test_skill", mode="max", lstm_hidden=8)
    comparisons = (
        Comparison("memory: adding, lag 8", overrides={**memory_set, "data.lag": 8}, long_range=True, **memory),
        Comparison("chargen: tiny", "chargen", "tiny", {"train.steps": 10, "train.eval_every": 10}, "val_loss", "min",
                   False, 16),
    )
    return Scale("quick", 1, "tiny", memory_set, {"adding": (4, 8)},
                 sw.product(sw.fixed(clip), sw.sweep("train.clip_norm", [0.0, 5.0])), 1,
                 {**memory_set, "data.lag": 2, "data.tag_len": 10, "data.num_symbols": 4}, comparisons,
                 ("--frameworks", "seqjax", "--modes", "train", "--quick"), 1.5)


# ----------------------------------------------------------------------------- the studies


def run_studies(ctx: Context) -> dict:
    from experiments.memory.sweeps import lags as lag_sweep

    sc = ctx.scale
    base = sw.fixed(sc.memory_set)
    studies = {"lags": ctx.study("lags", "memory", sw.product(base, lag_sweep.grid(sc.lags)), sc.memory_config,
                                 sc.seeds, "lags")}
    bi_runs = sw.product(sw.fixed(sc.bidir_set), sw.sweep("model.bidirectional", [False, True]))
    studies["bidirectional"] = ctx.study("bidirectional", "memory", bi_runs, "tagging", sc.seeds, "bidirectional")
    studies["clipping"] = ctx.study("clipping", "memory", sw.product(base, sc.clip_runs), sc.memory_config,
                                    sc.clip_seeds, "clipping")
    comparisons = []
    for i, comp in enumerate(sc.comparisons):
        gru_hidden, lstm_params, gru_params = equal_hidden(comp)
        runs = sw.chain(sw.fixed({**comp.overrides, "model.cell": "lstm", "model.hidden": comp.lstm_hidden}),
                        sw.fixed({**comp.overrides, "model.cell": "gru", "model.hidden": gru_hidden}))
        result = ctx.study(f"equal_params-{i}-{comp.experiment}", comp.experiment, runs, comp.config, sc.seeds)
        comparisons.append((comp, result, {"gru_hidden": gru_hidden, "lstm_params": lstm_params,
                                           "gru_params": gru_params}))
    studies["comparisons"] = comparisons
    studies["bench"] = run_benchmark(ctx)
    return studies


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def render(ctx: Context, claims: list[Claim], meta: dict) -> str:
    lines = [
        "# The source articles' claims, measured",
        "",
        "Generated by `./launch.sh claims` (`experiments/claims.py`) from sweeps of this repository's experiments; "
        "do not edit by hand. Each claim is given as the articles state it, as measured (mean ± sample std over "
        "seeds, with the command), and with a verdict computed by the rule printed under it.",
        "",
        f"This file: the `{ctx.scale.name}` settings, {plural(meta['seeds'], 'seed')}, on {meta['cpu']} "
        f"({meta['cores']} cores), jax {meta['jax']}. " + cost(meta),
        "",
        "| # | claim | verdict |",
        "|---|---|---|",
        *(f"| {i} | [{c.title}](#{i}-{_anchor(c.title)}) | **{c.verdict}** |" for i, c in enumerate(claims, 1)),
        "",
    ]
    for i, c in enumerate(claims, 1):
        lines += [f"## {i}. {c.title}", "", f"**As the articles state it.** {c.stated}", "", "**As measured.** "
                  + c.measured[0], *c.measured[1:], "", f"**Verdict: {c.verdict}.** {c.why[0].upper()}{c.why[1:]}",
                  "", f"*Rule:* {c.rule}", ""]
    return "\n".join(lines)


def cost(meta: dict) -> str:
    """What generating the file cost, from the sweeps' records and the sessions that ran them."""
    minutes = lambda s: f"{s / 60:.1f} min" if s is not None else "(not recorded)"  # noqa: E731
    load = meta["load"]
    return (f"**Cost:** the studies' runs occupied {minutes(meta['busy_s'])} of wall time ({meta['parallel']} at a "
            f"time; the union of each study's run intervals, from its sweep records), within "
            f"{minutes(meta['session_s'])} of study sessions; the throughput benchmark took "
            f"{minutes(meta['bench_s'])}, and the invocation that wrote this file {minutes(meta['wall_s'])} (a rerun "
            "skips every finished run and redraws; a failed run, such as a diverged clipping run, is tried again)."
            + (f" The machine is shared: load average {load[0]:.1f}-{load[1]:.1f} at the studies' starts and ends."
               if load else ""))


def _anchor(title: str) -> str:
    return "".join(ch for ch in title.lower().replace(" ", "-") if ch.isalnum() or ch == "-")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="./launch.sh claims", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny settings: the same pipeline in about a minute")
    p.add_argument("--out", help="where claims.md (and claims/*.png, claims.json) go (default: docs)")
    p.add_argument("--root", default=os.path.join("runs", "claims"), help="where the sweeps live")
    p.add_argument("--parallel", type=int, default=2, help="runs at a time (default 2)")
    p.add_argument("--seeds", type=int, help="seeds per configuration (default: 3; --quick: 1)")
    args = p.parse_args(argv)
    if args.parallel < 1 or (args.seeds is not None and args.seeds < 1):
        p.error("--parallel and --seeds need a count >= 1")
    scale = _quick() if args.quick else _full()
    if args.seeds:
        scale = dataclasses.replace(scale, seeds=args.seeds, clip_seeds=max(args.seeds, scale.clip_seeds))
    out = args.out or os.path.join(REPO, "docs")
    os.makedirs(out, exist_ok=True)
    # one compilation cache for every study: the same small programs recur across sweeps
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.abspath(os.path.join(args.root, "jax_cache")))
    ctx = Context(scale, args.root, out, args.parallel, sys.stdout)
    start = time.time()
    previous = signal.signal(signal.SIGTERM, _interrupt) if _main_thread() else None
    try:
        studies = run_studies(ctx)
    except sw.SweepError as e:
        print(f"claims: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"claims: stopped; the finished runs stay in {args.root}, and the same command goes on from there",
              file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    claims = [claim_params(ctx, studies["lags"]), claim_speed(ctx, studies["bench"], studies["lags"]),
              claim_memory(ctx, studies["lags"]), claim_gradients(ctx, studies["lags"]),
              claim_bidirectional(ctx, studies["bidirectional"]), claim_clipping(ctx, studies["clipping"]),
              claim_choice(ctx, studies["comparisons"])]
    import jax

    sessions = ctx.sessions()
    loads = [x for s in sessions for x in s["load"]]
    meta = {"cpu": cpu_model(), "cores": os.cpu_count(), "jax": jax.__version__, "seeds": scale.seeds,
            "scale": scale.name, "parallel": ctx.parallel, "wall_s": time.time() - start,
            "busy_s": ctx.busy_seconds, "bench_s": studies["bench"].get("elapsed_s"),
            "session_s": sum(s["seconds"] for s in sessions), "load": [min(loads), max(loads)] if loads else None}
    path = os.path.join(out, "claims.md")
    with open(path + ".tmp", "w") as f:
        f.write(render(ctx, claims, meta))
    os.replace(path + ".tmp", path)
    with open(os.path.join(out, "claims.json"), "w") as f:
        json.dump({"meta": meta, "claims": [{"key": c.key, "title": c.title, "verdict": c.verdict, "why": c.why,
                                             "figures": c.figures} for c in claims],
                   "figures": ctx.figures}, f, indent=1)
    for c in claims:
        print(f"{c.title}: {c.verdict}", flush=True)
    print(f"claims: wrote {path} in {meta['wall_s']:.0f} s", flush=True)
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
