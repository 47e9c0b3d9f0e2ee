"""An independent measurement of an attribute in ANY image, generated ones included.

A generated image has no ground-truth strength: its generating y says what was asked for, not
what was drawn. To judge generated images we measure the drawn attribute with a linear model
fitted on REAL images only. The one scorer serves every place that needs such a measurement: the
generator's attribute-control evaluation (generator/control.py), the prior-sampled control of a
run's synthetic pairs and the simulated crowd that verifies them (synth/pipeline.py).

- graded strengths (sprites: the renderer's known truth; shoes: image measures): a ridge
  regressor from standardised features to the strength (`kind = "regressor"`);
- binary labels (`Domain.binary`, e.g. CelebA's ±1 annotations): a logistic classifier whose
  decision value is the measured strength (`kind = "classifier"`). The dataset's own labels win
  over strengths pre-labelled from them, so the measurement does not reuse what the generator was
  conditioned on.

The model is fitted on train + val; when more than one penalty is offered, the penalty is chosen
on val with a train-only fit first. Its own quality is reported on held-out real images (the test
split, else the second half of val, which is then kept out of the fit), so every number derived
from it can be trusted only as far as that report says:
- regressor: Spearman with the truth, and the fraction of held-out image pairs about `gap`·σ apart
  (|Δ| in [gap − ½, gap + ½]·σ) that it orders like the truth;
- classifier: accuracy, balanced accuracy and AUC (the pair analogue);
- both: accuracy on the domain's ordered test pairs of the attribute, where it has some.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np
from scipy import stats
from sklearn.linear_model import LogisticRegression, Ridge

from densesynth_jax.types import Domain


@dataclasses.dataclass(frozen=True)
class Scorer:
  """Measured strengths from features (`score_features`) or images (`__call__`)."""
  attribute: str
  kind: str  # "regressor" or "classifier"
  mean: np.ndarray
  scale: np.ndarray
  w: np.ndarray
  b: float
  report: dict
  featurize: Callable[[np.ndarray], np.ndarray] | None = None  # images -> the fit's features

  def score_features(self, features: np.ndarray) -> np.ndarray:
    """(N, D) features of the kind it was fitted on -> (N,) measured strengths."""
    z = (np.asarray(features, np.float64) - self.mean) / self.scale
    return (z @ self.w + self.b).astype(np.float32)

  def __call__(self, images: np.ndarray) -> np.ndarray:
    """uint8 images (N, H, W, C) -> (N,) measured strengths (needs `featurize`)."""
    if self.featurize is None:
      raise ValueError(f"this {self.attribute!r} scorer was fitted on precomputed features; "
                       f"call score_features with the same features of the images")
    return self.score_features(self.featurize(np.asarray(images)))


def scorable(domain: Domain, attribute: str) -> str | None:
  """"classifier" (binary labels), "regressor" (graded strengths) or None for `attribute`."""
  if attribute in domain.binary:
    return "classifier"
  imgs = domain.images
  if (imgs.strengths is not None and attribute in imgs.attribute_names
      and len(np.unique(imgs.strength(attribute))) > 2):
    return "regressor"
  return None


def _splits(domain: Domain) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
  """(fit, select, held-out, held-out split name): train, val, test (val halves if no test)."""
  get = lambda s: np.asarray(domain.splits.get(s, np.zeros(0, np.int64)), np.int64)
  train, val, test = get("train"), get("val"), get("test")
  if not len(train):
    raise ValueError(f"domain {domain.name}: the train split is empty; no scorer can be fitted")
  if len(test):
    return train, val, test, "test"
  return train, val[: len(val) // 2], val[len(val) // 2:], "val (second half)"


def fit_scorer(domain: Domain, attribute: str, features: np.ndarray, *,
               ridge_alphas: Sequence[float] = (10.0,), logistic_cs: Sequence[float] = (1.0,),
               featurize: Callable[[np.ndarray], np.ndarray] | None = None,
               feature_name: str = "", gap: float = 2.0, max_pairs: int = 20000,
               seed: int = 0) -> Scorer:
  """The independent measurement of `attribute`, fitted on the domain's REAL images.

  Args:
    features: (N, D) features of ALL the domain's images.
    ridge_alphas, logistic_cs: the penalty grid of the regressor / classifier (one value: no
      selection).
    featurize: images -> features of the same kind, so that the scorer can measure images.
    gap, max_pairs, seed: the held-out pair test of a regressor (module docstring).
  """
  kind = scorable(domain, attribute)
  if kind is None:
    raise ValueError(f"domain {domain.name}: attribute {attribute!r} has neither binary labels "
                     f"nor graded strengths to fit a scorer on")
  fit, sel, held, held_name = _splits(domain)
  x = np.asarray(features, np.float64)
  if len(x) != len(domain.images):
    raise ValueError(f"{len(x)} feature rows for the {len(domain.images)} images of domain "
                     f"{domain.name}")
  if kind == "classifier":
    target = np.asarray(domain.binary[attribute], np.int64)
    if len(np.unique(target[fit])) < 2:
      raise ValueError(f"domain {domain.name}: attribute {attribute!r} has one class only in "
                       f"the train split; no classifier scorer can be fitted")
    grid = [float(c) for c in logistic_cs]
    make = lambda c: LogisticRegression(C=c, max_iter=2000)
    quality = lambda m, z, idx: m.score(z[idx], target[idx])
  else:
    target = domain.images.strength(attribute).astype(np.float64)
    grid = [float(a) for a in ridge_alphas]
    make = lambda a: Ridge(alpha=a)
    quality = lambda m, z, idx: stats.spearmanr(m.predict(z[idx]), target[idx]).statistic

  def standardise(rows):
    mean, scale = x[rows].mean(0), x[rows].std(0)
    return mean, np.where(scale > 1e-6, scale, 1.0)

  best = grid[0]
  if len(sel) > 2 and len(grid) > 1:  # choose on val with a train-only fit, then refit
    mean, scale = standardise(fit)
    z = (x - mean) / scale
    scores = [quality(make(h).fit(z[fit], target[fit]), z, sel) for h in grid]
    best = grid[int(np.nanargmax(scores))]
  both = np.concatenate([fit, sel])
  mean, scale = standardise(both)
  z = (x - mean) / scale
  model = make(best).fit(z[both], target[both])
  w = np.ravel(model.coef_).astype(np.float64)
  b = float(np.ravel(model.intercept_)[0])
  score = z @ w + b
  report = dict(attribute=attribute, kind=kind, features=feature_name, penalty=best,
                fit_images=int(len(both)), heldout_split=held_name,
                heldout_images=int(len(held)))
  if len(held):
    report.update(_heldout_report(kind, score[held], target[held], domain, attribute, fit, gap,
                                  max_pairs, seed))
  for split, p in domain.pairs.get(attribute, {}).items():
    o = p.ordered()
    if split.startswith("test") and len(o):
      report[f"{split}_pair_accuracy"] = float(np.mean(np.sign(score[o.a] - score[o.b])
                                                       == o.label))
  return Scorer(attribute, kind, mean, scale, w, b, report, featurize)


def _heldout_report(kind: str, score: np.ndarray, target: np.ndarray, domain: Domain,
                    attribute: str, fit: np.ndarray, gap: float, max_pairs: int,
                    seed: int) -> dict:
  """The scorer's own quality on held-out real images (see the module docstring)."""
  out = {}
  if kind == "classifier":
    pos, neg = score[target == 1], score[target == 0]
    out["heldout_accuracy"] = float(np.mean((score > 0) == (target == 1)))
    if len(pos) and len(neg):
      out["heldout_balanced_accuracy"] = float(0.5 * (np.mean(pos > 0) + np.mean(neg <= 0)))
      ranks = stats.rankdata(score)
      out["heldout_auc"] = float((ranks[target == 1].sum() - len(pos) * (len(pos) + 1) / 2)
                                 / (len(pos) * len(neg)))
    return out
  out["heldout_spearman"] = float(stats.spearmanr(score, target).statistic)
  sigma = float(np.std(domain.images.strength(attribute)[fit]))
  rng = np.random.default_rng([seed, 5])
  n = len(score)
  a, b = rng.integers(0, n, (2, int(max_pairs)))
  diff = target[a] - target[b]
  near = np.abs(np.abs(diff) - gap * sigma) <= 0.5 * sigma
  if near.any():
    out["heldout_pair_accuracy"] = float(np.mean(np.sign(score[a] - score[b])[near]
                                                 == np.sign(diff)[near]))
    out["heldout_pairs"] = int(near.sum())
  return out
