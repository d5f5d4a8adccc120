"""Several processes, one run: JAX's distributed runtime, started from the environment or flags.

A multi-process launch is recognised, in this order, from

* the flags ``--coordinator HOST:PORT --num_processes N --process_id I`` (all three), or
  ``--distributed auto`` (or ``off``), taken out of the command line before it is parsed;
* the variables ``SEQJAX_COORDINATOR``, ``SEQJAX_NUM_PROCESSES``, ``SEQJAX_PROCESS_ID`` (all three);
* ``SEQJAX_DISTRIBUTED=auto``: JAX finds the cluster itself (Cloud TPU, SLURM, Open MPI, Kubernetes).

With none of them the run is one process and :func:`jax.distributed.initialize` is never called.
``SEQJAX_HEARTBEAT_TIMEOUT`` (seconds, default 100) is how long a process may be silent before
the others take it for dead and stop; ``SEQJAX_INIT_TIMEOUT`` (default 300) is how long a process
waits for all the others to join.

The trainer's multi-process rules (``loop.py``): every process trains on its own rows of each
global batch (``seqjax.data.pipeline``), all of them call Orbax to save and restore, and process 0
alone writes the records and runs the task's ``on_log`` and ``final_eval`` (on whole evaluation
batches). The workdir must be one directory that every process sees (shared storage):
:func:`check_shared_workdir` fails when it visibly is not. A SIGTERM or SIGINT to any process stops
every process at the same step, after a checkpoint (JAX's preemption sync point, :func:`preempted`).
A process that dies stops the others within the heartbeat timeout: at once when they are in a
collective with it (the CLI then says so in one line) or when the coordinator (process 0) goes,
else when JAX's heartbeat finds it missing (JAX then aborts them).

``python -m seqjax.train.multiprocess N COMMAND ...`` (:func:`main`) runs COMMAND as N local
processes joined on a free localhost port (``./launch.sh multiprocess N EXPERIMENT ...``): how
multi-process training is tested on one machine.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

from seqjax.train.workdir import WorkdirError

ENV_COORDINATOR = "SEQJAX_COORDINATOR"
ENV_NUM_PROCESSES = "SEQJAX_NUM_PROCESSES"
ENV_PROCESS_ID = "SEQJAX_PROCESS_ID"
ENV_MODE = "SEQJAX_DISTRIBUTED"
ENV_HEARTBEAT = "SEQJAX_HEARTBEAT_TIMEOUT"
ENV_INIT_TIMEOUT = "SEQJAX_INIT_TIMEOUT"
FLAGS = ("coordinator", "num_processes", "process_id", "distributed")
MODES = ("auto", "off")
SHARE_CHECK_FILE = ".seqjax-shared-storage-check"
# Process 0's final evaluation (a test split, plots) may take long; the others wait for its
# result. A dead process 0 is still noticed at once (its coordinator goes with it).
FINAL_WAIT_S = 24 * 3600


class DistributedError(ValueError):
    """A bad multi-process launch, or a start that failed: one line for the user."""


class WorkdirNotShared(WorkdirError):
    """The processes of one run do not see the same workdir."""


@dataclasses.dataclass(frozen=True)
class Launch:
    """How to call :func:`jax.distributed.initialize`: explicit values, or ``auto`` (JAX detects)."""

    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    auto: bool = False
    heartbeat_timeout_s: int = 100
    init_timeout_s: int = 300

    def describe(self) -> str:
        if self.auto:
            return "cluster auto-detection"
        return f"process {self.process_id} of {self.num_processes}, coordinator {self.coordinator}"


# ----------------------------------------------------------------------------- the launch


def pop_flags(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Takes ``--coordinator``, ``--num_processes``, ``--process_id`` and ``--distributed`` out of argv."""
    found: dict[str, str] = {}
    rest: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        name, sep, value = arg.lstrip("-").partition("=")
        if arg.startswith("-") and name in FLAGS:
            if not sep:
                if i + 1 >= len(args) or args[i + 1].startswith("--"):
                    raise DistributedError(f"--{name} needs a value")
                value = args[i + 1]
                i += 1
            if name in found:
                raise DistributedError(f"--{name} given twice")
            found[name] = value
        else:
            rest.append(arg)
        i += 1
    return found, rest


