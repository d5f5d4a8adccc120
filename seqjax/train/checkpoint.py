"""Orbax checkpoints in ``WORKDIR/checkpoints``: the latest few plus the best, config and metadata beside.

Each step directory holds five items (``ocp.args.Composite``):

* ``params``   the parameter pytree (restored alone by :func:`load_from_workdir`),
* ``train``    step, optimizer state and task state (what a resume needs besides params),
* ``config``   the run's config as JSON, ``metadata`` the task's JSON metadata (e.g. vocabulary),
* ``integrity`` a SHA-256 digest of every array of ``params`` and ``train`` (its bytes, dtype
  and shape), keyed by its path in the tree.

Every restore recomputes the digests and checks that the arrays are finite. A step whose
content differs from what was saved (a bit flip, a partial overwrite), holds a non-finite
value, or cannot be read at all is treated alike: a resume moves it aside and takes the
previous step, :func:`load_from_workdir` warns and takes the next candidate. The digest is
computed in Orbax's background save thread, so a save blocks the loop no longer for it.

One ``CheckpointManager`` keeps the ``max_to_keep`` latest steps and, through Orbax's
``AnyPreservationPolicy(LatestN, BestN)``, the best step by ``train.best_metric``, whose value is
stored as the step's Orbax metrics; Orbax's ``best_step()`` names it (a step without the metric,
or with a non-finite value, ranks worst; with no step ranked, the latest is the best).

Saves are asynchronous; Orbax writes into a temporary directory and renames it when complete, so
a killed run leaves no step directory half-written (leftover temporaries are removed when the
manager is next opened).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import warnings
from typing import Any, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from seqjax.train import config as config_lib

ITEMS = ("params", "train", "config", "metadata", "integrity")
DIGESTED = ("params", "train")  # the items whose arrays the integrity record covers


class ResumeError(ValueError):
    """The workdir's checkpoint cannot be resumed with this config (it names the differing fields)."""


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), "checkpoints")


# ----------------------------------------------------------------------------- integrity


def _key_name(key: Any) -> str:
    for attr in ("key", "name", "idx"):  # DictKey, GetAttrKey, SequenceKey / FlattenedIndexKey
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def _path_name(path) -> str:
    return "/".join(_key_name(k) for k in path)


