"""The workdir of a run: made if new, locked while a run trains in it, removed again if it failed half-made.

    with Workdir(path) as wd:        # raises WorkdirBusy if another live process trains there
        ...                          # wd.fresh: this call made the directory
        wd.discard()                 # a fresh workdir that failed before holding anything of use

The lock is ``WORKDIR/lock``, held with ``fcntl.flock`` by process 0 of a run (the process that
writes the records and coordinates checkpoints). It holds one JSON line naming the holder (pid,
host, start time) so that a second run can say whose it is. The kernel drops a ``flock`` when its
holder dies, however it dies (SIGKILL included), so a stale lock file never blocks the next run;
a run that ends normally removes it. ``flock`` works on local disks and on Linux NFS mounts
(where the kernel maps it onto NFS byte-range locks).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time

LOCK_FILE = "lock"


class WorkdirError(ValueError):
    """The workdir cannot be used: a file stands at its path, or another run holds it."""


class WorkdirBusy(WorkdirError):
    """Another live process trains in this workdir; ``holder`` is what its lock file says."""

    def __init__(self, message: str, holder: dict):
        super().__init__(message)
        self.holder = holder


def check_path(workdir: str) -> None:
    """Raises WorkdirError if ``workdir`` (or a parent of it) exists and is not a directory."""
    path = os.path.abspath(workdir)
    while True:
        if os.path.exists(path) and not os.path.isdir(path):
            what = "is a file" if path == os.path.abspath(workdir) else f"is inside {path}, which is a file"
            raise WorkdirError(f"--workdir {workdir} {what}, not a directory; name a directory (new or a run's)")
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def _describe(holder: dict) -> str:
    if not holder.get("pid"):
        return "another process (it has just started and not yet written its pid)"
    started = holder.get("started")
    since = f", since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}" if started else ""
    return f"pid {holder['pid']} on host {holder.get('host', '?')}{since}"


class Workdir:
    """Makes ``path`` if needed and, with ``lock``, holds its lock until ``__exit__``.

    ``create=False`` (the other processes of a multi-process run) makes nothing: process 0 makes
    the workdir, and the others must see it on shared storage."""

    def __init__(self, path: str, lock: bool = True, create: bool = True):
        self.path = os.path.abspath(path)
        self.lock_path = os.path.join(self.path, LOCK_FILE)
        self.lock = lock
        self.create = create
        self.fresh = False
        self.removed = False  # discard() removed it
        self._fd: int | None = None

    def __enter__(self) -> Workdir:
        """Makes the directory and takes the lock; a fresh directory is removed again if taking
        the lock fails for any reason but another holder (a full disk, say)."""
        check_path(self.path)
        if not self.create:
            return self
        self.fresh = not os.path.exists(self.path)
        try:
            os.makedirs(self.path, exist_ok=True)
            if self.lock:
                self._acquire()
        except WorkdirBusy:
            self.fresh = False  # a busy workdir is someone else's: never remove it
            raise
        except BaseException:
            self.discard()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _acquire(self) -> None:
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise WorkdirBusy(f"{self.path} is in use by {_describe(holder)} (lock {self.lock_path}); "
                                  "wait for that run to end, or use another --workdir", holder) from None
            # The holder we raced with may have removed the file between our open and our lock:
            # then we hold a lock on a file no one else can see, so try again on the new one.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._fd = fd
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": round(time.time())})
        os.ftruncate(fd, 0)
        os.pwrite(fd, (record + "\n").encode(), 0)

    def release(self) -> None:
        """Removes the lock file and drops the lock (the removal first, while it is still held)."""
        if self._fd is None:
            return
        try:
            os.unlink(self.lock_path)
        except FileNotFoundError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def discard(self) -> bool:
        """Removes the workdir if this call made it (and so it holds nothing else); True if removed."""
        if not self.fresh:
            return False
        shutil.rmtree(self.path, ignore_errors=True)  # while still locked: no other run can be in it
        self.release()
        self.fresh, self.removed = False, True
        return True


def _read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}
