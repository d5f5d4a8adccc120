"""The seven claims of docs/claims.md: how each is measured from its sweeps, and the rule that judges it.

Each ``claim_*`` function takes the :class:`Context` and the studies it reads (the dicts of
:func:`seqjax.sweep.run`) and returns a :class:`Claim`: the claim as the articles state it, the
measured figures as Markdown (every sweep figure goes through :meth:`Context.figure`, which
records where it was read), the plots, the verdict and the rule. :mod:`experiments.claims` runs
the studies and writes the document.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import time

from seqjax import sweep as sw
from seqjax.sweep.spec import REPO, load_sweep_file, to_text
from seqjax.train.records import read_records

PASS_SKILL = 0.5  # a memory run passes when it closes more than half the gap from trivial to perfect
MARGIN = 0.05  # skill differences up to this are ties
DIVERGED_LOSS = 2.0  # x the trivial MSE: a clipping run ending above this (or non-finite) diverged


# ----------------------------------------------------------------------------- what a comparison is


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One experiment of the GRU-against-LSTM study, at equal parameter counts."""

    label: str
    experiment: str
    config: str | None
    overrides: dict
    metric: str  # a final.json metric
    mode: str  # min | max
    long_range: bool  # the articles' "strict long-range need"
    lstm_hidden: int


@dataclasses.dataclass(frozen=True)
class Scale:
    name: str
    seeds: int
    memory_config: str  # the memory preset of the lag, clipping and equal-parameter memory runs
    memory_set: dict  # overrides of every memory run
    lags: dict  # task -> lags
    clip_runs: list
    clip_seeds: int
    bidir_set: dict  # overrides of the tagging preset
    comparisons: tuple
    bench_args: tuple
    explode_gain: float  # the recurrent weights' scale that shows exploding gradients at init


# ----------------------------------------------------------------------------- the context


class Context:
    """Where the sweeps live, how they run, and every figure the document prints."""

    def __init__(self, scale: Scale, root: str, out: str, parallel: int, log):
        self.scale, self.root, self.out, self.parallel, self.log = scale, root, out, parallel, log
        self.figures: list[dict] = []  # every sweep figure printed: where it was read, and its text
        self.busy_seconds = 0.0  # wall time during which the studies had a run going, over every session

    def sessions(self) -> list[dict]:
        """Every study session that ran something, in every invocation: study, start, seconds, load."""
        path = os.path.join(self.root, self.scale.name, "sessions.jsonl")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def say(self, text: str) -> None:
        print(f"claims: {text}", file=self.log, flush=True)

    def study(self, name: str, experiment: str, runs: list[dict], config: str | None, seeds: int,
              sweep_file: str | None = None) -> dict:
        """Runs (or resumes) one sweep of ``runs`` times ``seeds`` seeds; returns :func:`seqjax.sweep.run`'s
        dict plus ``commands``, the lines that run it by hand."""
        root = os.path.join(self.root, self.scale.name, name)
        seeded = sw.product(runs, sw.sweep("seed", range(seeds)))
        self.say(f"{name}: {len(seeded)} runs of {experiment} in {root}")
        start, load = time.time(), os.getloadavg()[0]
        result = sw.run(experiment, seeded, config=config, root=root, parallel=self.parallel, out=self.log,
                        label=name)
        if result["counts"]["interrupted"]:
            raise KeyboardInterrupt
        if sum(result["counts"][k] for k in ("finished", "failed")):  # kept across invocations, for the cost
            session = {"study": name, "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start)),
                       "seconds": round(time.time() - start, 1), "load": [load, os.getloadavg()[0]],
                       "ran": result["counts"]["finished"] + result["counts"]["failed"]}
            with open(os.path.join(self.root, self.scale.name, "sessions.jsonl"), "a") as f:
                f.write(json.dumps(session) + "\n")
        self.busy_seconds += busy_seconds(root)
        return {**result, "commands": reproduce(experiment, config, runs, seeds, root, sweep_file)}

    def stat(self, result: dict, metric: str, **setting) -> dict | None:
        """The summary statistics of ``metric`` for the one configuration matching ``setting``."""
        want = {k.replace("__", "."): to_text(v) for k, v in setting.items()}
        found = [s for s in result["summary"] if all(s["setting"].get(k) == v for k, v in want.items())]
        if len(found) != 1:
            raise RuntimeError(f"{result['root']}: {len(found)} configurations match {want}, expected one")
        stat = found[0]["metrics"].get(metric)
        return None if stat is None else {**stat, "setting": found[0]["setting"], "runs": len(found[0]["runs"])}

    def figure(self, result: dict, metric: str, digits: int = 3, **setting) -> str:
        """``mean ± std`` of ``metric`` over seeds for ``setting``, recorded for claims.json."""
        stat = self.stat(result, metric, **setting)
        if stat is None:
            return "n/a"
        text = fmt(stat["mean"], stat["std"], digits)
        self.figures.append({"root": result["root"], "setting": stat["setting"], "metric": metric,
                             "mean": stat["mean"], "std": stat["std"], "n": stat["n"], "text": text})
        return text


def fmt(mean: float, std: float | None = None, digits: int = 3) -> str:
    """A figure as the document prints it: ``0.993 ± 0.004`` (std over seeds), or ``0.993``."""
    if mean is None or not math.isfinite(mean):
        return str(mean)
    text = f"{mean:.{digits}g}"
    return text if not std else f"{text} ± {std:.2g}"