def _host_array(x: Any) -> np.ndarray:
    """A leaf as a host array; of a replicated array spread over processes, the local copy."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        x = x.addressable_data(0)
    array = np.asarray(x)
    return array if array.flags.c_contiguous else array.copy(order="C")  # (ascontiguousarray makes 0-d 1-d)


def tree_digest(tree: Any) -> tuple[dict, str | None]:
    """``({path: [dtype, shape, sha256 of the bytes]}, first path holding a non-finite value)``.

    A path joins the keys to a leaf with '/' (``opt_state/1/0/mu/embed``), so that a tree and the
    same tree restored as plain dicts and lists (NamedTuples become dicts) have the same paths."""
    digest, non_finite = {}, None
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = _path_name(path)
        array = _host_array(leaf)
        digest[name] = [str(array.dtype), list(array.shape),
                        hashlib.sha256(array.reshape(-1).view(np.uint8)).hexdigest()]
        if non_finite is None and np.issubdtype(array.dtype, np.inexact) and not np.all(np.isfinite(array)):
            non_finite = name
    return digest, non_finite


def content_problem(restored: dict, record: dict | None, items=DIGESTED) -> str | None:
    """Why the restored ``items`` must not be used (differing from ``record``, the step's integrity
    record, or holding a non-finite value), or None. Without a record only finiteness is checked."""
    for item in items:
        digest, non_finite = tree_digest(restored[item])
        if record is not None:
            saved = record.get(item, {})
            for path in sorted(set(saved) | set(digest)):
                if saved.get(path) != digest.get(path):
                    return f"its {item} differ from what was saved, at {path or '(root)'}: the files were altered"
        if non_finite is not None:
            return f"it holds non-finite values, in {item} at {non_finite}"
    return None


class IntegrityHandler(ocp.handlers.JsonCheckpointHandler):
    """Writes the integrity record of a save as JSON; the digests are computed in the background
    save thread, from the very arrays that the ``params`` and ``train`` items write."""

    async def _save_fn(self, x, directory):
        if jax.process_index() == 0:
            x = {"algorithm": "sha256", **{item: tree_digest(tree)[0] for item, tree in x.items()}}
        await super()._save_fn(x, directory)


@ocp.args.register_with_handler(IntegrityHandler, for_save=True)
@dataclasses.dataclass
class IntegritySave(ocp.args.CheckpointArgs):
    item: dict  # {"params": tree, "train": tree}


@ocp.args.register_with_handler(IntegrityHandler, for_restore=True)
@dataclasses.dataclass
class IntegrityRestore(ocp.args.CheckpointArgs):
    item: Any = None


def has_integrity(workdir: str, step: int) -> bool:
    """Whether the step was saved with an integrity record (seqjax saves one since it checks them)."""
    return os.path.isdir(os.path.join(checkpoint_dir(workdir), str(step), "integrity"))


def _metric_fn(name: str, mode: str):
    worst = math.inf if mode == "min" else -math.inf

    def value(metrics: Any) -> float:
        if not isinstance(metrics, dict) or not isinstance(metrics.get(name), (int, float)):
            return worst
        value = float(metrics[name])
        return value if math.isfinite(value) else worst

    return value


def open_manager(
    workdir: str,
    max_to_keep: int = 3,
    best_metric: str = "val_loss",
    best_mode: str = "min",
    for_reading: bool = False,
) -> ocp.CheckpointManager:
    """The run's manager; ``for_reading`` neither creates nor cleans up anything (nothing is saved)."""
    fn = _metric_fn(best_metric, best_mode)
    keep = policies.AnyPreservationPolicy(
        [
            policies.LatestN(n=max_to_keep),
            policies.BestN(
                get_metric_fn=fn, reverse=(best_mode == "min"), n=1, keep_checkpoints_without_metrics=False
            ),
        ]
    )
    options = ocp.CheckpointManagerOptions(
        best_fn=fn,  # makes Orbax store each step's metrics for BestN
        best_mode=best_mode,
        preservation_policy=keep,
        cleanup_tmp_directories=not for_reading,
        create=not for_reading,
        enable_async_checkpointing=True,
    )
    return ocp.CheckpointManager(checkpoint_dir(workdir), options=options, item_names=ITEMS)


def save(
    manager: ocp.CheckpointManager,
    step: int,
    params: Any,
    train: Any,
    config: dict,
    metadata: dict,
    metrics: dict | None,
) -> None:
    """Starts an async save of ``step``; ``metrics`` (a metrics.jsonl record) ranks it for 'best'.

    Orbax reads the arrays after this returns: they must not be donated to a later jit call."""
    manager.save(
        step,
        args=ocp.args.Composite(
            params=ocp.args.StandardSave(params),
            train=ocp.args.StandardSave(train),
            config=ocp.args.JsonSave(config),
            metadata=ocp.args.JsonSave(metadata),
            integrity=IntegritySave({"params": params, "train": train}),
        ),
        # Always pass a dict: steps without the metric rank worst (and Orbax does not warn).
        metrics={k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float))},
        force=True,
    )


def best_value(manager: ocp.CheckpointManager, metric: str, mode: str) -> float | None:
    """``metric`` at Orbax's best step (None when no step recorded a finite value of it)."""
    step = manager.best_step()
    value = None if step is None else _metric_fn(metric, mode)(manager.metrics(step) or {})
    return value if value is not None and math.isfinite(value) else None


