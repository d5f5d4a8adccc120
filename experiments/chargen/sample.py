"""Sample text from a trained chargen workdir.

    python -m experiments.chargen.sample --workdir W --prompt "ROMEO:" --length 500 \
        --temperature 0.8 --top_k 20          # or --greedy
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from experiments.chargen.task import CharGenTask
from seqjax.data.text import CharVocab
from seqjax.decoding import check_sampling
from seqjax.train import load_from_workdir


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(prog="python -m experiments.chargen.sample", description=__doc__.split("\n")[1])
    ap.add_argument("--workdir", required=True, help="a chargen run's workdir")
    ap.add_argument("--prompt", default="\n", help="text to warm the state up on")
    ap.add_argument("--length", type=int, default=500, help="characters to generate")
    ap.add_argument("--temperature", type=float, default=0.8, help="> 0; lower is more conservative")
    ap.add_argument("--top_k", type=int, default=0, help="sample among the k likeliest characters (0 = all)")
    ap.add_argument("--greedy", action="store_true", help="always take the likeliest character")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--which", choices=("latest", "best"), default="best", help="which checkpoint")
    args = ap.parse_args(argv)
    try:
        if not args.greedy:
            check_sampling(args.temperature, args.top_k)
        if args.length < 1:
            raise ValueError(f"--length must be >= 1, got {args.length}")
        if not args.prompt:
            raise ValueError("--prompt must not be empty")
        config, params, meta = load_from_workdir(
            args.workdir, lambda cfg, meta: CharGenTask(cfg, vocab=CharVocab.from_json(meta["vocab"])),
            which=args.which)
        vocab = CharVocab.from_json(meta["vocab"])
        unknown = sorted({c for c in args.prompt if c not in vocab.chars})
        if unknown:
            raise ValueError(f"the prompt has characters outside the model's vocabulary: {unknown!r} "
                             f"(the vocabulary has {vocab.size} characters from the training text)")
        task = CharGenTask(config, vocab=vocab)
        text = task.sample_text(params, args.prompt, args.length, seed=args.seed, temperature=args.temperature,
                                top_k=args.top_k or None, greedy=args.greedy)
    except (ValueError, FileNotFoundError) as e:
        print(f"sample: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(text)
    return text


if __name__ == "__main__":
    np.set_printoptions(linewidth=120)
    main()
