"""A sweep root on disk, and the status of each run in it.

    ROOT/sweep.json          the plan: experiment, preset, primary metric, every run's name and overrides
    ROOT/<run name>/         each run's workdir (config.json, metrics.jsonl, checkpoints, final.json, ...)
    ROOT/logs/<name>.log     a local run's stdout and stderr
    ROOT/logs/<name>.json    how its last local launch ended: status, exit code, error line, command, time
    ROOT/logs/lock           held by the local sweep running in ROOT (one at a time)
    ROOT/jax_cache/          the JAX compilation cache that local runs share
    ROOT/results.csv, results.md, summary.json, curves/      written by :func:`seqjax.sweep.aggregate`

A run is *finished* when its workdir holds ``final.json``, *failed* when its last local launch
exited non-zero, *incomplete* when its workdir exists otherwise (interrupted, or still running on
a cluster) and *pending* when it has no workdir yet.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

from seqjax.sweep.spec import Plan, SweepError

MANIFEST = "sweep.json"
LOGS = "logs"
JAX_CACHE = "jax_cache"
FINAL = "final.json"


def _write_json(path: str, data) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=1)
    os.replace(path + ".tmp", path)


def read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def read_manifest(root: str) -> dict:
    manifest = read_json(os.path.join(root, MANIFEST))
    if not isinstance(manifest, dict) or "runs" not in manifest:
        raise SweepError(f"{root}: no sweep here ({MANIFEST} missing or unreadable)")
    return manifest


def prepare(plan: Plan, root: str) -> None:
    """Creates ``root`` with the plan's ``sweep.json``, or checks that the one there is the same sweep.

    Raises SweepError naming the difference if ``root`` holds another sweep, or holds files but no
    sweep at all.
    """
    path = os.path.join(root, MANIFEST)
    if os.path.exists(path):
        old = read_manifest(root)
        lines = difference({k: old.get(k) for k in ("experiment", "config", "runs")}, plan.identity())
        if lines:
            raise SweepError(f"--root {root} holds another sweep ({len(old['runs'])} runs); it differs in "
                             f"{'; '.join(lines)}. Pick another --root, or delete that one")
        return
    if os.path.isdir(root) and os.listdir(root):
        raise SweepError(f"--root {root} is not empty and holds no {MANIFEST}; pick a new or empty directory")
    os.makedirs(os.path.join(root, LOGS), exist_ok=True)
    _write_json(path, {**plan.identity(), "primary_metric": plan.primary_metric, "mode": plan.mode})


def _values_by_key(runs: list[dict]) -> dict[str, list[str]]:
    values: dict[str, dict] = defaultdict(dict)
    for r in runs:
        for k, v in r["overrides"].items():
            values[k][v] = None
    return {k: list(v) for k, v in values.items()}


def difference(old: dict, new: dict) -> list[str]:
    """What changed between two sweep identities, as ``key: was A, now B`` phrases."""
    lines = [f"{k}: was {old.get(k)!r}, now {new.get(k)!r}" for k in ("experiment", "config")
             if old.get(k) != new.get(k)]
    was, now = _values_by_key(old["runs"]), _values_by_key(new["runs"])
    for key in dict.fromkeys([*was, *now]):
        if key not in was:
            lines.append(f"{key}: not set there, now {','.join(now[key])}")
        elif key not in now:
            lines.append(f"{key}: was {','.join(was[key])}, not set now")
        elif sorted(was[key]) != sorted(now[key]):
            lines.append(f"{key}: was {','.join(was[key])}, now {','.join(now[key])}")
    if not lines:
        old_names = {r["name"]: r["overrides"] for r in old["runs"]}
        new_names = {r["name"]: r["overrides"] for r in new["runs"]}
        if old_names != new_names:
            gone = [n for n in old_names if n not in new_names or old_names[n] != new_names.get(n)]
            added = [n for n in new_names if n not in old_names or new_names[n] != old_names.get(n)]
            lines.append(f"the combinations of the same values: only there {', '.join(gone[:3]) or '-'}; "
                         f"only here {', '.join(added[:3]) or '-'}")
    return lines


# ----------------------------------------------------------------------------- per-run status


def log_path(root: str, name: str) -> str:
    return os.path.join(root, LOGS, name + ".log")


def record_path(root: str, name: str) -> str:
    return os.path.join(root, LOGS, name + ".json")


def write_record(root: str, name: str, record: dict) -> None:
    os.makedirs(os.path.join(root, LOGS), exist_ok=True)
    _write_json(record_path(root, name), record)


def is_finished(root: str, name: str) -> bool:
    return os.path.isfile(os.path.join(root, name, FINAL))


def status(root: str, name: str) -> tuple[str, dict]:
    """``(finished | failed | incomplete | pending, last launch record or {})``."""
    record = read_json(record_path(root, name)) or {}
    if is_finished(root, name):
        return "finished", record
    if record.get("status") == "failed":
        return "failed", record
    return ("incomplete" if os.path.isdir(os.path.join(root, name)) else "pending"), record