def busy_seconds(root: str) -> float:
    """The wall time during which a sweep root had a run going: the union of its runs' launch intervals
    (``logs/<run>.json``: start and wall time), so resumed and parallel runs count once."""
    intervals = []
    for name in os.listdir(os.path.join(root, "logs")):
        if name.endswith(".json"):
            with open(os.path.join(root, "logs", name)) as f:
                record = json.load(f)
            begin = time.mktime(time.strptime(record["started"], "%Y-%m-%d %H:%M:%S"))
            intervals.append((begin, begin + record["wall_time_s"]))
    total, end = 0.0, -math.inf
    for begin, stop in sorted(intervals):
        total += max(0.0, stop - max(begin, end))
        end = max(end, stop)
    return total


def commands(result: dict) -> list[str]:
    """Markdown lines giving the commands of a study."""
    lines = result["commands"]
    return [f"Command: `{lines[0]}`"] if len(lines) == 1 else ["Commands:", "", *(f"- `{c}`" for c in lines), ""]


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def passes(values: list[float]) -> int:
    return sum(v > PASS_SKILL for v in values)


def tokens_per_s(workdir: str) -> float | None:
    """Median training tokens/s of a run, skipping its first log interval (which compiles)."""
    rates = [r["tokens_per_s"] for r in read_records(workdir) if "tokens_per_s" in r and "train_loss" in r]
    rates = rates[1:] or rates
    return statistics.median(rates) if rates else None


def run_rates(result: dict, **setting) -> list[float]:
    want = {k.replace("__", "."): to_text(v) for k, v in setting.items()}
    rows = [r for r in result["rows"] if r["status"] == "finished"
            and all(r["overrides"].get(k) == v for k, v in want.items())]
    return [v for v in (tokens_per_s(r["workdir"]) for r in rows) if v]


@dataclasses.dataclass
class Claim:
    key: str
    title: str
    stated: str  # as the articles state it
    measured: list[str]  # markdown: the figures, the plots and the commands
    verdict: str  # confirmed | qualified | refuted
    why: str
    rule: str
    figures: list[str] = dataclasses.field(default_factory=list)  # png files in docs/claims/


def judge(parts: list[bool]) -> str:
    """Confirmed when every part holds, refuted when none does, qualified in between."""
    if all(parts):
        return "confirmed"
    return "refuted" if not any(parts) else "qualified"


# ----------------------------------------------------------------------------- plots


def _figure(n_axes: int, width: float = 5.5):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * n_axes, 4), dpi=100)
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, n_axes, i + 1) for i in range(n_axes)]


def _save(ctx: Context, fig, name: str, title: str) -> str:
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.87, wspace=0.25)
    folder = os.path.join(ctx.out, "claims")
    os.makedirs(folder, exist_ok=True)
    fig.savefig(os.path.join(folder, name))
    return name


# ----------------------------------------------------------------------------- 1. parameter counts


def claim_params(ctx: Context, lags: dict) -> Claim:
    import jax

    from seqjax.cells import make_cell

    def count(cell: str, inputs: int, hidden: int) -> int:
        shapes = jax.eval_shape(lambda k: make_cell(cell).init(k, inputs, hidden), jax.random.PRNGKey(0))
        return sum(math.prod(s.shape) for s in jax.tree.leaves(shapes))

    sizes = [(2, 64), (64, 256), (128, 128), (10, 512)]
    rows, ratios = [], []
    for inputs, hidden in sizes:
        n = {c: count(c, inputs, hidden) for c in ("rnn", "gru", "lstm")}
        ratios += [n["gru"] / n["rnn"] / 3, n["lstm"] / n["rnn"] / 4]
        rows.append(f"| cell, I={inputs}, H={hidden} | {n['rnn']:,} | {n['gru']:,} | {n['lstm']:,} | "
                    f"{n['gru'] / n['rnn']:.3f} | {n['lstm'] / n['rnn']:.3f} |")
    task, lag = "adding", max(ctx.scale.lags.get("adding", [0]))
    model = {c: ctx.stat(lags, "num_params", data__task=task, data__lag=lag, model__cell=c) for c in ("rnn", "gru",
                                                                                                     "lstm")}
    if all(model.values()):
        m = {c: model[c]["mean"] for c in model}
        text = {c: ctx.figure(lags, "num_params", 6, data__task=task, data__lag=lag, model__cell=c) for c in m}
        rows.append(f"| memory model (adding; cell + readout) | {text['rnn']} | {text['gru']} | {text['lstm']} | "
                    f"{m['gru'] / m['rnn']:.3f} | {m['lstm'] / m['rnn']:.3f} |")
    exact = all(abs(r - 1) <= 0.02 for r in ratios)
    verdict = "confirmed" if exact else "refuted"
    why = ("at every size the GRU has exactly 3x and the LSTM exactly 4x the vanilla RNN's parameters: each has "
           "3 or 4 gate blocks of the RNN's own shapes (W_ih, W_hh, b_ih, b_hh). A whole model adds parts the cell "
           "choice does not scale (here the readout), so its ratios fall a little short of 3 and 4."
           if exact else f"the cell ratios are off 3 and 4 by up to {max(abs(r - 1) for r in ratios):.1%}")
    return Claim(
        "params", "Parameter counts", "LSTM ≈ 4× RNN and GRU ≈ 3× RNN at equal sizes.",
        ["Counted from the cells' `init` at several input sizes I and hidden sizes H, and from the trained memory "
         "models of the lag sweep (`num_params` in its results.csv; command under claim 3).", "",
         "| at | RNN | GRU | LSTM | GRU / RNN | LSTM / RNN |", "|---|---:|---:|---:|---:|---:|", *rows],
        verdict, why, "confirmed if every cell ratio is within 2% of 3 (GRU) and 4 (LSTM), else refuted.")


