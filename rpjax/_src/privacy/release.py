"""The deployed Robust Privacy release: one protocol for owners and for simulated attackers.

`RobustPrivacyRelease` is what a model owner puts behind a query interface:

- **Label only.** A querier gets a label or `ABSTAIN` (-1). Counts, `pa_lower`, radii and
  p-values go to the owner's audit record (`release.audit()`), never to the querier: a radius
  is a one-to-one function of the vote count and tells points of one ball apart.
- **The noise key is the owner's secret.** `Secret.generate()` draws 32 bytes from the OS
  (`secrets`); no call takes a key, a seed or an example id from the caller. Each noise
  stream is keyed by a 64-bit threefry2x32 sub-key derived from the secret (below): no claim
  of 256-bit strength is made; whoever recovers a stream's 64-bit sub-key has its noise.
- **The subject is the owner's.** `release.querier(subject)` binds a querier to one subject
  (str or int): the function it returns takes only inputs, and every input counts for that
  subject. `query(xs, subjects)` is the owner's front end's batch method (the owner attaches
  each input to its subject). None, NaN, floats, tuples and other types are refused.
- **Noise modes.** `"fresh"`: answer i draws its noise from a key derived from (secret,
  nonce_i), where nonce_i is the answer's 64-bit nonce (below), so a repeated query gets new
  noise. `"consistent"`: the key is derived from (secret, the input's canonical bytes), so an
  exact repeat gets the identical answer (averaging exact repeats gains nothing). A
  near-duplicate (any change to any byte of the input) gets unrelated noise: consistent noise
  alone does not stop averaging; the budget does.
- **Per-subject budget, kept in a durable ledger.** Answers are counted per subject; `Budget`
  caps them directly, by the alpha spent (union bound: k certified answers are all correct
  with probability >= 1 - k alpha) and by the composed advantage bound
  `rpjax.privacy.advantage_bound(..., adaptive=True)` at a stated distance delta, which holds
  for an attacker who moves every query's input after seeing the earlier answers. That bound is
  the worst case over all inputs, so whether the release refuses depends only on how many
  answers the subject has had, never on the input. The default is `Budget(max_answers=1)`;
  a budgeted release keeps its counts in an SQLite ledger at a path the owner gives (`ledger=`,
  `rpjax._src.privacy.ledger`): each query reserves its answers (cap checked, random 64-bit
  nonces drawn) in one transaction before any noise is drawn and marks them answered before
  the labels are returned, so threads and processes sharing the file cannot race past a cap,
  and a restart neither resets a budget nor reuses a nonce (hence fresh noise).
- **Measurement releases.** `Budget.unlimited()` without a ledger is for experiments and tests
  only: its nonces are an in-process counter 0, 1, 2, ... (reproducible runs), so a new
  release object with the same secret reuses the same noise, and nothing is counted across
  restarts. It is not for deployment.

`release.traced()` gives the same protocol as a traceable `LabelRelease` for attack loops
compiled with `jit` (BREP-MI): `fn(params, x, state) -> (labels, state)`, where `state` is the
nonce counter the attacker's loop carries (uint32 `[2]`, low and high words) and `params` the
release's traced values (model parameters, the keys derived from its secret, its float
settings), which attack code passes through untouched. The answers equal the deployed
release's for the same secret and the same nonces (tested): for a measurement release the
nonces of a query sequence are the counter's, so the traced release started from
`initial_state()` gives the same answers; for a ledgered release, answer i of a query equals
the traced release's answer to that input alone at state = (nonce_i mod 2**32, nonce_i >>
32), nonce_i read from the audit record. `fn` depends only on the static settings (model
function, sample counts, mode, number of classes, noise mode), so one compiled attack loop
serves releases that differ in sigma, alpha or secret (tested: a BREP-MI sweep over three
sigmas compiles once). The label-release baselines (`rpjax.baselines`) are built on the same
protocol by `keyed_release`; `base_release` is the undefended model and `experiment_secret` a
reproducible secret for experiments.

Key derivation (threefry2x32, `rpjax._src.noise.threefry2x32`): four 64-bit sub-keys (K_fresh,
K_word, K_cons, K_row) are derived from the 32-byte secret by running threefry under its four
64-bit words in turn on a tag; fresh: pair(nonce) = threefry(K_fresh, nonce); consistent: h =
XOR over j of threefry(K_word, (j, bits(x_j))) for the float32 bits of the input's values
(with -0.0 made +0.0), then pair = threefry(K_cons, h); row (the baselines' randomness):
pair(t) = threefry(K_row, t). Each Robust Privacy answer's selection, estimation and
prediction streams use threefry(pair, purpose). No claim beyond this is made for the
construction: distinct inputs (or nonces) get the same key only through a 64-bit collision.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import os
import secrets as _secrets
import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rpjax._src import decision as _decision
from rpjax._src import noise as _noise
from rpjax._src import plan as _plan
from rpjax._src import smoothing as _smoothing
from rpjax._src import stats
from rpjax._src import validate as _validate
from rpjax._src.decision import ABSTAIN, predict_threshold_table
from rpjax._src.privacy import leakage
from rpjax._src.privacy import ledger as _ledger

MODES = _decision.MODES
NOISE_MODES = ("fresh", "consistent")
SEQUENTIAL_METHODS = ("sequential", "certify_sequential", "decision", "budget")
"""Modes a release refuses: their cost would depend on the input (see `ReleaseConfig`)."""
_TAG_FRESH, _TAG_WORD, _TAG_CONS, _TAG_ROW = 1, 2, 3, 4
_SELECTION, _ESTIMATION, _PREDICTION = (_decision.SELECTION, _decision.ESTIMATION,
                                        _decision.PREDICTION)


class BudgetExceededError(RuntimeError):
    """A query would take a subject past the release's budget; nothing was answered."""


