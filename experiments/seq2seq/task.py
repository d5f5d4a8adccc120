"""seq2seq as a trainer Task: spell out numbers with an encoder-decoder.

    make_task(config)          validates the config (ConfigError → exit status 2, no workdir)
    task.translate(params, ["407", "1000005"])   → ["four hundred seven", "one million five"]

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
from experiments.seq2seq import model as model_lib
from seqjax.cells import CELL_NAMES, INIT_SCHEMES
from seqjax.structures import CONTEXT_MODES, sequence_mask
from seqjax.train.config import is_int as _is_int
from seqjax.train.config import require as _need
from seqjax.train.task import Task

EXAMPLES_FILE = "examples.txt"
BY_LENGTH_FILE = "by_length.json"


def check_config(config) -> None:
    """Validates the ``model`` and ``data`` sections; raises ConfigError naming the key."""
    m, d = config.model, config.data
    _need(m.context in CONTEXT_MODES, "model.context", m.context,
          f"expected one of {', '.join(CONTEXT_MODES)}")
    _need(m.cell in CELL_NAMES, "model.cell", m.cell, f"expected one of {', '.join(CELL_NAMES)}")
    _need(m.init in INIT_SCHEMES, "model.init", m.init, f"expected one of {', '.join(INIT_SCHEMES)}")
    for key in ("embed_dim", "hidden", "layers"):
        _need(_is_int(m[key]) and m[key] >= 1, f"model.{key}", m[key], "expected an integer >= 1")
    _need(isinstance(m.bidirectional, bool), "model.bidirectional", m.bidirectional, "expected true or false")
    for key in ("min_digits", "max_digits"):
        _need(_is_int(d[key]) and 1 <= d[key] <= data_lib.MAX_DIGITS, f"data.{key}", d[key],
              f"expected an integer in [1, {data_lib.MAX_DIGITS}] (the scales end at quintillion)")
    _need(d.min_digits <= d.max_digits, "data.min_digits", d.min_digits,
          f"must not exceed data.max_digits={d.max_digits}")
    _need(0.0 <= d.zero_prob < 1.0, "data.zero_prob", d.zero_prob, "expected a number in [0, 1)")
    for key in ("val_size", "eval_batch_size"):
        _need(_is_int(d[key]) and d[key] >= 1, f"data.{key}", d[key], "expected an integer >= 1")
    _need(_is_int(d.examples) and d.examples >= 0, "data.examples", d.examples, "expected an integer >= 0")


class Seq2SeqTask(Task):
    def __init__(self, config):
        check_config(config)
        self.config = config
        d = config.data
        self.data = data_lib.NumberData(d.min_digits, d.max_digits, float(d.zero_prob),
                                        config.train.batch_size, config.seed, d.val_size, d.val_seed,
                                        d.eval_batch_size)
        self.model = model_lib.make_model(config.model)
        self._greedy = jax.jit(partial(model_lib.greedy, self.model, steps=self.data.tgt_len,
                                       bos_id=data_lib.BOS_ID))

    # -- model
    def init(self, rng):
        return model_lib.init(rng, self.model, self.config.model, len(data_lib.SRC_TOKENS),
                              len(data_lib.TGT_TOKENS))

    def logits(self, params, batch):
        return model_lib.apply(self.model, params, batch["src"], batch["src_lengths"], batch["tgt_in"])

    def loss(self, params, batch, rng, *, train: bool, state):
        logits = self.logits(params, batch)
        targets = batch["tgt_out"]
        mask = sequence_mask(batch["tgt_lengths"], targets.shape[1])
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        n_tok = jnp.sum(mask).astype(jnp.float32)
        right = (jnp.argmax(logits, -1) == targets) & mask
        all_right = jnp.all(right | ~mask, axis=1)
        n_seq = jnp.asarray(targets.shape[0], jnp.float32)
        total = jnp.sum(jnp.where(mask, ce, 0.0))
        metrics = {"loss": (total, n_tok),
                   "token_accuracy": (jnp.sum(right).astype(jnp.float32), n_tok),
                   "sequence_accuracy": (jnp.sum(all_right).astype(jnp.float32), n_seq)}
        return total / jnp.maximum(n_tok, 1.0), (metrics, None)

    # -- data
    def train_batch(self, step: int):
        return self.data.train_batch(step)

    def eval_batches(self):
        return self.data.eval_batches()

    def batch_tokens(self, batch) -> int:
        return int(np.sum(batch["src_lengths"]) + np.sum(batch["tgt_lengths"]))

    def metadata(self) -> dict:
        return {"task": "spell out numbers", "src_tokens": list(data_lib.SRC_TOKENS),
                "tgt_tokens": list(data_lib.TGT_TOKENS)}

    # -- decoding
    def decode_ids(self, params, batch) -> np.ndarray:
        """Greedy ids ``(B, tgt_len)`` for a batch's sources."""
        return np.asarray(self._greedy(params, jnp.asarray(batch["src"]), jnp.asarray(batch["src_lengths"])))

    def translate(self, params, numbers: list[str]) -> list[str]:
        """Greedy spellings of digit strings (at most ``data.max_digits`` digits each)."""
        batch = data_lib.encode(list(numbers), self.data.src_len, self.data.tgt_len)
        return [data_lib.decode_words(row) for row in self.decode_ids(params, batch)]

    def final_eval(self, params, workdir: str) -> dict:
        numbers = self.data.val_numbers()
        right_tok = n_tok = 0
        exact, decoded = [], []
        for lo in range(0, len(numbers), self.data.eval_batch_size):
            chunk = numbers[lo:lo + self.data.eval_batch_size]
            batch = data_lib.encode(chunk, self.data.src_len, self.data.tgt_len)
            ids = self.decode_ids(params, batch)
            mask = np.arange(ids.shape[1])[None, :] < batch["tgt_lengths"][:, None]
            right_tok += int(np.sum((ids == batch["tgt_out"]) & mask))
            n_tok += int(np.sum(batch["tgt_lengths"]))
            for row, want in zip(ids, batch["tgt_out"], strict=True):
                got = data_lib.decode_words(row)
                decoded.append(got)
                exact.append(got == data_lib.decode_words(want))
        exact = np.asarray(exact)
        by_length = {}
        for d in range(self.data.min_digits, self.data.max_digits + 1):
            sel = np.asarray([len(x) == d for x in numbers])
            if sel.any():
                by_length[d] = {"n": int(sel.sum()), "exact_match": float(exact[sel].mean())}
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


def make_task(config) -> Seq2SeqTask:
    return Seq2SeqTask(config)
