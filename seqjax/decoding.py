"""Decoding from a token-level recurrent model: greedy, temperature / top-k sampling, beam search.

A token model is three pure functions over one params dict:
``embed(params, ids) -> x``, a core with ``step(params["core"], carry, x) -> (carry, h)`` (a cell
or a unidirectional :class:`~seqjax.recurrent.Stack`), and ``head(params, h) -> logits``.
:func:`warm_up` runs the prompt through the core in one :func:`~seqjax.recurrent.unroll`; the
generators then run as another unroll whose per-step input is a random key, so everything is
``jit``-able, with ``length`` static.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from seqjax.recurrent import unroll


def check_sampling(temperature: float, top_k: int | None) -> None:
    """Reject a temperature ≤ 0 (use ``greedy=True`` instead) and a negative ``top_k``."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (use greedy decoding for the argmax), got {temperature}")
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 or None means no truncation), got {top_k}")


def sample_logits(key, logits: jax.Array, *, temperature: float = 1.0, top_k: int | None = None,
                  greedy: bool = False) -> jax.Array:
    """Draw token ids from ``(..., vocab)`` logits: argmax if ``greedy``, else softmax(logits / T)
    restricted to the ``top_k`` most likely tokens when ``top_k`` is set."""
    if greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    check_sampling(temperature, top_k)
    logits = logits / temperature
    if top_k:
        k = min(int(top_k), logits.shape[-1])
        kth = jax.lax.top_k(logits, k)[0][..., -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class TokenModel:
    """Bundles ``embed``, ``core`` and ``head`` (see the module docstring)."""

    embed: Callable
    core: object
    head: Callable


def warm_up(model: TokenModel, params, carry0, prompt: jax.Array):
    """Feed ``prompt`` ``(batch, P)`` ids. Returns ``(carry, last_logits (batch, vocab))``."""
    if prompt.ndim != 2 or prompt.shape[1] < 1:
        raise ValueError(f"expected prompt ids of shape (batch, length>=1), got {tuple(prompt.shape)}")
    carry, hs = unroll(model.core, params["core"], model.embed(params, prompt), carry0)
    return carry, model.head(params, hs[:, -1])


@dataclasses.dataclass(frozen=True)
class _Sampler:
    model: TokenModel
    temperature: float
    top_k: int | None
    greedy: bool

    def step(self, params, carry, key):
        core_carry, logits = carry
        draw = lambda k, lg: sample_logits(k, lg, temperature=self.temperature, top_k=self.top_k,
                                           greedy=self.greedy)
        tok = jax.vmap(draw)(key, logits)  # one key per sequence
        core_carry, h = self.model.core.step(params["core"], core_carry, self.model.embed(params, tok))
        return (core_carry, self.model.head(params, h)), tok


def generate(model: TokenModel, params, carry0, prompt: jax.Array, length: int, key, *,
             temperature: float = 1.0, top_k: int | None = None, greedy: bool = False):
    """Continue ``prompt`` by ``length`` tokens. Returns ids ``(batch, length)``.

    Wrap in ``jax.jit(..., static_argnames=("length", "temperature", "top_k", "greedy"))`` or
    close over those; the model is static too.
    """
    if not greedy:
        check_sampling(temperature, top_k)
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    carry, logits = warm_up(model, params, carry0, prompt)
    B = prompt.shape[0]
    keys = jax.random.split(key, B * length)
    keys = keys.reshape((B, length) + keys.shape[1:])
    sampler = _Sampler(model, float(temperature), top_k, greedy)
    _, toks = unroll(sampler, params, keys, (carry, logits))
    return toks


@dataclasses.dataclass(frozen=True)
class _Beam:
    model: TokenModel
    width: int
    eos_id: int | None

    def step(self, params, carry, _x):
        core_carry, logits, scores, history, done, t = carry  # leading dims (B*K, ...)
        BK, V = logits.shape
        K = self.width
        B = BK // K
        logp = jax.nn.log_softmax(logits, axis=-1)
        if self.eos_id is not None:  # a finished beam can only repeat EOS, at no cost
            eos_row = jnp.full((V,), -jnp.inf).at[self.eos_id].set(0.0)
            logp = jnp.where(done[:, None], eos_row[None, :], logp)
        cand = (scores[:, None] + logp).reshape(B, K * V)
        top_scores, top_idx = jax.lax.top_k(cand, K)  # (B, K)
        parent = top_idx // V + (jnp.arange(B) * K)[:, None]
        parent = parent.reshape(BK)
        tok = (top_idx % V).reshape(BK).astype(jnp.int32)
        pick = lambda a: a[parent]
        core_carry = jax.tree_util.tree_map(lambda a: jnp.swapaxes(pick(jnp.swapaxes(a, 0, -2)), 0, -2)
                                            if a.ndim == 3 else pick(a), core_carry)
        history = pick(history).at[:, t].set(tok)
        done = pick(done)
        if self.eos_id is not None:
            done = done | (tok == self.eos_id)
        core_carry, h = self.model.core.step(params["core"], core_carry, self.model.embed(params, tok))
        return (core_carry, self.model.head(params, h), top_scores.reshape(BK), history, done, t + 1), None


def beam_search(model: TokenModel, params, carry0, prompt: jax.Array, length: int, width: int, *,
                eos_id: int | None = None):
    """Beam search for ``length`` tokens after ``prompt``. Returns ``(ids (B, width, length),
    log-probs (B, width))``, best beam first.

    ``carry0`` is the core's carry for the prompt batch; each beam is a copy of its row. Carries
    of a :class:`~seqjax.recurrent.Stack` are ``(layers, batch, H)``; those of a cell ``(batch, H)``.
    """
    if width < 1 or length < 1:
        raise ValueError(f"beam width and length must be >= 1, got width={width}, length={length}")
    carry, logits = warm_up(model, params, carry0, prompt)
    B, V = logits.shape
    K = width
    rep = lambda a, axis: jnp.repeat(a, K, axis=axis)
    carry = jax.tree_util.tree_map(lambda a: rep(a, 1) if a.ndim == 3 else rep(a, 0), carry)
    logits = rep(logits, 0)
    # only the first copy of each row starts live, so the first step does not pick K equal beams
    scores = jnp.tile(jnp.concatenate([jnp.zeros((1,)), jnp.full((K - 1,), -jnp.inf)]), B)
    state = (carry, logits, scores, jnp.zeros((B * K, length), jnp.int32), jnp.zeros((B * K,), bool),
             jnp.zeros((), jnp.int32))
    xs = jnp.zeros((B * K, length, 0))
    (_, _, scores, history, _, _), _ = unroll(_Beam(model, K, eos_id), params, xs, state)
    return history.reshape(B, K, length), scores.reshape(B, K)