# ----------------------------------------------------------------------------- 2. speed


def run_benchmark(ctx: Context) -> dict:
    """``benchmarks/rnn_throughput.py``'s JSON, run once into the root (delete the file to measure again),
    with the seconds it took added as ``elapsed_s``."""
    path = os.path.join(ctx.root, ctx.scale.name, "rnn_throughput.json")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        argv = [sys.executable, os.path.join(REPO, "benchmarks", "rnn_throughput.py"), *ctx.scale.bench_args,
                "--json", path + ".tmp"]
        ctx.say("benchmark: " + " ".join(argv[1:]))
        start = time.time()
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
        ctx.log.write(proc.stdout)
        if proc.returncode:
            raise RuntimeError(f"benchmarks/rnn_throughput.py exited {proc.returncode}: {proc.stdout[-500:]}")
        with open(path + ".tmp") as f:
            bench = {**json.load(f), "elapsed_s": time.time() - start}
        with open(path + ".tmp", "w") as f:
            json.dump(bench, f)
        os.replace(path + ".tmp", path)
    with open(path) as f:
        return json.load(f)


def claim_speed(ctx: Context, bench: dict, lags: dict) -> Claim:
    cells = ("rnn", "gru", "lstm")
    rows, orders = [], []
    shapes = sorted({(r["B"], r["T"], r["I"], r["H"]) for r in bench["results"] if r["mode"] == "train"})
    for shape in shapes:
        rate = {r["cell"]: r["ktok_s"] for r in bench["results"]
                if r["mode"] == "train" and r["framework"] == "seqjax" and (r["B"], r["T"], r["I"], r["H"]) == shape}
        orders.append(sorted(rate, key=rate.get, reverse=True))
        rows.append(f"| benchmark, (B,T,I,H) = {','.join(map(str, shape))} | " + " | ".join(
            f"{rate[c]:.1f}" for c in cells) + f" | {' > '.join(orders[-1])} |")
    task, lag = "adding", max(ctx.scale.lags.get("adding", [0]))
    sweep_rates = {c: run_rates(lags, data__task=task, data__lag=lag, model__cell=c) for c in cells}
    if all(sweep_rates.values()):
        med = {c: statistics.median(v) / 1e3 for c, v in sweep_rates.items()}
        orders.append(sorted(med, key=med.get, reverse=True))
        rows.append(f"| memory runs (adding, T={lag}) | " + " | ".join(f"{med[c]:.1f}" for c in cells)
                    + f" | {' > '.join(orders[-1])} |")
    rnn_first = all(o[0] == "rnn" for o in orders)
    gru_before_lstm = all(o.index("gru") < o.index("lstm") for o in orders)
    verdict = judge([rnn_first, gru_before_lstm])
    if verdict == "qualified" and not rnn_first:
        verdict = "refuted"
    machine = bench.get("machine", {})
    why = [("the RNN is the fastest everywhere" if rnn_first else "the RNN is not the fastest everywhere")
           + "; " + ("the GRU beats the LSTM everywhere" if gru_before_lstm else
                     "the GRU is not faster than the LSTM everywhere (seqjax's RNN and LSTM have a fused backward "
                     "pass, seqjax/_fast.py, that its GRU lacks: benchmarks/README.md)")]
    return Claim(
        "speed", "Training speed", "RNN is fastest, then GRU, then LSTM.",
        [f"Training (forward and backward) throughput in thousands of tokens per second, single layer, float32, "
         f"on {machine.get('cpu', 'this CPU')} ({machine.get('cores', '?')} cores), jax {machine.get('jax', '?')}; "
         f"load average {bench.get('load_start', ['?'])[0]:.2f} at the benchmark's start. The benchmark is the "
         "median of interleaved rounds; the memory runs' figure is the median over seeds of each run's median "
         "logged tokens/s (first interval, which compiles, left out).", "",
         "| where | RNN | GRU | LSTM | order |", "|---|---:|---:|---:|---|", *rows, "",
         f"Command: `.venv/bin/python benchmarks/rnn_throughput.py {' '.join(ctx.scale.bench_args)}`; the memory "
         "runs are claim 3's."],
        verdict, "; ".join(why) + ".",
        "confirmed if, at every measured shape and in the memory runs, RNN > GRU > LSTM in tokens/s; qualified if "
        "the RNN is always fastest but GRU and LSTM swap somewhere; refuted if the RNN is not always fastest.")


# ----------------------------------------------------------------------------- 3. long-range memory


def holds(ctx: Context, lags: dict, task: str, lag: int, cell: str) -> tuple[bool, list[float]]:
    stat = ctx.stat(lags, "test_skill", data__task=task, data__lag=lag, model__cell=cell)
    values = stat["values"] if stat else []
    return 2 * passes(values) >= ctx.scale.seeds, values


def failure_lags(ctx: Context, lags: dict) -> dict:
    """task -> cell -> the smallest swept lag the cell does not hold (None: it holds every lag)."""
    out = {}
    for task, values in ctx.scale.lags.items():
        out[task] = {}
        for cell in ("rnn", "gru", "lstm"):
            failed = [lag for lag in values if not holds(ctx, lags, task, lag, cell)[0]]
            out[task][cell] = failed[0] if failed else None
    return out


