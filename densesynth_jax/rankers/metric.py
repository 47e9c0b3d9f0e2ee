"""A learned Mahalanobis metric per attribute for FG-LP's neighbour search: KISSME.

FG-LP learns a metric per attribute so that "analogous" means close in the directions that matter
for that attribute (REFERENCE.md §4: probably ITML, unconfirmed). We use KISSME (Köstinger et al.,
CVPR 2012) instead: it is closed-form (no iterative optimisation, no hyper-parameter search beyond a
ridge), needs only similar / dissimilar pairs, and is a standard pair-based Mahalanobis learner.

KISSME models the difference u = x_a − x_b of a SIMILAR pair as N(0, Σ_S) and of a DISSIMILAR pair as
N(0, Σ_D); the log-likelihood ratio test gives the metric M = Σ_S⁻¹ − Σ_D⁻¹. For a relative
attribute we take
  - similar: pairs labelled equal (label 0), plus, when there are fewer than `min_similar` of those
    and per-image attribute strengths are given, the ordered pairs with the smallest strength gap;
  - dissimilar: the remaining ordered pairs.
Steps: PCA of the training images' features to r dims (P, D×r; KISSME's covariances need many more
pairs than dimensions), per-pair weighted second moments of the projected differences, a ridge of
`ridge` · mean eigenvalue on both covariances, M = Σ_S⁻¹ − Σ_D⁻¹, then projection onto the PSD cone
by clipping negative eigenvalues. The result is returned as a factor L (D×r') with
L Lᵀ = P M₊ Pᵀ, so d(x, y) = ‖Lᵀ(x − y)‖; r' counts the positive eigenvalues. L is scaled so that
the largest eigenvalue of M₊ is 1 (only the ranking of distances matters for neighbour search).

PCA keeps the r directions of largest feature variance; an attribute carried only by low-variance
directions is lost when r < D (then raise `rank`). The metric is pair-based and symmetric: it
says which directions matter for the attribute, not which way the attribute grows.

This is a one-off O(N D r + P r² + r³) computation, done in float64 NumPy for robustness.
"""

from __future__ import annotations

import numpy as np

from densesynth_jax.types import PairSet


def kissme(features, pairs: PairSet, *, rank: int = 64, ridge: float = 1e-2,
           strengths=None, min_similar: int | None = None) -> np.ndarray:
  """KISSME metric factor L (D, r') for one attribute; see the module docstring.

  Args:
    features: (N, D) image features (standardised, as for the RankSVM).
    pairs: training PairSet for the attribute, indices into the N images; weights weight the
      covariances (zero-weight pairs are ignored).
    rank: PCA dimension r (capped by D and by the number of distinct images − 1).
    ridge: relative ridge added to both covariances (× their mean eigenvalue).
    strengths: optional (N,) attribute strengths; used only to top up the similar set with the
      ordered pairs of smallest |strength gap| when it has fewer than `min_similar` pairs.
    min_similar: desired number of similar pairs (default 2·r).
  Returns:
    float32 (D, r') with L Lᵀ positive semi-definite and r' ≥ 1.
  """
  x = np.asarray(features, np.float64)
  if x.ndim != 2:
    raise ValueError(f"features must be (N, D), got shape {x.shape}")
  if not np.isfinite(x).all():
    raise ValueError(f"features are not finite at row {int(np.flatnonzero(~np.isfinite(x).all(1))[0])}")
  pairs.validate(len(x), where="kissme")
  if not rank >= 1:
    raise ValueError(f"rank must be >= 1, got {rank}")
  if not ridge > 0:
    raise ValueError(f"ridge must be positive, got {ridge}")
  weight = np.asarray(pairs.weight, np.float64)
  a, b = np.asarray(pairs.a), np.asarray(pairs.b)
  label = np.asarray(pairs.label)
  keep = weight > 0
  images = np.unique(np.concatenate([a[keep], b[keep]]))
  r = int(min(rank, x.shape[1], max(len(images) - 1, 1)))

  # PCA on the images the pairs use.
  xi = x[images] - x[images].mean(axis=0)
  _, _, vt = np.linalg.svd(xi, full_matrices=False)
  proj = vt[:r].T                                                        # (D, r)

  similar = keep & (label == 0)
  want = 2 * r if min_similar is None else int(min_similar)
  if similar.sum() < want and strengths is not None:
    s = np.asarray(strengths, np.float64).reshape(-1)
    if s.shape != (len(x),) or not np.isfinite(s).all():
      raise ValueError(f"strengths must be {len(x)} finite values, got shape {s.shape}")
    gap = np.abs(s[a] - s[b])
    candidates = np.flatnonzero(keep & (label != 0))
    extra = candidates[np.argsort(gap[candidates], kind="stable")[:want - similar.sum()]]
    similar[extra] = True
  dissimilar = keep & ~similar
  for name, m in (("similar (equal or small-gap)", similar), ("dissimilar (ordered)", dissimilar)):
    if m.sum() < 2:
      raise ValueError(f"kissme[{pairs.attribute}]: only {int(m.sum())} {name} pairs with positive "
                       f"weight; need at least 2 (pass per-image strengths to use small-gap pairs)")

  u = (x[a] - x[b]) @ proj                                              # (P, r)

  def cov(m):
    c = (u[m] * weight[m, None]).T @ u[m] / weight[m].sum()
    return c + ridge * np.trace(c) / r * np.eye(r)

  metric = np.linalg.inv(cov(similar)) - np.linalg.inv(cov(dissimilar))
  metric = 0.5 * (metric + metric.T)
  evals, evecs = np.linalg.eigh(metric)
  top = evals.max()
  if not top > 0:
    raise ValueError(f"kissme[{pairs.attribute}]: the metric has no positive direction (similar "
                     f"pairs differ as much as ordered ones in every direction)")
  pos = evals > 1e-6 * top
  L = proj @ (evecs[:, pos] * np.sqrt(evals[pos] / top))
  return L.astype(np.float32)
