"""``python -m experiments.sentiment [--workdir DIR] [--config PRESET_OR_FILE] [--config.KEY=VALUE ...]``

Trains the sentiment classifier with the shared trainer (see ``seqjax.train.cli``). Bad data
settings (``--config.data.max_len=0``, a missing CSV, ...) exit with status 2 and a message,
before the workdir is created.
"""

from __future__ import annotations

from experiments.sentiment.task import make_task
from seqjax.train import main


def run(argv: list[str] | None = None) -> dict:
    return main("sentiment", make_task, argv)


if __name__ == "__main__":
    run()
