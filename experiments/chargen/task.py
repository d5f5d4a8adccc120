"""chargen as a trainer Task: data, model, loss and samples."""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.chargen import data as data_lib
from experiments.chargen import model as model_lib
from seqjax.data.text import CharVocab
from seqjax.train.task import Task


class CharGenTask(Task):
    def __init__(self, config, *, vocab: CharVocab | None = None):
        self.config = config
        self.stack = model_lib.make_stack(config.model)
        if vocab is None:  # training: read the text (errors here happen before any workdir exists)
            self.data = data_lib.load(config.data, config.train.batch_size, config.seed)
            self.vocab = self.data.vocab
        else:  # sampling from a workdir: the vocabulary comes from the checkpoint
            self.data, self.vocab = None, vocab

    # -- model
    def init(self, rng):
        return model_lib.init(rng, self.config.model, self.vocab.size)

    def init_state(self, batch_size: int):
        if self.config.data.mode != "tbptt":
            return None
        return self.stack.initial_carry(batch_size, self.config.model.hidden)

    def loss(self, params, batch, rng, *, train: bool, state):
        carry0 = None
        if state is not None and "reset" in batch:
            keep = 1.0 - batch["reset"]
            carry0 = jax.tree_util.tree_map(lambda a: a * keep[None, :, None], state)
        logits, final = model_lib.apply(self.stack, params, batch["tokens"], carry0, rng=rng, train=train)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
        n = jnp.asarray(ce.size, jnp.float32)
        correct = jnp.sum(jnp.argmax(logits, -1) == batch["targets"])
        metrics = {"loss": (jnp.sum(ce), n), "accuracy": (correct.astype(jnp.float32), n)}
        new_state = None if state is None else jax.lax.stop_gradient(final)
        return jnp.mean(ce), (metrics, new_state)

    # -- data
    def train_batch(self, step: int):
        return self.data.train_batch(step)

    def eval_batches(self):
        return self.data.eval_batches()

    def metadata(self) -> dict:
        return {"vocab": self.vocab.to_json(), "corpus": self.data.description if self.data else ""}

    def batch_tokens(self, batch) -> int:
        return int(np.size(batch["tokens"]))

    # -- samples
    def sample_text(self, params, prompt: str, length: int, *, seed: int = 0, temperature: float = 0.8,
                    top_k: int | None = None, greedy: bool = False) -> str:
        ids = self.vocab.encode(prompt)
        out = model_lib.sample(self.stack, params, ids, length, jax.random.PRNGKey(seed),
                               temperature=temperature, top_k=top_k, greedy=greedy)
        return prompt + self.vocab.decode(np.asarray(out))

    def _prompt(self) -> str:
        prompt = self.config.sample.prompt
        unknown = sorted({c for c in prompt if c not in self.vocab.chars})
        return prompt if prompt and not unknown else self.vocab.decode(self.data.val[:1])

    def on_log(self, params, step: int) -> None:
        every = self.config.sample.every
        if every and step % every == 0:
            text = self.sample_text(params, self._prompt(), self.config.sample.length, seed=step,
                                    temperature=self.config.sample.temperature, top_k=self.config.sample.top_k)
            print(f"--- sample at step {step} ---\n{text}\n---", file=sys.stderr, flush=True)

    def final_eval(self, params, workdir: str) -> dict:
        s = self.config.sample
        text = self.sample_text(params, self._prompt(), s.length, seed=self.config.seed,
                                temperature=s.temperature, top_k=s.top_k)
        with open(os.path.join(workdir, "sample.txt"), "w", encoding="utf-8") as f:
            f.write(text)
        print(f"--- final sample (also in {os.path.join(workdir, 'sample.txt')}) ---\n{text}\n---", flush=True)
        return {"vocab_size": self.vocab.size}


def make_task(config) -> CharGenTask:
    return CharGenTask(config)
