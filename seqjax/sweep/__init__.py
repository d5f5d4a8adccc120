"""Sweeps: an ablation as one command line or one file, run here or emitted to a cluster, then tabulated.

From the command line, a grid is the product of its ``--grid`` axes, times ``--seeds``::

    ./launch.sh sweep chargen --grid model.cell=rnn,lstm,gru --grid model.num_layers=1,2 --seeds 3 \\
        --set train.steps=2000 [--config PRESET] [--root DIR] [--parallel N]

or from a file ``experiments/<experiment>/sweeps/<name>.py`` whose ``get_sweep()`` returns override
dicts built with :func:`sweep`, :func:`product`, :func:`zipped`, :func:`chain` and :func:`fixed`::

    ./launch.sh sweep chargen --sweep cells --seeds 3

Every run is the experiment's own command, ``python -m experiments.<exp> --workdir ROOT/<name>
[--config PRESET] --config.KEY=VALUE ...``, in a workdir named by the overrides that vary
(``ROOT/cell=gru,num_layers=2,seed=1``). Rerunning the same sweep skips finished runs and resumes
interrupted ones; a failed run is recorded (``ROOT/logs/<name>.json``, with its error line) and the
others go on. ``--emit`` prints those same commands, one per line, instead of running them::

    ./launch.sh sweep chargen --grid ... --emit | xargs -d '\\n' -P 4 -I CMD sh -c CMD
    sed -n "${SLURM_ARRAY_TASK_ID}p" commands.txt | sh       # sbatch --array=1-<number of lines>

``--aggregate`` (also ``./launch.sh sweep --aggregate --root DIR``) rewrites, from whatever has run so
far: ``results.csv`` (one row per run), ``results.md`` (mean ± std over seeds per configuration,
sorted by the experiment's ``train.best_metric``), ``summary.json`` and ``curves/*.png``. A local run
aggregates when it ends.

Bad input fails before anything runs, in one line: an unknown key (listing the valid ones), a value
of the wrong type, an empty value, the same key twice, or a ``--root`` holding another sweep (naming
the difference).

From Python (e.g. a driver that measures several claims)::

    from seqjax import sweep as sw
    results = sw.run("chargen", sw.product(sw.sweep("model.cell", ["rnn", "gru"]), sw.sweep("seed", range(3))),
                     config="tiny", root="runs/sweeps/cells")
    results["summary"]   # per configuration: setting, runs, finished, metrics[name] = {mean, std, n, values}
"""

from __future__ import annotations

import sys

from seqjax.sweep.results import aggregate
from seqjax.sweep.root import prepare
from seqjax.sweep.runner import run_local
from seqjax.sweep.spec import Plan, Run, SweepError, chain, fixed, plan, product, sweep, zipped


def run(experiment: str, runs: list[dict], *, config: str | None = None, root: str | None = None,
        parallel: int = 1, label: str | None = None, out=None) -> dict:
    """Plans, runs (skipping finished runs) and aggregates a sweep; returns :func:`aggregate`'s dict
    plus ``root`` and ``counts`` (finished, failed, skipped, interrupted in this call)."""
    the_plan = plan(experiment, runs, config, label)
    root = root or the_plan.default_root()
    prepare(the_plan, root)
    counts = run_local(the_plan, root, parallel, out or sys.stdout)
    return {**aggregate(root), "root": root, "counts": counts}


def emit(experiment: str, runs: list[dict], *, config: str | None = None, root: str | None = None,
         label: str | None = None) -> list[str]:
    """The shell line of every run (what a local run executes); prepares ``root`` like :func:`run`."""
    the_plan = plan(experiment, runs, config, label)
    root = root or the_plan.default_root()
    prepare(the_plan, root)
    return [the_plan.command(root, r) for r in the_plan.runs]


__all__ = ["Plan", "Run", "SweepError", "aggregate", "chain", "emit", "fixed", "plan", "product", "run", "sweep",
           "zipped"]
