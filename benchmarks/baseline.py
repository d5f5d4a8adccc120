"""A competitor built from an earlier commit of this repository, timed in lockstep with the others.

``--baseline REV`` in `chargen_step.py` and `rnn_throughput.py` measures a change against the code
before it, side by side in one run: the tree of ``REV`` is extracted (``git archive``) into a
temporary folder, and a child process with that folder first on ``sys.path`` builds the same
competitor from it. The parent asks it to run a round whenever the round-robin reaches it, so load
from other processes hits both trees alike, and the child times the round itself.

The child imports ``seqjax`` and ``experiments`` from the old tree first, then loads the
competitor's builder from *this* tree's benchmark script by path (so an old tree needs no benchmark
changes); the script's imports of those packages then resolve to the old tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_SERVER = r"""
import importlib.util, pickle, sys, time
tree, script, factory, args = sys.argv[1], sys.argv[2], sys.argv[3], pickle.loads(bytes.fromhex(sys.argv[4]))
sys.path.insert(0, tree)
import experiments, seqjax  # imported first, so the script's own sys.path entry cannot shadow them
assert seqjax.__file__.startswith(tree) and experiments.__file__.startswith(tree), (seqjax.__file__, tree)
spec = importlib.util.spec_from_file_location("_baseline_script", script)
mod = importlib.util.module_from_spec(spec)
sys.modules["_baseline_script"] = mod
spec.loader.exec_module(mod)
assert sys.modules["seqjax.recurrent"].__file__.startswith(tree)
run = getattr(mod, factory)(*args)
out = sys.stdout
sys.stdout = sys.stderr  # the protocol owns the real stdout
out.write("ready\n"); out.flush()
for line in sys.stdin:
    n = int(line)
    t0 = time.perf_counter()
    run(n)
    out.write(f"{time.perf_counter() - t0!r}\n"); out.flush()
"""


def resolve(rev: str) -> str:
    """The full commit id of ``rev`` (a clear error if git does not know it)."""
    proc = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"--baseline {rev!r}: not a commit of this repository ({proc.stderr.strip()})")
    return proc.stdout.strip()


def checkout(rev: str) -> str:
    """The tree of ``rev`` extracted into a temporary folder (reused if already there)."""
    sha = resolve(rev)
    path = os.path.join(tempfile.gettempdir(), f"seqjax-baseline-{sha[:12]}")
    if not os.path.isdir(os.path.join(path, "seqjax")):
        os.makedirs(path, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", sha, "seqjax", "experiments"],
                                 capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", path], input=archive.stdout, check=True)
    return path


class Remote:
    """``run(n)`` of a competitor living in a child process on the tree of another commit.

    ``factory`` is the name of a function in ``script`` (a file of this tree) that returns the
    competitor's ``run(n)`` callable when called with ``args`` (picklable)."""

    def __init__(self, rev: str, script: str, factory: str, *args):
        import pickle

        self.rev = rev
        tree = checkout(rev)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, tree, str(Path(script).resolve()), factory, pickle.dumps(args).hex()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tree)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"the baseline competitor at {rev} failed to start (see its messages above)")
        self.last = 0.0

    def __call__(self, n: int) -> float:
        """Runs ``n`` steps in the child; returns the seconds the child measured."""
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the baseline competitor at {self.rev} exited")
        self.last = float(line)
        return self.last

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
