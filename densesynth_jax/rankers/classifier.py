"""The Classifier baseline: score = the binary attribute classifier's output on each image.

The classifier is the pre-label one (data/prelabel.py), trained on the generator's training
images; ranking by its posterior p(A|x) equals ranking by its decision value (a monotone map),
which is used. It needs no pairs: the pool only says which images exist.
"""

from __future__ import annotations

import numpy as np

from densesynth_jax.rankers.base import FitContext, ScoreRanker


def fit(ctx: FitContext) -> ScoreRanker:
  s = np.asarray(ctx.prelabel(ctx.attribute), np.float32)
  return ScoreRanker(lambda idx: s[np.asarray(idx)])
