"""Lazily prepared inputs of the methods beyond Real (placeholder until the generator lands)."""

from __future__ import annotations

from densesynth_jax.experiments import methods


class RunAssets(methods.Assets):
  def __init__(self, config, domain, workdir, features):
    self.config, self.domain, self.workdir, self.features = config, domain, workdir, features
