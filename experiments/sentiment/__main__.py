"""``python -m experiments.sentiment [--workdir DIR] [--config PRESET_OR_FILE] [--config.KEY=VALUE ...]``

Trains the sentiment classifier with the shared trainer (see ``seqjax.train.cli``). Bad data
settings (``--config.data.max_len=0``, a missing CSV, ...) exit with status 2 and a message,
before the workdir is created.
"""

from __future__ import annotations

import sys

from experiments.sentiment.task import make_task
from seqjax.train import ConfigError, main


def run(argv: list[str] | None = None) -> dict:
    try:
        return main("sentiment", make_task, argv)
    except ConfigError as e:  # raised by make_task, which the trainer calls before touching the workdir
        print(f"experiments.sentiment: error: {e}\n(run with --help for usage)", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    run()
