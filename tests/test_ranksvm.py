"""RankSVM: optimality, independent references (SciPy, scikit-learn), both forms, weights, accuracy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from sklearn.svm import LinearSVC

from densesynth_jax.metrics import margin_accuracy, rank_accuracy
from densesynth_jax.rankers import ranksvm
from densesynth_jax.types import PairSet


def _problem(P, D, seed, equal_frac=0.2, zero_weights=2):
  """Oriented differences of a noisy linear attribute, some equal pairs, varied weights."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(2 * P, D))
  u = rng.normal(size=D)
  d = x[:P] - x[P:]
  gap = d @ u + 0.5 * rng.normal(size=P)
  t = (np.abs(gap) >= np.quantile(np.abs(gap), equal_frac)).astype(np.float32)
  d = np.where(((gap < 0) & (t > 0))[:, None], -d, d)
  c = rng.uniform(0.5, 2.0, size=P).astype(np.float32)
  c[:zero_weights] = 0.0
  return d.astype(np.float32), t, c


def _scipy_reference(d, t, c, C):
  """L-BFGS-B in float64 on the same objective (independent of the Newton code)."""
  d, t, c = (np.asarray(v, np.float64) for v in (d, t, c))

  def f(w):
    r = t - d @ w
    r = np.where((t <= 0) | (r > 0), r, 0.0)
    return 0.5 * w @ w + C * np.sum(c * r * r), w - 2 * C * d.T @ (c * r)

  res = scipy.optimize.minimize(f, np.zeros(d.shape[1]), jac=True, method="L-BFGS-B",
                                options=dict(maxiter=5000, ftol=1e-15, gtol=1e-10))
  return res.x, res.fun


@pytest.mark.parametrize("P,D", [(40, 10), (15, 30)])
@pytest.mark.parametrize("form", ["primal", "pairspace"])
def test_matches_scipy_and_is_stationary(P, D, form):
  d, t, c = _problem(P, D, seed=P + D)
  w_ref, f_ref = _scipy_reference(d, t, c, 0.1)
  w, steps = (ranksvm.fit_primal if form == "primal" else ranksvm.fit_pairspace)(
      d, t, c, C=0.1, return_steps=True)
  assert 1 <= int(steps) <= 10
  f = float(ranksvm.objective(w, d, t, c, 0.1))
  assert f == pytest.approx(f_ref, rel=1e-5)
  np.testing.assert_allclose(np.asarray(w), w_ref, atol=1e-4 * np.abs(w_ref).max())
  # Stationarity, with the gradient from autodiff rather than the solver's own formula.
  g = jax.grad(ranksvm.objective)(w, jnp.asarray(d), t, c, 0.1)
  g0 = jax.grad(ranksvm.objective)(jnp.zeros_like(w), jnp.asarray(d), t, c, 0.1)
  assert float(jnp.linalg.norm(g)) < 1e-4 * float(jnp.linalg.norm(g0))


def test_line_search_is_exact():
  rng = np.random.default_rng(0)
  P = 50
  out, delta = rng.normal(size=P), rng.normal(size=P)
  t = (rng.uniform(size=P) > 0.3).astype(np.float64)
  q = rng.uniform(0, 1, size=P) * (rng.uniform(size=P) > 0.1)
  wts, sts = -3.0, 2.0

  def phi(eta):
    r = t - (out + eta * delta)
    r = np.where((t <= 0) | (r > 0), r, 0.0)
    return wts * eta + 0.5 * sts * eta ** 2 + 0.5 * np.sum(q * r * r)

  with jax.enable_x64(True):
    eta = float(ranksvm._line_search(jnp.asarray(out), jnp.asarray(delta), jnp.asarray(t),
                                     jnp.asarray(q), wts, sts))
  ref = scipy.optimize.minimize_scalar(phi, bracket=(-10, 0, 10), tol=1e-12).x
  assert eta == pytest.approx(ref, abs=1e-6)
  assert phi(eta) <= min(phi(eta - 1e-4), phi(eta + 1e-4))


