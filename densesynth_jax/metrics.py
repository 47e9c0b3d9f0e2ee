"""Pairwise ranking accuracy, the paper's evaluation measure.

Accuracy is the fraction of ORDERED pairs (label ≠ 0) whose predicted order matches the label;
pairs labelled equal are excluded, as in the paper. A tie in the prediction (equal scores, or a
zero margin) counts as wrong, so a constant ranker scores 0, not 50%.
"""

from __future__ import annotations

import numpy as np

from densesynth_jax.types import PairSet


def _ordered_labels(pairs: PairSet) -> tuple[np.ndarray, np.ndarray]:
  label = np.asarray(pairs.label)
  ordered = label != 0
  if not ordered.any():
    raise ValueError(f"PairSet[{pairs.attribute}] has no ordered pairs (label != 0) to evaluate")
  return label, ordered


def margin_accuracy(margins, pairs: PairSet) -> float:
  """Accuracy of per-pair margins (P,) = s(a) − s(b) on the ordered pairs of `pairs` (P pairs)."""
  label, ordered = _ordered_labels(pairs)
  margins = np.asarray(margins).reshape(-1)
  if margins.shape != label.shape:
    raise ValueError(f"{margins.shape[0]} margins for {label.shape[0]} pairs of "
                     f"PairSet[{pairs.attribute}]")
  return float(np.mean(np.sign(margins[ordered]) == label[ordered]))


def rank_accuracy(scores, pairs: PairSet) -> float:
  """Accuracy of per-image scores (N,) on the ordered pairs of `pairs` (indices into the N)."""
  scores = np.asarray(scores).reshape(-1)
  pairs.validate(len(scores), where="rank_accuracy")
  return margin_accuracy(scores[pairs.a] - scores[pairs.b], pairs)
