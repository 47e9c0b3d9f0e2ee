"""The Classifier baseline: score = the binary attribute classifier's output on each image.

The classifier is the pre-label one (data/prelabel.py), trained on the generator's training
images; ranking by its posterior p(A|x) equals ranking by its decision value (a monotone map),
which is used. It needs no pairs: the pool only says which images exist.

Saved (`save`): the classifier itself (standardisation, PCA, w, b) and the name and config of
its features, so new images are scored without the training images.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from densesynth_jax.data import prelabel
from densesynth_jax.rankers import base
from densesynth_jax.rankers.base import FitContext, ScoreRanker

NAME = "classifier"
_ARRAYS = ("mean", "std", "centre", "axes", "scale", "w", "b")


@dataclasses.dataclass
class ClassifierRanker(ScoreRanker):
  """Scores of pool images; `save` asks the run for the classifier (`ctx.prelabel_model`)."""
  model_fn: Callable[[], dict] | None = None

  def save(self, folder) -> None:
    if self.model_fn is None:
      raise ValueError("this classifier ranker has no model to save (no ctx.prelabel_model)")
    model = self.model_fn()
    base.write_model(folder, NAME, dict(feature=model["feature"], features=model["features"]),
                     {k: model[k] for k in _ARRAYS})


def fit(ctx: FitContext) -> ClassifierRanker:
  s = np.asarray(ctx.prelabel(ctx.attribute), np.float32)
  model_fn = None
  if ctx.prelabel_model is not None:
    model_fn = lambda: ctx.prelabel_model(ctx.attribute)
  return ClassifierRanker(lambda idx: s[np.asarray(idx)], model_fn)


def features_of(meta, images: np.ndarray) -> np.ndarray:
  """The classifier's features of uint8 images, as the run computed them."""
  if meta["feature"] == "hog_color":
    return prelabel.prelabel_features(np.asarray(images), "hog_color")
  return base.image_features(meta, images)


def load(folder) -> base.LoadedScorer:
  """A saved Classifier baseline: `score(images)` = the classifier's decision values."""
  meta, arrays = base.read_model(folder, NAME)
  return base.LoadedScorer(lambda images: prelabel.apply_model(arrays, features_of(meta, images)))
