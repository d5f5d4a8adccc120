"""python -m experiments.chargen [--workdir DIR] [--config FILE_OR_PRESET] [--config.KEY=VALUE ...]

Trains the character LM (see seqjax.train.cli for the options). Its inference verb:

    python -m experiments.chargen sample --workdir W --prompt "ROMEO:" --length 500 \\
        --temperature 0.8 --top_k 20          # or --greedy
"""

from __future__ import annotations

from experiments.chargen import data
from experiments.chargen.task import CharGenTask
from seqjax.decoding import check_sampling
from seqjax.train import load_from_workdir, main
from seqjax.train.cli import run_verb, verb_parser


def sample(argv: list[str]) -> str:
    """Prints (and returns) a sample from a trained workdir."""
    parser = verb_parser("chargen", "sample", "Continue a prompt with a trained character LM.")
    parser.add_argument("--prompt", default="\n", help="text to warm the state up on")
    parser.add_argument("--length", type=int, default=500, help="characters to generate")
    parser.add_argument("--temperature", type=float, default=0.8, help="> 0; lower is more conservative")
    parser.add_argument("--top_k", type=int, default=0, help="sample among the k likeliest characters (0 = all)")
    parser.add_argument("--greedy", action="store_true", help="always take the likeliest character")
    parser.add_argument("--seed", type=int, default=0)

    def body(args) -> str:
        if not args.greedy:
            check_sampling(args.temperature, args.top_k)
        if args.length < 1:
            raise ValueError(f"--length must be >= 1, got {args.length}")
        if not args.prompt:
            raise ValueError("--prompt must not be empty")
        run = load_from_workdir(args.workdir, CharGenTask, which=args.which)
        text = run.task.sample_text(run.params, args.prompt, args.length, seed=args.seed,
                                    temperature=args.temperature, top_k=args.top_k or None, greedy=args.greedy)
        print(text)
        return text

    return run_verb(parser, argv, body)


def run(argv: list[str] | None = None):
    return main("chargen", CharGenTask, data.load, argv, verbs={"sample": sample})


if __name__ == "__main__":
    run()
