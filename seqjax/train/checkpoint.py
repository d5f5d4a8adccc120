"""Orbax checkpoints in ``WORKDIR/checkpoints``: the latest few plus the best, config and metadata beside.

Each step directory holds four items (``ocp.args.Composite``):

* ``params``   the parameter pytree (restored alone by :func:`load_from_workdir`),
* ``train``    step, optimizer state and task state (what a resume needs besides params),
* ``config``   the run's config as JSON, ``metadata`` the task's JSON metadata (e.g. vocabulary).

One ``CheckpointManager`` keeps the ``max_to_keep`` latest steps and, through Orbax's
``AnyPreservationPolicy(LatestN, BestN)``, the best step by ``train.best_metric``, whose value is
stored as the step's Orbax metrics. Saves are asynchronous; Orbax writes into a temporary
directory and renames it when complete, so a killed run leaves no step directory half-written
(leftover temporaries are removed when the manager is next opened).
"""

from __future__ import annotations

import inspect
import math
import os
import shutil
import warnings
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from seqjax.train import config as config_lib

ITEMS = ("params", "train", "config", "metadata")


class ResumeError(ValueError):
    """The workdir's checkpoint cannot be resumed with this config (it names the differing fields)."""


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), "checkpoints")


def _metric_fn(name: str, mode: str):
    worst = math.inf if mode == "min" else -math.inf

    def value(metrics: Any) -> float:
        if not isinstance(metrics, dict) or metrics.get(name) is None:
            return worst
        return float(metrics[name])

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
        ),
        # Always pass a dict: steps without the metric rank worst (and Orbax does not warn).
        metrics={k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float))},
        force=True,
    )


def best_step(manager: ocp.CheckpointManager, metric: str, mode: str) -> int | None:
    """The saved step with the best ``metric``; the latest step if none recorded it."""
    scored = []
    for step in manager.all_steps():
        value = (manager.metrics(step) or {}).get(metric)
        if value is not None and math.isfinite(value):
            scored.append((value if mode == "min" else -value, step))
    return min(scored)[1] if scored else manager.latest_step()


def best_value(manager: ocp.CheckpointManager, metric: str, mode: str) -> float | None:
    step = best_step(manager, metric, mode)
    if step is None:
        return None
    return (manager.metrics(step) or {}).get(metric)


def restore_params(manager: ocp.CheckpointManager, step: int, abstract_params: Any) -> Any:
    """The params of one saved step, restored into the structure of ``abstract_params``."""
    out = manager.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(abstract_params)))
    return out["params"]


def _restore_json(manager: ocp.CheckpointManager, step: int) -> tuple[dict, dict]:
    out = manager.restore(
        step, args=ocp.args.Composite(config=ocp.args.JsonRestore(), metadata=ocp.args.JsonRestore())
    )
    return dict(out["config"]), dict(out["metadata"])


def restore_for_resume(
    workdir: str, manager: ocp.CheckpointManager, config: dict, abstract_params: Any, abstract_train: Any
) -> tuple[int, Any, Any] | None:
    """Restores the newest readable checkpoint: ``(step, params, train)``, or None if there is none.

    A step that cannot be read is moved to ``WORKDIR/corrupt_checkpoints/`` with a warning and the
    previous one is tried. Raises :class:`ResumeError` if the checkpoint's ``model`` config differs
    from ``config`` (before anything is moved), or if no checkpoint can be read at all.
    """
    steps = sorted(manager.all_steps(), reverse=True)
    if not steps:
        return None
    bad: list[tuple[int, str]] = []
    for step in steps:
        try:
            saved_config, _ = _restore_json(manager, step)
        except Exception as e:  # noqa: BLE001 - any read failure means this step is unusable
            bad.append((step, f"{type(e).__name__}: {e}"))
            continue
        differences = config_lib.resume_mismatch(saved_config, config)
        if differences:
            raise ResumeError(
                f"cannot resume {checkpoint_dir(workdir)}/{step}: its config differs in "
                + "; ".join(differences)
                + " (saved -> requested). Use the saved values, or a new --workdir."
            )
        try:
            out = manager.restore(
                step,
                args=ocp.args.Composite(
                    params=ocp.args.StandardRestore(abstract_params),
                    train=ocp.args.StandardRestore(abstract_train),
                ),
            )
        except Exception as e:  # noqa: BLE001
            bad.append((step, f"{type(e).__name__}: {e}"))
            continue
        if bad:
            _set_aside(workdir, manager, bad, step)
        return step, out["params"], out["train"]
    raise ResumeError(
        f"no checkpoint in {checkpoint_dir(workdir)} could be read: "
        + "; ".join(f"step {s}: {why[:300]}" for s, why in bad)
    )


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


def load_from_workdir(workdir: str, make_task=None, which: str = "latest") -> tuple[Any, Any, dict]:
    """Rebuilds ``(config, params, metadata)`` from a workdir alone, restoring params only.

    ``make_task`` supplies the parameter structure through ``jax.eval_shape`` of its ``init`` (no
    parameters are computed). It is called as ``make_task(config)``, or as
    ``make_task(config, metadata)`` if it takes two arguments (e.g. to rebuild a vocabulary from
    the metadata), or it may be a Task. Without it, params come back as saved (nested dicts of
    arrays). ``which`` is 'latest' or 'best' (by the run's ``train.best_metric``).
    """
    from seqjax.train.task import as_task, is_task

    if which not in ("latest", "best"):
        raise ValueError(f"which must be 'latest' or 'best', got {which!r}")
    directory = checkpoint_dir(workdir)
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"no checkpoints in {workdir}: expected Orbax step directories under {directory} "
            "(written by seqjax.train while training)"
        )
    probe = open_manager(workdir, for_reading=True)
    if not probe.all_steps():
        raise FileNotFoundError(f"no checkpoints in {workdir}: {directory} holds no completed step directory")
    latest = probe.latest_step()
    saved_config, _ = _restore_json(probe, latest)
    train = saved_config.get("train", {})
    metric, mode = train.get("best_metric", "val_loss"), train.get("best_mode", "min")
    step = latest if which == "latest" else best_step(probe, metric, mode)
    saved_config, metadata = _restore_json(probe, step)
    config = config_lib.from_dict(saved_config)
    if make_task is not None:
        if is_task(make_task):
            task = as_task(make_task)
        elif len(inspect.signature(make_task).parameters) >= 2:
            task = as_task(make_task(config, metadata))
        else:
            task = as_task(make_task(config))
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
            jax.eval_shape(task.init, jax.random.PRNGKey(0)),
        )
        restore = ocp.args.StandardRestore(abstract)
    else:
        restore = ocp.args.StandardRestore()
    params = probe.restore(step, args=ocp.args.Composite(params=restore))["params"]
    probe.close()
    return config, params, metadata
