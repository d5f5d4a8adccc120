"""Aggregating a sweep root, at any time and on a partial sweep too.

* ``results.csv``: one row per run: name, status, every override, seed, every final metric,
  parameter count, wall time, workdir and the error of a failed run.
* ``summary.json``: per configuration (the runs that differ only in their seed), for each numeric
  final metric, ``mean``, ``std`` (sample standard deviation, n - 1 in the denominator; null for
  one seed), ``n`` and the per-seed ``values``. Sorted by the primary metric (the experiment's
  ``train.best_metric`` / ``train.best_mode``), best first; configurations with nothing finished last.
* ``results.md``: that table as ``mean ± std`` (std over seeds), with the failed runs listed.
* ``curves/<configuration>.png``: train loss and the primary metric against step from each run's
  ``metrics.jsonl``, the mean over seeds with a min-max band; ``curves/all.png`` overlays every
  configuration's mean.
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics

from seqjax.sweep import root as root_lib
from seqjax.sweep.spec import SEED, name_runs, varying_keys

BOOKKEEPING = ("steps", "final_eval_step")  # final.json entries that are no result
LAST = ("num_params", "wall_time_s")


def count_params(workdir: str) -> int | None:
    """Parameters of the latest checkpoint, from Orbax's array metadata (no arrays are read)."""
    folder = os.path.join(workdir, "checkpoints")
    try:
        steps = sorted((int(d) for d in os.listdir(folder) if d.isdigit()), reverse=True)
    except OSError:
        return None
    for step in steps:
        meta = root_lib.read_json(os.path.join(folder, str(step), "params", "_METADATA"))
        try:
            shapes = [v["value_metadata"]["write_shape"] for v in meta["tree_metadata"].values()]
            return sum(math.prod(s) for s in shapes)
        except (TypeError, KeyError):
            continue
    return None


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def collect(root: str) -> tuple[dict, list[dict]]:
    """The manifest and one row per run: name, status, overrides, seed, metrics, error, workdir."""
    manifest = root_lib.read_manifest(root)
    rows = []
    for run in manifest["runs"]:
        name, workdir = run["name"], os.path.join(os.path.abspath(root), run["name"])
        status, record = root_lib.status(root, name)
        final = root_lib.read_json(os.path.join(workdir, root_lib.FINAL)) if status == "finished" else None
        metrics = dict(final or {})
        if status == "finished" and metrics.get("num_params") is None:
            metrics["num_params"] = count_params(workdir)
        if metrics.get("wall_time_s") is None and record.get("wall_time_s") is not None:
            metrics["wall_time_s"] = record["wall_time_s"]
        rows.append({"run": name, "status": status, "overrides": run["overrides"],
                     "seed": run["overrides"].get(SEED), "metrics": metrics,
                     "error": record.get("error", "") if status == "failed" else "", "workdir": workdir})
    return manifest, rows


def summarize(manifest: dict, rows: list[dict]) -> list[dict]:
    """One entry per configuration: its overrides (no seed), run counts and metric statistics."""
    groups: dict[str, dict] = {}
    for row in rows:
        setting = {k: v for k, v in row["overrides"].items() if k != SEED}
        key = json.dumps(setting, sort_keys=True)
        group = groups.setdefault(key, {"setting": setting, "runs": [], "finished": 0, "failed": 0, "metrics": {}})
        group["runs"].append(row["run"])
        group["finished"] += row["status"] == "finished"
        group["failed"] += row["status"] == "failed"
        if row["status"] != "finished":
            continue
        for name, value in row["metrics"].items():
            if _number(value) and name not in BOOKKEEPING:
                group["metrics"].setdefault(name, []).append(value)
    primary, sign = manifest.get("primary_metric", "val_loss"), 1 if manifest.get("mode", "min") == "min" else -1
    summary = []
    for group, label in zip(groups.values(), name_runs([g["setting"] for g in groups.values()]), strict=True):
        stats = {}
        for metric, values in group["metrics"].items():
            std = statistics.stdev(values) if len(values) > 1 else None
            stats[metric] = {"mean": statistics.fmean(values), "std": std, "n": len(values), "values": values}
        summary.append({"name": label, "setting": group["setting"], "runs": group["runs"],
                        "finished": group["finished"], "failed": group["failed"], "metrics": stats})
    ranked = sorted((s for s in summary if primary in s["metrics"]), key=lambda s: sign * s["metrics"][primary]["mean"])
    return ranked + [s for s in summary if primary not in s["metrics"]]


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def write_csv(path: str, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r["overrides"] if k != SEED))
    metrics = list(dict.fromkeys(m for r in rows for m in r["metrics"] if m not in LAST))
    with open(path + ".tmp", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "status", *keys, SEED, *metrics, *LAST, "workdir", "error"])
        for r in rows:
            m = r["metrics"]
            writer.writerow([r["run"], r["status"], *(r["overrides"].get(k, "") for k in keys), r["seed"] or "",
                             *(m.get(k, "") for k in metrics), *(m.get(k, "") for k in LAST), r["workdir"], r["error"]])
    os.replace(path + ".tmp", path)


