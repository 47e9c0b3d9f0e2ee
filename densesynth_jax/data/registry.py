"""Domains by name: a small registry with an error that lists the valid names."""

from __future__ import annotations

import importlib
from typing import Callable

import ml_collections

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


def domain_builder(name: str) -> Callable[[ml_collections.ConfigDict], Domain]:
  if name not in DOMAINS:
    raise ValueError(f"unknown domain {name!r}; valid: {sorted(DOMAINS)}")
  module, _, fn = DOMAINS[name].partition(":")
  return getattr(importlib.import_module(module), fn)


def load_domain(cfg: ml_collections.ConfigDict) -> Domain:
  """Builds the domain named by `cfg.name` from its data-config block."""
  return domain_builder(cfg.name)(cfg)
