"""Where the chargen protocol train step spends its time: a `jax.profiler` trace, accounted per part.

    ./launch.sh python benchmarks/profile_chargen_step.py --text shakespeare.txt
    ./launch.sh python benchmarks/profile_chargen_step.py --quick               # embedded corpus, 2 steps
    ./launch.sh python benchmarks/profile_chargen_step.py --set model.matmul_dtype=bfloat16

It builds the step that `benchmarks/chargen_step.py` times (the trainer's jitted `train_step` on the
protocol preset: embedding 64, 2-layer LSTM(256), head, cross-entropy, Adam, clip-norm 5, batch 32 x
128), runs it untraced for the wall time per step, then traces a few steps with `jax.profiler` (no
Python tracer, so the host side is not slowed). XLA:CPU records one trace event per executed
operation (thunk), named after its HLO instruction. The script reads the compiled HLO, where every
instruction carries the Python stack that made it, and files each event's own time (its duration
less that of the events nested in it) under

* a **part** of the step, from the Python stack: `embedding` (`CharLM.embed`), `recurrent` (the
  `Stack` of LSTM layers), `head` (`CharLM.head`), `loss` (cross-entropy and its metrics),
  `optimizer` (gradient norm, clipping, Adam, the update and the finite-check of the new state);
  instructions that XLA inserted (copies, buffer initialisations) take the part of the instruction
  that uses them; forward and backward (`transpose(jvp)`) apart;
* a **kind** of work, from the instruction: `matmul` (dots, YNNPACK fusions), `copy/update` (copies,
  slices, dynamic slices and updates, concatenations, broadcasts, transposes, gathers and scatters),
  `elementwise` (other fusions), `reduction`, and `loop control` (a while loop's own time: its
  condition and the moves between iterations).

Host work is timed apart, untraced: drawing a batch from the data pipeline and putting it on the
device. The step's operations run on XLA's threads (two here), sometimes two at once, so their sum
can exceed the wall time; `idle` is the wall time in which no operation ran.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import statistics
import sys
import tempfile
import time

import jax

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks.chargen_step import SeqjaxStep  # noqa: E402
from benchmarks.machine import header  # noqa: E402

PARTS = ("embedding", "recurrent", "head", "loss", "optimizer", "other")
KINDS = ("matmul", "copy/update", "elementwise", "reduction", "loop control")
_MOVES = {"copy", "slice", "dynamic-slice", "dynamic-update-slice", "concatenate", "broadcast", "transpose",
          "pad", "reshape", "bitcast", "gather", "scatter", "iota", "reverse", "copy-start", "copy-done"}
_CONTROL = {"while", "conditional", "call"}
_PLUMBING = {"parameter", "constant", "tuple", "get-tuple-element", "bitcast"}


# ------------------------------------------------------------------ the compiled HLO


def _opcode(rhs: str) -> str:
    """The opcode of an instruction's right-hand side ``TYPE opcode(operands), ...``."""
    i = 0
    if rhs.startswith("("):  # a tuple type: skip to its matching parenthesis
        depth = 0
        for i, ch in enumerate(rhs):  # noqa: B007 - i is read after the loop
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0:
                break
        i += 1
    m = re.match(r"\s*[^\s(]*\s+([\w-]+)\(", rhs[i:]) if i == 0 else re.match(r"\s*([\w-]+)\(", rhs[i:])
    return m.group(1) if m else "?"


