"""``python -m experiments.timeseries compare DIR [DIR ...] [--out FILE.md]``: recurrent runs against
their classical baselines, with every choice made on validation only.

Each ``DIR`` is a finished run (its ``final.json``) or a sweep root (``./launch.sh sweep
timeseries ...``, e.g. ``--sweep select``). For a sweep the configurations (runs that differ only
in their seed) are ranked by their mean validation MASE (``model_val_mase``: the MAE in original
units over the series' scale), the best is *the recurrent configuration chosen on validation*,
and its test MAE over seeds is set against the classical baseline that validation chose in the
same runs (``best_baseline``: the lowest validation MASE among persistence, seasonal naive,
AR(p), ETS, ARIMA and Theta). Test scores are only read, never used to choose.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics

from seqjax.sweep import root as root_lib
from seqjax.sweep.results import collect
from seqjax.sweep.spec import varying_keys

SELECT = "model_val_mase"


def _read(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def _model_name(workdir: str) -> str:
    saved = _read(os.path.join(workdir, "test_metrics.json")) or {}
    return saved.get("model", os.path.basename(os.path.abspath(workdir)))


def _stat(values: list[float]) -> str:
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not values:
        return "–"
    mean = statistics.fmean(values)
    return f"{mean:.4g}" + (f" ± {statistics.stdev(values):.2g}" if len(values) > 1 else "")


def _mean(values) -> float:
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return statistics.fmean(values) if values else math.inf


def groups_of(directory: str) -> list[dict]:
    """``[{name, runs: [final.json dicts], workdirs}]``: a sweep's configurations, or one run."""
    if os.path.isfile(os.path.join(directory, root_lib.MANIFEST)):
        _, rows = collect(directory)
        groups: dict[str, dict] = {}
        for row in rows:
            if row["status"] != "finished":
                continue
            setting = {k: v for k, v in row["overrides"].items() if k != "seed"}
            key = json.dumps(setting, sort_keys=True)
            g = groups.setdefault(key, {"setting": setting, "runs": [], "workdirs": []})
            g["runs"].append(row["metrics"])
            g["workdirs"].append(row["workdir"])
        if not groups:
            raise ValueError(f"{directory}: the sweep has no finished run yet")
        varying = varying_keys([g["setting"] for g in groups.values()])
        for g in groups.values():
            g["name"] = ", ".join(f"{k}={g['setting'][k]}" for k in varying if k in g["setting"]) or "all"
        return list(groups.values())
    final = _read(os.path.join(directory, "final.json"))
    if final is None:
        raise ValueError(f"{directory}: neither a finished run (no final.json) nor a sweep root (no "
                         f"{root_lib.MANIFEST})")
    if "best_baseline" not in final and "persistence_mae" not in final:
        raise ValueError(f"{directory}: final.json has no baseline scores; is it a timeseries run?")
    return [{"name": _model_name(directory), "runs": [final], "workdirs": [directory]}]


def compare(directories: list[str]) -> tuple[str, dict]:
    """The Markdown table and verdict of :mod:`compare`, and the chosen configuration's figures."""
    groups = []
    for d in directories:
        found = groups_of(d)
        if len(directories) > 1:  # the same setting can appear in two sweeps: say which one
            for g in found:
                g["name"] = f"{os.path.basename(os.path.normpath(d))}: {g['name']}"
        groups += found
    for g in groups:
        g["select"] = _mean(r.get(SELECT) for r in g["runs"])
    ranked = sorted(groups, key=lambda g: g["select"])
    lines = ["| configuration | seeds | val MASE | test MAE | test RMSE | test MASE | test CRPS | "
             "baseline chosen on val | its test MAE | MAE / baseline |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for g in ranked:
        runs = g["runs"]
        chosen = sorted({r.get("best_baseline", "?") for r in runs})
        lines.append("| " + " | ".join([
            g["name"], str(len(runs)), _stat([r.get(SELECT) for r in runs]), _stat([r.get("test_mae") for r in runs]),
            _stat([r.get("test_rmse") for r in runs]), _stat([r.get("test_mase") for r in runs]),
            _stat([r.get("test_crps") for r in runs]), "/".join(chosen),
            _stat([r.get("best_baseline_test_mae") for r in runs]),
            _stat([r.get("test_mae_vs_best_baseline") for r in runs])]) + " |")
    best = ranked[0]
    model_mae = [r.get("test_mae") for r in best["runs"]]
    base_mae = [r.get("best_baseline_test_mae") for r in best["runs"]]
    m, b = _mean(model_mae), _mean(base_mae)
    chosen = sorted({r.get("best_baseline", "?") for r in best["runs"]})
    verdict = (f"Chosen on validation (lowest mean val MASE): **{best['name']}**, test MAE {_stat(model_mae)} over "
               f"{len(best['runs'])} seed(s), against {'/'.join(chosen)} (the classical baseline chosen on "
               f"validation) at {b:.4g}: {m / b:.3f}x, "
               + ("**the target is met** (<= 1)." if m <= b else "**short of the target** (> 1)."))
    facts = {"chosen": best["name"], "test_mae_mean": m, "baseline": "/".join(chosen), "baseline_test_mae": b,
             "ratio": m / b, "seeds": len(best["runs"]), "per_seed_test_mae": model_mae}
    return "\n".join(lines) + "\n\n" + verdict + "\n", facts


def main(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(prog="python -m experiments.timeseries compare",
                                     description="Recurrent runs against their classical baselines, chosen on "
                                                 "validation only.")
    parser.add_argument("dirs", nargs="+", help="finished run workdirs or sweep roots")
    parser.add_argument("--out", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    try:
        text, _ = compare(args.dirs)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
    except (ValueError, OSError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    print(text, end="")
    return text