def plot_lags(ctx: Context, lags: dict) -> str:
    tasks = list(ctx.scale.lags)
    fig, axes = _figure(len(tasks))
    for ax, task in zip(axes, tasks, strict=True):
        for i, cell in enumerate(("rnn", "gru", "lstm")):
            xs, mean, low, high = [], [], [], []
            for lag in ctx.scale.lags[task]:
                stat = ctx.stat(lags, "test_skill", data__task=task, data__lag=lag, model__cell=cell)
                if stat:
                    xs.append(lag)
                    mean.append(stat["mean"])
                    low.append(min(stat["values"]))
                    high.append(max(stat["values"]))
            ax.plot(xs, mean, marker="o", color=f"C{i}", label=cell)
            ax.fill_between(xs, low, high, color=f"C{i}", alpha=0.2, linewidth=0)
        ax.axhline(PASS_SKILL, color="gray", linestyle="--", linewidth=1, label=f"pass ({PASS_SKILL})")
        ax.axhline(0.0, color="black", linewidth=0.5)
        ax.set_xscale("log")
        ax.set_xlabel("lag (steps)")
        ax.set_ylabel("test skill (1 = perfect, 0 = trivial)")
        ax.set_title(task, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return _save(ctx, fig, "memory_lags.png", "test skill against lag: mean and min-max over seeds")


def claim_memory(ctx: Context, lags: dict) -> Claim:
    cells = ("rnn", "gru", "lstm")
    lines = []
    for task, values in ctx.scale.lags.items():
        raw = "test_mse" if task == "adding" else "test_accuracy"
        lines += [f"**{task}** (skill; {raw} in brackets; seeds passing):", "",
                  "| lag | " + " | ".join(cells) + " |", "|---:|" + "---|" * len(cells)]
        for lag in values:
            cells_text = []
            for cell in cells:
                ok, vals = holds(ctx, lags, task, lag, cell)
                skill = ctx.figure(lags, "test_skill", data__task=task, data__lag=lag, model__cell=cell)
                score = ctx.figure(lags, raw, data__task=task, data__lag=lag, model__cell=cell)
                cells_text.append(f"{'**' if ok else ''}{skill}{'**' if ok else ''} ({score}; "
                                  f"{passes(vals)}/{ctx.scale.seeds})")
            lines.append(f"| {lag} | " + " | ".join(cells_text) + " |")
        lines.append("")
    fails = failure_lags(ctx, lags)
    lines += ["Lag at which each cell fails (the smallest swept lag it does not hold; — if it holds them all):", "",
              "| task | " + " | ".join(cells) + " |", "|---|" + "---:|" * len(cells)]
    lines += [f"| {task} | " + " | ".join(str(f[c] or "—") for c in cells) + " |" for task, f in fails.items()]
    figure = plot_lags(ctx, lags)
    lines += ["", f"![skill against lag](claims/{figure})", "", *commands(lags)]

    def later(a, b):  # a fails later than b (None = never)
        return (a is None and b is not None) or (a is not None and b is not None and a > b)

    def mean(task, lag, cell):
        stat = ctx.stat(lags, "test_skill", data__task=task, data__lag=lag, model__cell=cell)
        return stat["mean"] if stat else float("nan")

    parts, why = {}, []
    per_task = {t: later(f["gru"], f["rnn"]) and later(f["lstm"], f["rnn"]) for t, f in fails.items()}
    parts["A"] = all(per_task.values())
    why.append("RNN fails first: " + ", ".join(
        f"{t} {'yes' if ok else 'no'} (fails at {fails[t]['rnn'] or '—'}; GRU {fails[t]['gru'] or '—'}, LSTM "
        f"{fails[t]['lstm'] or '—'})" for t, ok in per_task.items()))
    longest = {t: max(v) for t, v in ctx.scale.lags.items()}
    strongest = {t: mean(t, lag, "lstm") >= max(mean(t, lag, c) for c in cells) - MARGIN for t, lag in longest.items()}
    parts["B"] = all(strongest.values())
    why.append("LSTM strongest at the longest lag: " + ", ".join(
        f"{t} {'yes' if ok else 'no'} (lag {longest[t]}: LSTM {mean(t, longest[t], 'lstm'):.3f}, GRU "
        f"{mean(t, longest[t], 'gru'):.3f}, RNN {mean(t, longest[t], 'rnn'):.3f})" for t, ok in strongest.items()))
    points = [(t, lag) for t, v in ctx.scale.lags.items() for lag in v]
    close = sum(abs(mean(t, lag, "gru") - mean(t, lag, "lstm")) <= MARGIN for t, lag in points)
    parts["C"] = 2 * close >= len(points)
    why.append(f"GRU comparable to LSTM (within {MARGIN}) at {close} of {len(points)} (task, lag) points")
    shortest = {t: min(v) for t, v in ctx.scale.lags.items()}
    better = {t: mean(t, lag, "gru") > mean(t, lag, "lstm") + MARGIN for t, lag in shortest.items()}
    parts["D"] = all(better.values())
    why.append("GRU better at the shortest lag: " + ", ".join(
        f"{t} {'yes' if ok else 'no'} (lag {shortest[t]}: GRU {mean(t, shortest[t], 'gru'):.3f}, LSTM "
        f"{mean(t, shortest[t], 'lstm'):.3f})" for t, ok in better.items()))
    if all(parts.values()):
        verdict = "confirmed"
    elif parts["A"] or any(per_task.values()):
        verdict = "qualified"
    else:
        verdict = "refuted"
    cfg = _configured("memory", ctx.scale.memory_config, ctx.scale.memory_set)
    t, m = cfg.train, cfg.model
    intro = [
        "The memory experiment (`experiments/memory`): the adding problem (the sum of two marked numbers, the first "
        "in the first half of T = lag steps) and the copy task "
        f"({cfg.data.copy_len} symbols of {cfg.data.num_symbols}, written back `lag` steps after they were read). "
        f"Every run: {m.num_layers} layer of {m.hidden} units, the articles' initialisation (Xavier input weights, "
        f"orthogonal recurrent weights, zero biases, LSTM forget bias {m.forget_bias:g}), {t.optimizer} "
        f"{t.learning_rate:g}, gradient clipping at {t.clip_norm:g}, {t.steps} steps of {t.batch_size} sequences; "
        f"{plural(ctx.scale.seeds, 'seed')}. The score is the test **skill**, the share of the gap between the trivial "
        "baseline (adding: predicting the mean, MSE 1/6 ≈ 0.167; copy: chance) and perfect that a model closes. A "
        f"run **passes** when its skill exceeds {PASS_SKILL} (for adding, MSE below 1/12: better than knowing one "
        "of the two numbers exactly); a cell **holds** a lag when at least half its seeds pass (bold); it **fails** "
        "at the smallest swept lag it does not hold.", ""]
    return Claim(
        "memory", "Long-range memory",
        "A vanilla RNN fails on long-range dependencies where LSTM and GRU succeed. LSTM is strongest on very long "
        "ones. GRU is comparable to LSTM on most tasks, and better on short sequences.",
        intro + lines, verdict, "; ".join(why) + ".",
        "four parts: (A) on every task the RNN fails at a smaller lag than both GRU and LSTM; (B) at each task's "
        f"longest lag the LSTM's mean skill is the highest, within {MARGIN}; (C) GRU and LSTM are within {MARGIN} "
        f"at at least half the (task, lag) points; (D) at each task's shortest lag the GRU beats the LSTM by more "
        f"than {MARGIN}. Confirmed if all hold; qualified if (A) holds on at least one task; refuted otherwise.",
        [figure])


# ----------------------------------------------------------------------------- 4. vanishing gradients


def gradient_profiles(ctx: Context, lags: dict) -> dict:
    """label -> {"distance", "norm"} at initialisation and after training (adding, the longest lag, seed 0)."""
    import jax

    from experiments.memory.task import MemoryTask
    from seqjax.train import load_from_workdir

    lag = max(ctx.scale.lags["adding"])
    profiles = {"init": {}, "trained": {}}
    for cell in ("rnn", "gru", "lstm"):
        row = next(r for r in lags["rows"] if r["status"] == "finished" and r["overrides"]["model.cell"] == cell
                   and r["overrides"]["data.task"] == "adding" and r["overrides"]["data.lag"] == str(lag)
                   and r["seed"] == "0")
        run = load_from_workdir(row["workdir"], MemoryTask, which="latest")
        init = run.task.init(jax.random.PRNGKey(run.config.seed))
        with jax.enable_x64(True):  # in float32 the far end underflows to exactly 0
            wide = lambda params: jax.tree.map(lambda a: jax.numpy.asarray(a, "float64"), params)  # noqa: E731
            profiles["trained"][cell] = run.task.gradient_profile(wide(run.params))
            profiles["init"][cell] = run.task.gradient_profile(wide(init))
            if cell == "rnn":
                init["rnn"][0]["fwd"]["w_hh"] = init["rnn"][0]["fwd"]["w_hh"] * ctx.scale.explode_gain
                profiles["init"][f"rnn, W_hh x {ctx.scale.explode_gain:g}"] = run.task.gradient_profile(wide(init))
    return {"lag": lag, **profiles}


def per_step(profile: dict) -> float:
    """The geometric-mean factor by which ||dL/dh_t|| changes per step back: (far / near) ** (1 / distance)."""
    near, far, d = profile["norm"][0], profile["norm"][-1], profile["distance"][-1]
    if not (near > 0 and far > 0 and math.isfinite(far)):
        return 0.0 if far == 0 else math.inf
    return (far / near) ** (1.0 / d)


def claim_gradients(ctx: Context, lags: dict) -> Claim:
    prof = gradient_profiles(ctx, lags)
    lag = prof["lag"]
    fig, axes = _figure(2)
    rows = []
    for ax, when in zip(axes, ("init", "trained"), strict=True):
        for label, p in prof[when].items():
            cell = label.split(",")[0]
            ax.semilogy(p["distance"], p["norm"], color=f"C{('rnn', 'gru', 'lstm').index(cell)}", label=label,
                        linestyle="--" if label != cell else "-")
            rows.append(f"| {'initialisation' if when == 'init' else 'after training'} | {label} | "
                        f"{p['norm'][0]:.3g} | {p['norm'][lag // 2]:.3g} | {p['norm'][-1]:.3g} | "
                        f"{p['norm'][-1] / p['norm'][0]:.2e} | {per_step(p):.4f} |")
        ax.set_xlabel("distance from the loss (steps back from the last step)")
        ax.set_ylabel("||dL/dh_t||, mean over test sequences")
        ax.set_title("at initialisation" if when == "init" else "after training", fontsize=10)
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=8)
    figure = _save(ctx, fig, "gradients.png", f"adding problem, T = {lag}: gradient against distance from the loss")
    init = prof["init"]
    rnn, scaled = per_step(init["rnn"]), per_step(init[f"rnn, W_hh x {ctx.scale.explode_gain:g}"])
    vanish = rnn < 1.0 and init["rnn"]["norm"][-1] < 1e-2 * init["rnn"]["norm"][0]
    explode = scaled > 1.0
    gated = {c: per_step(init[c]) for c in ("gru", "lstm")}
    trained = {c: prof["trained"][c]["norm"][-1] / prof["trained"][c]["norm"][0] for c in ("rnn", "gru", "lstm")}
    verdict = judge([vanish, explode])
    why = (f"at initialisation the RNN's gradient shrinks by a factor {rnn:.4f} per step, to "
           f"{init['rnn']['norm'][-1] / init['rnn']['norm'][0]:.1e} of its size at the loss after {lag - 1} steps"
           f"{'' if vanish else ' (not below 1e-2: no clear vanishing)'}; with its recurrent weights scaled by "
           f"{ctx.scale.explode_gain:g} (eigenvalues {ctx.scale.explode_gain:g} instead of 1) it grows by "
           f"{scaled:.4f} per step{'' if explode else ' (no explosion)'}. At initialisation "
           + " and ".join(f"the {c.upper()} keeps {'more' if gated[c] > rnn else 'less'} of it than the RNN "
                          f"({gated[c]:.4f} per step)" for c in ("gru", "lstm"))
           + "; after training the far-to-near ratio is " + ", ".join(
               f"{c.upper() if c != 'rnn' else 'RNN'} {trained[c]:.1e}" for c in ("rnn", "gru", "lstm")))
    return Claim(
        "gradients", "Vanishing (and exploding) gradients",
        "With many steps, products of Jacobians with eigenvalues below 1 drive gradients towards 0; above 1, they "
        "explode.",
        [f"‖∂L/∂h_t‖ for the adding problem at T = {lag} (the loss reads the last state), against the distance "
         "T − 1 − t, the mean over 256 test sequences, in float64. Measured by adding a zero nudge δ_t to every "
         "hidden state and differentiating the loss with respect to it (`MemoryModel.hidden_grad_norms`; for one "
         "trained run: `./launch.sh memory gradients --workdir W [--init]`). \"After training\" is seed 0 of claim "
         "3's runs at this lag; \"initialisation\" is a fresh init of the same config. The per-step factor is "
         "(far / near)^(1/distance).", "",
         "| when | cell | at the loss | T/2 back | T−1 back | far / near | per step |",
         "|---|---|---:|---:|---:|---:|---:|", *rows, "", f"![gradient against distance](claims/{figure})"],
        verdict, why + ".",
        "two parts: (vanishing) at initialisation the RNN's per-step factor is below 1 and its gradient T−1 steps "
        "back is below 1% of that at the loss; (exploding) with the recurrent weights scaled so their eigenvalues "
        "exceed 1, the per-step factor is above 1. Confirmed if both hold, refuted if neither, else qualified.",
        [figure])


