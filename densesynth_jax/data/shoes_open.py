"""Shoes "open": rankers trained and tested on category-ordered UT-Zap50K catalogue shoes.

The 15,000 catalogue shoes (data/shoes.py) carry no pair labels, and their original UT-Zap50K
paths are lost, so the official "open" pairs cannot be joined to them. What IS defensible from
the categories alone is an ORDER of openness between them:

  Sandal > Shoe > Boot

sandals leave most of the foot uncovered; a shoe covers the foot but leaves the ankle open; a
boot covers the foot and the ankle. UT-Zap50K's own crowd labels agree: of the 623 official
"open" pairs (zappos-labels.mat) that join two of these categories (by the top folder of their
image paths), 98.7% are ordered this way (Sandal > Boot 124/124, Sandal > Shoe 256/262,
Shoe > Boot 235/237; tests/test_shoes_open.py checks it on the label pack). Within a category nothing
is known, so every pair here joins two DIFFERENT categories: label +1 when image a's category is
more open. Train, val and test pairs are drawn from the shoes domain's own file-number splits.

What such a test can show: whether a ranker learns the coarse, category-level direction of
openness from few pairs, and whether synthetic pairs (the generator's Sandal strength nudged by
±2σ) keep or disturb it. What it cannot show: fine-grained comparisons between two shoes of the
same kind, which is where the paper claims synthetic pairs help most; for those, use the official
pairs (configs/zap50k_1.py, zap50k_2.py) with the official images.

binary["open"] = "is a sandal" (the pre-label classifier / Classifier baseline and the simulated
verifier's independent measure are fitted on it, train + val rows only).
"""

from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np

from densesynth_jax.data import pairfiles
from densesynth_jax.data import shoes
from densesynth_jax.types import Domain, PairSet

OPENNESS = ("Boot", "Shoe", "Sandal")  # least to most open


def default_config() -> ml_collections.ConfigDict:
  """The data-config block of the shoes-open domain: the shoes block plus pair budgets."""
  c = shoes.default_config()
  c.name = "shoes_open"  # domain registry name (densesynth_jax/data/registry.py)
  c.attribute_name = "open"  # the ranker's attribute name
  c.train_pairs = 500  # cross-category train pairs (train split): the sparse budget
  c.val_pairs = 300  # cross-category val pairs (val split)
  c.test_pairs = 1000  # cross-category test pairs (test split)
  c.pair_seed = 0  # seed of the pair sampling (every method gets the same real pairs)
  return c


def category_order_pairs(categories: np.ndarray, index: np.ndarray, n_pairs: int,
                         rng: np.random.Generator, attribute: str) -> PairSet:
  """`n_pairs` distinct pairs of images from `index` in different categories, ordered by rank.

  Args:
    categories: (N,) openness rank of every image of the domain (0 = least open).
    index: the image indices pairs are drawn from (one split).
  Returns:
    PairSet (source "real"), label +1 when a is the more open image; sides are random.
  """
  index = np.asarray(index)
  if n_pairs < 1:
    raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
  rank = np.asarray(categories)[index]
  if len(np.unique(rank)) < 2:
    raise ValueError(f"category-order pairs need images of two categories; the split has "
                     f"only {np.unique(rank).tolist()}")
  seen, a, b = set(), [], []
  tries = 0
  while len(a) < n_pairs and tries < 50 * n_pairs:
    tries += 1
    i, j = rng.integers(0, len(index), 2)
    key = (min(i, j), max(i, j))
    if rank[i] == rank[j] or key in seen:
      continue
    seen.add(key)
    a.append(index[i])
    b.append(index[j])
  a, b = np.asarray(a), np.asarray(b)
  label = np.sign(np.asarray(categories)[a] - np.asarray(categories)[b]).astype(np.int8)
  return PairSet.create(a, b, label, attribute=attribute, source="real")


def build_domain(cfg: ml_collections.ConfigDict) -> Domain:
  """The shoes domain (strengths, splits) with category-ordered "open" pairs and labels."""
  base = shoes.build_domain(cfg)
  rank_of = np.asarray([OPENNESS.index(c) for c in shoes.CATEGORIES])
  rank = rank_of[np.asarray(base.images.groups)]  # groups = category index
  rng = np.random.default_rng(int(cfg.pair_seed))
  name = cfg.attribute_name
  pairs = {split: category_order_pairs(rank, base.splits[split], int(budget), rng, name)
           for split, budget in (("train", cfg.train_pairs), ("val", cfg.val_pairs),
                                 ("test", cfg.test_pairs))}
  sandal = (np.asarray(base.images.groups) == shoes.CATEGORIES.index("Sandal")).astype(np.int8)
  info = dict(base.info, attribute_name=name, openness_order=" < ".join(OPENNESS),
              pairs={split: len(p) for split, p in pairs.items()},
              pair_rule="pairs of two different categories, ordered Sandal > Shoe > Boot")
  return dataclasses.replace(base, name="shoes_open", pairs={name: pairs}, info=info,
                             binary={name: sandal})


def redraw_train_pairs(cfg: ml_collections.ConfigDict, domain: Domain, replicate: int
                       ) -> dict[str, PairSet]:
  """Replicate `replicate`'s train pairs: the same budget of cross-category pairs among the train
  images, drawn with the stream (pair_seed, replicate); replicate 0 keeps the domain's own."""
  name = cfg.attribute_name
  if int(replicate) == 0:
    return {name: domain.pairs[name]["train"]}
  rank_of = np.asarray([OPENNESS.index(c) for c in shoes.CATEGORIES])
  # Only the domain's own images have a category (pair-file test images follow them).
  own = pairfiles.own_image_count(domain)
  rank = rank_of[np.asarray(domain.images.groups)[:own]]
  rng = np.random.default_rng([int(cfg.pair_seed), int(replicate)])
  return {name: category_order_pairs(rank, domain.splits["train"], int(cfg.train_pairs), rng,
                                     name)}
