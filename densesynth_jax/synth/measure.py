"""An independent measurement of an attribute in ANY image, generated ones included.

A generated image has no ground-truth strength: its generating y says what was asked for, not
what was drawn. To judge synthetic pairs we measure the drawn attribute with a model trained on
REAL images only:
- where the domain has graded strengths (sprites: the renderer's known truth), a ridge regressor
  from image features to the strength (`kind = "regressor"`);
- where it has only binary labels (CelebA), a logistic classifier whose decision value is the
  strength (`kind = "classifier"`).
It is fitted on the domain's train + val images and its quality is reported on the test images
(Spearman correlation with the truth, and accuracy on the test pairs), so every number derived
from it — the simulated crowd's votes, the generator's attribute control — can be trusted only as
far as this report says.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
from scipy import stats

from densesynth_jax.types import Domain


@dataclasses.dataclass(frozen=True)
class Scorer:
  """score(features (N, D)) -> (N,) measured strengths; `report` says how good it is."""
  attribute: str
  kind: str
  mean: np.ndarray
  scale: np.ndarray
  w: np.ndarray
  b: float
  report: dict

  def __call__(self, features: np.ndarray) -> np.ndarray:
    return ((np.asarray(features, np.float64) - self.mean) / self.scale @ self.w + self.b
            ).astype(np.float32)


def fit_scorer(domain: Domain, attribute: str, features: np.ndarray, *, alpha: float = 10.0,
               C: float = 1.0, binary: np.ndarray | None = None) -> Scorer:
  """Fits the measurement of `attribute` on the domain's train + val images (see module doc).

  Args:
    features: (N, D) features of ALL the domain's images.
    alpha: ridge penalty (regressor); C: inverse regularisation (classifier).
    binary: (N,) {0, 1} labels for domains without graded strengths.
  """
  from sklearn.linear_model import LogisticRegression, Ridge
  fit = np.concatenate([np.asarray(domain.splits[s]) for s in ("train", "val")
                        if s in domain.splits])
  test = np.asarray(domain.splits.get("test", []))
  x = np.asarray(features, np.float64)
  mean, scale = x[fit].mean(0), x[fit].std(0)
  scale = np.where(scale > 1e-6, scale, 1.0)
  z = (x - mean) / scale
  # The dataset's own binary labels win over strengths derived from them (pre-labels), so the
  # measurement stays independent of what the generator was conditioned on.
  graded = (binary is None and domain.images.strengths is not None
            and attribute in domain.images.attribute_names
            and len(np.unique(domain.images.strength(attribute))) > 2)
  if graded:
    y = domain.images.strength(attribute).astype(np.float64)
    model = Ridge(alpha=alpha).fit(z[fit], y[fit])
    w, b, kind = model.coef_, float(model.intercept_), "regressor"
  else:
    if binary is None:
      raise ValueError(f"domain {domain.name}: attribute {attribute!r} has no graded strengths; "
                       f"pass binary labels to fit a classifier scorer")
    y = np.asarray(binary)
    model = LogisticRegression(C=C, max_iter=2000).fit(z[fit], y[fit])
    w, b, kind = model.coef_[0], float(model.intercept_[0]), "classifier"
  report = dict(attribute=attribute, kind=kind, fit_images=int(len(fit)))
  score = z @ w + b
  if graded and len(test):
    report["test_spearman"] = float(stats.spearmanr(score[test], y[test]).statistic)
  if attribute in domain.pairs:
    for split, p in domain.pairs[attribute].items():
      if split.startswith("test") and len(p.ordered()):
        o = p.ordered()
        report[f"{split}_pair_accuracy"] = float(np.mean(np.sign(score[o.a] - score[o.b]) == o.label))
  return Scorer(attribute, kind, mean, scale, np.asarray(w, np.float64), b, report)


def control_metrics(requested: np.ndarray, measured: np.ndarray, identity: np.ndarray
                    ) -> dict:
  """How well measured strengths follow requested ones along per-identity sweeps.

  Args:
    requested: (M,) the strength asked of the generator; measured: (M,) what the scorer saw;
    identity: (M,) which sweep each image belongs to.
  Returns:
    Spearman correlation over all images, and the mean within-identity Spearman.
  """
  out = dict(spearman=float(stats.spearmanr(requested, measured).statistic))
  per = []
  for j in np.unique(identity):
    m = identity == j
    if m.sum() > 2 and np.ptp(requested[m]) > 0:
      per.append(stats.spearmanr(requested[m], measured[m]).statistic)
  out["spearman_within_identity"] = float(np.nanmean(per)) if per else None
  return out
