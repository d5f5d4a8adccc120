"""The shared training loop: ``train(config, workdir, task, data) -> final metrics``.

A run is a pure function of its config: step ``s`` trains on ``data.train[s]`` with the key
``fold_in(train_key, s)``. Rerunning with the same workdir restores the latest checkpoint and
continues, so an interrupted run ends with the same params, bit for bit, as an uninterrupted one.

With several JAX processes (``seqjax.train.distributed``) every process runs this loop on its own
rows of each global batch and calls Orbax for every save and restore; process 0 alone writes
``config.json``, the records, ``final.json`` and whatever the task's ``on_log`` and ``final_eval``
write, and those two run on process 0 only, with the params as host (numpy) arrays and whole
evaluation batches (``seqjax.data.whole_batches``). A SIGTERM or
SIGINT to any process stops all of them at one step, the one JAX's preemption sync point names,
after a checkpoint of it.

The host syncs with the device only at log, eval and checkpoint points. That is also where a
bad step (a non-finite loss or gradient, or an update that would make the state non-finite),
recorded by the jitted step in ``state.bad_step``, stops the run. The bad update is never
applied, a checkpoint is only written after that check, and the arrays of each save are checked
once more as they are copied for it, so no checkpoint on disk holds a non-finite value.

One run at a time trains in a workdir: process 0 holds its lock (``workdir.py``) from before
the first read to the end. SIGTERM (what schedulers send on preemption) and SIGINT stop the run
at the next step boundary with a checkpoint of that step; the run then raises
:class:`Interrupted` (the command line exits 143 or 130), and rerunning resumes from it.

A save that fails in the background (a full disk, typically) is noticed at the next step
boundary: the run stops there with :class:`WorkdirWriteError`, one line naming the checkpoint
it could not write and the last complete one. A workdir that this call made and that holds no
complete checkpoint is removed again.
"""

from __future__ import annotations

import errno
import glob
import json
import logging
import math
import os
import shutil
import signal
import threading
import time
import warnings
from contextlib import contextmanager
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.data.pipeline import whole_batches
from seqjax.train import checkpoint as ckpt
from seqjax.train import config as config_lib
from seqjax.train import distributed
from seqjax.train.records import Records, plot_losses, read_records
from seqjax.train.state import (
    Placement,
    TrainState,
    all_finite,
    init_state,
    learning_rate_schedule,
    make_eval_step,
    make_optimizer,
    make_train_step,
    no_bad_step,
)
from seqjax.train.task import Data, Task
from seqjax.train.workdir import Workdir, WorkdirError

FINAL_FILE = "final.json"
CONFIG_FILE = "config.json"


class NonFiniteLossError(FloatingPointError):
    """The loss, the gradient or the updated state stopped being finite; ``step`` is the first bad
    step and ``last_good_checkpoint`` the latest checkpoint (all of whose values are finite)."""

    def __init__(self, message: str, step: int, last_good_checkpoint: int | None):
        super().__init__(message)
        self.step = step
        self.last_good_checkpoint = last_good_checkpoint


class Interrupted(Exception):
    """SIGTERM or SIGINT stopped the run; ``checkpoint`` is the step saved on the way out."""

    def __init__(self, message: str, signum: int, checkpoint: int | None):
        super().__init__(message)
        self.signum = signum
        self.checkpoint = checkpoint

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process killed by the signal


class WorkdirWriteError(OSError):
    """Writing into the workdir failed (no space left, typically); the run stopped there."""

    def __init__(self, message: str, last_checkpoint: int | None):
        super().__init__(message)
        self.last_checkpoint = last_checkpoint

    def __str__(self) -> str:
        return self.args[0]


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def _os_error(error: BaseException) -> OSError | None:
    """The OSError in ``error``'s chain (itself, its cause or context), or None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno is not None:
            return error
        if "No space left on device" in str(error):  # tensorstore reports errno in its message only
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        error = error.__cause__ or error.__context__
    return None


def complete_checkpoints(workdir: str) -> list[int]:
    """The steps whose checkpoint directory is complete (Orbax renames it when the save ends)."""
    directory = ckpt.checkpoint_dir(workdir)
    names = os.listdir(directory) if os.path.isdir(directory) else []
    return sorted(int(n) for n in names if n.isdigit())


class _OrbaxErrorsQuiet(logging.Filter):
    """Drops Orbax's own error logs (tracebacks from its save threads): each such failure also
    reaches the loop as an exception, which the run reports in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno >= logging.ERROR and f"{os.sep}orbax{os.sep}" in record.pathname)


