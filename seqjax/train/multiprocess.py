"""``python -m seqjax.train.multiprocess N COMMAND ...``: COMMAND as N local processes of one JAX run.

The processes are joined on a free localhost port through ``SEQJAX_COORDINATOR``,
``SEQJAX_NUM_PROCESSES`` and ``SEQJAX_PROCESS_ID`` (see :mod:`seqjax.train.distributed`, which
holds the implementation). ``./launch.sh multiprocess N EXPERIMENT ...`` runs it.
"""

from seqjax.train.distributed import main

if __name__ == "__main__":
    raise SystemExit(main())