def write_markdown(path: str, manifest: dict, rows: list[dict], summary: list[dict]) -> None:
    primary, mode = manifest.get("primary_metric", "val_loss"), manifest.get("mode", "min")
    counts = {s: sum(r["status"] == s for r in rows) for s in ("finished", "failed", "incomplete", "pending")}
    varying = varying_keys([s["setting"] for s in summary])
    fixed = {k: v for k, v in (summary[0]["setting"] if summary else {}).items() if k not in varying}
    finished = [r for r in rows if r["status"] == "finished"]
    names = list(dict.fromkeys(n for s in summary for n in s["metrics"]))
    constant = {n: finished[0]["metrics"][n] for n in names
                if len(finished) > 1 and len({json.dumps(r["metrics"].get(n)) for r in finished}) == 1}
    names = [n for n in names if n not in constant]
    names = ([primary] if primary in names else []) + [n for n in names if n != primary and n not in LAST] + \
        [n for n in LAST if n in names]
    preset = f" (--config {manifest['config']})" if manifest.get("config") else ""
    better = "lower" if mode == "min" else "higher"
    lines = [f"# Sweep of {manifest['experiment']}{preset}", "",
             f"{len(rows)} runs: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v) + ".",
             f"Mean ± std over seeds (sample std), sorted by {primary} ({better} is better).", ""]
    if fixed or constant:
        same = [f"{k}={v}" for k, v in fixed.items()] + [f"{k}={_format(v)}" for k, v in constant.items()]
        lines += ["Same in every run: " + ", ".join(same) + ".", ""]
    header = [*(varying or ["configuration"]), "seeds", *names]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in summary:
        cells = [s["setting"].get(k, "") for k in varying] or ["all"]
        cells.append(f"{s['finished']}/{len(s['runs'])}" + (f" ({s['failed']} failed)" if s["failed"] else ""))
        for n in names:
            stat = s["metrics"].get(n)
            cells.append("" if stat is None else _format(stat["mean"]) +
                         ("" if not stat["std"] else f" ± {stat['std']:.2g}"))
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        lines += ["", "Failed runs (their logs are in logs/):", ""]
        lines += [f"- `{r['run']}`: {r['error'] or '(no error line)'}" for r in failed]
    lines += ["", "Learning curves: `curves/all.png` and one `curves/<configuration>.png` each.", ""]
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines))
    os.replace(path + ".tmp", path)


def aggregate(root: str, plots: bool = True) -> dict:
    """Writes results.csv, results.md, summary.json (and the curves) in ``root``; returns
    ``{"manifest", "rows", "summary"}``. Safe to call while runs are going on."""
    manifest, rows = collect(root)
    summary = summarize(manifest, rows)
    write_csv(os.path.join(root, "results.csv"), rows)
    with open(os.path.join(root, "summary.json.tmp"), "w") as f:
        json.dump({"primary_metric": manifest.get("primary_metric"), "mode": manifest.get("mode"),
                   "configurations": summary}, f, indent=1)
    os.replace(os.path.join(root, "summary.json.tmp"), os.path.join(root, "summary.json"))
    write_markdown(os.path.join(root, "results.md"), manifest, rows, summary)
    if plots:
        from seqjax.sweep.curves import plot_curves

        plot_curves(root, manifest, summary)
    return {"manifest": manifest, "rows": rows, "summary": summary}
