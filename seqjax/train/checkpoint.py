"""Orbax checkpoints in ``WORKDIR/checkpoints``: the latest few plus the best, config and metadata beside.

Each step directory holds four items (``ocp.args.Composite``):

* ``params``   the parameter pytree (restored alone by :func:`load_from_workdir`),
* ``train``    step, optimizer state and task state (what a resume needs besides params),
* ``config``   the run's config as JSON, ``metadata`` the task's JSON metadata (e.g. vocabulary).

One ``CheckpointManager`` keeps the ``max_to_keep`` latest steps and, through Orbax's
``AnyPreservationPolicy(LatestN, BestN)``, the best step by ``train.best_metric``, whose value is
stored as the step's Orbax metrics; Orbax's ``best_step()`` names it (a step without the metric,
or with a non-finite value, ranks worst; with no step ranked, the latest is the best).

Saves are asynchronous; Orbax writes into a temporary directory and renames it when complete, so
a killed run leaves no step directory half-written (leftover temporaries are removed when the
manager is next opened).
"""

from __future__ import annotations

import math
import os
import shutil
import warnings
from typing import Any, NamedTuple

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
    """
    if which not in ("latest", "best"):
        raise ValueError(f"which must be 'latest' or 'best', got {which!r}")
    directory = checkpoint_dir(workdir)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"no checkpoints in {workdir}: expected Orbax step directories under {directory} "
                                "(written by seqjax.train while training)")
    probe = open_manager(workdir, for_reading=True)
    if not probe.all_steps():
        raise FileNotFoundError(f"no checkpoints in {workdir}: {directory} holds no completed step directory")
    latest = probe.latest_step()
    train = _restore_json(probe, latest)[0].get("train", {})
    probe.close()
    probe = open_manager(workdir, best_metric=train.get("best_metric", "val_loss"),
                         best_mode=train.get("best_mode", "min"), for_reading=True)
    step = latest if which == "latest" else probe.best_step()
    saved_config, metadata = _restore_json(probe, step)
    config = config_lib.from_dict(saved_config)
    task, restore = None, ocp.args.StandardRestore()
    if task_class is not None:
        saved_by = metadata.get("experiment")
        if task_class.name and saved_by and saved_by != task_class.name:
            probe.close()
            raise ValueError(f"{workdir} holds a {saved_by} run, not a {task_class.name} run")
        task = task_class(config, metadata)
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                                jax.eval_shape(task.init, jax.random.PRNGKey(0)))
        restore = ocp.args.StandardRestore(abstract)
    params = probe.restore(step, args=ocp.args.Composite(params=restore))["params"]
    probe.close()
    return Restored(task, params, config, metadata, step)