def _why(error: BaseException) -> str:
    """One line for a failed read (Orbax's messages can hold whole tree dumps)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200] if text else ''}"


_warned_unverified: set[str] = set()


def restore_checked(workdir: str, manager: ocp.CheckpointManager, step: int, args: dict,
                    items=DIGESTED) -> tuple[dict | None, str | None]:
    """``(restored items, None)``, or ``(None, why the step is unusable)``.

    ``args`` maps item names to Orbax restore args; the restored ``items`` are checked against the
    step's integrity record and for non-finite values. A step saved before integrity records
    existed is only checked for finiteness, with a warning (once per workdir)."""
    recorded = has_integrity(workdir, step)
    if recorded:
        args = {**args, "integrity": IntegrityRestore()}
    try:
        out = manager.restore(step, args=ocp.args.Composite(**args))
    except Exception as e:  # noqa: BLE001 - any read failure means this step is unusable
        return None, _why(e)
    problem = content_problem(out, dict(out["integrity"]) if recorded else None, items)
    if problem is not None:
        return None, problem
    if not recorded and workdir not in _warned_unverified:
        _warned_unverified.add(workdir)
        warnings.warn(f"checkpoint step {step} in {checkpoint_dir(workdir)} has no integrity record (saved by an "
                      "earlier seqjax); only that its values are finite was checked", RuntimeWarning, stacklevel=3)
    return out, None


def restore_params(workdir: str, manager: ocp.CheckpointManager, step: int, abstract_params: Any) -> Any | None:
    """The params of one saved step in the structure of ``abstract_params``, checked; None (with
    a warning) if the step is unusable."""
    out, why = restore_checked(workdir, manager, step, {"params": ocp.args.StandardRestore(abstract_params)},
                               items=("params",))
    if out is None:
        warnings.warn(f"checkpoint step {step} could not be read ({why})", RuntimeWarning, stacklevel=2)
        return None
    return out["params"]


def _restore_json(manager: ocp.CheckpointManager, step: int) -> tuple[dict, dict]:
    out = manager.restore(
        step, args=ocp.args.Composite(config=ocp.args.JsonRestore(), metadata=ocp.args.JsonRestore())
    )
    return dict(out["config"]), dict(out["metadata"])


# ----------------------------------------------------------------------------- what must match to resume


def _listing(values, limit: int = 12) -> str:
    values = sorted(values)
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def metadata_difference(key: str, saved: Any, current: Any) -> str | None:
    """How the data's ``metadata[key]`` differs from the checkpoint's, in words; None if equal.

    Vocabularies (``{"kind": "char", "chars": ...}`` or ``{"kind": "word", "words": [...]}``)
    are compared by their entries, named."""
    if saved == current:
        return None
    unit = None
    if isinstance(saved, dict) and isinstance(current, dict):
        for field, name in (("chars", "characters"), ("words", "words")):
            if field in saved and field in current:
                saved, current, unit = list(saved[field]), list(current[field]), name
                break
    if unit is None:
        return f"its {key} differs from the data's ({str(saved)[:80]!s} -> {str(current)[:80]!s})"
    only_saved, only_data = set(saved) - set(current), set(current) - set(saved)
    parts = [f"{unit} only in the checkpoint: {_listing(only_saved)}" if only_saved else "",
             f"{unit} only in the data: {_listing(only_data)}" if only_data else ""]
    text = "; ".join(p for p in parts if p) or f"the same {unit} in another order"
    return (f"the data's {key} differs from the checkpoint's ({len(saved)} -> {len(current)} {unit}; {text}), "
            f"so the model's rows would stand for other {unit}")


# ----------------------------------------------------------------------------- optimizer state


_STRUCTURE_KEYS = ("optimizer", "clip_norm", "weight_decay", "momentum")


def _components(tree: Any, prefix: tuple = ()) -> list[tuple[tuple, Any]]:
    """The per-transformation parts of an optax state: plain tuples and lists (``optax.chain``)
    are walked into; anything else (a NamedTuple state, or the dict Orbax restores it as) is one part."""
    if isinstance(tree, (tuple, list)) and not hasattr(tree, "_fields"):
        return [c for i, sub in enumerate(tree) for c in _components(sub, (*prefix, i))]
    return [(prefix, tree)]


def _signature(tree: Any) -> tuple:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return tuple(sorted((_path_name(path), str(np.dtype(x.dtype)), tuple(x.shape)) for path, x in leaves))


def _part_name(part: Any) -> str:
    return type(part).__name__ if hasattr(part, "_fields") else "state"


def rebuild_train(saved: dict, fresh: Any) -> tuple[Any, list[str], list[str]]:
    """``fresh`` (the train items of a new run) with every part that ``saved`` (a restored train
    item of another structure) holds in the same shape carried over: ``(train, kept, new)``.

    Parts are matched in order by their leaves' names, dtypes and shapes, so Adam's moments and
    the schedule's step count survive a change of clipping or weight decay, for example."""
    pool = [(sig, part) for _, part in _components(saved["opt_state"]) if (sig := _signature(part))]
    kept, new, parts = [], [], []
    for prefix, part in _components(fresh["opt_state"]):
        sig = _signature(part)
        if not sig:  # a stateless transformation: nothing to carry
            continue
        match = next((i for i, (s, _) in enumerate(pool) if s == sig), None)
        if match is None:
            new.append(_part_name(part))
            continue
        parts.append((prefix, _fill(part, pool.pop(match)[1])))
        kept.append(_part_name(part))
    opt_state = fresh["opt_state"]
    for prefix, value in parts:
        opt_state = _replace_at(opt_state, prefix, value)
    task_state = saved.get("task_state")
    if _signature(task_state) != _signature(fresh["task_state"]):
        task_state = fresh["task_state"]
        new.append("task state")
    else:
        task_state = _fill(fresh["task_state"], task_state)
    return {"step": saved["step"], "opt_state": opt_state, "task_state": task_state}, kept, new