def test_same_solution_as_sklearn_linearsvc():
  # LinearSVC minimises ½‖w‖² + C' Σ_samples max(0, 1 − y wᵀx)². With both signs of every ordered
  # difference (y = ±1), each pair's loss appears twice, so C' = C / 2 gives the same objective.
  d, _, _ = _problem(80, 12, seed=5, equal_frac=0.0, zero_weights=0)
  C, ones = 0.1, np.ones(len(d), np.float32)
  w = np.asarray(ranksvm.fit_ranksvm(d, ones, ones, C=C))
  svc = LinearSVC(loss="squared_hinge", fit_intercept=False, C=C / 2, tol=1e-10, max_iter=100000)
  svc.fit(np.concatenate([d, -d]), np.concatenate([np.ones(len(d)), -np.ones(len(d))]))
  w_svc = svc.coef_.ravel()
  np.testing.assert_allclose(w, w_svc, atol=1e-3 * np.abs(w_svc).max())
  rng = np.random.default_rng(7)
  test = rng.normal(size=(200, 12)).astype(np.float32)
  np.testing.assert_array_equal(np.sign(test @ w), np.sign(test @ w_svc))


def test_high_accuracy_on_separable_ranking_data():
  rng = np.random.default_rng(11)
  N, D = 400, 20
  x = rng.normal(size=(N, D)).astype(np.float32)
  strength = x @ rng.normal(size=D)
  def pairs(n, lo, hi):
    a, b = rng.integers(lo, hi, n), rng.integers(lo, hi, n)
    keep = a != b
    return PairSet.create(a[keep], b[keep], np.sign(strength[a] - strength[b])[keep],
                          attribute="synthetic")
  train, test = pairs(300, 0, 200), pairs(500, 200, 400)
  d, t, c = ranksvm.pair_differences(x, train)
  w = ranksvm.fit_ranksvm(d, t, c)
  assert rank_accuracy(np.asarray(ranksvm.scores(w, x)), test) > 0.95


@pytest.mark.slow
def test_zero_weight_equals_dropping_and_weight_two_equals_duplicating():
  # Shapes chosen to reuse the compilations of the SciPy test above.
  d, t, c = _problem(40, 10, seed=2, zero_weights=0)
  c0 = c.copy()
  c0[[3, 7, 11]] = 0
  keep = np.setdiff1d(np.arange(40), [3, 7, 11])
  for form in ("primal", "pairspace"):
    w_zero = ranksvm.fit_ranksvm(d, t, c0, form=form)
    w_drop = ranksvm.fit_ranksvm(d[keep], t[keep], c[keep], form=form)
    np.testing.assert_allclose(np.asarray(w_zero), np.asarray(w_drop), atol=1e-5)
  d, t, c = d[keep], t[keep], c[keep]
  c2 = c.copy()
  c2[4] *= 2
  w_double = ranksvm.fit_ranksvm(d, t, c2, form="primal")
  w_dup = ranksvm.fit_ranksvm(np.concatenate([d, d[4:5]]), np.concatenate([t, t[4:5]]),
                              np.concatenate([c, c[4:5]]), form="primal")
  np.testing.assert_allclose(np.asarray(w_double), np.asarray(w_dup), atol=1e-5)


def test_vmapped_and_jitted_fits_equal_single_fits():
  probs = [_problem(12, 20, seed=s) for s in range(3)]
  d, t, c = (np.stack(v) for v in zip(*probs))
  batched = jax.jit(jax.vmap(lambda d, t, c: ranksvm.fit_pairspace(d, t, c)))(d, t, c)
  for i in range(3):
    np.testing.assert_allclose(np.asarray(batched[i]),
                               np.asarray(ranksvm.fit_pairspace(d[i], t[i], c[i])), atol=1e-6)


