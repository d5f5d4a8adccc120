"""python -m experiments.seq2seq [--workdir DIR] [--config FILE_OR_PRESET] [--config.KEY=VALUE ...]

Spell out numbers ("407" -> "four hundred seven") with an encoder-decoder (N -> M); see
seqjax.train.cli for the options. Presets: default (GRU, attention, up to 9 digits), tiny (tests).
Its inference verb:

    python -m experiments.seq2seq translate --workdir W 407 1000005     # one spelling per line
"""

from __future__ import annotations

from experiments.seq2seq import data
from experiments.seq2seq.task import Seq2SeqTask
from seqjax.train import load_from_workdir, main
from seqjax.train.cli import run_verb, verb_parser


def translate(argv: list[str]) -> list[str]:
    """Prints (and returns) the greedy spelling of each number."""
    parser = verb_parser("seq2seq", "translate", "Spell out numbers with a trained encoder-decoder.")
    parser.add_argument("numbers", nargs="+", help="digit strings, e.g. 407 1000005")

    def body(args) -> list[str]:
        run = load_from_workdir(args.workdir, Seq2SeqTask, which=args.which)
        longest = max(args.numbers, key=len)
        if len(longest) > run.task.src_len:
            raise ValueError(f"{longest!r} has {len(longest)} digits; this model was trained on at most "
                             f"{run.task.src_len} (data.max_digits)")
        words = run.task.translate(run.params, args.numbers)
        for number, spelled in zip(args.numbers, words, strict=True):
            print(f"{number}\t{spelled}")
        return words

    return run_verb(parser, argv, body)


def run(argv: list[str] | None = None):
    return main("seq2seq", Seq2SeqTask, data.load, argv, verbs={"translate": translate})


if __name__ == "__main__":
    run()
