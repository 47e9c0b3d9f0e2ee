"""Linear RankSVM (RelAttr): Chapelle's primal Newton method with an exact line search.

The ranking function is s(x) = wᵀx with NO bias (a bias cancels in every comparison). Training
minimises, over pair differences d_i oriented so that a positive wᵀd_i is the labelled order,

    f(w) = ½‖w‖² + C Σ_{i ordered} c_i max(0, 1 − wᵀd_i)² + C Σ_{i equal} c_i (wᵀd_i)²,

with per-pair weights c_i ≥ 0 (weight 0 = the pair is ignored; this is also how padding is
expressed, so every problem has a fixed shape and `jax.vmap` batches many of them). Writing the
per-pair target t_i (1 ordered, 0 equal), both losses are C c_i (t_i − wᵀd_i)² on the ACTIVE set
A(w) = {i : c_i > 0 and (t_i = 0 or wᵀd_i < 1)}, so on a fixed active set f is quadratic and one
Newton step lands on its minimiser:

    primal form      (I + Dᵀ Q_A D) w = Dᵀ Q_A t,                  Q_A = diag(2 C c_i [i ∈ A]),
    pair-space form  w = Dᵀβ,  (I + S G S) γ = S t,  β = S γ,      G = D Dᵀ,  S = Q_A^{1/2}.

The pair-space system follows from the push-through identity (I + DᵀQD)⁻¹DᵀQ = Dᵀ(I + QG)⁻¹Q and
the substitution β = Sγ, which makes it symmetric positive definite (eigenvalues ≥ 1), so both
forms are solved by Cholesky. Off the active set S = 0, so β_i = 0 there with no special casing.
The primal form costs O(PD² + D³) per step and suits P > D; the pair-space form costs O(P²D) once
for G and O(P³) per step and suits P ≤ D (local learning: K ≈ 100 pairs of 990-d features).

Each Newton direction is followed by an EXACT line search: along w + ηs the objective is convex and
piecewise quadratic in η with one breakpoint per ordered pair (where wᵀd_i + η sᵀd_i crosses 1). The
breakpoints are sorted, the derivative at each is evaluated with prefix sums, and the root is solved
in closed form on the piece where the derivative changes sign (O(P log P), fixed shapes). Iteration
stops after `max_iter` Newton steps, when the active set no longer changes (then the step landed on
the optimum), or when the Newton decrement sᵀHs falls below `tol` · f(w); the loop is a
`lax.while_loop`, so the solver jits and vmaps (a vmapped batch runs until its slowest member stops).

Numerics: float32 by default. Every matrix product uses `Precision.HIGHEST` (accelerators would
otherwise round matmul inputs to bf16/tf32). The system matrices are I + PSD, so their smallest
eigenvalue is 1 and Cholesky cannot break down; with standardised features (zero mean, unit
variance per dimension: the CALLER's job) and D ≈ 1000, P ≈ 100–2000, the largest eigenvalue is at
most about 2C·P·2D ≈ 10⁵–10⁶. The Newton iteration absorbs the rounding of each float32 solve:
against float64 solutions of correlated 990-d problems (P = 100, 400, 2000) the float32 objective
is within 4e-8 relative and w within 2e-4 relative (tests check 1e-5 and 1e-3).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from densesynth_jax.rankers import base
from densesynth_jax.rankers.base import FitContext, ScoreRanker
from densesynth_jax.types import PairSet

FORMS = ("auto", "primal", "pairspace")
_HI = lax.Precision.HIGHEST


def _mm(a, b):
  return jnp.matmul(a, b, precision=_HI)


def _is_concrete(x) -> bool:
  return not isinstance(x, jax.core.Tracer)


def _check_finite(name: str, x) -> None:
  """Raises on the first non-finite row of a concrete array (free under tracing)."""
  if not _is_concrete(x):
    return
  x = np.asarray(x)
  if x.size and not np.isfinite(x).all():
    bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
    raise ValueError(f"{name} is not finite at row {int(bad[0])}")


def _float(x) -> jax.Array:
  x = jnp.asarray(x)
  return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


# --------------------------------------------------------------------------------------------
# Problem construction and the objective


def pair_differences(features, pairs: PairSet) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Oriented pair differences, targets and weights of a PairSet.

  Args:
    features: (N, D) float features of the images the pairs index (standardise them first).
    pairs: PairSet with indices into the N images.
  Returns:
    diffs: (P, D) d_i = x_a − x_b for label +1 and 0, x_b − x_a for label −1;
    targets: (P,) 1.0 for ordered pairs, 0.0 for equal pairs;
    weights: (P,) the PairSet's per-pair weights c_i.
  """
  x = _float(features)
  if x.ndim != 2:
    raise ValueError(f"features must be (N, D), got shape {x.shape}")
  if _is_concrete(pairs.a) and _is_concrete(pairs.b):
    pairs.validate(x.shape[0], where="pair_differences")
  _check_finite("pair_differences: features", features)
  a, b = jnp.asarray(pairs.a), jnp.asarray(pairs.b)
  label = jnp.asarray(pairs.label)
  sign = jnp.where(label < 0, -1, 1).astype(x.dtype)
  diffs = (x[a] - x[b]) * sign[:, None]
  targets = (label != 0).astype(x.dtype)
  weights = jnp.asarray(pairs.weight).astype(x.dtype)
  return diffs, targets, weights


