"""The ranker interface: every ranker fits on a pool and gives a trained ranker that compares.

A ranker is a function `fit(ctx: FitContext) -> Trained`, registered by name in
`rankers/registry.py`. The trained ranker answers `compare(a, b, tag)`: margins s(a) − s(b) for
pairs of pool images (positive: a shows more of the attribute). Rankers that score single images
(global RankSVM, DeepSTN, the classifier baseline) are `ScoreRanker`s; the local RankSVM is a lazy
learner that solves a small RankSVM per queried pair.

The experiment runner builds the FitContext (pools, features, caching) and never looks inside a
ranker; a ranker records JSON facts for the cell's record in `ctx.info` and arrays in
`ctx.artifacts`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Mapping, Protocol

import ml_collections
import numpy as np

from densesynth_jax.features import extract
from densesynth_jax.types import Domain, PairSet, Pool


@dataclasses.dataclass
class FitContext:
  """What a ranker may use to fit on one cell's pool.

  Attributes:
    config: the experiment config (each ranker reads its own block: `ranksvm`, `deepstn`, ...).
    domain: the replicate's domain; its val pairs index the pool's leading images.
    pool: training images and pairs.
    attribute, seed, method: the cell.
    workdir: the cell's folder (a ranker that trains keeps its checkpoints there).
    features: feature name -> (len(pool.images), D) float32 features of every pool image.
    prelabel: attribute -> (N_domain,) pre-label classifier strengths of the domain's images.
    figures_dir: where the ranker may draw its figures (None: not for this cell).
    headline: this cell's figures are also the run's headline ones (the first method).
  """
  config: ml_collections.ConfigDict
  domain: Domain
  pool: Pool
  attribute: str
  seed: int
  method: str
  workdir: Path
  features: Callable[[str], np.ndarray]
  prelabel: Callable[[str], np.ndarray]
  figures_dir: Path | None = None
  headline: bool = False
  info: dict = dataclasses.field(default_factory=dict)  # JSON facts for the cell record
  artifacts: dict = dataclasses.field(default_factory=dict)  # arrays kept beside the record

  def val_pairs(self) -> PairSet | None:
    """The domain's val pairs of the attribute (indices into the pool's leading images)."""
    return self.domain.pairs[self.attribute].get("val")


class Trained(Protocol):
  def compare(self, a: np.ndarray, b: np.ndarray, tag: str = "") -> np.ndarray:
    """Margins (P,) s(a) − s(b) for pool image indices a, b (P,); `tag` names the pair set."""


@dataclasses.dataclass
class ScoreRanker:
  """A trained ranker that scores single images: `score(indices) -> (len,)` of pool images."""
  score: Callable[[np.ndarray], np.ndarray]

  def compare(self, a: np.ndarray, b: np.ndarray, tag: str = "") -> np.ndarray:
    a, b = np.asarray(a), np.asarray(b)
    used, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    s = np.asarray(self.score(used), np.float32)[inverse]
    return s[:len(a)] - s[len(a):]


FitFn = Callable[[FitContext], Trained]


def pool_features(ctx: FitContext) -> np.ndarray:
  """The `ranksvm.feature` of every pool image, z-scored with the training pairs' images."""
  cfg = ctx.config.ranksvm
  x = ctx.features(cfg.feature)
  if not cfg.standardize:
    return x
  train_rows = np.unique(np.concatenate([ctx.pool.pairs.a, ctx.pool.pairs.b]))
  _, standardized = extract.standardize(x[train_rows], x)
  return standardized.astype(np.float32)


def margins_for(trained: Trained, pair_sets: Mapping[str, PairSet]) -> dict[str, np.ndarray]:
  """{name: margins} of a trained ranker on named pair sets (indices into the pool)."""
  return {name: np.asarray(trained.compare(p.a, p.b, name)) for name, p in pair_sets.items()}