# ----------------------------------------------------------------------------- 5. bidirectional


def claim_bidirectional(ctx: Context, bi: dict) -> Claim:
    s = {b: ctx.stat(bi, "test_skill", model__bidirectional=b) for b in (False, True)}
    acc = {b: ctx.figure(bi, "test_accuracy", model__bidirectional=b) for b in (False, True)}
    skill = {b: ctx.figure(bi, "test_skill", model__bidirectional=b) for b in (False, True)}
    params = {b: ctx.stat(bi, "num_params", model__bidirectional=b)["mean"] for b in (False, True)}
    rates = {b: run_rates(bi, model__bidirectional=b) for b in (False, True)}
    rate = {b: statistics.median(v) if v else float("nan") for b, v in rates.items()}
    cost = rate[False] / rate[True]
    helps = s[True]["mean"] > PASS_SKILL and s[True]["mean"] > s[False]["mean"] + MARGIN
    double = 1.5 <= cost <= 2.5
    verdict = "refuted" if not helps else "confirmed" if double else "qualified"
    why = (f"bidirectional test accuracy {acc[True]} against {acc[False]} (a unidirectional model can reach at most "
           f"1/num_symbols); its training step costs {cost:.2f}x the unidirectional one's time and it has "
           f"{params[True] / params[False]:.2f}x the parameters"
           + ("" if double else f"; the time ratio {cost:.2f} is not about double (outside 1.5-2.5)"))
    return Claim(
        "bidirectional", "Bidirectional benefit",
        "Bidirectional models help where context from both sides matters, at double the cost.",
        ["Two-sided tagging (`./launch.sh memory --config tagging`): each step's tag is the pair of symbols `lag` "
         "steps before and after it, so it needs both sides. LSTM, equal hidden size per direction, "
         f"{plural(ctx.scale.seeds, 'seed')}. Cost is the median training tokens/s of the runs (logged in "
         "metrics.jsonl, first interval left out), uni over bi.", "",
         "| model | test accuracy | test skill | parameters | training ktok/s |", "|---|---:|---:|---:|---:|",
         *(f"| {'bidirectional' if b else 'unidirectional'} | {acc[b]} | {skill[b]} | {params[b]:,.0f} | "
           f"{rate[b] / 1e3:.1f} |" for b in (False, True)), "",
         *commands(bi)],
        verdict, why + ".",
        f"confirmed if the bidirectional model passes (skill > {PASS_SKILL}), beats the unidirectional one by more "
        f"than {MARGIN} skill, and its step time is 1.5-2.5x; qualified if it helps at another cost; refuted if it "
        "does not help.")