def _pair_losses(out, targets):
  """Per-pair squared losses (P,) given outputs o_i = wᵀd_i: (t − o)² on the active side."""
  r = targets - out
  return jnp.where(targets > 0, jnp.maximum(r, 0.0), r) ** 2


@jax.jit
def objective(w, diffs, targets, weights, C=0.1) -> jax.Array:
  """f(w) = ½‖w‖² + C Σ_i c_i loss_i(wᵀd_i); w (D,), diffs (P, D), targets, weights (P,)."""
  out = _mm(diffs, w)
  return 0.5 * jnp.dot(w, w, precision=_HI) + C * jnp.sum(weights * _pair_losses(out, targets))


def scores(w, features) -> jax.Array:
  """Ranking scores s = X w, (N,) for features (N, D)."""
  return _mm(_float(features), w)


# --------------------------------------------------------------------------------------------
# Exact line search


def _line_search(out, delta, targets, q, w_dot_s, s_dot_s):
  """argmin_η ½‖w + ηs‖² + ½ Σ_i q_i loss_i(o_i + η δ_i), exactly.

  Args: out (P,) o_i = wᵀd_i; delta (P,) δ_i = sᵀd_i; targets (P,); q (P,) 2 C c_i;
    w_dot_s = wᵀs, s_dot_s = sᵀs (scalars).
  The derivative g(η) = α₀ + β₀η + Σ_{i active at η} (α_i + β_i η), α_i = q_i δ_i (o_i − t_i),
  β_i = q_i δ_i², is continuous, piecewise linear and non-decreasing; ordered pair i leaves (δ_i > 0)
  or joins (δ_i < 0) the active set at its breakpoint η_i = (1 − o_i)/δ_i.
  """
  alpha = q * delta * (out - targets)
  beta = q * delta * delta
  hinge = (targets > 0) & (delta != 0) & (q > 0)
  bp = jnp.where(hinge, (targets - out) / jnp.where(delta != 0, delta, 1.0), jnp.inf)
  upper = hinge & (delta > 0)   # active for η below its breakpoint
  lower = hinge & (delta < 0)   # active for η above its breakpoint
  a0 = w_dot_s + jnp.sum(jnp.where(hinge, 0.0, alpha))
  b0 = s_dot_s + jnp.sum(jnp.where(hinge, 0.0, beta))

  order = jnp.argsort(bp)
  bp_s = bp[order]
  zero = jnp.zeros((1,), out.dtype)
  prefix = lambda v: jnp.concatenate([zero, jnp.cumsum(v[order])])   # (P+1,) sum over positions < k
  au, bu = prefix(jnp.where(upper, alpha, 0.0)), prefix(jnp.where(upper, beta, 0.0))
  al, bl = prefix(jnp.where(lower, alpha, 0.0)), prefix(jnp.where(lower, beta, 0.0))
  # Piece k lies between sorted breakpoints k−1 and k: "upper" pairs at positions ≥ k and "lower"
  # pairs at positions < k are active there.
  A = a0 + (au[-1] - au) + al
  B = jnp.maximum(b0 + (bu[-1] - bu) + bl, jnp.finfo(out.dtype).tiny)
  right = jnp.concatenate([bp_s, jnp.full((1,), jnp.inf, out.dtype)])
  left = jnp.concatenate([jnp.full((1,), -jnp.inf, out.dtype), bp_s])
  g_right = jnp.where(jnp.isinf(right), jnp.inf, A + B * jnp.where(jnp.isinf(right), 0.0, right))
  k = jnp.argmax(g_right >= 0)   # the first piece whose right end has g ≥ 0 holds the root
  eta = jnp.clip(-A[k] / B[k], left[k], right[k])
  return jnp.where(s_dot_s > 0, eta, 0.0)


# --------------------------------------------------------------------------------------------
# Newton solvers


def _active(out, targets, weights):
  return (weights > 0) & ((targets <= 0) | (out < targets))


def _cho_solve(M, rhs):
  """Solves the SPD system M x = rhs by Cholesky.

  No iterative refinement: the Newton iteration itself corrects a slightly inexact step (measured
  in float32 at P = 2000, D = 990: refinement changed the objective by < 2e-8 relative).
  """
  return jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(M), True), rhs)


