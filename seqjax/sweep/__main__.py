"""``./launch.sh sweep`` (``python -m seqjax.sweep``): declare, run, emit or aggregate a sweep.

    ./launch.sh sweep EXPERIMENT [--config PRESET_OR_FILE] [--sweep NAME_OR_FILE] [--grid KEY=V1,V2,...]...
                      [--set KEY=VALUE]... [--seeds N] [--root DIR] [--parallel N] [--emit | --aggregate]
    ./launch.sh sweep --aggregate --root DIR

Exit status: 0 when every run finished, 1 when some failed, 2 on bad input (nothing run or written),
130 when stopped.
"""

from __future__ import annotations

import argparse
import os
import sys

from seqjax.sweep import root as root_lib
from seqjax.sweep.results import aggregate
from seqjax.sweep.runner import run_local
from seqjax.sweep.spec import SEED, SweepError, fixed, load_sweep_file, plan, product, sweep


def split_values(text: str) -> list[str]:
    """``rnn,lstm`` -> ['rnn', 'lstm']; commas inside brackets or quotes stay (``(1,2),(3,4)``)."""
    values, depth, quote, current = [], 0, None, ""
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            values.append(current.strip())
            current = ""
            continue
        current += ch
    values.append(current.strip())
    return values


def parse_assignment(flag: str, text: str, many: bool) -> tuple[str, list[str]]:
    """``--grid KEY=V1,V2`` / ``--set KEY=VALUE`` -> (key, values); empty values are errors."""
    key, eq, rest = text.partition("=")
    key = key.strip()
    if not eq or not key:
        raise SweepError(f"{flag} {text}: expected KEY=VALUE{',VALUE...' if many else ''}")
    values = split_values(rest) if many else [rest]
    if any(v == "" for v in values):
        raise SweepError(f"{flag} {text}: empty value for {key}")
    return key, values


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        raise SweepError(message)


def _parser() -> argparse.ArgumentParser:
    import seqjax.sweep

    p = _Parser(prog="./launch.sh sweep", description=seqjax.sweep.__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", nargs="?", help="experiments/<EXPERIMENT> (not needed with --aggregate --root)")
    p.add_argument("--config", help="the experiment's preset (e.g. tiny) or a .py file with get_config()")
    p.add_argument("--sweep", help="experiments/<EXPERIMENT>/sweeps/<NAME>.py, or a .py file, with get_sweep()")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="one axis of the grid (repeatable; the grid is their product)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="the same override in every run")
    p.add_argument("--seeds", type=int, help="N seeds per configuration: --config.seed=0..N-1")
    p.add_argument("--root", help="the sweep's folder (default runs/sweeps/<experiment>-<keys>-<hash>)")
    p.add_argument("--parallel", type=int, default=1, help="runs at a time on this machine (default 1)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--emit", action="store_true", help="print one command per run instead of running them")
    mode.add_argument("--aggregate", action="store_true", help="only (re)write results.csv/.md and the curves")
    return p


def build(args) -> tuple[list[dict], str | None]:
    """The override dicts of the command line, and a label for the default root."""
    parts, label, origin = [], None, {}

    def claim(key: str, flag: str) -> None:
        if key in origin:
            raise SweepError(f"{key} is given twice ({origin[key]} and {flag})")
        origin[key] = flag

    fixed_overrides = {}
    for text in args.set:
        key, (value,) = parse_assignment("--set", text, many=False)
        claim(key, "--set")
        fixed_overrides[key] = value
    if args.sweep:
        file_runs, label = load_sweep_file(args.experiment, args.sweep)
        for key in dict.fromkeys(k for d in file_runs for k in d):
            claim(key, f"--sweep {args.sweep}")
        parts.append(file_runs)
    for text in args.grid:
        key, values = parse_assignment("--grid", text, many=True)
        claim(key, "--grid")
        parts.append(sweep(key, values))
    if args.seeds is not None:
        if args.seeds < 1:
            raise SweepError(f"--seeds {args.seeds}: expected a count >= 1")
        claim(SEED, "--seeds")
        parts.append(sweep(SEED, range(args.seeds)))
    return product(fixed(fixed_overrides), *parts), label


def main(argv: list[str] | None = None) -> int:
    out = sys.stdout
    try:
        args = _parser().parse_args(argv)
        if args.parallel < 1:
            raise SweepError(f"--parallel {args.parallel}: expected a count >= 1")
        if args.aggregate and args.root and not args.experiment:
            results = aggregate(args.root)
            _show(args.root, results, out)
            return 0
        if not args.experiment:
            raise SweepError("expected an experiment (or --aggregate --root DIR)")
        runs, label = build(args)
        the_plan = plan(args.experiment, runs, args.config, label)
        root = args.root or the_plan.default_root()
        if args.aggregate:
            root_lib.read_manifest(root)
            _show(root, aggregate(root), out)
            return 0
        root_lib.prepare(the_plan, root)
    except SweepError as e:
        print(f"sweep: error: {e}", file=sys.stderr)
        return 2
    if args.emit:
        for run in the_plan.runs:
            print(the_plan.command(root, run), file=out)
        print(f"sweep: {len(the_plan.runs)} commands for {os.path.abspath(root)}; after they ran: "
              f"./launch.sh sweep --aggregate --root {root}", file=sys.stderr)
        return 0
    try:
        counts = run_local(the_plan, root, args.parallel, out)
    except SweepError as e:
        print(f"sweep: error: {e}", file=sys.stderr)
        return 2
    results = aggregate(root)
    _show(root, results, out)
    if counts["interrupted"]:
        return 130
    return 1 if counts["failed"] else 0


def _show(root: str, results: dict, out) -> None:
    with open(os.path.join(root, "results.md")) as f:
        table = [line for line in f.read().splitlines() if line.startswith("|")]
    print("\n".join(table), file=out)
    print(f"results: {os.path.join(os.path.abspath(root), 'results.md')} (and results.csv, summary.json, curves/)",
          file=out, flush=True)


if __name__ == "__main__":
    sys.exit(main())
