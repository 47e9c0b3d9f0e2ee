"""Domains by name: a small registry with an error that lists the valid names."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Callable

import ml_collections

from densesynth_jax.data.imageio import resize_images
from densesynth_jax.types import Domain

# name -> "module:function" building a Domain from the config's data block. Imported lazily so
# that a run on sprites never imports the real-data readers.
DOMAINS: dict[str, str] = {
    "sprites": "densesynth_jax.data.sprites:build_domain",
    "celeba": "densesynth_jax.data.celeba:build_domain",
    "ut_zap50k_shoes": "densesynth_jax.data.shoes:build_domain",
    "jaffe": "densesynth_jax.data.jaffe:build_domain",
    "zap50k": "densesynth_jax.data.labelpack_domains:build_zap50k",
    "lfw10": "densesynth_jax.data.labelpack_domains:build_lfw10",
    "celeba_jaffe": "densesynth_jax.data.celeba_jaffe:build_domain",
    "shoes_open": "densesynth_jax.data.shoes_open:build_domain",
}


# name -> "module:function(cfg, domain, replicate) -> {attribute: train PairSet}": how a domain
# redraws its sparse real training pairs for a replicate. A domain without one (e.g. a protocol
# with fixed official splits) keeps its train pairs in every replicate.
REDRAW_TRAIN: dict[str, str] = {
    "sprites": "densesynth_jax.data.sprites:redraw_train_pairs",
    "celeba_jaffe": "densesynth_jax.data.celeba_jaffe:redraw_train_pairs",
    "shoes_open": "densesynth_jax.data.shoes_open:redraw_train_pairs",
}


def _load(spec: str):
  module, _, fn = spec.partition(":")
  return getattr(importlib.import_module(module), fn)


def domain_builder(name: str) -> Callable[[ml_collections.ConfigDict], Domain]:
  if name not in DOMAINS:
    raise ValueError(f"unknown domain {name!r}; valid: {sorted(DOMAINS)}")
  return _load(DOMAINS[name])


def load_domain(cfg: ml_collections.ConfigDict) -> Domain:
  """Builds the domain named by `cfg.name` from its data-config block."""
  return domain_builder(cfg.name)(cfg)


def resize_domain(domain: Domain, size: int) -> Domain:
  """The domain with every image resized to size×size (pairs, splits and strengths unchanged).

  The paper's resolution rule: "We downsize real images to match the resolution of the synthetic
  ones", so real and synthetic images meet the rankers at one resolution.
  """
  if int(size) < 8:
    raise ValueError(f"resize_domain: image side must be >= 8 pixels, got {size}")
  images = domain.images
  if images.image_shape[:2] == (int(size), int(size)):
    return domain
  resized = images.replace_images(resize_images(images.images, int(size)))
  info = dict(domain.info, image_size=int(size), source_image_size=int(images.image_shape[0]))
  return dataclasses.replace(domain, images=resized, info=info)


def redraws_train_pairs(name: str) -> bool:
  """True when the domain `name` redraws its train pairs per replicate."""
  return name in REDRAW_TRAIN


def replicate_domain(cfg: ml_collections.ConfigDict, domain: Domain, replicate: int) -> Domain:
  """The domain as replicate `replicate` sees it: its sparse real train pairs redrawn.

  A replicate is one independent repetition of an experiment: the real training pairs are drawn
  anew (where the domain has a rule for it, `REDRAW_TRAIN`), and every random choice of training
  follows the replicate's seed; images, val and test pairs stay fixed. Replicate 0 is the domain's
  own draw.
  """
  if cfg.name not in REDRAW_TRAIN or int(replicate) == 0:
    return domain
  train = _load(REDRAW_TRAIN[cfg.name])(cfg, domain, int(replicate))
  pairs = {a: dict(by_split, **({"train": train[a]} if a in train else {}))
           for a, by_split in domain.pairs.items()}
  return dataclasses.replace(domain, pairs=pairs, info=dict(domain.info, replicate=int(replicate)))
