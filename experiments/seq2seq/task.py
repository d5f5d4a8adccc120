"""seq2seq as a trainer Task: spell out numbers with an encoder-decoder.

    task = Seq2SeqTask(config, metadata)
    task.translate(params, ["407", "1000005"])   # ["four hundred seven", "one million five"]

Loss: cross-entropy over the real target tokens (``<eos>`` included, padding excluded), summed
and counted per token, so ``val_loss`` and ``val_token_accuracy`` are per-token means over the
validation set. ``val_sequence_accuracy`` is the teacher-forced share of targets with every
token right.

``final_eval`` decodes the validation set greedily (no teacher forcing; the model reads its own
previous word) and reports ``greedy_token_accuracy`` (position-wise, over the target's tokens)
and ``exact_match`` (decoded words up to the first ``<eos>`` equal the target). It writes
``examples.txt`` (exact-match per digit count, then example decodes) and ``by_length.json``.
"""

from __future__ import annotations

import json
import os
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.seq2seq import data as data_lib
from experiments.seq2seq.model import Seq2SeqModel
from seqjax.structures import sequence_mask
from seqjax.train import ConfigError, Task

EXAMPLES_FILE = "examples.txt"
BY_LENGTH_FILE = "by_length.json"


@partial(jax.jit, static_argnames=("model", "steps"))
def _greedy(model: Seq2SeqModel, params, src, src_lengths, steps: int):
    return model.greedy(params, src, src_lengths, steps, data_lib.BOS_ID)


class Seq2SeqTask(Task):
    name = "seq2seq"

    def __init__(self, config, metadata):
        super().__init__(config, metadata)
        try:
            self.model = Seq2SeqModel.from_config(config.model, len(data_lib.SRC_TOKENS), len(data_lib.TGT_TOKENS))
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.src_len = config.data.max_digits
        self.tgt_len = data_lib.max_target_len(config.data.max_digits)

    # -- model
    def init(self, rng):
        return self.model.init(rng)

    def logits(self, params, batch):
        return self.model(params, batch["src"], batch["src_lengths"], batch["tgt_in"])

    def loss(self, params, batch, rng, *, train: bool, state):
        logits = self.logits(params, batch)
        targets = batch["tgt_out"]
        w = batch["weight"]
        mask = sequence_mask(batch["tgt_lengths"], targets.shape[1]) & (w[:, None] > 0)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        n_tok = jnp.sum(mask).astype(jnp.float32)
        right = (jnp.argmax(logits, -1) == targets) & mask
        all_right = jnp.all(right | ~mask, axis=1)
        total = jnp.sum(jnp.where(mask, ce, 0.0))
        metrics = {"loss": (total, n_tok),
                   "token_accuracy": (jnp.sum(right).astype(jnp.float32), n_tok),
                   "sequence_accuracy": (jnp.sum(w * all_right), jnp.sum(w))}
        return total / jnp.maximum(n_tok, 1.0), (metrics, None)

    def batch_tokens(self, batch) -> int:
        return int(np.sum(batch["src_lengths"]) + np.sum(batch["tgt_lengths"]))

    # -- decoding
    def decode_ids(self, params, batch) -> np.ndarray:
        """Greedy ids ``(B, tgt_len)`` for a batch's sources."""
        return np.asarray(_greedy(self.model, params, jnp.asarray(batch["src"]), jnp.asarray(batch["src_lengths"]),
                                  self.tgt_len))

    def translate(self, params, numbers: list[str]) -> list[str]:
        """Greedy spellings of digit strings (at most ``data.max_digits`` digits each)."""
        for n in numbers:
            data_lib.spell(n)  # a ValueError names a string that is not a number
        batch = data_lib.encode(list(numbers), self.src_len, self.tgt_len)
        return [data_lib.decode_words(row) for row in self.decode_ids(params, batch)]

    def final_eval(self, params, data, workdir: str) -> dict:
        numbers = data.val_numbers
        right_tok = n_tok = 0
        exact, decoded = [], []
        size = self.config.eval.batch_size
        for lo in range(0, len(numbers), size):
            batch = data_lib.encode(numbers[lo:lo + size], self.src_len, self.tgt_len)
            ids = self.decode_ids(params, batch)
            mask = np.arange(ids.shape[1])[None, :] < batch["tgt_lengths"][:, None]
            right_tok += int(np.sum((ids == batch["tgt_out"]) & mask))
            n_tok += int(np.sum(batch["tgt_lengths"]))
            for row, want in zip(ids, batch["tgt_out"], strict=True):
                got = data_lib.decode_words(row)
                decoded.append(got)
                exact.append(got == data_lib.decode_words(want))
        exact = np.asarray(exact)
        d = self.config.data
        by_length = {}
        for digits in range(d.min_digits, d.max_digits + 1):
            sel = np.asarray([len(x) == digits for x in numbers])
            if sel.any():
                by_length[digits] = {"n": int(sel.sum()), "exact_match": float(exact[sel].mean())}
        self._write_examples(workdir, numbers, decoded, exact, by_length)
        return {"greedy_token_accuracy": right_tok / max(n_tok, 1), "exact_match": float(exact.mean())}

    def _write_examples(self, workdir, numbers, decoded, exact, by_length) -> None:
        with open(os.path.join(workdir, BY_LENGTH_FILE), "w") as f:
            json.dump(by_length, f, indent=2)
        lines = [f"greedy exact match on {len(numbers)} validation numbers: {exact.mean():.4f}", "",
                 "digits  n     exact_match"]
        lines += [f"{d:>6}  {v['n']:<5} {v['exact_match']:.4f}" for d, v in by_length.items()]
        # examples: spread over the validation set (so over digit counts), failures first
        k = self.config.data.examples
        wrong = [i for i in range(len(numbers)) if not exact[i]][: (k + 1) // 2]
        right = [i for i in range(len(numbers)) if exact[i]]
        right = right[:: max(1, len(right) // max(1, k - len(wrong)))][: k - len(wrong)]
        lines += ["", "ok  source -> greedy decode   [target if different]"]
        for i in sorted(wrong + right, key=lambda i: len(numbers[i])):
            target = " ".join(data_lib.spell(numbers[i]))
            tail = "" if exact[i] else f"   [{target}]"
            lines.append(f"{'+' if exact[i] else '-':<3} {numbers[i]} -> {decoded[i]}{tail}")
        with open(os.path.join(workdir, EXAMPLES_FILE), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
