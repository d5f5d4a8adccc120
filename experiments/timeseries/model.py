"""Forecasting models: a recurrent :class:`~seqjax.recurrent.Stack` and a linear head, wired in one
of four input/output structures, with optional per-window normalisation, an autoregressive
highway, a probabilistic head and a series embedding. A frozen dataclass over a params pytree
``{"rnn": [...], "head": {w, b}}`` (plus ``"highway"``, ``"revin"``, ``"embed"`` when used).

A window has inputs ``x = series[t-L : t]`` (``(B, L, F)``, feature 0 is the target) and targets
``y = series[t : t+H]`` (``(B, H, 1)``), all z-scored. Every structure forecasts ``(B, H)``:

* ``n_to_1``: N → 1. The last step's state → ``series[t]``; needs ``horizon == 1``.
* ``n_to_n``: N → N on the inputs' clock. Step ``s`` is trained to give ``series[s+1 : s+1+H]`` (a
  denser signal: every step has a target); the forecast is the last step's ``H`` outputs.
* ``direct``: N → 1 with an ``H``-wide head: the last state → all of ``y`` at once.
* ``autoregressive``: the one-step model, teacher forced over ``series[t-L : t+H]`` (next value at
  every step). Forecast: step 1 from the last state, then a 1 → N rollout that feeds each prediction
  back as the next input (:class:`~seqjax.structures.OneToMany`, one :func:`~seqjax.recurrent.unroll`).

**Per-window normalisation** (``norm``), so that a level outside the training range does not
break the network: each window's inputs are shifted (and scaled) by statistics of the window's
own inputs before the network reads them, and its outputs are mapped back the same way. ``last``
subtracts each feature's last input value, ``mean`` its mean over the lookback, ``revin``
subtracts the mean, divides by the standard deviation and applies a learned per-feature affine
map (reversible instance normalisation, Kim et al. 2022). Targets never enter the statistics.

**Skip and highway** (``n_to_1`` and ``direct`` only), added to the head's output, so the network
learns a correction: ``skip`` adds a naive forecast (``last``: persistence, ``seasonal``: the value
one ``period`` back, needs ``lookback >= period``); ``highway=K`` adds a learned linear
autoregression on the last ``K`` target inputs (LSTNet's highway, Lai et al. 2018), one weight
vector per horizon step.

**Head** (``head``): ``point`` trains on the MSE; ``gaussian`` and ``student_t`` output a location,
a scale (``softplus``) and, for Student-t, the degrees of freedom (``2 + softplus``, so the variance
is finite), trained on the negative log-likelihood (as DeepAR, Salinas et al. 2020). The point
forecast is the location (the mean and median of both). :meth:`Forecaster.sample` draws from the
predictive distribution: independent draws per horizon step for the one-shot structures, whole
sample paths (each draw fed back) for ``autoregressive``.

**Series embedding** (``series_embedding=D`` with ``num_series`` series): a learned ``D``-vector
per series appended to every input step, so one global model can tell its series apart.

``n_to_n`` and ``autoregressive`` build their per-step targets from the window itself (the inputs'
target column followed by ``y``), so no target ever leaves the window's own span.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from seqjax.cells import CELL_NAMES, INIT_SCHEMES, MATMUL_DTYPES, make_cell
from seqjax.recurrent import Stack
from seqjax.scan import SCAN_CHOICES
from seqjax.structures import OneToMany, dense, dense_init

STRUCTURES = ("n_to_1", "n_to_n", "direct", "autoregressive")
SKIPS = ("none", "last", "seasonal")
NORMS = ("none", "last", "mean", "revin")
HEADS = ("point", "gaussian", "student_t")
_PARAMS_PER_STEP = {"point": 1, "gaussian": 2, "student_t": 3}
_MIN_SCALE = 1e-4  # the smallest predictive scale, in normalised units
_REVIN_EPS = 1e-5


def _check_int(name: str, value, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Forecaster:
    """A recurrent forecaster; hashable, so it can be closed over by jitted functions."""

    structure: str
    horizon: int
    num_features: int = 1
    cell: str = "lstm"
    hidden: int = 32
    num_layers: int = 1
    dropout: float = 0.0
    init_scheme: str = "torch"
    forget_bias: float = 0.0
    skip: str = "none"
    period: int = 0
    matmul_dtype: str = "float32"  # float32 | bfloat16 (recurrent matmuls; see seqjax.cells.Cell)
    norm: str = "none"
    highway: int = 0
    head: str = "point"
    num_series: int = 1
    series_embedding: int = 0
    scan: str = "auto"  # linear-recurrence cells: the evaluation over time (seqjax.scan)
    remat: int = 0  # jax.checkpoint every `remat` steps (0 = off)

    def __post_init__(self):
        if self.structure not in STRUCTURES:
            raise ValueError(f"unknown structure {self.structure!r}; expected one of {STRUCTURES}")
        for name in ("horizon", "num_features", "hidden", "num_layers", "num_series"):
            _check_int(name, getattr(self, name), 1)
        for name in ("highway", "series_embedding", "remat"):
            _check_int(name, getattr(self, name), 0)
        choices = (("cell", self.cell, CELL_NAMES), ("matmul_dtype", self.matmul_dtype, MATMUL_DTYPES),
                   ("init", self.init_scheme, INIT_SCHEMES), ("skip", self.skip, SKIPS), ("norm", self.norm, NORMS),
                   ("head", self.head, HEADS), ("scan", self.scan, SCAN_CHOICES))
        for name, value, allowed in choices:
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; expected one of {allowed}")
        if self.structure == "n_to_1" and self.horizon != 1:
            raise ValueError(f"structure 'n_to_1' forecasts one step, but horizon={self.horizon}; use "
                             "'direct' (all steps from the last state), 'n_to_n' or 'autoregressive'")
        for name, on in (("skip", self.skip != "none"), ("highway", self.highway > 0)):
            if on and self.structure not in ("n_to_1", "direct"):
                raise ValueError(f"{name}={getattr(self, name)!r} is for the structures 'n_to_1' and 'direct', "
                                 f"not {self.structure!r}")
        if self.skip == "seasonal" and (not isinstance(self.period, int) or self.period < 1):
            raise ValueError(f"skip='seasonal' needs a period >= 1, got {self.period!r}")
        if self.structure == "autoregressive" and self.num_features != 1:
            raise ValueError("structure 'autoregressive' feeds its predictions back as the next input, so "
                             f"it needs a univariate series; this one has {self.num_features} features "
                             "(covariates have no forecast to feed back)")

    @property
    def stack(self) -> Stack:
        return Stack(make_cell(self.cell, matmul_dtype=self.matmul_dtype, scan=self.scan), self.num_layers,
                     dropout=self.dropout, remat=self.remat)

    @property
    def head_size(self) -> int:
        """Forecast steps per head output: ``H`` for ``direct`` and ``n_to_n``, else 1."""
        return self.horizon if self.structure in ("direct", "n_to_n") else 1

    @property
    def probabilistic(self) -> bool:
        return self.head != "point"

    def init(self, key: jax.Array) -> dict:
        k_rnn, k_head, k_hw, k_emb = jax.random.split(key, 4)
        forget_bias = self.forget_bias if self.cell == "lstm" else 0.0
        k = _PARAMS_PER_STEP[self.head]
        params = {"rnn": self.stack.init(k_rnn, self.num_features + self.series_embedding, self.hidden,
                                         init=self.init_scheme, forget_bias=forget_bias),
                  "head": dense_init(k_head, self.hidden, self.head_size * k)}
        if self.highway:
            params["highway"] = dense_init(k_hw, self.highway, self.head_size)
        if self.norm == "revin":
            params["revin"] = {"gamma": jnp.ones((self.num_features,)), "beta": jnp.zeros((self.num_features,))}
        if self.series_embedding:
            params["embed"] = jax.random.normal(k_emb, (self.num_series, self.series_embedding)) / math.sqrt(
                self.series_embedding)
        return params

    # ------------------------------------------------------------------ normalisation
    def _stats(self, params, inputs):
        """``(loc, scale, gamma, beta)``, each ``(B, 1, F)``, of the windows' inputs."""
        B, _, F = inputs.shape
        one, zero = jnp.ones((B, 1, F), inputs.dtype), jnp.zeros((B, 1, F), inputs.dtype)
        if self.norm == "none":
            return zero, one, one, zero
        if self.norm == "last":
            return inputs[:, -1:, :], one, one, zero
        loc = jnp.mean(inputs, axis=1, keepdims=True)
        if self.norm == "mean":
            return loc, one, one, zero
        scale = jnp.sqrt(jnp.var(inputs, axis=1, keepdims=True) + _REVIN_EPS)
        r = params["revin"]
        return loc, scale, jnp.broadcast_to(r["gamma"][None, None, :], (B, 1, F)), \
            jnp.broadcast_to(r["beta"][None, None, :], (B, 1, F))

    def _normalise(self, x, stats):
        loc, scale, gamma, beta = stats
        return (x - loc) / scale * gamma + beta

    def _denormalise(self, v, stats, feature: int = 0):
        """Normalised target values ``(B, ...)`` back to z-scored units, by each window's statistics."""
        loc, scale, gamma, beta = (s[:, 0, feature].reshape((-1,) + (1,) * (v.ndim - 1)) for s in stats)
        return (v - beta) / gamma * scale + loc

    def _spread(self, s, stats):
        """A normalised scale back to z-scored units."""
        _, scale, gamma, _ = (t[:, 0, 0].reshape((-1,) + (1,) * (s.ndim - 1)) for t in stats)
        return s * scale / (jnp.abs(gamma) + _REVIN_EPS)

    # ------------------------------------------------------------------ pieces
    def _check(self, inputs, targets=None):
        if inputs.ndim != 3 or inputs.shape[-1] != self.num_features:
            raise ValueError(f"expected inputs of shape (batch, lookback, {self.num_features}), "
                             f"got {tuple(inputs.shape)}")
        if targets is not None and (targets.ndim != 3 or targets.shape[1:] != (self.horizon, 1)
                                    or targets.shape[0] != inputs.shape[0]):
            raise ValueError(f"expected targets of shape ({inputs.shape[0]}, {self.horizon}, 1), "
                             f"got {tuple(targets.shape)}")
        if self.highway > inputs.shape[1]:
            raise ValueError(f"highway={self.highway} reads more steps than the lookback {inputs.shape[1]}")

    def _series(self, series, batch: int):
        if series is None:
            return jnp.zeros((batch,), jnp.int32)
        return jnp.asarray(series, jnp.int32).reshape(batch)

    def _embedding(self, params, series, batch: int):
        """``(B, D)`` series vectors, or None without an embedding."""
        if not self.series_embedding:
            return None
        return params["embed"][self._series(series, batch)]

    def _with_embedding(self, xs, emb):
        if emb is None:
            return xs
        return jnp.concatenate([xs, jnp.broadcast_to(emb[:, None, :], xs.shape[:2] + emb.shape[1:])], axis=-1)

    def naive(self, inputs) -> jax.Array:
        """The ``skip`` forecast ``(B, horizon)`` from (normalised) inputs (zeros for ``skip='none'``)."""
        B, L = inputs.shape[:2]
        if self.skip == "none":
            return jnp.zeros((B, self.horizon), inputs.dtype)
        if self.skip == "last":
            return jnp.broadcast_to(inputs[:, -1:, 0], (B, self.horizon))
        if L < self.period:
            raise ValueError(f"skip='seasonal' needs lookback >= period={self.period}, got lookback {L}")
        h = jnp.arange(1, self.horizon + 1)
        return inputs[:, L - 1 + h - self.period * ((h + self.period - 1) // self.period), 0]

    def _additive(self, params, xn):
        """Skip plus highway, ``(B, H)``, from normalised inputs (n_to_1 and direct)."""
        out = self.naive(xn)
        if self.highway:
            out = out + dense(params["highway"], xn[:, -self.highway:, 0])
        return out

    def _split(self, raw):
        """Head outputs ``(..., head_size * k)`` → ``{"mu", "sigma", "df"}`` of ``(..., head_size)``
        (normalised units; only ``mu`` for a point head)."""
        n = self.head_size
        out = {"mu": raw[..., :n]}
        if self.probabilistic:
            out["sigma"] = jax.nn.softplus(raw[..., n:2 * n]) + _MIN_SCALE
        if self.head == "student_t":
            out["df"] = 2.0 + jax.nn.softplus(raw[..., 2 * n:3 * n])
        return out

    def _to_units(self, d, stats):
        out = {"mu": self._denormalise(d["mu"], stats)}
        if "sigma" in d:
            out["sigma"] = self._spread(d["sigma"], stats)
        if "df" in d:
            out["df"] = d["df"]
        return out

    def _run(self, params, xs, rng=None, train=False):
        return self.stack(params["rnn"], xs, rng=rng, train=train)

    def _teacher(self, inputs, targets):
        """The window's target column end to end: ``series[t-L : t+H]``, ``(B, L+H)``."""
        return jnp.concatenate([inputs[..., 0], targets[..., 0]], axis=1)

    def _one_shot(self, params, inputs, series, rng=None, train=False):
        """n_to_1 / direct: the distribution of the H targets (normalised units) and the stats."""
        stats = self._stats(params, inputs)
        xn = self._normalise(inputs, stats)
        final, ys = self._run(params, self._with_embedding(xn, self._embedding(params, series, inputs.shape[0])),
                              rng, train)
        d = self._split(dense(params["head"], ys[:, -1]))
        d["mu"] = d["mu"] + self._additive(params, xn)
        return d, stats, final, xn

    def rollout(self, params, carry, first: jax.Array, steps: int, emb=None, keys=None) -> jax.Array:
        """1 → N: from ``carry`` (after the lookback) and the step-1 value ``first`` ``(B, 1)``
        (normalised), predict ``steps`` more, each fed back as the next input. With ``keys``
        ``(B, steps, 2)`` each step's value is drawn from the head's distribution (a sample path),
        else it is the location. Returns ``(B, steps)`` normalised values."""
        def readout(p, h, key):
            d = self._split(dense(p["head"], h))
            return d["mu"] if key is None or key.shape[-1] == 0 else self._draw(d, key)

        def feedback(p, out):
            return out if emb is None else jnp.concatenate([out, p["emb"]], axis=-1)

        gen = OneToMany(self.stack, feed="first", readout=readout, feedback=feedback)
        full = {"core": params["rnn"], "head": params["head"]}
        if emb is not None:
            full["emb"] = emb
        _, outs = gen(full, feedback(full, first), carry, steps, start=first, step_inputs=keys)
        return outs[..., 0]

    def _draw(self, d, key):
        """One draw from the (normalised) distribution ``d``; ``key`` has the batch as first axis."""
        if key.ndim > 1 and key.shape[0] == d["mu"].shape[0]:  # a key per batch row (inside the rollout)
            return jax.vmap(lambda dd, k: self._draw(dd, k))(d, key)
        if self.head == "gaussian":
            return d["mu"] + d["sigma"] * jax.random.normal(key, d["mu"].shape)
        return d["mu"] + d["sigma"] * jax.random.t(key, d["df"], d["mu"].shape)

    # ------------------------------------------------------------------ highway initialisation
    def _highway_problem(self, inputs, targets):
        """``(normalised inputs (N, L), residual targets (N, H))`` of the highway's regression: the
        targets in the model's normalised units at initialisation (RevIN's affine map is then the
        identity), less the skip."""
        import numpy as np

        x = jnp.asarray(inputs, jnp.float32)
        identity = {"revin": {"gamma": jnp.ones((self.num_features,)), "beta": jnp.zeros((self.num_features,))}}
        stats = self._stats(identity, x)
        xn = self._normalise(x, stats)
        loc, scale = stats[0][:, 0, 0], stats[1][:, 0, 0]
        yn = (jnp.asarray(targets, jnp.float32)[..., 0] - loc[:, None]) / scale[:, None]
        return np.asarray(xn[..., 0], np.float64), np.asarray(yn - self.naive(xn), np.float64)

    @staticmethod
    def _lstsq(xn, resid, order: int, ridge: float):
        import numpy as np

        X = np.concatenate([xn[:, -order:], np.ones((xn.shape[0], 1))], axis=1)
        coef = np.linalg.solve(X.T @ X + ridge * X.shape[0] * np.eye(X.shape[1]), X.T @ resid)
        return coef, X

    def least_squares_highway(self, inputs, targets, val_inputs=None, val_targets=None, orders=None,
                              ridge: float = 1e-4) -> dict:
        """The highway's least-squares fit on training windows: the residual of the targets after
        the skip (normalised units) regressed on the last ``K`` normalised target inputs, with a small
        ridge. With ``orders`` and validation windows, ``K`` is the order with the lowest validation
        MAE among them (the smaller on a tie); else ``K = highway``. Returns plain lists
        ``{"order": K, "w": (K, H), "b": (H,), "sigma": (H,), "val_mae": {K: ...}}`` (``sigma``: the
        fit's residual spread on the training windows), for :meth:`with_highway_init`."""
        import numpy as np

        xn, resid = self._highway_problem(inputs, targets)
        scores = {}
        if orders is not None and val_inputs is not None and len(val_inputs):
            vx, vr = self._highway_problem(val_inputs, val_targets)
            for k in orders:
                coef, _ = self._lstsq(xn, resid, k, ridge)
                pred = np.concatenate([vx[:, -k:], np.ones((vx.shape[0], 1))], axis=1) @ coef
                scores[int(k)] = float(np.mean(np.abs(pred - vr)))
            order = min(scores, key=lambda k: (scores[k], k))
        else:
            if not self.highway:
                raise ValueError("the model has no highway to fit")
            order = self.highway
        coef, X = self._lstsq(xn, resid, order, ridge)
        sigma = np.sqrt(np.mean((resid - X @ coef) ** 2, axis=0))
        return {"order": int(order), "w": coef[:-1].tolist(), "b": coef[-1].tolist(), "sigma": sigma.tolist(),
                "val_mae": scores}

    def with_highway_init(self, params: dict, fit: dict) -> dict:
        """``params`` starting from the least-squares highway ``fit``, with the head's location output
        zeroed (so the first forecast is the linear fit, and the network learns the residual) and, for
        a probabilistic head, its scale starting at the fit's residual spread."""
        n = self.head_size
        head = dict(params["head"])
        head["w"] = head["w"].at[:, :n].set(0.0)
        head["b"] = head["b"].at[:n].set(0.0)
        if self.probabilistic:
            s = jnp.maximum(jnp.asarray(fit["sigma"], jnp.float32) - _MIN_SCALE, 1e-3)
            head["b"] = head["b"].at[n:2 * n].set(jnp.log(jnp.expm1(s)))  # softplus^-1
        highway = {"w": jnp.asarray(fit["w"], jnp.float32).reshape(self.highway, n),
                   "b": jnp.asarray(fit["b"], jnp.float32).reshape(n)}
        return dict(params, head=head, highway=highway)

    # ------------------------------------------------------------------ public
    def objective(self, params, inputs, targets, series=None, *, rng=None, train: bool = False):
        """``(prediction, target)`` of the training objective: ``prediction`` is ``{"mu"}`` (and
        ``"sigma"``, ``"df"`` for a probabilistic head) in z-scored units, every entry shaped as
        ``target``. :meth:`pointwise_loss` turns them into the loss."""
        self._check(inputs, targets)
        B, L = inputs.shape[:2]
        if self.structure in ("n_to_1", "direct"):
            d, stats, _, _ = self._one_shot(params, inputs, series, rng, train)
            return self._to_units(d, stats), targets[..., 0]
        stats = self._stats(params, inputs)
        emb = self._embedding(params, series, B)
        teacher = self._teacher(inputs, targets)
        if self.structure == "n_to_n":
            H = self.horizon
            idx = jnp.arange(L)[:, None] + 1 + jnp.arange(H)[None, :]  # step s -> series[s+1 : s+1+H]
            xn = self._normalise(inputs, stats)
            _, ys = self._run(params, self._with_embedding(xn, emb), rng, train)
            return self._to_units(self._split(dense(params["head"], ys)), stats), teacher[:, idx]
        # autoregressive: the next value at every step, inputs normalised by the lookback's statistics
        tn = self._normalise(teacher[:, :-1, None], stats)
        _, ys = self._run(params, self._with_embedding(tn, emb), rng, train)
        d = self._split(dense(params["head"], ys))
        return {k: v[..., 0] for k, v in self._to_units(d, stats).items()}, teacher[:, 1:]

    def pointwise_loss(self, pred: dict, target) -> jax.Array:
        """The loss at every point, shaped as ``target``: squared error for a point head, the
        negative log-likelihood for a probabilistic one."""
        mu = pred["mu"]
        if self.head == "point":
            return (mu - target) ** 2
        z = (target - mu) / pred["sigma"]
        if self.head == "gaussian":
            return 0.5 * z**2 + jnp.log(pred["sigma"]) + 0.5 * math.log(2 * math.pi)
        nu = pred["df"]
        return (jax.scipy.special.gammaln(nu / 2) - jax.scipy.special.gammaln((nu + 1) / 2)
                + 0.5 * jnp.log(nu * math.pi) + jnp.log(pred["sigma"]) + (nu + 1) / 2 * jnp.log1p(z**2 / nu))

    def forecast(self, params, inputs, series=None) -> jax.Array:
        """The ``(B, horizon)`` point forecast (z-scored units) from ``(B, lookback, F)`` inputs."""
        return self.distribution(params, inputs, series)["mu"]

    def distribution(self, params, inputs, series=None) -> dict:
        """The forecast's ``{"mu"}`` (plus ``"sigma"``, ``"df"``), ``(B, horizon)`` each, z-scored
        units. For ``autoregressive`` only ``mu`` (the rollout of locations) is exact; its steps
        after the first have no closed form (use :meth:`sample`)."""
        self._check(inputs)
        B = inputs.shape[0]
        if self.structure in ("n_to_1", "direct"):
            d, stats, _, _ = self._one_shot(params, inputs, series)
            return self._to_units(d, stats)
        stats = self._stats(params, inputs)
        xn = self._normalise(inputs, stats)
        emb = self._embedding(params, series, B)
        final, ys = self._run(params, self._with_embedding(xn, emb))
        d = self._split(dense(params["head"], ys[:, -1]))  # n_to_n: (B, H); autoregressive: (B, 1)
        if self.structure == "n_to_n" or self.horizon == 1:
            return self._to_units(d, stats)
        rest = self.rollout(params, final, d["mu"], self.horizon - 1, emb)
        return {"mu": self._denormalise(jnp.concatenate([d["mu"], rest], axis=1), stats)}

    def sample(self, params, inputs, key, n: int, series=None) -> jax.Array:
        """``(n, B, horizon)`` draws from the predictive distribution (z-scored units); a point
        head has none (ValueError)."""
        if not self.probabilistic:
            raise ValueError("a point head has no predictive distribution to sample; use head='gaussian' or "
                             "'student_t'")
        self._check(inputs)
        B = inputs.shape[0]
        if self.structure != "autoregressive" or self.horizon == 1:
            d = self.distribution(params, inputs, series)
            keys = jax.random.split(key, n)
            return jax.vmap(lambda k: self._draw(d, k))(keys)
        stats = self._stats(params, inputs)
        xn = self._normalise(inputs, stats)
        emb = self._embedding(params, series, B)
        final, ys = self._run(params, self._with_embedding(xn, emb))
        d = self._split(dense(params["head"], ys[:, -1]))

        def path(k):
            k1, k2 = jax.random.split(k)
            first = self._draw(d, k1)
            keys = jax.random.split(k2, B * (self.horizon - 1)).reshape(B, self.horizon - 1, -1)
            rest = self.rollout(params, final, first, self.horizon - 1, emb, keys)
            return self._denormalise(jnp.concatenate([first, rest], axis=1), stats)

        return jax.vmap(path)(jax.random.split(key, n))


def from_config(cfg_model, horizon: int, num_features: int, period: int = 0, num_series: int = 1,
                lookback: int = 0, highway_order: int | None = None) -> Forecaster:
    """A :class:`Forecaster` from ``config.model`` (keys as in ``configs/default.py``). ``highway=-1``
    (chosen on validation) takes ``highway_order``, the order :func:`highway_fit` chose, or else the
    ``lookback``."""
    m = cfg_model
    highway = int(m.highway)
    if highway == -1:
        highway = int(highway_order or lookback)
    return Forecaster(structure=m.structure, horizon=int(horizon), num_features=int(num_features), cell=m.cell,
                      hidden=m.hidden, num_layers=m.num_layers, dropout=float(m.dropout), init_scheme=m.init,
                      forget_bias=float(m.forget_bias), skip=m.skip, period=int(period),
                      matmul_dtype=m.matmul_dtype, norm=m.norm, highway=highway, head=m.head,
                      num_series=int(num_series), series_embedding=int(m.series_embedding), scan=m.scan,
                      remat=m.remat)


def highway_fit(cfg_model, horizon: int, num_features: int, period: int, num_series: int, lookback: int,
                train: tuple, val: tuple | None = None) -> dict | None:
    """:meth:`Forecaster.least_squares_highway` of the model that ``config.model`` describes, on the
    ``(inputs, targets)`` of the training windows; with ``highway=-1`` its order is chosen on the
    validation windows among ``1..lookback``. None without a highway, or for a model section that
    the task refuses with its own message."""
    if not cfg_model.highway:
        return None
    try:
        model = from_config(cfg_model, horizon, num_features, period, num_series, lookback)
        orders = range(1, lookback + 1) if cfg_model.highway == -1 else None
        return model.least_squares_highway(*train, *(val or (None, None)), orders=orders)
    except (ValueError, TypeError, AttributeError):
        return None
