"""chargen as a trainer Task: the character LM, its loss, and samples.

    task = CharGenTask(config, metadata)     # metadata["vocab"]: from the data, or from a workdir
    task.sample_text(params, "The ", 300)

Loss: cross-entropy per character (nats), summed and counted over the real windows of a batch.
With ``data.mode='tbptt'`` the final carry of a step is the next step's initial state (zeroed
where ``reset`` is 1); validation windows always start from a zero state.
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.chargen.configs import default
from experiments.chargen.model import CharLM
from seqjax.cells import LINEAR_KINDS
from seqjax.data import CharVocab
from seqjax.train import ConfigError, Task
from seqjax.train.config import check_inactive


def check_config(config) -> None:
    """Model keys that the chosen cell or depth would ignore fail."""
    m, defaults = config.model, default.get_config()
    check_inactive(config, defaults, ["model.forget_bias"], m.cell == "lstm",
                   f"model.cell='lstm' (this config has model.cell={m.cell!r})")
    check_inactive(config, defaults, ["model.scan"], m.cell in LINEAR_KINDS,
                   f"model.cell one of {', '.join(LINEAR_KINDS)} (this config has model.cell={m.cell!r})")
    check_inactive(config, defaults, ["model.dropout"], m.num_layers > 1,
                   f"model.num_layers > 1: dropout sits between layers (this config has "
                   f"model.num_layers={m.num_layers})")


class CharGenTask(Task):
    name = "chargen"
    metadata_must_match = ("vocab",)  # the embedding rows stand for these characters

    def __init__(self, config, metadata):
        super().__init__(config, metadata)
        check_config(config)
        self.vocab = CharVocab.from_json(metadata["vocab"])
        try:
            self.model = CharLM.from_config(config.model, vocab_size=self.vocab.size)
        except ValueError as e:
            raise ConfigError(str(e)) from None

    # -- model
    def init(self, rng):
        return self.model.init(rng)

    def init_state(self, batch_size: int):
        return self.model.initial_carry(batch_size) if self.config.data.mode == "tbptt" else None

    def loss(self, params, batch, rng, *, train: bool, state):
        carry0 = None
        if state is not None and "reset" in batch:
            keep = 1.0 - batch["reset"]
            carry0 = jax.tree.map(lambda a: a * keep[None, :, None], state)
        logits, final = self.model(params, batch["tokens"], carry0, rng=rng, train=train)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
        w = jnp.broadcast_to(batch["weight"][:, None], ce.shape)
        n = jnp.sum(w)
        correct = jnp.sum(w * (jnp.argmax(logits, -1) == batch["targets"]))
        metrics = {"loss": (jnp.sum(w * ce), n), "accuracy": (correct, n)}
        new_state = None if state is None else jax.lax.stop_gradient(final)
        return jnp.sum(w * ce) / n, (metrics, new_state)

    def batch_tokens(self, batch) -> int:
        return int(np.size(batch["tokens"]))

    # -- samples
    def sample_text(self, params, prompt: str, length: int, *, seed: int = 0, temperature: float = 0.8,
                    top_k: int | None = None, greedy: bool = False) -> str:
        """``prompt`` continued by ``length`` characters (a ValueError names characters outside the vocabulary)."""
        unknown = sorted({c for c in prompt if c not in self.vocab.chars})
        if unknown:
            raise ValueError(f"the prompt has characters outside the model's vocabulary: {unknown!r} "
                             f"(the vocabulary has {self.vocab.size} characters from the training text)")
        out = self.model.sample(params, self.vocab.encode(prompt), length, jax.random.PRNGKey(seed),
                                temperature=temperature, top_k=top_k, greedy=greedy)
        return prompt + self.vocab.decode(np.asarray(out))

    def _prompt(self, data) -> str:
        """``sample.prompt``, or the first validation character if the prompt is not in the vocabulary."""
        prompt = self.config.sample.prompt
        return prompt if prompt and all(c in self.vocab.chars for c in prompt) else data.val_text[:1]

    def on_log(self, params, step: int, data) -> None:
        s = self.config.sample
        if s.every and step % s.every == 0:
            text = self.sample_text(params, self._prompt(data), s.length, seed=step, temperature=s.temperature,
                                    top_k=s.top_k)
            print(f"--- sample at step {step} ---\n{text}\n---", file=sys.stderr, flush=True)

    def final_eval(self, params, data, workdir: str) -> dict:
        s = self.config.sample
        text = self.sample_text(params, self._prompt(data), s.length, seed=self.config.seed,
                                temperature=s.temperature, top_k=s.top_k)
        path = os.path.join(workdir, "sample.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"--- final sample (also in {path}) ---\n{text}\n---", flush=True)
        return {"vocab_size": self.vocab.size}
