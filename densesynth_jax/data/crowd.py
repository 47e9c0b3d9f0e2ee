"""Simulated crowd workers labelling comparison pairs, majority vote and pruning.

The paper's real pairs (and its verified synthetic pairs, "DSynth") come from 5 crowd workers per
pair: each says whether image a shows more, less or the same amount of the attribute as image b;
the majority answer becomes the label and pairs the workers disagree on are pruned. Where the
true strengths are known (sprites, synthetic pairs with generating strengths) this module
simulates that process, so real pairs carry the same kind of label noise and pruning as the
paper's, and a ranker never sees the true strengths directly.

Model of one worker: it perceives the true difference d = s_a − s_b plus Gaussian noise
N(0, noise²), and votes +1 ("a more") when the perceived difference is ≥ equal_margin, −1 when
≤ −equal_margin, else 0 ("equal"). The label is the answer with the most votes; a TIE for the
most votes gives label 0 (the crowd could not order the pair), with agreement = the fraction of
workers that voted "equal" (at most one half, so such pairs never survive pruning at 0.8).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

# Order of the vote values in the count matrix: column k counts the votes equal to VOTES[k].
VOTES = (-1, 0, 1)


def simulate_crowd(rng: np.random.Generator, strength_a: np.ndarray, strength_b: np.ndarray, *,
                   workers: int = 5, noise: float = 0.08, equal_margin: float = 0.05
                   ) -> dict[str, np.ndarray]:
  """Votes of `workers` simulated workers on P pairs, their majority label and agreement.

  Args:
    rng: seeded generator (the only source of randomness).
    strength_a, strength_b: float (P,) true attribute strengths of each pair's two images.
    workers: votes per pair (the paper: 5).
    noise: std of each worker's perception error, in strength units.
    equal_margin: perceived differences smaller than this (in absolute value) are voted "equal".

  Returns:
    dict with `label` int8 (P,) in {−1, 0, +1} (majority; ties -> 0), `agreement` float32 (P,)
    fraction of workers that voted the label, `votes` int8 (P, workers).
  """
  a = np.asarray(strength_a, np.float64).reshape(-1)
  b = np.asarray(strength_b, np.float64).reshape(-1)
  if a.shape != b.shape:
    raise ValueError(f"simulate_crowd: strength_a has {a.size} pairs but strength_b has {b.size}")
  for name, x in (("strength_a", a), ("strength_b", b)):
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
      raise ValueError(f"simulate_crowd: {name} is not finite at pair {int(bad[0])}")
  if int(workers) < 1:
    raise ValueError(f"simulate_crowd: workers must be >= 1, got {workers}")
  if not (np.isfinite(noise) and noise >= 0):
    raise ValueError(f"simulate_crowd: noise must be a finite number >= 0, got {noise}")
  if not (np.isfinite(equal_margin) and equal_margin >= 0):
    raise ValueError(f"simulate_crowd: equal_margin must be a finite number >= 0, got "
                     f"{equal_margin}")
  workers = int(workers)
  perceived = (a - b)[:, None] + noise * rng.standard_normal((a.size, workers))
  votes = np.where(perceived >= equal_margin, 1,
                   np.where(perceived <= -equal_margin, -1, 0)).astype(np.int8)
  counts = np.stack([(votes == v).sum(axis=1) for v in VOTES], axis=1)  # (P, 3)
  top = counts.max(axis=1)
  tied = (counts == top[:, None]).sum(axis=1) > 1
  label = np.where(tied, 0, np.asarray(VOTES)[counts.argmax(axis=1)]).astype(np.int8)
  agreement = counts[np.arange(a.size), label + 1] / workers
  return dict(label=label, agreement=agreement.astype(np.float32), votes=votes)


def prune(agreement: np.ndarray, min_agreement: float = 0.8) -> np.ndarray:
  """bool (P,) mask of the pairs to KEEP: those whose agreement is >= min_agreement.

  The paper prunes pairs on which fewer than 80% of the workers agree (4 of 5). A tiny tolerance
  keeps 4/5 = 0.8 when it is stored as float32.
  """
  agreement = np.asarray(agreement, np.float64).reshape(-1)
  bad = np.flatnonzero(~np.isfinite(agreement))
  if bad.size:
    raise ValueError(f"prune: agreement is not finite at pair {int(bad[0])}")
  if not 0.0 <= min_agreement <= 1.0:
    raise ValueError(f"prune: min_agreement must be in [0, 1], got {min_agreement}")
  return agreement >= min_agreement - 1e-6


def crowd_summary(crowd: Mapping[str, np.ndarray], keep: np.ndarray
                  ) -> dict[str, float | int | None]:
  """JSON-ready statistics of one labelling round: counts, pruned fraction, mean agreement.

  Means over an empty set are None (JSON null), not NaN.
  """
  keep = np.asarray(keep, bool)
  agreement = np.asarray(crowd["agreement"], np.float64)
  label = np.asarray(crowd["label"])
  asked = int(keep.size)
  kept = int(keep.sum())
  return dict(
      asked=asked, kept=kept, pruned=asked - kept,
      pruned_fraction=float((asked - kept) / asked) if asked else 0.0,
      mean_agreement=float(agreement.mean()) if asked else None,
      mean_agreement_kept=float(agreement[keep].mean()) if kept else None,
      equal_fraction_kept=float((label[keep] == 0).mean()) if kept else None)