@functools.partial(jax.jit, static_argnames=("max_iter",))
def _newton_primal(diffs, targets, weights, C, max_iter: int, tol):
  """Primal Newton: returns (w (D,), number of Newton steps taken)."""
  P, D = diffs.shape
  dtype = diffs.dtype
  q_all = 2.0 * C * weights
  eye = jnp.eye(D, dtype=dtype)

  def body(state):
    it, w, _ = state
    out = _mm(diffs, w)
    act = _active(out, targets, weights)
    q = jnp.where(act, q_all, 0.0)
    H = eye + _mm(diffs.T, q[:, None] * diffs)
    target_w = _cho_solve(H, _mm(diffs.T, q * targets))
    s = target_w - w
    delta = _mm(diffs, s)
    s_dot_s = jnp.dot(s, s, precision=_HI)
    decrement = s_dot_s + jnp.sum(q * delta * delta)   # sᵀHs = −∇fᵀs
    obj = 0.5 * jnp.dot(w, w, precision=_HI) + 0.5 * jnp.sum(q_all * _pair_losses(out, targets))
    eta = _line_search(out, delta, targets, q_all, jnp.dot(w, s, precision=_HI), s_dot_s)
    w_new = w + eta * s
    same = jnp.all(_active(out + eta * delta, targets, weights) == act)
    return it + 1, w_new, same | (decrement <= tol * obj)

  state = (jnp.zeros((), jnp.int32), jnp.zeros((D,), dtype), jnp.zeros((), bool))
  it, w, _ = lax.while_loop(lambda s: (s[0] < max_iter) & ~s[2], body, state)
  return w, it


def _newton_pairspace_impl(G, targets, weights, C, max_iter: int, tol):
  """Pair-space Newton on the Gram matrix G = D Dᵀ (K, K): returns (β (K,), steps); w = Dᵀβ."""
  K = G.shape[0]
  dtype = G.dtype
  q_all = 2.0 * C * weights
  eye = jnp.eye(K, dtype=dtype)

  def body(state):
    it, beta, _ = state
    out = _mm(G, beta)   # recomputed rather than updated, so rounding does not accumulate
    act = _active(out, targets, weights)
    sq = jnp.sqrt(jnp.where(act, q_all, 0.0))
    gamma = _cho_solve(eye + sq[:, None] * G * sq[None, :], sq * targets)
    dbeta = sq * gamma - beta
    delta = _mm(G, dbeta)                        # δ_i = d_iᵀs with s = DᵀΔβ
    s_dot_s = jnp.dot(delta, dbeta, precision=_HI)
    w_dot_s = jnp.dot(out, dbeta, precision=_HI)
    decrement = s_dot_s + jnp.sum(sq * sq * delta * delta)
    obj = 0.5 * jnp.dot(out, beta, precision=_HI) + 0.5 * jnp.sum(
        q_all * _pair_losses(out, targets))
    eta = _line_search(out, delta, targets, q_all, w_dot_s, s_dot_s)
    same = jnp.all(_active(out + eta * delta, targets, weights) == act)
    return it + 1, beta + eta * dbeta, same | (decrement <= tol * obj)

  state = (jnp.zeros((), jnp.int32), jnp.zeros((K,), dtype), jnp.zeros((), bool))
  it, beta, _ = lax.while_loop(lambda s: (s[0] < max_iter) & ~s[2], body, state)
  return beta, it


_newton_pairspace = jax.jit(_newton_pairspace_impl, static_argnames=("max_iter",))


def _prepare(diffs, targets, weights, C, max_iter, tol):
  diffs = _float(diffs)
  if diffs.ndim != 2:
    raise ValueError(f"diffs must be (P, D), got shape {diffs.shape}")
  P = diffs.shape[0]
  if P == 0:
    raise ValueError("RankSVM needs at least one pair; got an empty set of pair differences")
  targets = jnp.asarray(targets, diffs.dtype)
  weights = jnp.asarray(weights, diffs.dtype)
  for name, v in (("targets", targets), ("weights", weights)):
    if v.shape != (P,):
      raise ValueError(f"{name} has shape {v.shape}, expected ({P},) to match diffs")
  _check_finite("RankSVM: diffs", diffs)
  _check_finite("RankSVM: weights", weights)
  if _is_concrete(weights) and np.any(np.asarray(weights) < 0):
    bad = int(np.flatnonzero(np.asarray(weights) < 0)[0])
    raise ValueError(f"RankSVM: weight of pair {bad} is negative")
  if not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
    raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
  if _is_concrete(C) and not float(C) > 0:
    raise ValueError(f"C must be positive, got {C}")
  return diffs, targets, weights, jnp.asarray(C, diffs.dtype), jnp.asarray(tol, diffs.dtype)