def _fill(template: Any, source: Any) -> Any:
    """``template``'s structure with the leaves of ``source`` at the same paths (names)."""
    by_name = {_path_name(path): x for path, x in jax.tree_util.tree_flatten_with_path(source)[0]}
    return jax.tree_util.tree_map_with_path(lambda path, _: by_name[_path_name(path)], template)


def _replace_at(tree: Any, prefix: tuple, value: Any) -> Any:
    if not prefix:
        return value
    head, rest = prefix[0], prefix[1:]
    items = list(tree)
    items[head] = _replace_at(items[head], rest, value)
    return type(tree)(items)


def _structure_of(abstract: Any) -> dict:
    return {_path_name(path): [str(np.dtype(x.dtype)), list(x.shape)]
            for path, x in jax.tree_util.tree_flatten_with_path(abstract)[0]}


# ----------------------------------------------------------------------------- resume


class Resumed(NamedTuple):
    step: int
    params: Any
    train: Any
    note: str | None  # one line on what was rebuilt, if anything


def restore_for_resume(
    workdir: str, manager: ocp.CheckpointManager, config: dict, abstract_params: Any, abstract_train: Any,
    *, metadata: dict | None = None, must_match: tuple = (), fresh_train=None,
) -> Resumed | None:
    """Restores the newest usable checkpoint, or returns None if there is none.

    A step that cannot be read, or whose content fails its integrity record or is not finite, is
    moved to ``WORKDIR/corrupt_checkpoints/`` with a warning and the previous one is tried.
    Raises :class:`ResumeError` (before anything is moved) if the checkpoint's ``model`` config
    differs from ``config``, or if ``metadata[key]`` differs for a key of ``must_match`` (a
    vocabulary, say); and if no checkpoint can be read at all.

    If the optimizer state was saved in another structure (``train.optimizer``, ``clip_norm`` or
    ``weight_decay`` changed), ``fresh_train()`` gives the train items of a new run, and the
    parts of the saved state that fit are carried over (:func:`rebuild_train`); ``note`` says so.
    """
    steps = sorted(manager.all_steps(), reverse=True)
    if not steps:
        return None
    bad: list[tuple[int, str]] = []
    for step in steps:
        try:
            saved_config, saved_metadata = _restore_json(manager, step)
        except Exception as e:  # noqa: BLE001 - any read failure means this step is unusable
            bad.append((step, _why(e)))
            continue
        where = f"{checkpoint_dir(workdir)}/{step}"
        differences = config_lib.resume_mismatch(saved_config, config)
        if differences:
            raise ResumeError(
                f"cannot resume {where}: its config differs in "
                + "; ".join(differences)
                + " (saved -> requested). Use the saved values, or a new --workdir."
            )
        saved_by, current_by = saved_metadata.get("experiment"), (metadata or {}).get("experiment")
        if saved_by and current_by and saved_by != current_by:
            raise ResumeError(f"cannot resume {where}: the workdir holds a {saved_by} run, not a {current_by} run; "
                              f"use python -m experiments.{saved_by} on it, or a new --workdir")
        for key in must_match:
            if key in saved_metadata and metadata is not None:
                difference = metadata_difference(key, saved_metadata[key], metadata.get(key))
                if difference:
                    raise ResumeError(f"cannot resume {where}: {difference}. Train on the same data, "
                                      "or use a new --workdir.")
        record = _read_integrity(workdir, step)
        same = record is None or record.get("train") is None or \
            {k: v[:2] for k, v in record["train"].items()} == _structure_of(abstract_train)
        train_args = ocp.args.StandardRestore(abstract_train if same or fresh_train is None else None)
        out, why = restore_checked(workdir, manager, step, {"params": ocp.args.StandardRestore(abstract_params),
                                                            "train": train_args})
        if out is None:
            bad.append((step, why))
            continue
        if bad:
            _set_aside(workdir, manager, bad, step)
        train, note = out["train"], None
        if not same and fresh_train is not None:
            train, kept, new = rebuild_train(train, fresh_train())
            changed = config_lib.diff({k: saved_config.get("train", {}).get(k) for k in _STRUCTURE_KEYS},
                                      {k: config.get("train", {}).get(k) for k in _STRUCTURE_KEYS}, "train")
            note = (f"the optimizer state was saved in another structure ({'; '.join(changed) or 'a changed optimizer'}"
                    f"): rebuilt it, carrying over {', '.join(kept) or 'nothing'}"
                    + (f"; started fresh: {', '.join(new)}" if new else ""))
        return Resumed(step, out["params"], train, note)
    raise ResumeError(
        f"no checkpoint in {checkpoint_dir(workdir)} could be read: "
        + "; ".join(f"step {s}: {why[:300]}" for s, why in bad)
    )


