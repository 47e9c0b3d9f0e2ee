"""Methods -> training pools. Every method starts from the SAME real labelled pairs.

A `Pool` is the ImageSet a ranker trains on plus the PairSet indexing into it. The pool's images
always begin with ALL of the domain's images, in order, so that the domain's val / test PairSets
index the pool too; whatever a method adds (synthetic or jittered images) is appended after them.
Pools refer to images by index: a method never copies the real images per pair.
"""

from __future__ import annotations

from typing import Callable

import jax
import ml_collections
import numpy as np

from densesynth_jax.data import lowjitter
from densesynth_jax.types import (SOURCE_CODE, Domain, ImageSet, PairSet, Pool, concat_images,
                                  concat_pairs)


class Assets:
  """What methods beyond Real need, computed lazily by the runner (experiments/assets.py).

  prelabel(attribute) -> (N_domain,) classifier strengths of the domain's images;
  synth(attribute) -> SynthSet; verified(attribute) -> verified PairSet into the synth images.
  """

  def prelabel(self, attribute: str) -> np.ndarray:
    raise NotImplementedError("this run has no pre-label classifier")

  def synth(self, attribute: str):
    raise NotImplementedError("this run has no generator / synthetic pairs")

  def verified(self, attribute: str) -> PairSet:
    raise NotImplementedError("this run has no verified synthetic pairs")

  def synth_oracle(self, attribute: str):
    raise NotImplementedError("this run has no oracle generator (sprites only)")


def _pool(domain: Domain, pairs: PairSet, extra: ImageSet | None = None, **info) -> Pool:
  images = domain.images
  if extra is not None and len(extra):
    images, _ = concat_images([domain.images, extra])
  counts = pairs.source_counts()
  return Pool(images, pairs, len(domain.images),
              dict(num_pairs=len(pairs), pairs_by_source={k: v for k, v in counts.items() if v},
                   num_added_images=len(images) - len(domain.images), **info))


def real_pairs(domain: Domain, attribute: str) -> PairSet:
  """The real labelled training pairs of `attribute`; a clear error when there are none."""
  if attribute not in domain.pairs:
    raise KeyError(f"domain {domain.name} has no pairs for attribute {attribute!r}; it has "
                   f"{sorted(domain.pairs)}")
  if "train" not in domain.pairs[attribute]:
    raise KeyError(f"domain {domain.name} has no train pairs for {attribute!r}")
  pairs = domain.pairs[attribute]["train"]
  if len(pairs) == 0:
    raise ValueError(f"domain {domain.name}: the train pair set of {attribute!r} is empty")
  return pairs


def pool_real(domain: Domain, attribute: str, cfg: ml_collections.ConfigDict,
              rng: np.random.Generator, assets: "Assets") -> Pool:
  """Real: the real labelled pairs only."""
  del cfg, rng, assets
  return _pool(domain, real_pairs(domain, attribute))


def pool_real_plus(domain, attribute, cfg, rng, assets) -> Pool:
  """Real+: Real plus as many pseudo pairs, ordered by the pre-label strengths of real images.

  Pseudo pairs join random pairs of the domain's TRAIN images (the generator's training images),
  labelled by the order of their classifier strengths; exact ties are skipped.
  """
  real = real_pairs(domain, attribute)
  strength = assets.prelabel(attribute)
  train = np.asarray(domain.splits["train"])
  n = len(real)
  a = train[rng.integers(0, len(train), 3 * n)]
  b = train[rng.integers(0, len(train), 3 * n)]
  label = np.sign(strength[a] - strength[b]).astype(np.int8)
  keep = np.flatnonzero((a != b) & (label != 0))[:n]
  pseudo = PairSet.create(a[keep], b[keep], label[keep], attribute=attribute, source="pseudo")
  return _pool(domain, concat_pairs([real, pseudo]))


def pool_jitter(domain, attribute, cfg, rng, assets) -> Pool:
  """Jitter: Real plus low-level jittered copies of every real pair (labels inherited)."""
  del assets
  real = real_pairs(domain, attribute)
  jcfg = cfg.pools.jitter
  members = np.unique(np.concatenate([real.a, real.b]))
  extra, pairs = [], [real]
  for copy in range(jcfg.copies):
    key = jax.random.PRNGKey(int(rng.integers(2**31)))
    images = lowjitter.jitter_images(domain.images.images[members], key, jcfg)
    # Image members[i] of the domain has its copy at len(domain) + copy * len(members) + i.
    where = np.full(len(domain.images), -1, np.int64)
    where[members] = len(domain.images) + copy * len(members) + np.arange(len(members))
    pairs.append(PairSet(where[real.a].astype(np.int32), where[real.b].astype(np.int32),
                         real.label, real.weight, np.full(len(real), SOURCE_CODE["jitter"], np.int8),
                         attribute))
    extra.append(domain.images.take(members).replace_images(images))
  added, _ = concat_images(extra)
  return _pool(domain, concat_pairs(pairs), added)