# ----------------------------------------------------------------------------- 6. clipping


def diverged(row: dict) -> bool:
    """A clipping run diverged: the trainer stopped it on a non-finite loss or gradient ("loss became inf",
    "gradient became non-finite"), or it ended with a training loss above ``DIVERGED_LOSS`` x the trivial MSE."""
    from experiments.memory.data import ADDING_BASELINE_MSE

    if row["status"] == "failed":
        return " became " in row["error"]
    loss = row["metrics"].get("train_loss")
    return row["status"] == "finished" and (loss is None or not math.isfinite(loss)
                                            or loss > DIVERGED_LOSS * ADDING_BASELINE_MSE)


def claim_clipping(ctx: Context, clip: dict) -> Claim:
    groups: dict[tuple, list[dict]] = {}
    for row in clip["rows"]:
        key = (row["overrides"]["train.learning_rate"], float(row["overrides"]["train.clip_norm"]) > 0)
        groups.setdefault(key, []).append(row)

    lag = clip["rows"][0]["overrides"]["data.lag"]
    rows, rates, nans = [], {}, {}
    for (lr, clipped), runs in sorted(groups.items()):
        done = [r for r in runs if r["status"] in ("finished", "failed")]
        nan = sum(r["status"] == "failed" and diverged(r) for r in done)
        bad = sum(diverged(r) for r in done)
        other = sum(r["status"] == "failed" and not diverged(r) for r in done)
        rates[(lr, clipped)] = bad / max(len(done) - other, 1)
        nans[(lr, clipped)] = nan
        finished = [r["metrics"]["test_mse"] for r in done if r["status"] == "finished" and "test_mse" in r["metrics"]]
        mse = fmt(statistics.fmean(finished), statistics.stdev(finished) if len(finished) > 1 else None) \
            if finished else "—"
        rows.append(f"| {lr} | {'5.0' if clipped else 'none'} | {bad}/{len(done) - other} | {nan} | {mse} |"
                    + (f" ({other} failed otherwise)" if other else ""))
    lrs = sorted({lr for lr, _ in groups})
    better = [rates[(lr, False)] > rates[(lr, True)] for lr in lrs]
    worse = [rates[(lr, True)] > rates[(lr, False)] for lr in lrs]
    if any(better) and not any(worse):
        verdict = "confirmed"
    elif any(worse) and not any(better):
        verdict = "refuted"
    else:
        verdict = "qualified"
    why = "; ".join(f"learning rate {lr}: {rates[(lr, False)]:.0%} of unclipped runs diverged ({nans[(lr, False)]} "
                    f"to a non-finite loss), {rates[(lr, True)]:.0%} of clipped ones ({nans[(lr, True)]} non-finite)"
                    for lr in lrs)
    if not any(rates.values()):
        why += "; no run diverged, so clipping had nothing to prevent"
    return Claim(
        "clipping", "Gradient clipping against explosion",
        "Gradient clipping against explosion (the demo clips the norm to 5.0).",
        [f"A vanilla tanh RNN on the adding problem at T = {lag}, plain SGD with momentum 0.9 (its step grows with the "
         f"gradient, unlike Adam's), {ctx.scale.clip_seeds} seeds per setting. A run **diverged** when its loss or "
         f"gradient became non-finite (the trainer stops it) or it ended with a training loss above {DIVERGED_LOSS:g}x "
         "the trivial MSE 1/6.", "",
         "| learning rate | clip norm | diverged | of which non-finite | test MSE of the finished runs |",
         "|---:|---|---:|---:|---:|", *rows, "", *commands(clip)],
        verdict, why + ".",
        "confirmed if at some learning rate more unclipped than clipped runs diverge and at none the reverse; refuted "
        "if only the reverse happens; qualified otherwise (including when nothing diverges).")