class Secret:
    """The owner's noise secret: 32 bytes. Its value is never printed.

    The release derives from it four 64-bit threefry2x32 sub-keys, one per noise stream (see
    the module docstring), so each stream is keyed by 64 bits: no claim of 256-bit strength
    is made.

    Args:
      value: exactly 32 bytes. Use `Secret.generate()` for a deployment; pass bytes only to
        reproduce a run (tests, audits).
    """

    __slots__ = ("_value",)

    def __init__(self, value: bytes):
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"secret must be 32 bytes (use Secret.generate()), got "
                            f"{type(value).__name__}; integer seeds are refused.")
        if len(value) != 32:
            raise ValueError(f"secret must be exactly 32 bytes, got {len(value)}.")
        self._value = bytes(value)

    @classmethod
    def generate(cls) -> Secret:
        """32 bytes from the operating system's CSPRNG (`secrets.token_bytes`)."""
        return cls(_secrets.token_bytes(32))

    def words(self) -> np.ndarray:
        """`[8]` uint32: the secret as little-endian words (for key derivation)."""
        return np.frombuffer(self._value, dtype="<u4").astype(np.uint32)

    def fingerprint(self) -> str:
        """A 16-hex-digit SHA-256 fingerprint, to tell secrets apart in audit logs."""
        return hashlib.sha256(b"rpjax-secret" + self._value).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"Secret(<hidden>, fingerprint={self.fingerprint()})"


def _tf(pair: jax.Array, x0: jax.Array, x1: jax.Array) -> jax.Array:
    a, b = _noise.threefry2x32(pair[..., 0], pair[..., 1], x0, x1)
    return jnp.stack([a, b], axis=-1)


def _subkeys(words: np.ndarray) -> dict[int, np.ndarray]:
    """The sub-keys K_fresh, K_word, K_cons, K_row: threefry under each 64-bit word pair."""
    out = {}
    with jax.ensure_compile_time_eval():  # constants even when called inside a trace
        w = jnp.asarray(words, jnp.uint32)
        for tag in (_TAG_FRESH, _TAG_WORD, _TAG_CONS, _TAG_ROW):
            x = jnp.array([tag, 0x52504A58], jnp.uint32)  # "RPJX"
            for i in range(4):
                x = _tf(w[2 * i : 2 * i + 2], x[0], x[1])
            out[tag] = np.asarray(x)
    return out


def fresh_key_pairs(k_fresh: jax.Array, start: jax.Array, count: int) -> jax.Array:
    """`[count, 2]` uint32 key pairs of answers `start .. start + count - 1` (fresh noise).

    `start` is the 64-bit answer counter as uint32 `[2]` (low, high).
    """
    lo = start[0] + jnp.arange(count, dtype=jnp.uint32)
    hi = start[1] + (lo < start[0]).astype(jnp.uint32)
    return _tf(k_fresh, lo, hi)


def consistent_key_pairs(k_word: jax.Array, k_cons: jax.Array, xs: jax.Array) -> jax.Array:
    """`[M, 2]` uint32 key pairs from the inputs' canonical float32 bytes (consistent noise)."""
    flat = xs.reshape(xs.shape[0], -1).astype(jnp.float32)
    flat = jnp.where(flat == 0, jnp.float32(0.0), flat)  # -0.0 -> +0.0
    bits = jax.lax.bitcast_convert_type(flat, jnp.uint32)
    index = jnp.arange(bits.shape[1], dtype=jnp.uint32)
    mixed = _tf(k_word, index[None, :], bits)  # [M, d, 2]
    h = jax.lax.reduce(mixed, np.uint32(0), jax.lax.bitwise_xor, (1,))  # [M, 2]
    return _tf(k_cons, h[:, 0] ^ jnp.uint32(bits.shape[1]), h[:, 1])