class Hlo:
    """Instructions of a compiled module: opcode, called computations, operands, Python stack."""

    def __init__(self, text: str):
        self.files, self.functions, self.locations, self.frames = {}, {}, {}, {}
        self.instr: dict[str, dict] = {}
        self.computations: dict[str, list[str]] = {}
        self.roots: dict[str, str] = {}
        section, comp = None, None
        for line in text.splitlines():
            if line in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
                section = line
                continue
            if section and line and line[0].isdigit():
                key, _, rest = line.partition(" ")
                if section == "FileNames":
                    self.files[int(key)] = rest.strip('"')
                elif section == "FunctionNames":
                    self.functions[int(key)] = rest.strip('"')
                elif section == "FileLocations":
                    self.locations[int(key)] = (int(re.search(r"file_name_id=(\d+)", rest).group(1)),
                                                int(re.search(r"function_name_id=(\d+)", rest).group(1)))
                else:  # the printed parent id is one more than the parent's id (0: no parent)
                    self.frames[int(key)] = (int(re.search(r"file_location_id=(\d+)", rest).group(1)),
                                             int(re.search(r"parent_frame_id=(\d+)", rest).group(1)) - 1)
                continue
            section = None if line and not line[0].isdigit() else section
            m = re.match(r"^(?:ENTRY )?%([\w.-]+) .*\{$", line)
            if m and not line.startswith(" "):
                comp = m.group(1)
                self.computations[comp] = []
                continue
            m = re.match(r"^\s+(ROOT )?%([\w.-]+) = (.*)$", line)
            if m and comp:
                name, rhs = m.group(2), m.group(3)
                frame = re.search(r"stack_frame_id=(\d+)", rhs)
                op_name = re.search(r'op_name="([^"]*)"', rhs)
                body = rhs.split(", metadata=")[0]
                self.instr[name] = {
                    "opcode": _opcode(rhs), "comp": comp,
                    "calls": re.findall(r"(?:calls|body|condition|to_apply)=%([\w.-]+)", rhs),
                    "operands": re.findall(r"%([\w.-]+)", body.split("(", 1)[1] if "(" in body else ""),
                    "frame": int(frame.group(1)) if frame else None,
                    "op_name": op_name.group(1) if op_name else "",
                }
                self.computations[comp].append(name)
                if m.group(1):
                    self.roots[comp] = name
        self.users = collections.defaultdict(list)
        for name, ins in self.instr.items():
            for o in ins["operands"]:
                self.users[o].append(name)

    def stack(self, frame: int | None) -> list[tuple[str, str]]:
        """``(function, file)`` from the innermost frame outwards."""
        out, seen = [], set()
        while frame and frame in self.frames and frame not in seen:
            seen.add(frame)
            loc, frame = self.frames[frame]
            file_id, func_id = self.locations.get(loc, (0, 0))
            out.append((self.functions.get(func_id, "?"), self.files.get(file_id, "?")))
        return out

    def _ops_inside(self, comp: str) -> set[str]:
        ops = set()
        for n in self.computations.get(comp, []):
            ins = self.instr[n]
            ops.add(ins["opcode"])
            for c in ins["calls"]:
                ops |= self._ops_inside(c)
        return ops

    def kind(self, name: str) -> str:
        ins = self.instr[name]
        op = ins["opcode"]
        if op in _CONTROL:
            return "loop control"
        if op in ("dot", "convolution") or "ynn_fusion" in name:
            return "matmul"
        if op in ("fusion", "custom-call"):
            inside = set().union(*(self._ops_inside(c) for c in ins["calls"])) if ins["calls"] else set()
            if inside & {"dot", "convolution"}:
                return "matmul"
            root = self.instr.get(self.roots.get(ins["calls"][0], ""), {}).get("opcode") if ins["calls"] else None
            if root in ("dynamic-update-slice", "scatter") or not (inside - _MOVES - _PLUMBING):
                return "copy/update"
            if "reduce" in inside:
                return "reduction"
            return "elementwise"
        if op in _MOVES:
            return "copy/update"
        if op in ("reduce", "reduce-window", "sort"):
            return "reduction"
        return "elementwise"

    def part(self, name: str, depth: int = 0) -> tuple[str, str]:
        """``(part, direction)`` of an instruction; XLA's own instructions take their user's."""
        ins = self.instr[name]
        funcs = self.stack(ins["frame"])
        if not funcs and depth < 6:
            for user in self.users.get(name, []):
                part = self.part(user, depth + 1)
                if part[0] != "other":
                    return part
            # a while loop's buffers are fed through a tuple; the loop itself has the frame
            if ins["comp"] and depth < 6:
                for caller, c in self.instr.items():
                    if ins["comp"] in c["calls"] and caller != name:
                        return self.part(caller, depth + 1)
        direction = "backward" if "transpose(" in ins["op_name"] else "forward"
        if not funcs:
            return "other", direction
        joined = " ".join(f for f, _ in funcs)
        if "CharLM.embed" in joined:
            return "embedding", direction
        if "CharLM.head" in joined:
            return "head", direction
        if "Stack.__call__" in joined or "_run_stack" in joined:
            return "recurrent", direction
        if "CharGenTask.loss" in joined:
            return "loss", direction
        if any("optax" in file for _, file in funcs) or "train_step" in joined:
            return "optimizer", "update"
        return "other", direction