def fit_primal(diffs, targets, weights, C=0.1, max_iter: int = 10, tol=1e-7,
               return_steps: bool = False):
  """RankSVM by primal Newton (D×D Cholesky): w (D,) [, Newton steps taken].

  diffs (P, D), targets (P,) 1 ordered / 0 equal, weights (P,) ≥ 0. Jittable and vmappable.
  """
  diffs, targets, weights, C, tol = _prepare(diffs, targets, weights, C, max_iter, tol)
  w, steps = _newton_primal(diffs, targets, weights, C, int(max_iter), tol)
  return (w, steps) if return_steps else w


def gram(diffs) -> jax.Array:
  """G = D Dᵀ (P, P) of pair differences (P, D), at full float32 precision."""
  return _mm(diffs, diffs.T)


def fit_pairspace_dual(G, targets, weights, C=0.1, max_iter: int = 10, tol=1e-7):
  """Pair-space RankSVM from a Gram matrix G (K, K): (β (K,), Newton steps); w = Dᵀβ.

  Pure and traceable (no validation), for callers that vmap it over many small problems.
  """
  return _newton_pairspace_impl(G, targets, weights, jnp.asarray(C, G.dtype), max_iter,
                                jnp.asarray(tol, G.dtype))


def fit_pairspace(diffs, targets, weights, C=0.1, max_iter: int = 10, tol=1e-7,
                  return_steps: bool = False):
  """RankSVM by pair-space Newton (K×K Cholesky on G = D Dᵀ): w (D,) [, Newton steps taken].

  diffs (K, D), targets (K,) 1 ordered / 0 equal, weights (K,) ≥ 0. Jittable and vmappable.
  """
  diffs, targets, weights, C, tol = _prepare(diffs, targets, weights, C, max_iter, tol)
  beta, steps = _newton_pairspace(gram(diffs), targets, weights, C, int(max_iter), tol)
  w = _mm(beta, diffs)
  return (w, steps) if return_steps else w


def fit_ranksvm(diffs, targets, weights, C=0.1, max_iter: int = 10, form: str = "auto",
                tol=1e-7):
  """Linear RankSVM weights w (D,) minimising `objective`; see the module docstring.

  Args:
    diffs: (P, D) oriented pair differences (from `pair_differences`).
    targets: (P,) 1.0 ordered pair, 0.0 equal pair.
    weights: (P,) per-pair weights c_i ≥ 0 (0 ignores the pair).
    C: loss trade-off (RelAttr: 0.1).
    max_iter: at most this many Newton steps (RelAttr: 10).
    form: "primal" (D×D system), "pairspace" (P×P system), or "auto": pair space when P ≤ D.
    tol: stop when the Newton decrement is below tol · objective.
  """
  if form not in FORMS:
    raise ValueError(f"unknown RankSVM form {form!r}; expected one of {FORMS}")
  shape = jnp.shape(diffs)
  if len(shape) != 2:
    raise ValueError(f"diffs must be (P, D), got shape {shape}")
  P, D = shape
  if form == "auto":
    form = "pairspace" if P <= D else "primal"
  fit = fit_pairspace if form == "pairspace" else fit_primal
  return fit(diffs, targets, weights, C=C, max_iter=max_iter, tol=tol)


NAME = "ranksvm_global"


class GlobalRanker(ScoreRanker):
  """The trained global RankSVM: scores of pool images, and what scores new ones (`save`)."""

  def __init__(self, s: np.ndarray, w: np.ndarray, mu, sd, feature: str, features_cfg):
    super().__init__(lambda idx: s[np.asarray(idx)])
    self.w, self.mu, self.sd, self.feature, self.features_cfg = w, mu, sd, feature, features_cfg

  def save(self, folder) -> None:
    arrays = dict(w=self.w)
    if self.mu is not None:
      arrays.update(mean=self.mu, std=self.sd)
    base.write_model(folder, NAME, dict(feature=self.feature,
                                        features=self.features_cfg.to_dict()), arrays)


def fit(ctx: FitContext) -> GlobalRanker:
  """RelAttr: one linear RankSVM on all pool pairs (`ranksvm` block); scores x·w."""
  cfg = ctx.config.ranksvm
  x, mu, sd = base.pool_standardization(ctx)
  diffs, targets, weights = pair_differences(x, ctx.pool.pairs)
  w = np.asarray(fit_ranksvm(diffs, targets, weights, C=cfg.C, max_iter=cfg.max_iter))
  return GlobalRanker(x @ w, w, mu, sd, cfg.feature, ctx.config.features)


def load(folder) -> base.LoadedScorer:
  """A saved global RankSVM: `score(images)` = standardised features · w."""
  meta, arrays = base.read_model(folder, NAME)
  w, mu, sd = arrays["w"], arrays.get("mean"), arrays.get("std")

  def score(images):
    return base.apply_standardization(base.image_features(meta, images), mu, sd) @ w
  return base.LoadedScorer(score)