def _int(value: str, what: str, low: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number < low:
        raise DistributedError(f"{what}={value!r}: expected an integer >= {low}")
    return number


def resolve(flags: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None) -> Launch | None:
    """The launch described by the flags (first) or the environment; None for a one-process run."""
    flags = dict(flags or {})
    environ = os.environ if environ is None else environ
    timeouts = dict(
        heartbeat_timeout_s=_int(environ.get(ENV_HEARTBEAT, "100"), ENV_HEARTBEAT, 1),
        init_timeout_s=_int(environ.get(ENV_INIT_TIMEOUT, "300"), ENV_INIT_TIMEOUT, 1),
    )
    explicit = {"coordinator": ENV_COORDINATOR, "num_processes": ENV_NUM_PROCESSES, "process_id": ENV_PROCESS_ID}
    for source, names in (("flag", {k: f"--{k}" for k in explicit}), ("env", explicit)):
        values = {k: (flags.get(k) if source == "flag" else environ.get(v)) for k, v in explicit.items()}
        values = {k: v for k, v in values.items() if v not in (None, "")}
        mode = flags.get("distributed") if source == "flag" else environ.get(ENV_MODE)
        if mode not in (None, "") and mode not in MODES:
            where = "--distributed" if source == "flag" else ENV_MODE
            raise DistributedError(f"{where}={mode!r}: expected one of {', '.join(MODES)} "
                                   "(or give the coordinator, number of processes and process id)")
        if mode == "off":
            return None
        if values:
            missing = [names[k] for k in explicit if k not in values]
            if missing:
                given = ", ".join(names[k] for k in values)
                raise DistributedError(f"a multi-process launch needs all of {', '.join(names.values())}; "
                                       f"got {given} without {', '.join(missing)}")
            if mode == "auto":
                raise DistributedError(f"{'--distributed' if source == 'flag' else ENV_MODE}=auto lets JAX "
                                       f"detect the cluster; do not also give {', '.join(names.values())}")
            host, sep, port = values["coordinator"].rpartition(":")
            if not sep or not host or not port.isdigit():
                raise DistributedError(f"{names['coordinator']}={values['coordinator']!r}: expected HOST:PORT")
            count = _int(values["num_processes"], names["num_processes"], 1)
            index = _int(values["process_id"], names["process_id"], 0)
            if index >= count:
                raise DistributedError(f"{names['process_id']}={index} is out of range for "
                                       f"{names['num_processes']}={count} (expected 0..{count - 1})")
            return Launch(values["coordinator"], count, index, **timeouts)
        if mode == "auto":
            return Launch(auto=True, **timeouts)
    return None


def initialize(launch: Launch) -> None:
    """Starts JAX's distributed runtime; must run before anything touches a JAX device."""
    import jax

    # CPU processes exchange collectives over gloo (the default in recent JAX; older ones had none).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    kwargs = dict(initialization_timeout=launch.init_timeout_s, heartbeat_timeout_seconds=launch.heartbeat_timeout_s)
    if not launch.auto:
        kwargs.update(coordinator_address=launch.coordinator, num_processes=launch.num_processes,
                      process_id=launch.process_id)
    try:
        jax.distributed.initialize(**kwargs)
    except Exception as e:  # noqa: BLE001 - JAX raises ValueError, RuntimeError or XlaRuntimeError
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        if launch.auto and "coordinator_address" in str(e):
            raise DistributedError(f"{ENV_MODE}=auto: JAX found no cluster it knows (Cloud TPU, SLURM, Open MPI, "
                                   f"Kubernetes) in the environment; give {ENV_COORDINATOR}, "
                                   f"{ENV_NUM_PROCESSES} and {ENV_PROCESS_ID} instead") from None
        raise DistributedError(f"could not start the distributed runtime ({launch.describe()}): {first}") from None


# ----------------------------------------------------------------------------- during a run


def process_index() -> int:
    import jax

    return jax.process_index()


def process_count() -> int:
    import jax

    return jax.process_count()


def is_primary() -> bool:
    """Whether this process writes the run's records (process 0; the only one in a one-process run)."""
    return process_index() == 0


def host(tree):
    """``tree`` as numpy arrays on this host: fully replicated arrays are readable in every process."""
    import jax

    return jax.device_get(tree)


def _client():
    from jax._src import distributed as jax_distributed  # the runtime's key-value store, as Orbax uses it

    client = jax_distributed.global_state.client
    if client is None:
        raise RuntimeError("jax.distributed is not initialized; several processes need it")
    return client


_keys = itertools.count()


def _key(name: str) -> str:
    """A key used once: every process makes the same calls in the same order, so the counts agree."""
    return f"seqjax/{name}/{next(_keys)}"


def broadcast(value: str | None, name: str, timeout_s: float = 300) -> str:
    """Process 0's ``value`` in every process (others pass anything); also a barrier behind process 0."""
    key = _key(name)
    if process_count() == 1:
        return value
    client = _client()
    if is_primary():
        client.key_value_set(key, value)
        return value
    return client.blocking_key_value_get(key, int(timeout_s * 1000))


def gather(value: str, name: str, timeout_s: float = 300) -> list[str]:
    """Every process's ``value``, in process order, in every process."""
    key = _key(name)
    if process_count() == 1:
        return [value]
    client = _client()
    client.key_value_set(f"{key}/{process_index()}", value)
    return [client.blocking_key_value_get(f"{key}/{i}", int(timeout_s * 1000)) for i in range(process_count())]


def check_shared_workdir(workdir: str) -> None:
    """Raises :class:`WorkdirNotShared` in every process unless all of them see the file process 0
    just wrote into ``workdir`` (with its contents). Process 0 creates ``workdir`` if needed."""
    if process_count() == 1:
        return
    path = os.path.join(workdir, SHARE_CHECK_FILE)
    token = None
    if is_primary():
        os.makedirs(workdir, exist_ok=True)
        token = f"{secrets.token_hex(8)} {socket.gethostname()} {os.getpid()}"
        with open(path, "w") as f:
            f.write(token)
    token = broadcast(token, "share-token")
    seen = ""
    deadline = time.monotonic() + 5.0  # a network file system may show a new file a moment late
    while True:
        try:
            with open(path) as f:
                seen = f.read()
        except OSError:
            seen = ""
        if seen == token or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    results = [json.loads(r) for r in gather(json.dumps([seen == token, socket.gethostname(),
                                                          os.path.abspath(workdir)]), "share-result")]
    if is_primary():
        try:
            os.remove(path)
        except OSError:
            pass
    blind = [(i, host_name) for i, (ok, host_name, _) in enumerate(results) if not ok]
    if blind:
        who = ", ".join(f"process {i} (host {h})" for i, h in blind)
        paths = sorted({p for _, _, p in results})
        differ = ("; the processes resolve it to different paths: "
                  + ", ".join(f"process {i} {p}" for i, (_, _, p) in enumerate(results)) if len(paths) > 1 else "")
        raise WorkdirNotShared(
            f"the workdir {results[0][2]} is not shared storage: {who} cannot see the file that process 0 "
            f"wrote there{differ}; every process of a run needs the same workdir on one file system that all "
            "of them mount (NFS, a FUSE-mounted bucket, ...), given as the same path")


def agree(value: str, what: str, workdir: str) -> None:
    """Raises :class:`WorkdirNotShared` in every process unless all processes pass the same ``value``."""
    values = gather(value, "agree")
    if len(set(values)) > 1:
        seen = "; ".join(f"process {i}: {v}" for i, v in enumerate(values))
        raise WorkdirNotShared(f"the processes see different {what} in {workdir} ({seen}); every process of a "
                               "run needs the same workdir on shared storage")


def preempted(step: int) -> bool:
    """Whether every process has reached the step at which to save and stop after a SIGTERM.

    With several processes JAX's runtime catches SIGTERM (its preemption notifier) and agrees on
    one step for all of them; call this at every step, in every process."""
    if process_count() == 1:
        return False
    from jax.experimental import multihost_utils

    return multihost_utils.reached_preemption_sync_point(step)


def lost_peer(error: BaseException) -> bool:
    """Whether ``error`` is a collective that failed because another process went away."""
    text = str(error)
    return any(s in text for s in ("Gloo", "gloo", "Connection closed by peer", "heartbeat", "unhealthy",
                                   "Socket closed", "UNAVAILABLE"))


# ----------------------------------------------------------------------------- local launcher


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_local(count: int, command: Sequence[str], environ: Mapping[str, str] | None = None,
                grace_s: float | None = None) -> int:
    """Runs ``command`` as ``count`` processes on this machine, joined on a free localhost port.

    Returns the first non-zero exit status (or 0). When one process fails, the others get
    ``grace_s`` seconds (default: the heartbeat timeout and 30 s more) to notice and stop on their
    own, then are terminated. SIGINT and SIGTERM to the launcher reach every process as SIGTERM,
    which stops all of them at one step with a checkpoint (a Ctrl-C on a terminal also reaches them
    directly as SIGINT; one of each is still one request to stop)."""
    environ = dict(os.environ if environ is None else environ)
    environ.update({ENV_COORDINATOR: f"127.0.0.1:{free_port()}", ENV_NUM_PROCESSES: str(count)})
    environ.pop(ENV_MODE, None)
    if grace_s is None:
        grace_s = float(environ.get(ENV_HEARTBEAT, "100")) + 30.0
    procs = [subprocess.Popen(list(command), env={**environ, ENV_PROCESS_ID: str(i)}) for i in range(count)]

    def forward(_signum, _frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    status, failed_at = 0, None
    try:
        while any(p.poll() is None for p in procs):
            for i, p in enumerate(procs):
                code = p.poll()
                if code not in (None, 0) and status == 0:
                    status, failed_at = _status(code), time.monotonic()
                    how = f"signal {signal.Signals(-code).name}" if code < 0 else f"status {code}"
                    print(f"seqjax.train.multiprocess: process {i} of {count} exited with {how}", file=sys.stderr,
                          flush=True)
            if failed_at is not None and time.monotonic() - failed_at > grace_s:
                for p in procs:
                    if p.poll() is None:
                        p.kill()
            time.sleep(0.05)
        if status == 0:
            status = next((_status(p.returncode) for p in procs if p.returncode), 0)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        for p in procs:
            if p.poll() is None:
                p.kill()
    return status


def _status(code: int) -> int:
    return 128 - code if code < 0 else code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = ("usage: python -m seqjax.train.multiprocess N COMMAND [ARG ...]\n"
             "runs COMMAND as N processes of one JAX run on this machine (coordinator on a free localhost port)")
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0 if argv else 2
    try:
        count = _int(argv[0], "N", 1)
    except DistributedError as e:
        print(f"seqjax.train.multiprocess: error: {e}\n{usage}", file=sys.stderr)
        return 2
    if len(argv) < 2:
        print(f"seqjax.train.multiprocess: error: no command to run\n{usage}", file=sys.stderr)
        return 2
    return spawn_local(count, argv[1:])