def _read_integrity(workdir: str, step: int) -> dict | None:
    """The step's integrity record read directly (to learn the saved structure), or None."""
    path = os.path.join(checkpoint_dir(workdir), str(step), "integrity", "metadata")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _set_aside(workdir: str, manager: ocp.CheckpointManager, bad: list[tuple[int, str]], good: int) -> None:
    aside = os.path.join(os.path.abspath(workdir), "corrupt_checkpoints")
    os.makedirs(aside, exist_ok=True)
    for step, why in bad:
        src = os.path.join(checkpoint_dir(workdir), str(step))
        dst = os.path.join(aside, str(step))
        if os.path.exists(dst):
            shutil.rmtree(dst)
        shutil.move(src, dst)
        warnings.warn(
            f"checkpoint step {step} could not be read ({why.splitlines()[0][:200]}); "
            f"moved it to {dst} and resumed from step {good}",
            RuntimeWarning,
            stacklevel=3,
        )
    manager.reload()


class Restored(NamedTuple):
    """A run rebuilt from its workdir by :func:`load_from_workdir`."""

    task: Any  # task_class(config, metadata), or None when no task class was given
    params: Any
    config: Any  # the run's ConfigDict, as saved with the checkpoint
    metadata: dict  # the data's metadata, as saved with the checkpoint
    step: int