# ----------------------------------------------------------------------------- 7. GRU or LSTM


def _configured(experiment: str, config: str | None, overrides: dict):
    """The experiment's config (preset applied) with ``overrides`` (dotted keys) set."""
    from seqjax.sweep.spec import load_config

    cfg = load_config(experiment, config)
    for key, value in overrides.items():
        *path, last = key.split(".")
        node = cfg
        for part in path:
            node = node[part]
        node[last] = value
    return cfg


def param_counter(experiment: str, config: str | None, overrides: dict):
    """``count(model_overrides) -> int``: the parameters of the experiment's model, from ``jax.eval_shape``
    of its init (nothing is computed). The data is read once, for the metadata the model needs."""
    import jax

    from seqjax.train import Task

    data = importlib.import_module(f"experiments.{experiment}.data").load(_configured(experiment, config, overrides))
    module = importlib.import_module(f"experiments.{experiment}.task")
    task_class = next(v for v in vars(module).values() if isinstance(v, type) and issubclass(v, Task)
                      and v is not Task and v.name == experiment)

    def count(model_overrides: dict) -> int:
        cfg = _configured(experiment, config, {**overrides, **model_overrides})
        shapes = jax.eval_shape(task_class(cfg, data.metadata).init, jax.random.PRNGKey(0))
        return sum(math.prod(s.shape) for s in jax.tree.leaves(shapes))

    return count


def equal_hidden(comp: Comparison) -> tuple[int, int, int]:
    """``(GRU hidden, LSTM params, GRU params)``: the GRU width whose count is nearest the LSTM's."""
    count = param_counter(comp.experiment, comp.config, comp.overrides)
    target = count({"model.cell": "lstm", "model.hidden": comp.lstm_hidden})
    guess = round(comp.lstm_hidden * math.sqrt(4 / 3))
    counts = {h: count({"model.cell": "gru", "model.hidden": h})
              for h in range(max(1, round(guess * 0.9)), round(guess * 1.2) + 2)}
    best = min(counts, key=lambda h: abs(counts[h] - target))
    return best, target, counts[best]