@pytest.mark.slow
def test_float32_is_accurate_at_paper_scale():
  # 990-d standardised features with correlated dimensions, K = 200 pairs (local-learning size).
  rng = np.random.default_rng(4)
  N, D, P = 400, 990, 200
  x = rng.normal(size=(N, 20)) @ rng.normal(size=(20, D)) + rng.normal(size=(N, D))
  x = (x - x.mean(0)) / x.std(0)
  s = x @ rng.normal(size=D)
  a, b = rng.integers(0, N, P), rng.integers(0, N, P)
  d = (x[a] - x[b]) * np.sign(s[a] - s[b])[:, None]
  t, c = np.ones(P), np.ones(P)
  t[:20] = 0
  with jax.enable_x64(True):
    w64 = ranksvm.fit_pairspace(d, t, c, max_iter=50)
    f64 = float(ranksvm.objective(w64, d, t, c, 0.1))
    w32 = ranksvm.fit_pairspace(d.astype(np.float32), t.astype(np.float32), c.astype(np.float32))
    assert w32.dtype == jnp.float32
    f32 = float(ranksvm.objective(jnp.asarray(w32, jnp.float64), d, t, c, 0.1))
    w32, w64 = np.asarray(w32, np.float64), np.asarray(w64)
  assert f32 == pytest.approx(f64, rel=1e-5)
  assert np.linalg.norm(w32 - w64) / np.linalg.norm(w64) < 1e-3


def test_pair_differences_orientation():
  x = np.array([[0.0, 1.0], [2.0, 5.0], [7.0, 3.0]], np.float32)
  pairs = PairSet.create([0, 1, 2], [1, 2, 0], [1, -1, 0], attribute="a", weight=[1, 2, 0.5])
  d, t, c = ranksvm.pair_differences(x, pairs)
  np.testing.assert_array_equal(np.asarray(d), [[-2, -4], [5, -2], [7, 2]])
  np.testing.assert_array_equal(np.asarray(t), [1, 1, 0])
  np.testing.assert_array_equal(np.asarray(c), [1, 2, 0.5])
  with pytest.raises(IndexError, match=r"pair 1: image index a=3 out of range"):
    ranksvm.pair_differences(x, PairSet.create([0, 3], [1, 1], [1, 1], attribute="a"))
  bad = x.copy()
  bad[2, 0] = np.nan
  with pytest.raises(ValueError, match="not finite at row 2"):
    ranksvm.pair_differences(bad, pairs)


def test_bad_inputs():
  d, t, c = _problem(5, 3, seed=0)
  with pytest.raises(ValueError, match="form"):
    ranksvm.fit_ranksvm(d, t, c, form="dual")
  with pytest.raises(ValueError, match="at least one pair"):
    ranksvm.fit_ranksvm(np.zeros((0, 3), np.float32), np.zeros(0), np.zeros(0))
  with pytest.raises(ValueError, match="weight of pair 1 is negative"):
    ranksvm.fit_ranksvm(d, t, np.array([1, -1, 1, 1, 1], np.float32))
  with pytest.raises(ValueError, match="targets has shape"):
    ranksvm.fit_ranksvm(d, t[:4], c)


def test_rank_accuracy_counts_ties_as_wrong_and_needs_ordered_pairs():
  scores = np.array([3.0, 1.0, 1.0, 0.0])
  pairs = PairSet.create([0, 1, 2, 1, 0], [1, 2, 3, 0, 3], [1, 1, -1, -1, 0], attribute="smile")
  # pair 0 right, pair 1 a tie (wrong), pair 2 wrong (2 > 3 but label says 3 more), pair 3 right;
  # pair 4 is equal and excluded.
  assert rank_accuracy(scores, pairs) == pytest.approx(0.5)
  assert margin_accuracy(np.array([1.0, 0.0, 1.0, -2.0, 5.0]), pairs) == pytest.approx(0.5)
  with pytest.raises(ValueError, match=r"PairSet\[smile\] has no ordered pairs"):
    rank_accuracy(scores, PairSet.create([0], [1], [0], attribute="smile"))
  with pytest.raises(IndexError, match="out of range"):
    rank_accuracy(scores, PairSet.create([0], [9], [1], attribute="smile"))
