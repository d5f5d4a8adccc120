"""python -m experiments.chargen [--workdir DIR] [--config FILE_OR_PRESET] [--config.KEY=VALUE ...]"""

from experiments.chargen.task import make_task
from seqjax.train import main

if __name__ == "__main__":
    main("chargen", make_task)