def claim_choice(ctx: Context, comparisons: list[tuple[Comparison, dict, dict]]) -> Claim:
    rows, winners = [], []
    for comp, result, sizes in comparisons:
        stat = {c: ctx.stat(result, comp.metric, model__cell=c) for c in ("gru", "lstm")}
        text = {c: ctx.figure(result, comp.metric, 4, model__cell=c) for c in ("gru", "lstm")}
        if not all(stat.values()):
            winners.append((comp, "n/a"))
            rows.append(f"| {comp.label} | {comp.metric} | {text['gru']} | {text['lstm']} | n/a |")
            continue
        sign = 1 if comp.mode == "max" else -1
        gap = sign * (stat["gru"]["mean"] - stat["lstm"]["mean"])
        noise = max(stat["gru"]["std"] or 0.0, stat["lstm"]["std"] or 0.0)
        winner = "tie" if abs(gap) <= noise else "GRU" if gap > 0 else "LSTM"
        winners.append((comp, winner))
        rows.append(f"| {comp.label}{' (long range)' if comp.long_range else ''} | {comp.metric} "
                    f"({'higher' if comp.mode == 'max' else 'lower'} is better) | {text['gru']} "
                    f"(H={sizes['gru_hidden']}, {sizes['gru_params']:,}) | {text['lstm']} (H={comp.lstm_hidden}, "
                    f"{sizes['lstm_params']:,}) | {winner} |")
    general = [w for c, w in winners if not c.long_range and w != "n/a"]
    long = [w for c, w in winners if c.long_range and w != "n/a"]
    default_ok = bool(general) and 2 * sum(w in ("GRU", "tie") for w in general) >= len(general)
    long_ok = bool(long) and all(w == "LSTM" for w in long)
    verdict = judge([default_ok, long_ok])
    why = (f"the GRU wins or ties {sum(w in ('GRU', 'tie') for w in general)} of the {len(general)} general "
           f"experiments ({', '.join(general)}); on the long-range memory tasks the results are {', '.join(long)}"
           + ("" if long_ok else ", so the LSTM is not the better choice there"))
    return Claim(
        "choice", "GRU or LSTM",
        "GRU is the default starting point, and LSTM is for strict long-range needs.",
        ["GRU against LSTM in every experiment at equal parameter counts: the LSTM at the experiment's width, the "
         "GRU at the width whose parameter count is nearest (found from `jax.eval_shape` of each model's init); "
         f"{plural(ctx.scale.seeds, 'seed')}. A cell wins an experiment when its mean is better by more than the "
         "larger of the two standard deviations over seeds; otherwise it is a tie.", "",
         "| experiment | metric | GRU (hidden, params) | LSTM (hidden, params) | winner |", "|---|---|---:|---:|---|",
         *rows, "", "Commands (one line per configuration):", "",
         *(f"- {comp.label}: " + "; ".join(f"`{c}`" for c in result["commands"]) for comp, result, _ in comparisons)],
        verdict, why + ".",
        "two parts: (default) the GRU wins or ties at least half the experiments without a strict long-range need; "
        "(long range) the LSTM wins every long-range memory task. Confirmed if both hold, refuted if neither, "
        "else qualified.")


# ----------------------------------------------------------------------------- the studies


def reproduce(experiment: str, config: str | None, runs: list[dict], seeds: int, root: str,
              sweep_file: str | None = None) -> list[str]:
    """The command lines that run a study's ``runs`` (override dicts, seeds not included) by hand.

    One ``./launch.sh sweep`` line when the runs are a sweep file (plus ``--set`` overrides) or a
    full grid of their varying keys; else one ``./launch.sh <experiment>`` line per configuration."""
    preset = f" --config {config}" if config else ""
    settings = [{k: to_text(v) for k, v in d.items()} for d in runs]
    keys = list(dict.fromkeys(k for d in settings for k in d))
    constant = {k: settings[0][k] for k in keys if all(k in d and d[k] == settings[0][k] for d in settings)}
    tail = f"--seeds {seeds} --root {root}"
    if sweep_file:
        file_runs = [{k: to_text(v) for k, v in d.items()} for d in load_sweep_file(experiment, sweep_file)[0]]
        file_keys = {k for d in file_runs for k in d}
        extra = {k: v for k, v in constant.items() if k not in file_keys}
        rest = sorted(json.dumps({k: v for k, v in d.items() if k not in extra}, sort_keys=True) for d in settings)
        if rest == sorted(json.dumps(d, sort_keys=True) for d in file_runs):
            sets = "".join(f" --set {k}={v}" for k, v in extra.items())
            return [f"./launch.sh sweep {experiment}{preset} --sweep {sweep_file}{sets} {tail}"]
    varying = [k for k in keys if k not in constant]
    values = {k: list(dict.fromkeys(d.get(k) for d in settings)) for k in varying}
    grid = sorted(json.dumps(dict(zip(varying, combo, strict=True)), sort_keys=True)
                  for combo in itertools.product(*values.values()))
    if None not in sum(values.values(), []) and grid == sorted(
            json.dumps({k: d[k] for k in varying}, sort_keys=True) for d in settings):
        sets = "".join(f" --set {k}={v}" for k, v in constant.items())
        grids = "".join(f" --grid {k}={','.join(v)}" for k, v in values.items())
        return [f"./launch.sh sweep {experiment}{preset}{sets}{grids} {tail}"]
    seeds_text = ", ".join(map(str, range(seeds)))
    return [f"./launch.sh {experiment}{preset} " + " ".join(f"--config.{k}={v}" for k, v in d.items())
            + f" --config.seed=S  (S = {seeds_text})" for d in settings]


