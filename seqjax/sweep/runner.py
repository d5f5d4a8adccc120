"""Running a sweep's commands on this machine, one after another or ``parallel`` at a time.

Each run is the shell line of :meth:`Plan.command` (the line ``--emit`` prints), executed with its
output in ``ROOT/logs/<name>.log``. Finished runs (``final.json`` in the workdir) are skipped; any
other run is launched, and the experiment resumes it from its workdir if it was interrupted. A run
that exits non-zero is recorded with its last error line and the others go on. Ctrl-C or SIGTERM
stops the running commands (their checkpoints stay; a rerun resumes them) and records them as
interrupted.

Runs start seed by seed: the first seed of every configuration, then the second, ... so that a
partial sweep already compares every configuration. The children share a JAX compilation cache
(``ROOT/jax_cache``, unless ``JAX_COMPILATION_CACHE_DIR`` is set), so later seeds of a
configuration, and resumed runs, reuse its compiled programs. With ``parallel > 1`` they also get
``XLA_PYTHON_CLIENT_PREALLOCATE=false`` (unless set) so that several runs can share one GPU. Only
the environment differs: the commands are the ones ``--emit`` prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time

from seqjax.sweep import root as root_lib
from seqjax.sweep.spec import Plan, Run, SweepError


class _Stop(Exception):
    pass


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def error_line(log: str) -> str:
    """The line that says why a run failed: the last one mentioning an error, else the last one."""
    try:
        with open(log, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return ""
    for line in reversed(lines[-40:]):
        if "error" in line.lower():
            return line[:500]
    return lines[-1][:500] if lines else ""


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return str(-returncode)


class _Launch:
    def __init__(self, plan: Plan, root: str, run: Run, env: dict):
        self.run, self.root = run, root
        self.command = plan.command(root, run)
        self.log_path = root_lib.log_path(root, run.name)
        self.start = time.time()
        self._log = open(self.log_path, "a")
        self._log.write(f"\n$ {self.command}\n")
        self._log.flush()
        # The very line --emit prints, in its own process group so that a stop reaches the shell and the run.
        self.proc = subprocess.Popen(["/bin/sh", "-c", self.command], stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signum)
            except ProcessLookupError:
                pass

    def end(self, interrupted: bool = False) -> dict:
        rc = self.proc.wait()
        self._log.close()
        wall = round(time.time() - self.start, 3)
        finished = rc == 0 and root_lib.is_finished(self.root, self.run.name)
        if finished:
            status, error = "finished", ""
        elif interrupted:
            status, error = "interrupted", "stopped by the sweep"
        else:
            status = "failed"
            if rc == 0:
                error = f"exited 0 but left no {root_lib.FINAL}"
            elif rc < 0:
                error = f"killed by {_signal_name(rc)}; " + error_line(self.log_path)
            else:
                error = error_line(self.log_path)
        record = {"status": status, "returncode": rc, "error": error, "command": self.command,
                  "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.start)), "wall_time_s": wall,
                  "log": os.path.relpath(self.log_path, self.root)}
        root_lib.write_record(self.root, self.run.name, record)
        return record


def launch_order(runs: list[Run]) -> list[Run]:
    """The runs by seed rank: every configuration's first seed, then every second seed, ..."""
    rank, seen = {}, {}
    for run in runs:
        key = json.dumps(run.setting, sort_keys=True)
        rank[run.name] = seen[key] = seen.get(key, -1) + 1
    return sorted(runs, key=lambda run: rank[run.name])


def run_local(plan: Plan, root: str, parallel: int = 1, out=None) -> dict:
    """Runs every unfinished run of ``plan`` in ``root`` (already prepared); returns the counts.

    Raises SweepError if another local sweep is running in ``root``. Prints one progress line per
    ended run: done, failed, remaining and an estimated time left.
    Returns ``{"finished", "failed", "skipped", "interrupted"}`` counts.
    """
    out = out or sys.stdout
    root = os.path.abspath(root)
    with _lock(root):
        return _run_all(plan, root, parallel, out)