def purpose_pairs(pairs: jax.Array, purpose: int) -> jax.Array:
    """`[M, 2]`: the key pairs of one stream (selection, estimation, prediction)."""
    return _tf(pairs, jnp.full(pairs.shape[:1], purpose, jnp.uint32),
               jnp.full(pairs.shape[:1], 0x53545245, jnp.uint32))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReleaseConfig:
    """Settings of a deployed release (write `to_dict()` verbatim into reports).

    Attributes:
      smoothing: the statistics, a `rpjax.SmoothingConfig`: `sigma` (noise std, in the units
        of the model input), `n` (samples per answer; estimation samples for "certify"),
        `alpha` (PREDICT's test level / CERTIFY's failure probability; unused by
        always_label), `n0` (selection samples, "certify"). A release draws Gaussian noise,
        independently for every answer: `distribution` must be `GAUSSIAN` and `common_noise`
        False.
      num_classes: number of classes.
      mode: "predict" (label or ABSTAIN, the default), "certify" (CERTIFY's label or ABSTAIN;
        its radius goes to the audit record only) or "always_label" (Monte Carlo top class,
        uncertified).
      noise: "fresh" (new noise for every answer) or "consistent" (noise keyed by the input).
    """

    smoothing: _plan.SmoothingConfig
    num_classes: int
    mode: str = "predict"
    noise: str = "fresh"

    def __post_init__(self):
        if not isinstance(self.smoothing, _plan.SmoothingConfig):
            raise TypeError("smoothing must be a rpjax.SmoothingConfig, got "
                            f"{self.smoothing!r}.")
        if self.smoothing.distribution is not _noise.GAUSSIAN:
            raise ValueError("smoothing.distribution must be rpjax.GAUSSIAN in a release (its "
                             "answers and its leakage bound are those of Gaussian noise), got "
                             f"{self.smoothing.distribution.name!r}.")
        if self.smoothing.common_noise:
            raise ValueError("smoothing.common_noise must be False in a release: answers to "
                             "different queries must use independent noise.")
        # the engine's check (rpjax.certify refuses the same sigma); `query` checks again with
        # the inputs' own magnitude
        _validate.noise_fits("sigma", self.sigma, 0.0, np.float32,
                             max_noise=_noise.MAX_ABS_UNIT_NOISE)
        _validate.integer("num_classes", self.num_classes, minimum=2)
        if self.mode in SEQUENTIAL_METHODS:
            raise ValueError(
                f"mode={self.mode!r}: a release refuses the sequential methods. The samples "
                "an input needs before it is decided reveal its p_A (so where it lies), and "
                "the cost or latency of an answer would carry them to the querier; every "
                "answer of a release costs exactly the same fixed number of forward passes "
                "(ReleaseConfig.forward_passes). Use rpjax.certify(rule=rpjax.DecideAt(r)) "
                "(or rpjax.RadiusBudget()) for owner-side benchmarks only.")
        _decision.mode(self.mode)
        if self.noise not in NOISE_MODES:
            raise ValueError(f"noise must be one of {NOISE_MODES}, got noise={self.noise!r}.")

    @property
    def sigma(self) -> float:
        """`smoothing.sigma`."""
        return self.smoothing.sigma

    @property
    def n(self) -> int:
        """`smoothing.n`."""
        return self.smoothing.n

    @property
    def n0(self) -> int:
        """`smoothing.n0`."""
        return self.smoothing.n0

    @property
    def alpha(self) -> float:
        """`smoothing.alpha`."""
        return self.smoothing.alpha

    @property
    def forward_passes(self) -> int:
        """Base-model forward passes per answer."""
        return self.n + (self.n0 if self.mode == "certify" else 0)

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values."""
        return {"smoothing": self.smoothing.to_dict(), "num_classes": self.num_classes,
                "mode": self.mode, "noise": self.noise}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Budget:
    """Per-subject limits of a release; refusing depends only on the number of answers.

    At least one cap is required (`Budget()` is refused); `Budget.unlimited()` is the explicit
    no-cap setting, for measurement (experiments, tests), not for deployment. A release's
    default is `Budget(max_answers=1)`.

    Attributes:
      max_answers: answers per subject (None: no direct cap).
      max_alpha: largest union bound k * alpha on the probability that any of a subject's k
        answers is wrong (predict / certify only; None: no cap).
      max_advantage: largest composed advantage bound (`rpjax.privacy.advantage_bound(...,
        adaptive=True)`: worst case over all inputs, valid for an adaptive attacker) between
        the subject's x and any x' within `delta`, after k answers (two-class models; None: no
        cap).
      delta: the protected l2 distance in input units, required with `max_advantage`.
      uncapped: True only for `Budget.unlimited()` (no cap at all).
    """

    max_answers: int | None = None
    max_alpha: float | None = None
    max_advantage: float | None = None
    delta: float | None = None
    uncapped: bool = False

    def __post_init__(self):
        if not isinstance(self.uncapped, bool):
            raise TypeError(f"uncapped must be a bool, got {self.uncapped!r}.")
        caps = (self.max_answers, self.max_alpha, self.max_advantage)
        if self.uncapped:
            if any(c is not None for c in caps) or self.delta is not None:
                raise ValueError("uncapped=True takes no cap (max_answers, max_alpha, "
                                 "max_advantage, delta); use Budget.unlimited().")
            return
        if all(c is None for c in caps):
            raise ValueError(
                "Budget() has no cap: give max_answers, max_alpha or max_advantage (with "
                "delta). An uncapped release is Budget.unlimited(), for measurement only.")
        if self.max_answers is not None:
            _validate.integer("max_answers", self.max_answers, minimum=0)
        if self.max_alpha is not None:
            _validate.open_unit_interval("max_alpha", self.max_alpha)
        if self.max_advantage is not None:
            _validate.open_unit_interval("max_advantage", self.max_advantage)
            if self.delta is None:
                raise ValueError("delta (the protected distance) is required with "
                                 "max_advantage.")
        if self.delta is not None:
            _validate.positive("delta", self.delta)

    @classmethod
    def unlimited(cls) -> Budget:
        """No cap at all: a measurement setting (attack experiments, tests), not a
        deployment's. Without a ledger such a release draws its nonces from an in-process
        counter starting at 0, so it reuses noise across restarts (reproducible runs)."""
        return cls(uncapped=True)

    def answers_allowed(self, config: ReleaseConfig) -> int | None:
        """The largest number of answers per subject this budget allows a release with
        `config` (None: unlimited, for `Budget.unlimited()`).

        Raises:
          TypeError: if `config` is not a `ReleaseConfig`.
          ValueError: for `max_alpha` with an always_label config (its answers carry no
            certificate), or `max_advantage` with more than two classes.
        """
        if not isinstance(config, ReleaseConfig):
            raise TypeError(f"config must be a ReleaseConfig, got {type(config).__name__}.")
        if self.uncapped:
            return None
        caps = []
        if self.max_answers is not None:
            caps.append(self.max_answers)
        if self.max_alpha is not None:
            if config.mode == "always_label":
                raise ValueError("max_alpha applies to predict / certify; always_label answers "
                                 "carry no certificate.")
            caps.append(int(math.floor(self.max_alpha / config.alpha * (1 + 1e-12))))
        if self.max_advantage is not None:
            caps.append(_answers_within_advantage(config, self.max_advantage, self.delta))
        return min(caps) if caps else None


DEFAULT_BUDGET = Budget(max_answers=1)
"""The budget of a release made without one: one answer per subject."""


def composed_bound(config: ReleaseConfig, delta: float, k: int) -> float:
    """The advantage bound after k answers at distance delta that holds for an adaptive
    attacker, who chooses every query's input after seeing the earlier answers
    (`advantage_bound(..., adaptive=True)`: worst case over all inputs)."""
    if config.num_classes != 2:
        raise ValueError("the advantage bound covers two-class models; num_classes="
                         f"{config.num_classes}. Cap the budget with max_answers / max_alpha.")
    k = _validate.integer("k", k, minimum=0)
    if k == 0:
        return 0.0
    return leakage.advantage_bound(config.mode, sigma=config.sigma, delta=delta, n=config.n,
                                   alpha=config.alpha, n0=config.n0, k=k,
                                   adaptive=True).advantage


_MAX_ALLOWED = 2**62  # "every k is within the cap" (delta so small that no count reaches it)


def _answers_within_advantage(config: ReleaseConfig, max_advantage: float, delta: float) -> int:
    """The largest k with `composed_bound(config, delta, k) <= max_advantage` (closed form
    from t* and BC*, `leakage.answers_within`)."""
    composed_bound(config, delta, 0)  # the two-class check
    per = leakage.per_answer_bound(config.mode, sigma=config.sigma, delta=delta, n=config.n,
                                   alpha=config.alpha, n0=config.n0)
    return int(min(leakage.answers_within(per, max_advantage), _MAX_ALLOWED))


class LabelRelease(NamedTuple):
    """A release as a traceable function, for attack loops compiled with `jit`.

    Call it as `release(x, state)` (compiled), or pass `release.fn` (static) and
    `release.params` (traced) into your own compiled loop: `release.fn(release.params, x,
    state)`.

    Attributes:
      name: short name for reports ("none", "rp_predict", ...).
      fn: `fn(params, x [M, *input_shape], state) -> (labels [M] int32, state)`; `ABSTAIN`
        (-1) = abstain. `state` is the release's answer (nonce) counter, uint32 `[2]` (start
        from `initial_state()`; another dtype or shape is refused, naming `state`); answer
        j of a batch uses nonce state + j. The randomness comes from the release's own secret
        (its derived keys are in `params`) and the counter, never from the caller. `fn` is
        hashable and depends only on the release's static settings (model function, sample
        counts, mode, number of classes), so releases that differ only in `params` have
        equal `fn`s and share one compiled program.
      forward_passes: base-model forward passes per answer.
      params: pytree of the release's traced values: the model's parameters (`"model"`),
        the keys derived from its secret (`"keys"`, hidden from `repr`), its float settings
        (`"sigma"`, `"p"`, `"q"`, `"scale"`) and tables derived from them (PREDICT's
        `"table"`, CERTIFY's `"kstar"`). Attack code passes it to `fn` untouched.
    """

    name: str
    fn: Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]
    forward_passes: int
    params: Any

    def __call__(self, x: jax.typing.ArrayLike, state: jax.Array) -> tuple[jax.Array, jax.Array]:
        """`(labels [M] int32, state)` for the batch `x` (compiled once per `fn` and shapes)."""
        return _call_compiled(self.fn, self.params, jnp.asarray(x), check_state(state))


@functools.partial(jax.jit, static_argnums=0)
def _call_compiled(fn, params, x, state):
    return fn(params, x, state)


def check_state(state: Any) -> jax.Array:
    """`state` as a uint32 `[2]` array (a release's nonce counter: low, high words).

    Works on traced values (dtype and shape are static). Raises TypeError naming `state` for
    another dtype (an int32 counter would wrap and key other noise than the deployed release),
    ValueError for another shape.
    """
    if not isinstance(state, (jax.Array, np.ndarray)):
        raise TypeError(f"state must be a uint32 array of shape [2] (initial_state()), got "
                        f"{type(state).__name__}.")
    if state.dtype != np.uint32:
        raise TypeError(f"state must have dtype uint32 (initial_state()), got dtype "
                        f"{state.dtype}.")
    if tuple(state.shape) != (2,):
        raise ValueError(f"state must have shape [2] (low, high words), got shape "
                         f"{tuple(state.shape)}.")
    return jnp.asarray(state)


def initial_state() -> jax.Array:
    """The answer counter of a release that has answered nothing: uint32 `[2]` zeros."""
    return jnp.zeros(2, jnp.uint32)


def advance(state: jax.Array, count: int) -> jax.Array:
    """The counter after `count` more answers (64-bit add on (low, high) words)."""
    lo = state[0] + jnp.uint32(count)
    return jnp.stack([lo, state[1] + (lo < state[0]).astype(jnp.uint32)])


class _SecretKeys:
    """The sub-keys a release derives from its `Secret` (uint32 `[2]` each): a pytree whose
    leaves are traced inside `jit`; never printed."""

    __slots__ = ("fresh", "word", "cons", "row")

    def __init__(self, fresh, word, cons, row):
        self.fresh, self.word, self.cons, self.row = fresh, word, cons, row

    @classmethod
    def of(cls, secret: Secret) -> _SecretKeys:
        keys = _subkeys(secret.words())
        return cls(*(keys[t] for t in (_TAG_FRESH, _TAG_WORD, _TAG_CONS, _TAG_ROW)))

    def __repr__(self) -> str:
        return "_SecretKeys(<hidden>)"


jax.tree_util.register_pytree_node(
    _SecretKeys, lambda k: ((k.fresh, k.word, k.cons, k.row), None),
    lambda _, leaves: _SecretKeys(*leaves))


def _check_secret(secret: Secret | None) -> Secret:
    """`secret`, or `Secret.generate()` for None; keys and integer seeds are refused."""
    if secret is None:
        return Secret.generate()
    if not isinstance(secret, Secret):
        raise TypeError(f"secret must be a rpjax.privacy.Secret, got {type(secret).__name__}; "
                        f"keys and integer seeds are refused.")
    return secret


STREAMS = ("fresh", "consistent", "row")


def _answer_key_pairs(keys: _SecretKeys, stream: str, x: jax.Array,
                      state: jax.Array) -> jax.Array:
    """`[M, 2]` uint32 key pairs of the answers to `x` (traceable): "fresh" / "row" from the
    answer counter (the Robust Privacy noise / the baselines' randomness, under different
    sub-keys), "consistent" from the inputs' canonical bytes."""
    if stream == "consistent":
        return consistent_key_pairs(keys.word, keys.cons, x)
    return fresh_key_pairs(keys.fresh if stream == "fresh" else keys.row, state, x.shape[0])


@dataclasses.dataclass(frozen=True)
class _KeyedFn:
    """The `fn` of a `keyed_release`: key pairs from the secret's keys and the counter, the
    rule's labels, the counter advanced by the batch size. Equal for equal rules and streams."""

    rule: Callable[[Any, jax.Array, jax.Array], jax.Array]
    stream: str

    def __call__(self, params, x, state):
        state = check_state(state)
        pairs = _answer_key_pairs(params["keys"], self.stream, x, state)
        return self.rule(params, x, pairs).astype(jnp.int32), advance(state, x.shape[0])


def keyed_release(name: str, rule: Callable[[Any, jax.Array, jax.Array], jax.Array], *,
                  params: dict[str, Any], secret: Secret | None, forward_passes: int,
                  stream: str = "row") -> LabelRelease:
    """A `LabelRelease` whose randomness comes from `secret` and the answer counter.

    The one place where a release's secret is checked (None: `Secret.generate()`), its keys
    derived, each answer's key pair made and the counter advanced; Robust Privacy
    (`RobustPrivacyRelease.traced`) and the label-release baselines are built on it.

    Args:
      name: short name for reports.
      rule: `rule(params, x [M, ...] float32, pairs [M, 2] uint32) -> labels [M]`, traceable
        and hashable (e.g. a frozen dataclass of static settings): answer i's randomness is
        drawn from `pairs[i]` (e.g. `jax.random.wrap_key_data(pairs, impl="threefry2x32")`).
        Releases with equal rules share compiled programs.
      params: the rule's traced values (model parameters, float settings); a `"keys"` entry
        (the secret's derived keys) is added.
      secret: the release's `Secret` (None: `Secret.generate()`, 32 bytes from the OS).
      forward_passes: base-model forward passes per answer.
      stream: "row" (the baselines' per-answer randomness), "fresh" (Robust Privacy's fresh
        noise) or "consistent" (keyed by the input's bytes).
    """
    if stream not in STREAMS:
        raise ValueError(f"stream must be one of {STREAMS}, got stream={stream!r}.")
    if "keys" in params:
        raise ValueError("params must not have a 'keys' entry: it holds the secret's keys.")
    keys = _SecretKeys.of(_check_secret(secret))
    return LabelRelease(name, _KeyedFn(rule, stream), forward_passes, {**params, "keys": keys})


class AuditRecord(NamedTuple):
    """The owner's record of one call of `query` (NumPy arrays with leading axis M).

    Attributes:
      answer_index: `[M]` int64 position of each answer in this release object's life.
      subjects: the subjects (validated: str or int; None for an unbudgeted query without
        subjects).
      label: `[M]` int32 released labels.
      counts: `[M, num_classes]` int32 votes (estimation samples for certify).
      selection_counts: `[M, num_classes]` int32 (certify) or None.
      pa_lower: `[M]` float64 Clopper-Pearson lower bound of the released class (certify)
        or None; radius: `[M]` float64 certified radius in input units (certify) or None.
      pvalue: `[M]` float64 PREDICT's p-value (predict) or None.
      nonce: `[M]` uint64 each answer's nonce (from the ledger, or the in-process counter of
        a measurement release); fresh noise is keyed by (secret, nonce), and the traced
        release reproduces answer i at state `[nonce_i & 0xFFFFFFFF, nonce_i >> 32]` (uint32).
    """

    answer_index: np.ndarray
    subjects: tuple
    label: np.ndarray
    counts: np.ndarray
    selection_counts: np.ndarray | None
    pa_lower: np.ndarray | None
    radius: np.ndarray | None
    pvalue: np.ndarray | None
    nonce: np.ndarray


def _check_subject(value: Any, name: str) -> str | int:
    """A subject id: a `str`, or an `int` (NumPy integers become `int`); bool, None, NaN,
    floats, tuples and every other type are refused (TypeError naming `name`)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a str or an int, got a bool.")
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    raise TypeError(f"{name} must be a str or an int (the owner's id of the person whose data "
                    f"the input is), got {type(value).__name__}.")


class _Counter:
    """The nonces and per-subject counts of a release without a ledger (`Budget.unlimited()`
    only): nonces 0, 1, 2, ... in this process, counts in memory. Nothing survives a restart,
    and a new release object with the same secret reuses the same noise: measurement only."""

    def __init__(self):
        self._lock = threading.Lock()
        self._next = 0
        self._counts: dict[str, int] = {}

    def reserve(self, keys, cap, alpha_each):
        del alpha_each
        if cap is not None:  # never: a capped release requires a ledger
            raise AssertionError("a capped release has a ledger")
        with self._lock:
            start, self._next = self._next, self._next + len(keys)
            for k in keys:
                if k is not None:
                    self._counts[k] = self._counts.get(k, 0) + 1
        return list(range(start, start + len(keys)))

    def answered(self, nonces):
        del nonces

    def release(self, nonces, keys, alpha_each):
        del nonces, alpha_each
        with self._lock:
            for k in keys:
                if k is not None:
                    self._counts[k] -= 1

    def answers(self, key):
        with self._lock:
            return self._counts.get(key, 0)


class RobustPrivacyRelease:
    """A deployed Robust Privacy release (see the module docstring for the protocol).

    Args:
      apply_fn, params: the base model (`apply_fn(params, x [b, ...]) -> logits [b, C]`).
      config: `ReleaseConfig`.
      budget: per-subject `Budget`; None (the default) is `Budget(max_answers=1)`: one answer
        per subject, until the owner states another cap. `Budget.unlimited()` is the
        measurement setting (experiments, tests), not a deployment's.
      secret: the owner's `Secret` (default: `Secret.generate()`, 32 bytes from the OS).
      ledger: path of the SQLite file that keeps the budget (created if missing; its
        directory must exist); required unless `budget=Budget.unlimited()`. There is no
        in-memory ledger: a budget that a restart resets is what the ledger exists to
        prevent, and tests use a file in a temporary directory. A ledger records the secret's
        fingerprint, the config and the budget, and refuses to open for a release that
        differs in any of them. Several release objects (threads, processes, restarts) may
        share one ledger; they then share its budgets.
      durability: "full" (`synchronous=FULL`, the default: a committed reservation survives a
        power loss) or "normal" (`synchronous=NORMAL`: survives a crash of the process, but
        the last commits, and the counts they reserved, may be lost on a power loss or an OS
        crash). See `rpjax._src.privacy.ledger`.
      batch_size: inputs per compiled call (None: all of a query at once).
      chunk_size, devices: as in `rpjax.sample_counts` (speed only; answers do not depend on
        them).

    A release cannot be pickled or copied (it holds its secret and its ledger connection);
    rebuild it in another process from (model, config, secret, ledger path).

    Examples:
      >>> import os, tempfile
      >>> import jax.numpy as jnp
      >>> from rpjax.privacy import Budget, ReleaseConfig, RobustPrivacyRelease
      >>> f = lambda w, x: jnp.stack([-x[:, 0] * w, x[:, 0] * w], axis=-1)
      >>> ledger = os.path.join(tempfile.mkdtemp(), "ledger.sqlite")
      >>> from rpjax import SmoothingConfig
      >>> config = ReleaseConfig(smoothing=SmoothingConfig(sigma=0.5, n=100), num_classes=2)
      >>> rel = RobustPrivacyRelease(f, 1.0, config,
      ...                            budget=Budget(max_answers=2), ledger=ledger)
      >>> ask = rel.querier("alice")  # the owner binds a querier to its subject
      >>> ask(jnp.array([[3.0]])).tolist()
      [1]
      >>> rel.answers("alice")
      1
    """

    def __init__(self, apply_fn: _smoothing.ApplyFn, params: Any, config: ReleaseConfig, *,
                 budget: Budget | None = None, secret: Secret | None = None,
                 ledger: str | os.PathLike | None = None, durability: str = "full",
                 batch_size: int | None = None, chunk_size: int | None = None,
                 devices: Sequence[jax.Device] | None = None):
        if not isinstance(config, ReleaseConfig):
            raise TypeError(f"config must be a ReleaseConfig, got {type(config).__name__}.")
        budget = DEFAULT_BUDGET if budget is None else budget
        if not isinstance(budget, Budget):
            raise TypeError(f"budget must be a Budget or None, got {type(budget).__name__}.")
        secret = _check_secret(secret)
        if durability not in _ledger.DURABILITY:
            raise ValueError(f"durability must be one of {_ledger.DURABILITY}, got "
                             f"durability={durability!r}.")
        self._apply_fn, self._params, self._config = apply_fn, params, config
        self._budget, self._secret = budget, secret
        self._allowed = budget.answers_allowed(config)
        self._plan = _plan.resolve(
            config.smoothing, num_classes=config.num_classes,
            placement=_plan.Placement(devices=devices, chunk_size=chunk_size,
                                      batch_size=batch_size))
        self._keys = _SecretKeys.of(secret)
        self._table = (jnp.asarray(predict_threshold_table(config.n, config.alpha))
                       if config.mode == "predict" else None)
        self._kstar = (_decision.certify_threshold(config.n, config.alpha)
                       if config.mode == "certify" else None)
        self._book: _Counter | _ledger.Ledger
        if ledger is None:
            if self._allowed is not None:
                raise ValueError(
                    f"ledger is required: this release has a per-subject budget ({budget}; "
                    "the default is Budget(max_answers=1)), kept in an SQLite file so that "
                    "it survives restarts and holds across threads and processes: pass "
                    "ledger=PATH. Only a measurement release (budget=Budget.unlimited()) "
                    "runs without one.")
            self._book = _Counter()
        else:
            self._book = _ledger.Ledger(_check_ledger_path(ledger), {
                "secret_fingerprint": secret.fingerprint(),
                "config": config.to_dict(),
                "budget": dataclasses.asdict(budget)}, durability=durability)
        self._lock = threading.Lock()
        self._answered = 0
        self._audit: list[AuditRecord] = []

    def __reduce__(self):
        raise TypeError(
            "a RobustPrivacyRelease cannot be pickled or copied: it holds its secret and its "
            "ledger connection. Rebuild it where it is needed from (model, config, secret, "
            "ledger path): RobustPrivacyRelease(apply_fn, params, config, secret=secret, "
            "ledger=path).")

    def __getstate__(self):
        self.__reduce__()

    # ------------------------------------------------------------------ the querier's side
    def querier(self, subject: str | int) -> Callable[[jax.typing.ArrayLike], np.ndarray]:
        """What a querier is given: `fn(xs) -> labels`, bound by the owner to `subject`.

        Every input of every call counts for `subject`; the function takes nothing else (no
        subject, key, seed or id). A refusal (`BudgetExceededError`) names only `subject`.

        Args:
          subject: the owner's id of the person the querier asks about: a `str` or an `int`
            (NumPy integers are converted; bool, None, NaN, floats and other types are
            refused with a TypeError).
        """
        subject = _check_subject(subject, "subject")
        query = self._query

        def querier(xs):
            xs = self._check_xs(xs)
            return query(xs, (subject,) * xs.shape[0])

        return querier

    # ------------------------------------------------------------------- the owner's side
    def query(self, xs: jax.typing.ArrayLike, subjects: Sequence[str | int] | None = None
              ) -> np.ndarray:
        """The owner's front end's batch method: answers `xs`, input i counted for
        `subjects[i]` (the owner attaches each input to its subject). Labels only.

        Args:
          xs: `[M, *input_shape]` floating, finite inputs.
          subjects: `[M]` subject ids (str or int, as in `querier`); required unless the
            budget is `Budget.unlimited()`.

        Returns:
          `[M]` int32 labels, `ABSTAIN` (-1) where the release abstains.

        Raises:
          BudgetExceededError: if any subject would pass its budget (nothing is answered).
        """
        xs = self._check_xs(xs)
        return self._query(xs, self._check_subjects(subjects, xs.shape[0]))

    @property
    def config(self) -> ReleaseConfig:
        return self._config

    @property
    def budget(self) -> Budget:
        return self._budget

    def answers(self, subject: str | int) -> int:
        """How many answers `subject` has had (in the ledger: answered or reserved)."""
        return self._book.answers(_ledger.subject_key(_check_subject(subject, "subject")))

    def spent(self, subject: str | int) -> dict[str, float]:
        """What a subject's answers have cost: answers, alpha (union bound) and, with a
        budget delta on a two-class model, the composed advantage bound."""
        k = self.answers(subject)
        out: dict[str, float] = {"answers": k}
        if self._config.mode != "always_label":
            out["alpha"] = k * self._config.alpha
        if self._budget.delta is not None and self._config.num_classes == 2:
            out["advantage_bound"] = composed_bound(self._config, self._budget.delta, k)
        return out

    def audit(self) -> list[AuditRecord]:
        """The owner's audit log: one `AuditRecord` per answered query of this object."""
        with self._lock:
            return list(self._audit)

    def secret_fingerprint(self) -> str:
        return self._secret.fingerprint()

    def traced(self, name: str | None = None) -> LabelRelease:
        """This release as a traceable `LabelRelease` (same secret; the same answers for the
        same nonces: from `initial_state()` those of a measurement release's query
        sequence); for compiled attack loops. No budget and no audit inside a trace.

        Its `fn` depends on the model function, `mode`, `noise`, `n`, `n0` and
        `num_classes`; sigma, the alpha-derived threshold (PREDICT's table, CERTIFY's
        k*), the model parameters and the secret's keys are traced `params`.
        """
        cfg = self._config
        rule = _RobustPrivacyRule(self._apply_fn, cfg.mode, cfg.n, cfg.n0, cfg.num_classes)
        params: dict[str, Any] = {"model": self._params, "sigma": np.float64(cfg.sigma)}
        if cfg.mode == "predict":
            params["table"] = np.asarray(self._table)
        elif cfg.mode == "certify":
            params["kstar"] = np.int32(self._kstar)
        return keyed_release(name or f"rp_{cfg.mode}", rule, params=params,
                             secret=self._secret, forward_passes=cfg.forward_passes,
                             stream=cfg.noise)

    # ------------------------------------------------------------------------ internals
    def _check_xs(self, xs):
        xs, max_abs = _validate.inputs_and_max_abs("xs", xs)
        xs = xs.astype(jnp.float32)
        _validate.noise_fits("sigma", self._config.sigma, max_abs, np.float32,
                             max_noise=_noise.MAX_ABS_UNIT_NOISE)
        return xs

    def _check_subjects(self, subjects, m):
        if subjects is None:
            if self._allowed is not None:
                raise ValueError("subjects are required: this release has a per-subject "
                                 "budget.")
            return (None,) * m
        if isinstance(subjects, (str, bytes)):
            raise TypeError("subjects must be a sequence of subject ids, one per input, got "
                            f"a {type(subjects).__name__}.")
        subjects = tuple(_check_subject(s, "subjects") for s in subjects)
        if len(subjects) != m:
            raise ValueError(f"subjects must have one entry per input ({m}), got "
                             f"{len(subjects)}.")
        return subjects

    def _query(self, xs, subjects):
        # a model that cannot take xs is refused before anything is reserved
        _smoothing.check_model(self._apply_fn, self._params, xs, self._config.num_classes)
        keys = [None if s is None else _ledger.subject_key(s) for s in subjects]
        alpha_each = 0.0 if self._config.mode == "always_label" else self._config.alpha
        try:
            nonces = self._book.reserve(keys, self._allowed, alpha_each)
        except _ledger.LedgerBudgetExceeded as err:
            subject = subjects[keys.index(err.key)]
            raise BudgetExceededError(
                f"subject {subject!r} has had {err.had} answers and asks for {err.asked} "
                f"more; the budget allows {self._allowed} per subject ({self._budget}). "
                "Nothing was answered.") from None
        try:
            pairs = self._key_pairs(xs, nonces)
            labels, counts, selection = self._answer(xs, pairs)
            owner = self._statistics(labels, counts, selection)
            self._book.answered(nonces)
        except BaseException:
            self._book.release(nonces, keys, alpha_each)
            raise
        self._record(subjects, labels, counts, selection, owner, nonces)
        return labels

    def _key_pairs(self, xs, nonces):
        if self._config.noise == "fresh":
            n = np.asarray(nonces, np.uint64)
            lo = (n & np.uint64(0xFFFFFFFF)).astype(np.uint32)
            hi = (n >> np.uint64(32)).astype(np.uint32)
            return _nonce_jit(self._keys.fresh, jnp.asarray(lo), jnp.asarray(hi))
        return _consistent_jit(self._keys.word, self._keys.cons, xs)

    def _count(self, xs, pairs, n):
        return np.asarray(_smoothing.count(self._apply_fn, self._params, xs, pairs, n,
                                           self._plan)[0])

    def _answer(self, xs, pairs):
        cfg = self._config
        selection = None
        if cfg.mode == "certify":
            selection = self._count(xs, purpose_pairs(pairs, _SELECTION), cfg.n0)
            counts = self._count(xs, purpose_pairs(pairs, _ESTIMATION), cfg.n)
        else:
            counts = self._count(xs, purpose_pairs(pairs, _PREDICTION), cfg.n)
        labels = np.asarray(_decision.decide(
            cfg.mode, jnp.asarray(counts), None if selection is None else jnp.asarray(selection),
            self._table, self._kstar))
        return labels, counts, selection

    def _statistics(self, labels, counts, selection):
        """The owner's `(pa_lower, radius, pvalue)` of an answer, from the same rules
        (`rpjax._src.decision`) as its labels; a label that differs from them is an
        AssertionError (never seen: one rule, in its compiled and its host form)."""
        cfg = self._config
        pa_lower = radius = pvalue = None
        if cfg.mode == "certify":
            chosen, pa_lower, ok = _decision.certify_statistics(selection, counts, cfg.n,
                                                                cfg.alpha)
            radius = np.where(labels != ABSTAIN, stats.certified_radius(pa_lower, cfg.sigma),
                              0.0)
        elif cfg.mode == "predict":
            chosen, pvalue, ok = _decision.predict_statistics(counts, cfg.alpha)
        else:
            chosen = _decision.always_label_statistics(counts)
            ok = np.ones(chosen.shape, bool)
        if not np.array_equal(np.where(ok, chosen, ABSTAIN), labels):
            raise AssertionError("the release's compiled decision differs from its host "
                                 "statistics; nothing is answered")
        return pa_lower, radius, pvalue

    def _record(self, subjects, labels, counts, selection, owner, nonces):
        m = labels.shape[0]
        pa_lower, radius, pvalue = owner
        with self._lock:
            index = self._answered + np.arange(m, dtype=np.int64)
            self._answered += m
            self._audit.append(AuditRecord(index, tuple(subjects), labels, counts, selection,
                                           pa_lower, radius, pvalue,
                                           np.asarray(nonces, np.uint64)))


def _check_ledger_path(ledger: Any) -> str:
    """`ledger` as a path whose directory exists (TypeError / ValueError naming `ledger`)."""
    if not isinstance(ledger, (str, os.PathLike)):
        raise TypeError(f"ledger must be a file path (str or os.PathLike), got "
                        f"{type(ledger).__name__}.")
    path = os.fspath(ledger)
    if path in ("", ":memory:") or path.startswith("file:"):
        raise ValueError(f"ledger must be the path of a file on disk, got ledger={path!r}: an "
                         "in-memory ledger would reset the budgets at every restart.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"ledger={path!r}: its directory {folder!r} does not exist.")
    if os.path.isdir(path):
        raise ValueError(f"ledger must be a file path, but {path!r} is a directory.")
    return path


def _nonce_key_pairs(k_fresh: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
    """`[M, 2]` fresh-noise key pairs of the answers with nonces (lo, hi): threefry(K_fresh,
    nonce), exactly `fresh_key_pairs` at state = nonce for each answer."""
    return _tf(k_fresh, lo, hi)


_nonce_jit = jax.jit(_nonce_key_pairs)


_consistent_jit = jax.jit(consistent_key_pairs)


@dataclasses.dataclass(frozen=True)
class _RobustPrivacyRule:
    """The traced rule of `RobustPrivacyRelease.traced`: the counts of each answer's noisy
    passes, then the mode's decision. Static settings only (hashable)."""

    apply_fn: Callable
    mode: str
    n: int
    n0: int
    num_classes: int

    def __call__(self, params, x, pairs):
        x = x.astype(jnp.float32)

        def count(stream, n):
            chunk = _smoothing.resolve_chunk_size(None, n, x.shape[0], math.prod(x.shape[1:]))
            return _smoothing.counts_traced(self.apply_fn, params["model"], x,
                                            purpose_pairs(pairs, stream), params["sigma"], n=n,
                                            num_classes=self.num_classes, chunk=chunk)

        if self.mode == "certify":
            counts, selection = count(_ESTIMATION, self.n), count(_SELECTION, self.n0)
        else:
            counts, selection = count(_PREDICTION, self.n), None
        return _decision.decide(self.mode, counts, selection, params.get("table"),
                                params.get("kstar"))


# ---------------------------------------------------------------- releases for experiments
def experiment_secret(*parts: Any) -> Secret:
    """A `Secret` derived deterministically from `parts` (e.g. seed, name, sigma, n).

    For reproducible experiments only: anyone who knows the parts knows the secret. A
    deployment uses `Secret.generate()` (32 bytes from the OS).

    Example: `experiment_secret(0, "rp_predict", 0.1, 10)` is
    `Secret(sha256(b"rpjax-experiment/0/rp_predict/0.1/10").digest())`.
    """
    text = "/".join(["rpjax-experiment", *(str(p) for p in parts)])
    return Secret(hashlib.sha256(text.encode()).digest())


@dataclasses.dataclass(frozen=True)
class _ArgmaxFn:
    """The `fn` of `base_release`: the model's argmax label, the counter advanced."""

    apply_fn: Callable

    def __call__(self, params, x, state):
        state = check_state(state)
        labels = jnp.argmax(self.apply_fn(params["model"], x), axis=-1).astype(jnp.int32)
        return labels, advance(state, x.shape[0])


def base_release(apply_fn: _smoothing.ApplyFn, params: Any) -> LabelRelease:
    """The undefended model as a `LabelRelease`: the argmax label, one forward pass per query
    (no randomness, no secret; the counter is advanced like any release's)."""
    return LabelRelease("none", _ArgmaxFn(apply_fn), 1, {"model": params})