def _synth_pairs(pairs: PairSet, offset: int, n: int, rng, what: str) -> PairSet:
  """n random pairs of a synthetic PairSet (kept in order), indices shifted by `offset`."""
  if len(pairs) == 0:
    raise ValueError(f"no {what} for {pairs.attribute!r}")
  take = rng.permutation(len(pairs))[:n]
  return pairs.take(np.sort(take)).offset(offset)


def pool_dsynth(domain, attribute, cfg, rng, assets) -> Pool:
  """DSynth: a random half of Real's pairs; the other half replaced by verified synthetic pairs."""
  real = real_pairs(domain, attribute)
  n_keep = int(round(len(real) * cfg.pools.dsynth_real_fraction))
  kept = real.take(np.sort(rng.permutation(len(real))[:n_keep]))
  synth = _synth_pairs(assets.verified(attribute), len(domain.images), len(real) - n_keep, rng,
                       "verified synthetic pairs")
  return _pool(domain, concat_pairs([kept, synth]), assets.synth(attribute).images,
               synth_available=len(assets.verified(attribute)))


def _auto_pool(domain, attribute, cfg, rng, s) -> Pool:
  """All real pairs plus `pools.num_synth_pairs` (or `synth_ratio` × real) pairs of SynthSet s."""
  real = real_pairs(domain, attribute)
  p = cfg.pools
  n = p.num_synth_pairs if p.num_synth_pairs > 0 else int(round(p.synth_ratio * len(real)))
  synth = _synth_pairs(s.pairs, len(domain.images), n, rng, "synthetic pairs")
  return _pool(domain, concat_pairs([real, synth]), s.images, synth_available=len(s.pairs))


def pool_dsynth_auto(domain, attribute, cfg, rng, assets) -> Pool:
  """DSynth-Auto: all real pairs plus auto-labelled synthetic pairs.

  The number of synthetic pairs is `pools.num_synth_pairs` when positive, else
  `pools.synth_ratio` × the number of real pairs (capped by what was synthesised).
  """
  return _auto_pool(domain, attribute, cfg, rng, assets.synth(attribute))


def pool_dsynth_auto_oracle(domain, attribute, cfg, rng, assets) -> Pool:
  """DSynth-Auto with the sprites ORACLE generator (synth/oracle.py): the perfect-generator
  reference for the learned generator's DSynth-Auto row (same prior, δ, pairs and pool size)."""
  return _auto_pool(domain, attribute, cfg, rng, assets.synth_oracle(attribute))


# name -> builder(domain, attribute, cfg, rng, assets) -> Pool.
METHODS: dict[str, Callable[..., Pool]] = {
    "real": pool_real,
    "real_plus": pool_real_plus,
    "jitter": pool_jitter,
    "dsynth": pool_dsynth,
    "dsynth_auto": pool_dsynth_auto,
    "dsynth_auto_oracle": pool_dsynth_auto_oracle,
    # Classifier: scores come from the pre-label classifier trained on the generator's images;
    # its "pool" is the real pairs only for bookkeeping (runner.classifier ignores it).
    "classifier": pool_real,
}
NEEDS_SYNTH = ("dsynth", "dsynth_auto", "dsynth_auto_oracle")
# Rows shown as references, not contenders: reference method -> the method it is the ceiling of.
REFERENCE_METHODS = {"dsynth_auto_oracle": "dsynth_auto"}

# The config blocks each method's pool depends on beyond the common ones (the runner's cell
# fingerprint covers them): the generator and semantic jitter, and DSynth's verification (the
# pre-label classifier of Real+ and Classifier follows the domain's block, common to all).
_SYNTH = ("generator", "synth")
METHOD_BLOCKS = {"real": (), "real_plus": (), "jitter": (),
                 "dsynth": (*_SYNTH, "verification"), "dsynth_auto": _SYNTH,
                 "dsynth_auto_oracle": _SYNTH, "classifier": ()}


def build_pool(method: str, domain: Domain, attribute: str, cfg: ml_collections.ConfigDict,
               seed: int, assets: "Assets") -> Pool:
  if method not in METHODS:
    raise ValueError(f"unknown method {method!r}; valid: {sorted(METHODS)}")
  rng = np.random.default_rng([seed, sum(map(ord, method)), sum(map(ord, attribute))])
  return METHODS[method](domain, attribute, cfg, rng, assets)


def default_config() -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict()
  cfg.synth_ratio = 1.0  # DSynth-Auto: synthetic pairs per real pair (when num_synth_pairs <= 0)
  cfg.num_synth_pairs = 0  # DSynth-Auto: absolute number of synthetic pairs (0: use the ratio)
  cfg.dsynth_real_fraction = 0.5  # DSynth: share of Real's pairs kept (the rest replaced)
  cfg.jitter = lowjitter.default_config()  # Jitter: low-level alterations (data/lowjitter.py)
  return cfg