@contextlib.contextmanager
def _lock(root: str):
    """One local sweep at a time per root: a second one would launch the same runs into the same workdirs."""
    path = os.path.join(root, root_lib.LOGS, "lock")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            raise SweepError(f"another sweep is running in {root} (pid {f.read().strip() or '?'}); "
                             "wait for it, or stop it and rerun") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run_all(plan: Plan, root: str, parallel: int, out) -> dict:
    todo = [r for r in launch_order(plan.runs) if not root_lib.is_finished(root, r.name)]
    skipped = len(plan.runs) - len(todo)
    counts = {"finished": 0, "failed": 0, "skipped": skipped, "interrupted": 0}
    print(f"sweep {root}: {len(plan.runs)} runs, {skipped} finished already, {len(todo)} to run, "
          f"{parallel} at a time", file=out, flush=True)
    env = dict(os.environ)
    env.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(root, root_lib.JAX_CACHE))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # small programs add up, too
    if parallel > 1:
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    env.setdefault("PYTHONUNBUFFERED", "1")
    running: list[_Launch] = []
    times: dict[bool, list[float]] = {True: [], False: []}  # wall times of finished / failed runs
    total = len(todo)

    def on_term(signum, frame):
        raise _Stop

    previous = signal.signal(signal.SIGTERM, on_term) if _main_thread() else None
    try:
        while todo or running:
            while todo and len(running) < parallel:
                running.append(_Launch(plan, root, todo.pop(0), env))
            ended = [launch for launch in running if launch.proc.poll() is not None]
            if not ended:
                time.sleep(0.1)
                continue
            for launch in ended:
                running.remove(launch)
                record = launch.end()
                counts[record["status"]] += 1
                times[record["status"] == "finished"].append(record["wall_time_s"])
                _progress(out, launch, record, counts, total, todo, running, times, parallel)
    except (KeyboardInterrupt, _Stop):
        if _main_thread():  # a second Ctrl-C must not leave the runs behind: stopping them takes seconds
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        _stop(running)
        for launch in running:
            counts[launch.end(interrupted=True)["status"]] += 1
        print(f"sweep: stopped; {counts['interrupted']} runs interrupted, {len(todo)} not started. "
              "Rerun the same command to go on", file=out, flush=True)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, signal.default_int_handler)
    return counts


def _stop(running: list[_Launch]) -> None:
    """SIGINT to every running command, then SIGTERM (SIGINT may be ignored, e.g. under nohup), then SIGKILL."""
    for signum, grace in ((signal.SIGINT, 10.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        alive = [launch for launch in running if launch.proc.poll() is None]
        for launch in alive:
            launch.signal(signum)
        deadline = time.time() + grace
        for launch in alive:
            try:
                launch.proc.wait(timeout=max(deadline - time.time(), 0.01))
            except subprocess.TimeoutExpired:
                pass


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _progress(out, launch, record, counts, total, todo, running, times, parallel) -> None:
    ended = counts["finished"] + counts["failed"]
    sample = times[True] or times[False]  # failures are often quick: they estimate only while nothing finished
    mean = sum(sample) / len(sample)
    left = len(todo) * mean + sum(max(mean - (time.time() - r.start), 0.0) for r in running)
    eta = _duration(left / parallel) if todo or running else "0s"
    what = (f"finished {launch.run.name} in {_duration(record['wall_time_s'])}" if record["status"] == "finished"
            else f"FAILED {launch.run.name} (exit {record['returncode']}): {record['error']} "
                 f"[{launch.log_path}]")
    print(f"[{ended}/{total}] {what} | done {counts['finished']}, failed {counts['failed']}, "
          f"remaining {len(todo) + len(running)}, ETA {eta}", file=out, flush=True)