# ------------------------------------------------------------------ the trace


def trace_events(step: SeqjaxStep, n: int, log_dir: str) -> list[dict]:
    options = jax.profiler.ProfileOptions()
    options.python_tracer_level = 0
    with jax.profiler.trace(log_dir, create_perfetto_trace=True, profiler_options=options):
        step.run(n)
    files = sorted(glob.glob(os.path.join(log_dir, "**", "*perfetto_trace.json.gz"), recursive=True))
    if not files:
        raise RuntimeError(f"jax.profiler wrote no perfetto trace under {log_dir}")
    with gzip.open(files[-1]) as f:
        return json.load(f)["traceEvents"]


def own_times(events: list[dict], names: set[str]) -> tuple[dict[str, float], float, float]:
    """Per instruction, its events' durations less nested instructions' (µs, summed over the trace);
    with the span from the first to the last event and the time in which some event ran."""
    per_thread = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and e.get("name") in names:
            per_thread[(e["pid"], e["tid"])].append((float(e["ts"]), float(e.get("dur", 0.0)), e["name"]))
    own = collections.defaultdict(float)
    intervals = []
    for evs in per_thread.values():
        evs.sort(key=lambda x: (x[0], -x[1]))
        stack: list[tuple[float, str]] = []  # (end, name) of the events enclosing this one
        for ts, dur, name in evs:
            while stack and ts >= stack[-1][0] - 1e-3:
                stack.pop()
            if stack:  # nested: not the parent's own time
                own[stack[-1][1]] -= dur
            else:
                intervals.append((ts, ts + dur))
            own[name] += dur
            stack.append((ts + dur, name))
    intervals.sort()
    busy, cur = 0.0, None
    for a, b in intervals:
        if cur is None or a > cur[1]:
            if cur:
                busy += cur[1] - cur[0]
            cur = [a, b]
        else:
            cur[1] = max(cur[1], b)
    if cur:
        busy += cur[1] - cur[0]
    span = (intervals[-1][1] - intervals[0][0]) if intervals else 0.0
    return dict(own), span, busy


# ------------------------------------------------------------------ report


def host_times(step: SeqjaxStep, n: int) -> tuple[float, float]:
    """Median ms of drawing one batch, and of putting one on the device (untraced)."""
    draw, put = [], []
    for i in range(n):
        t0 = time.perf_counter()
        batch = step.data.train[step.counter + i]
        t1 = time.perf_counter()
        jax.block_until_ready(step.placement.put_batch(batch))
        t2 = time.perf_counter()
        draw.append(t1 - t0)
        put.append(t2 - t1)
    return statistics.median(draw) * 1e3, statistics.median(put) * 1e3


def parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--text", default="", help="a UTF-8 text file (default: the embedded corpus)")
    ap.add_argument("--steps", type=int, default=5, help="traced steps (and 3x as many untraced)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override, e.g. model.matmul_dtype=bfloat16 (repeatable)")
    ap.add_argument("--quick", action="store_true", help="2 traced steps")
    ap.add_argument("--top", type=int, default=12, help="also list the N instructions with the most own time")
    ap.add_argument("--trace-dir", default="", help="keep the trace here (default: a temporary folder)")
    ap.add_argument("--json", default="", help="also write the breakdown to this file")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps = 2
    overrides = {}
    for item in args.set:
        key, eq, value = item.partition("=")
        if not eq or key.count(".") != 1:
            ap.error(f"--set takes SECTION.KEY=VALUE (e.g. model.matmul_dtype=bfloat16), got {item!r}")
        overrides[key] = parse_value(value)
    print(header(f"jax {jax.__version__} ({jax.default_backend()})" +
                 (f"; overrides {overrides}" if overrides else "")), flush=True)
    step = SeqjaxStep(args.text, overrides)
    hlo = Hlo(step.compiled().as_text())
    step.run(3)  # compile and warm up
    n_wall = 3 * args.steps
    t0 = time.perf_counter()
    step.run(n_wall)
    wall_ms = (time.perf_counter() - t0) / n_wall * 1e3
    draw_ms, put_ms = host_times(step, 2 * args.steps)

    with tempfile.TemporaryDirectory() as tmp:
        events = trace_events(step, args.steps, args.trace_dir or tmp)
    own, span, busy = own_times(events, set(hlo.instr))
    n = args.steps
    table = collections.defaultdict(float)
    by_instr = []
    for name, us in own.items():
        part, direction = hlo.part(name)
        kind = hlo.kind(name)
        ms = us / n / 1e3
        table[(part, direction, kind)] += ms
        by_instr.append((ms, name, part, direction, kind))
    traced_ms, busy_ms = span / n / 1e3, busy / n / 1e3
    total_ops = sum(table.values())

    rows = sorted({(p, d) for p, d, _ in table}, key=lambda pd: (PARTS.index(pd[0]), pd[1]))
    print(f"\nwall time per step, untraced: {wall_ms:.1f} ms ({n_wall} steps); traced: {traced_ms:.1f} ms, of "
          f"which some operation ran during {busy_ms:.1f} ms (idle {traced_ms - busy_ms:.1f} ms)")
    print(f"operations' own time summed over XLA's threads: {total_ops:.1f} ms per step\n")
    print("| part | pass | " + " | ".join(KINDS) + " | total |")
    print("|---|---|" + "---:|" * (len(KINDS) + 1))
    for p, d in rows:
        vals = [table.get((p, d, k), 0.0) for k in KINDS]
        print(f"| {p} | {d} | " + " | ".join(f"{v:.1f}" for v in vals) + f" | {sum(vals):.1f} |")
    col = [sum(table.get((p, d, k), 0.0) for p, d in rows) for k in KINDS]
    print("| **all** | | " + " | ".join(f"**{v:.1f}**" for v in col) + f" | **{total_ops:.1f}** |")
    print(f"\nhost, untraced, per step: drawing the batch {draw_ms:.2f} ms, putting it on the device "
          f"{put_ms:.2f} ms (the step is dispatched asynchronously, so the next batch is drawn while it runs)")
    if args.top:
        print(f"\nthe {args.top} instructions with the most own time (ms per step):")
        for ms, name, part, direction, kind in sorted(by_instr, reverse=True)[: args.top]:
            print(f"  {ms:7.2f}  {name:40s} {part}/{direction}/{kind}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"wall_ms": wall_ms, "traced_ms": traced_ms, "busy_ms": busy_ms, "ops_ms": total_ops,
                       "draw_ms": draw_ms, "put_ms": put_ms, "overrides": overrides,
                       "table": [{"part": p, "pass": d, "kind": k, "ms": v} for (p, d, k), v in table.items()]},
                      f, indent=1)


if __name__ == "__main__":
    main()