@contextmanager
def _orbax_errors_quiet():
    logger, quiet = logging.getLogger("absl"), _OrbaxErrorsQuiet()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


class _StopSignals:
    """Turns SIGTERM and SIGINT into a request to stop at the next step boundary.

    A second signal stops at once (SIGINT as KeyboardInterrupt, SIGTERM with its default action).
    Handlers can only be set from the main thread; elsewhere the signals keep their handlers.

    ``via_jax`` (several processes): SIGTERM is left to JAX's runtime, which catches it and has
    every process agree on the step to stop at (``distributed.preempted``); a SIGINT is recorded
    and passed to it as a SIGTERM to this process."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, via_jax: bool = False):
        self.received: int | None = None
        self.previous: dict = {}
        self.via_jax = via_jax

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                if not (self.via_jax and signum == signal.SIGTERM):
                    self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.received is None:
            self.received = signum
            if self.via_jax:
                os.kill(os.getpid(), signal.SIGTERM)  # JAX's preemption notifier tells the other processes
            return
        self.__exit__()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}


def _averages(pending: list[dict], prefix: str) -> dict:
    """``{prefix + name: sum / count}`` over a list of ``{name: (sum, count)}`` (fetched once)."""
    sums: dict[str, list[float]] = {}
    for metrics in jax.device_get(pending):
        for name, (total, count) in metrics.items():
            acc = sums.setdefault(name, [0.0, 0.0])
            acc[0] += float(np.sum(total))
            acc[1] += float(np.sum(count))
    return {prefix + name: (s / c if c else float("nan")) for name, (s, c) in sums.items()}


def _better(value: Any, best: float | None, mode: str) -> bool:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return best is None or (value < best if mode == "min" else value > best)


class _Run:
    """One ``train`` call: the task, its jitted steps, the checkpoint manager and the records."""

    def __init__(self, config, workdir: str, task: Task, data: Data, devices):
        self.config, self.workdir, self.task, self.data = config, workdir, task, data
        self.t = t = config.train
        self.config_dict = config_lib.to_dict(config)
        self.placement = Placement(devices)
        self.processes = jax.process_count()
        self.primary = jax.process_index() == 0
        if self.processes > 1:
            self._check_divisible()
        self.optimizer = make_optimizer(t)
        self.schedule = jax.jit(learning_rate_schedule(t))  # evaluated on the host at log points
        self.init_key, self.train_key, self.eval_key = jax.random.split(jax.random.PRNGKey(config.seed), 3)
        replicated = self.placement.replicated
        self.make_state = jax.jit(
            partial(init_state, task, self.optimizer, batch_size=t.batch_size), out_shardings=replicated
        )
        # The state is donated: each step updates params and optimizer moments in place, so an
        # accelerator holds one copy of them rather than two.
        self.step_fn = jax.jit(make_train_step(task, self.optimizer), out_shardings=replicated,
                               donate_argnums=(0,))
        self.snapshot_fn = jax.jit(lambda tree: (jax.tree.map(jnp.copy, tree), all_finite(tree)),
                                   out_shardings=replicated)
        self.eval_fn = jax.jit(make_eval_step(task), out_shardings=replicated)
        self.manager = None
        self.warned_metric = False
        self.signals: _StopSignals | None = None
        self.stopped_early: int | None = None
        self.saving: int | None = None  # the step of the save in flight
        self.failed_save: int | None = None
        self.resume_note: str | None = None
        self.metadata = {"experiment": task.name, **data.metadata}  # saved with each checkpoint

    # -- setup

    def _check_divisible(self) -> None:
        """With several processes each batch must split evenly over all devices (none is replicated)."""
        n = self.placement.num_devices
        for key, size in (("train.batch_size", self.t.batch_size), ("eval.batch_size", self.config.eval.batch_size)):
            if size % n:
                raise config_lib.ConfigError(
                    f"config.{key}={size}: with {self.processes} processes the batch is split over all "
                    f"{n} devices; expected a multiple of {n}")

    def _host_params(self, params):
        """Params for code that process 0 runs alone: host arrays when there are other processes
        (a computation on the global arrays would wait for them)."""
        return distributed.host(params) if self.processes > 1 else params

    def open(self) -> tuple[TrainState, bool]:
        """The state to start from, restored from the workdir if it has a checkpoint.

        A checkpoint from another model, experiment or vocabulary raises before anything in the
        workdir changes; one line on a rebuilt optimizer state is kept in ``self.resume_note``."""
        t = self.t
        manager_args = dict(max_to_keep=t.max_to_keep, best_metric=t.best_metric, best_mode=t.best_mode)
        resumed = None
        distributed.check_shared_workdir(self.workdir)
        has_checkpoints = os.path.isdir(ckpt.checkpoint_dir(self.workdir))
        if self.processes > 1:
            distributed.agree(f"{'a' if has_checkpoints else 'no'} checkpoints directory", "checkpoints",
                              self.workdir)
        if has_checkpoints:
            self.manager = ckpt.open_manager(self.workdir, **manager_args)
            if self.processes > 1:
                distributed.agree(f"steps {self.manager.all_steps()}", "checkpoints", self.workdir)
            abstract = self.placement.abstract(jax.eval_shape(self.make_state, self.init_key))
            resumed = ckpt.restore_for_resume(
                self.workdir, self.manager, self.config_dict, *abstract.checkpoint_items(),
                metadata=self.metadata, must_match=tuple(getattr(self.task, "metadata_must_match", ())),
                fresh_train=lambda: self.make_state(self.init_key).checkpoint_items()[1],
            )
        if self.manager is None:
            self.manager = ckpt.open_manager(self.workdir, **manager_args)
        if self.primary:
            config_lib.save_json(self.config, os.path.join(self.workdir, CONFIG_FILE))
        if resumed is None:
            return self.make_state(self.init_key), False
        params, items, self.resume_note = resumed.params, resumed.train, resumed.note
        state = TrainState(
            step=items["step"],
            params=params,
            opt_state=items["opt_state"],
            task_state=items["task_state"],
            **no_bad_step(),
        )
        return self.placement.put_state(state), True

    # -- the loop

    def loop(self, state: TrainState, records: Records, session_start: float) -> tuple[TrainState, dict]:
        """Trains from ``state.step`` to ``train.steps``; returns the state and the last record."""
        t, task, data = self.t, self.task, self.data
        metadata = self.metadata
        try:
            json.dumps(metadata)
        except (TypeError, ValueError) as e:
            raise TypeError(f"the data's metadata must be JSON-able (it is saved with each checkpoint): {e}") from None
        best = ckpt.best_value(self.manager, t.best_metric, t.best_mode)
        last_record: dict = {}
        pending, tokens, interval_start = [], 0, time.perf_counter()
        stop = None
        start = int(jax.device_get(state.step))
        since_best = self.evaluations_since_best(start)
        if self.patience_spent(since_best, start, records):
            return state, last_record
        for step in range(start, t.steps):
            batch = data.train[step]
            tokens += task.batch_tokens(batch) * self.processes  # every process has its share
            state, metrics = self.step_fn(state, self.placement.put_batch(batch), self.train_key)
            self.poll_save()  # a failed save stops the run at the next step
            pending.append(metrics)
            records.advance()
            done = step + 1
            last = done == t.steps
            do_log = done % t.log_every == 0 or last
            do_eval = bool(t.eval_every and done % t.eval_every == 0) or last
            stop = self.stop_requested(done)
            do_save = bool(t.checkpoint_every and done % t.checkpoint_every == 0) or last or stop is not None
            if not (do_log or do_eval or do_save):
                continue
            self.check_finite(state)  # the loop's only host sync, and always before a save
            record = None
            if do_log or do_eval:
                now = time.perf_counter()
                record = {
                    "step": done,
                    "time": round(records.time_offset + now - session_start, 3),
                    "tokens_per_s": round(tokens / max(now - interval_start, 1e-9), 1),
                    "learning_rate": float(self.schedule(step)),
                    **_averages(pending, "train_"),
                }
                if do_eval:
                    record.update(self.evaluate(state.params))
                    self.check_best_metric(record)
                records.write(record)
                last_record = record
                if self.primary:
                    with whole_batches():
                        task.on_log(self._host_params(state.params), done, data)
            improved = record is not None and _better(record.get(t.best_metric), best, t.best_mode)
            if do_eval:
                since_best = 0 if improved else since_best + 1
            early = bool(t.patience) and since_best >= t.patience and not last
            do_save = do_save or early
            if do_save or improved:  # a new best is saved even between checkpoint steps
                # an async save reads its arrays after the next steps have run: give it copies,
                # since the next step donates (overwrites) the state's own buffers
                (params, items), finite = self.snapshot_fn(state.checkpoint_items())
                if not bool(finite):  # the step's guard makes this unreachable; never save such a state
                    self.fail_non_finite(done, f"the state to be saved at step {done} is not finite")
                self.save(done, params, items, metadata, record)
                best = record[t.best_metric] if improved else best
            if stop is not None:
                self.interrupted(stop, done)
            pending, tokens, interval_start = [], 0, time.perf_counter()
            if early and self.patience_spent(since_best, done, records):
                break
        received = self.signals.received if self.signals is not None else None
        if received is not None and self.processes == 1:  # after the last step's save
            self.interrupted(received, int(jax.device_get(state.step)))
        return state, last_record

    def stop_requested(self, done: int) -> int | None:
        """The signal to stop at after step ``done``, or None. With several processes, the answer
        is the same in all of them (JAX's preemption sync point), and is asked at every step."""
        if self.processes > 1:
            if not distributed.preempted(done):
                return None
            received = self.signals.received if self.signals is not None else None
            return received or signal.SIGTERM  # the notice may have come from another process
        return self.signals.received if self.signals is not None else None

    def evaluations_since_best(self, step: int) -> int:
        """Evaluations up to ``step`` since the best ``train.best_metric`` so far, from the records
        (so a resumed run counts on where it stopped)."""
        t, best, since = self.t, None, 0
        for record in read_records(self.workdir):
            if record.get("step", 0) > step or t.best_metric not in record:
                continue
            if _better(record[t.best_metric], best, t.best_mode):
                best, since = record[t.best_metric], 0
            else:
                since += 1
        return since

    def patience_spent(self, since_best: int, step: int, records: Records) -> bool:
        """True (and says so, once) when early stopping ends the run at ``step``."""
        if not self.t.patience or since_best < self.t.patience or step >= self.t.steps:
            return False
        if self.stopped_early is None:
            records.message(f"early stop at step {step}: {self.t.best_metric} has not improved in "
                            f"{since_best} evaluations (train.patience={self.t.patience})")
        self.stopped_early = step
        return True

    # -- saving

    def save(self, step: int, params, items, metadata: dict, record: dict | None) -> None:
        self.poll_save(block=True)  # an error of the previous save names its own step
        try:
            ckpt.save(self.manager, step, params, items, self.config_dict, metadata, record)
        except Exception as e:  # noqa: BLE001 - converted when it is a write error, else re-raised
            error = self.write_error(e, step)
            if error is None:
                raise
            raise error from e
        self.saving = step

    def poll_save(self, block: bool = False) -> None:
        """Raises WorkdirWriteError if the save in flight failed; waits for it with ``block``."""
        if self.saving is None or (not block and self.manager.is_saving_in_progress()):
            return
        step, self.saving = self.saving, None
        try:
            self.manager.wait_until_finished()
        except Exception as e:  # noqa: BLE001
            error = self.write_error(e, step)
            if error is None:
                raise
            raise error from e

    def write_error(self, error: BaseException, step: int | None = None) -> WorkdirWriteError | None:
        """The one-line error for a failed write (of checkpoint ``step``), or None if it is not one."""
        os_error = _os_error(error)
        if os_error is None or (step is None and os_error.errno not in NO_SPACE):
            return None
        directory = ckpt.checkpoint_dir(self.workdir)
        if step is not None:
            what = f"checkpoint {step} in {directory}"
            self.failed_save = step  # its partial files are removed once the manager is closed
        else:
            name = os.path.basename(os.fspath(os_error.filename)).removesuffix(".tmp") if os_error.filename else None
            what = f"{name} in {self.workdir}" if name else f"into {self.workdir}"
        how = "no space left" if os_error.errno in NO_SPACE else f"{os.strerror(os_error.errno).lower()} while"
        done = complete_checkpoints(self.workdir)
        last = done[-1] if done else None
        kept = f"the last complete checkpoint is {last}" if last is not None else "no checkpoint is complete"
        return WorkdirWriteError(f"{how} writing {what}; {kept}", last)

    def close(self, quiet: bool = False) -> None:
        """Waits for the save in flight and closes the manager; ``quiet`` after a failure."""
        if self.manager is None:
            return
        try:
            self.poll_save(block=True)
            self.manager.wait_until_finished()
            self.manager.close()
        except Exception:
            if not quiet:
                raise
        self.manager = None
        if self.failed_save is not None:  # what a failed save wrote is space that a full disk needs
            pattern = os.path.join(ckpt.checkpoint_dir(self.workdir), f"{self.failed_save}.orbax-checkpoint-tmp*")
            for tmp in glob.glob(pattern):
                shutil.rmtree(tmp, ignore_errors=True)

    def interrupted(self, signum: int, step: int) -> None:
        self.poll_save(block=True)
        saved = self.manager.latest_step()
        name = signal.Signals(signum).name
        where = (f"saved checkpoint {saved} in {ckpt.checkpoint_dir(self.workdir)}" if saved is not None
                 else "no checkpoint was saved")
        every = f" (all {self.processes} processes)" if self.processes > 1 else ""
        raise Interrupted(f"stopped by {name} at step {step}{every}; {where}", signum, saved)

    def evaluate(self, params) -> dict:
        """Averages over ``data.val``, run in order; the task state starts from ``init_state`` and
        is carried from one batch to the next (as in training)."""
        pending, state, val = [], None, self.data.val
        for i in range(len(val)):
            batch = val[i]
            if state is None:
                state = self.placement.put_state(self.task.init_state(self.config.eval.batch_size))
            metrics, state = self.eval_fn(params, self.placement.put_batch(batch), self.eval_key, state)
            pending.append(metrics)
        return _averages(pending, "val_") if pending else {}

    def check_finite(self, state: TrainState) -> None:
        bad = jax.device_get((state.bad_step, state.bad_loss, state.bad_grad_norm))
        bad_step, bad_loss, bad_norm = int(bad[0]), float(bad[1]), float(bad[2])
        if bad_step < 0:
            return
        if not math.isfinite(bad_loss):
            what = f"loss became {bad_loss} at step {bad_step}"
        elif not math.isfinite(bad_norm):
            what = f"gradient became non-finite at step {bad_step} (loss {bad_loss:.6g})"
        else:
            rate = float(self.schedule(bad_step))
            what = (f"the update at step {bad_step} would have made the params or optimizer state non-finite "
                    f"(loss {bad_loss:.6g} and gradient norm {bad_norm:.6g} were finite; learning rate {rate:.6g})"
                    "; it was not applied")
        self.fail_non_finite(bad_step, what)

    def fail_non_finite(self, bad_step: int, what: str) -> None:
        self.poll_save(block=True)  # saves in flight are of earlier, good steps
        last = self.manager.latest_step()
        where = (
            f"last good checkpoint is step {last} in {ckpt.checkpoint_dir(self.workdir)}"
            if last is not None
            else "no checkpoint was saved before it"
        )
        raise NonFiniteLossError(f"{what}; {where}", bad_step, last)

    def check_best_metric(self, record: dict) -> None:
        if self.warned_metric:
            return
        self.warned_metric = True
        if self.t.best_metric not in record:
            warnings.warn(
                f"train.best_metric={self.t.best_metric!r} is not recorded (have: "
                f"{', '.join(k for k in record if k != 'step')}); 'best' will be the latest checkpoint",
                stacklevel=3,
            )

    # -- the end

    def final_params(self, state: TrainState):
        """``state.params``, or with ``train.final_eval='best'`` those of the best checkpoint by
        ``train.best_metric`` (so test metrics come from the model that validation picked)."""
        self.final_eval_step = int(jax.device_get(state.step))
        if self.t.get("final_eval", "best") != "best":
            return state.params
        step = self.manager.best_step()
        if step is None or step == self.final_eval_step:
            return state.params
        self.final_eval_step = step
        abstract = self.placement.abstract(jax.eval_shape(lambda: state.params))
        params = ckpt.restore_params(self.workdir, self.manager, step, abstract)
        if params is None:  # unusable (warned): the final eval takes the latest params instead
            self.final_eval_step = int(jax.device_get(state.step))
            return state.params
        return params

    def finish(self, state: TrainState, last_record: dict, start: int, session_start: float) -> dict:
        """Final metrics: the last train averages, a validation pass, the task's ``final_eval``."""
        final: dict[str, Any] = {"steps": int(jax.device_get(state.step))}
        if self.stopped_early is not None:
            final["stopped_early_at"] = self.stopped_early
        if not last_record:  # nothing trained in this session: take the record of the resumed step
            kept = [r for r in read_records(self.workdir) if r.get("step") == start]
            last_record = kept[-1] if kept else {}
        final.update({k: v for k, v in last_record.items() if k.startswith("train_")})
        val = {k: v for k, v in last_record.items() if k.startswith("val_")}
        final.update(val or self.evaluate(state.params))
        params = self.final_params(state)  # a restore: in every process
        if self.primary:
            with whole_batches():
                final.update(self.task.final_eval(self._host_params(params), self.data, self.workdir) or {})
        final["final_eval_step"] = self.final_eval_step
        final["num_params"] = int(sum(np.size(x) for x in jax.tree.leaves(state.params)))
        final["train_time_s"] = last_record.get("time")
        final["wall_time_s"] = round(time.perf_counter() - session_start, 3)
        final = {k: (v.item() if isinstance(v, (np.generic, jax.Array)) else v) for k, v in final.items()}
        if self.primary:
            plot_losses(self.workdir)
            path = os.path.join(self.workdir, FINAL_FILE)
            with open(path + ".tmp", "w") as f:
                json.dump(final, f, indent=2)
            os.replace(path + ".tmp", path)
        if self.processes > 1:  # the others wait for process 0's final evaluation, and return its result
            text = distributed.broadcast(json.dumps(final) if self.primary else None, "final",
                                         timeout_s=distributed.FINAL_WAIT_S)
            final = json.loads(text)
        return final


def train(config, workdir: str, task: Task, data: Data, *, progress_bar: bool | None = None,
          devices=None) -> dict:
    """Trains (or resumes) the run in ``workdir`` and returns its final metrics.

    ``task`` and ``data`` are the experiment's (see :mod:`seqjax.train.task`); build them before
    calling, so that bad input fails before the workdir exists. Writes ``config.json``,
    ``metrics.jsonl``, TensorBoard events, checkpoints, ``loss.png`` and ``final.json``.
    ``devices`` (default: all) are the data-parallel mesh; ``progress_bar`` defaults to
    "stderr is a terminal". Raises :class:`NonFiniteLossError` if the loss stops being finite,
    :class:`Interrupted` after SIGTERM or SIGINT (with a checkpoint of the step it stopped at),
    :class:`~seqjax.train.workdir.WorkdirBusy` if another live run holds the workdir,
    and :class:`~seqjax.train.checkpoint.ResumeError` if the checkpoint is from another model.
    """
    session_start = time.perf_counter()
    config_lib.validate(config)
    workdir = os.path.abspath(workdir)
    run = _Run(config, workdir, task, data, devices)
    # Process 0 alone makes and locks the workdir: the others must find it there (shared storage).
    wd = Workdir(workdir, lock=run.primary, create=run.primary)
    try:
        wd.__enter__()  # a fresh workdir that cannot be set up is removed again by Workdir
    except WorkdirError:
        raise
    except OSError as e:
        _raise_write_error(run, e, wd)
    try:
        with _StopSignals(via_jax=run.processes > 1) as run.signals, _orbax_errors_quiet():
            try:
                final = _session(run, progress_bar, session_start, wd)
            except BaseException as e:
                run.close(quiet=True)
                _raise_write_error(run, e, wd)
            run.close()
            return final
    finally:
        wd.release()


def _raise_write_error(run: _Run, e: BaseException, wd: Workdir):
    """Re-raises ``e``, as a one-line WorkdirWriteError if it is a failed write; a fresh workdir
    without a complete checkpoint is removed first."""
    error = e if isinstance(e, WorkdirWriteError) else run.write_error(e)
    if error is None:
        raise e
    if error.last_checkpoint is None and (wd.removed or wd.discard()):
        error.args = (f"{error}; removed the new workdir {run.workdir}",)
    if error is e:
        raise e
    raise error from e


def _session(run: _Run, progress_bar: bool | None, session_start: float, wd: Workdir) -> dict:
    workdir = run.workdir
    try:
        state, resumed = run.open()
    except distributed.WorkdirNotShared:
        wd.discard()  # process 0 made it just now, for nothing
        raise
    start = int(jax.device_get(state.step))
    records = Records(workdir, start, run.t.steps, progress_bar, enabled=run.primary)
    try:
        records.message(f"workdir {workdir}")
        if resumed:
            records.message(f"resumed from step {start} ({ckpt.checkpoint_dir(workdir)}/{start})")
            if run.resume_note:
                records.message(run.resume_note)
        state, last_record = run.loop(state, records, session_start)
    finally:
        records.close()
    run.poll_save(block=True)
    return run.finish(state, last_record, start, session_start)