def load_from_workdir(workdir: str, task_class=None, which: str = "latest") -> Restored:
    """Rebuilds a trained run from its workdir alone, restoring the params of one checkpoint.

    ``task_class`` is the experiment's Task: ``task_class(config, metadata)`` supplies the params'
    structure through ``jax.eval_shape`` of its ``init`` (nothing is computed), and a checkpoint
    of another experiment is refused naming it. Without it, params come back as saved (nested
    dicts of arrays). ``which`` is 'latest' or 'best' (Orbax's best step by the run's
    ``train.best_metric``).

    The params are checked as a resume checks them; a step that cannot be read, fails its
    integrity record or holds non-finite values is skipped with a warning for the next candidate
    (the previous step for 'latest', the next best for 'best'). Nothing in the workdir changes.
    Raises ValueError if no step is usable.
    """
    if which not in ("latest", "best"):
        raise ValueError(f"which must be 'latest' or 'best', got {which!r}")
    directory = checkpoint_dir(workdir)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"no checkpoints in {workdir}: expected Orbax step directories under {directory} "
                                "(written by seqjax.train while training)")
    probe = open_manager(workdir, for_reading=True)
    try:
        steps = sorted(probe.all_steps(), reverse=True)
        if not steps:
            raise FileNotFoundError(f"no checkpoints in {workdir}: {directory} holds no completed step directory")
        bad: list[tuple[int, str]] = []
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        for step in _candidates(probe, steps, which):
            try:
                saved_config, metadata = _restore_json(probe, step)
            except Exception as e:  # noqa: BLE001
                bad.append((step, _why(e)))
                continue
            config = config_lib.from_dict(saved_config)
            task, restore = None, ocp.args.StandardRestore()
            if task_class is not None:
                saved_by = metadata.get("experiment")
                if task_class.name and saved_by and saved_by != task_class.name:
                    raise ValueError(f"the workdir {workdir} holds a {saved_by} run, not a {task_class.name} run; "
                                     f"use python -m experiments.{saved_by} on it")
                task = task_class(config, metadata)
                abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                                        jax.eval_shape(task.init, jax.random.PRNGKey(0)))
                restore = ocp.args.StandardRestore(abstract)
            out, why = restore_checked(workdir, probe, step, {"params": restore}, items=("params",))
            if out is None:
                bad.append((step, why))
                continue
            for skipped, reason in bad:
                warnings.warn(f"checkpoint step {skipped} could not be read ({reason}); using step {step}",
                              RuntimeWarning, stacklevel=2)
            return Restored(task, out["params"], config, metadata, step)
        raise ValueError(f"no checkpoint in {directory} could be read: "
                         + "; ".join(f"step {s}: {why[:300]}" for s, why in bad))
    finally:
        probe.close()


def _candidates(manager: ocp.CheckpointManager, steps: list[int], which: str) -> list[int]:
    """``steps`` (newest first) in the order to try: as they are for 'latest'; for 'best', ranked
    by the run's ``train.best_metric`` (steps without it last, newest first), as Orbax ranks them."""
    if which == "latest":
        return steps
    train = {}
    for step in steps:  # the ranking settings, from the newest readable config
        try:
            train = _restore_json(manager, step)[0].get("train", {})
            break
        except Exception:  # noqa: BLE001 - that step is skipped later, with its reason
            continue
    mode = train.get("best_mode", "min")
    value = _metric_fn(train.get("best_metric", "val_loss"), mode)

    def rank(step: int) -> tuple[float, int]:
        try:
            metric = value(manager.metrics(step) or {})
        except Exception:  # noqa: BLE001 - unreadable metrics rank worst
            metric = value({})
        return (metric if mode == "min" else -metric, -step)

    return sorted(steps, key=rank)
