"""The attribute prior p(y) = N(μ, Σ) with full covariance, and p(z) = N(0, I).

Fitted to the attribute strengths of the generator's REAL training images (the paper's
"Synthesizing Dense Supervision"). The sample covariance of strengths is often near-singular
(one-hot categories sum to one; binary-derived strengths are strongly correlated), so Σ is
regularised by shrinking it towards its own diagonal and adding a small ridge:

    Σ_reg = (1 − λ) Σ + λ diag(Σ) + ε · mean(diag(Σ)) · I,     λ = `shrinkage`, ε = `ridge`,

which keeps every correlation strictly inside (−1, 1) and the smallest eigenvalue ≥ ε·mean
variance, so the Cholesky factor always exists. σ_A, the step of the ±δσ_A tweak, is the
UNREGULARISED standard deviation of attribute A over the training images, as in the paper.

The prior also keeps each attribute's training RANGE [lo, hi] (min and max over the training
images): a generator has only seen strengths inside it, and `clip` keeps a jittered identity there
(see `synth/jitter.py`'s `range_policy`).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class AttributePrior:
  """p(y) = N(mean, cov) over A attributes, p(z) = N(0, I_z).

  Attributes:
    mean: float32 (A,).
    cov: float32 (A, A) regularised covariance (positive definite).
    sigma: float32 (A,) per-attribute standard deviation of the training strengths.
    names: attribute names (A,).
    z_dim: size of the generator's latent z.
    shrinkage, ridge: the regularisation used (see the module docstring).
    num_images: how many training images the prior was fitted on.
    lo, hi: float32 (A,) the smallest and largest training strength of each attribute.
  """
  mean: np.ndarray
  cov: np.ndarray
  sigma: np.ndarray
  names: tuple[str, ...]
  z_dim: int
  shrinkage: float
  ridge: float
  num_images: int
  lo: np.ndarray | None = None
  hi: np.ndarray | None = None

  def index(self, name: str) -> int:
    if name not in self.names:
      raise KeyError(f"attribute {name!r} is not in the prior; it has {list(self.names)}")
    return self.names.index(name)

  def to_arrays(self) -> dict[str, np.ndarray]:
    return dict(mean=self.mean, cov=self.cov, sigma=self.sigma, names=np.asarray(self.names),
                z_dim=np.asarray(self.z_dim), shrinkage=np.asarray(self.shrinkage),
                ridge=np.asarray(self.ridge), num_images=np.asarray(self.num_images),
                lo=self.range[0], hi=self.range[1])

  @property
  def range(self) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) float32 (A,): the training range (unbounded when the prior did not record it)."""
    inf = np.full(len(self.names), np.inf, np.float32)
    return (-inf if self.lo is None else self.lo, inf if self.hi is None else self.hi)

  def clip(self, y: np.ndarray) -> np.ndarray:
    """y (..., A) with every strength clipped into its attribute's training range."""
    lo, hi = self.range
    return np.clip(np.asarray(y, np.float32), lo, hi).astype(np.float32)

  @classmethod
  def from_arrays(cls, d: dict[str, np.ndarray]) -> "AttributePrior":
    return cls(d["mean"].astype(np.float32), d["cov"].astype(np.float32),
               d["sigma"].astype(np.float32), tuple(str(n) for n in d["names"]),
               int(d["z_dim"]), float(d["shrinkage"]), float(d["ridge"]), int(d["num_images"]),
               *(d[k].astype(np.float32) if k in d else None for k in ("lo", "hi")))


def fit_prior(strengths: np.ndarray, names: Sequence[str], z_dim: int, *,
              shrinkage: float = 0.05, ridge: float = 1e-3) -> AttributePrior:
  """Fits N(μ, Σ) to strengths (N, A) of real training images; see the module docstring."""
  y = np.asarray(strengths, np.float64)
  if y.ndim != 2 or y.shape[1] != len(names):
    raise ValueError(f"strengths must be (N, {len(names)}) for attributes {list(names)}, "
                     f"got {y.shape}")
  if len(y) < 2:
    raise ValueError(f"cannot fit an attribute prior to {len(y)} image(s)")
  bad = np.flatnonzero(~np.isfinite(y).all(1))
  if bad.size:
    raise ValueError(f"non-finite attribute strength at training image {int(bad[0])}")
  if not 0 <= shrinkage <= 1 or ridge <= 0:
    raise ValueError(f"need 0 <= shrinkage <= 1 and ridge > 0, got {shrinkage}, {ridge}")
  mean = y.mean(0)
  cov = np.cov(y, rowvar=False).reshape(len(names), len(names))
  var = np.diag(cov)
  sigma = np.sqrt(var)
  zero = np.flatnonzero(sigma < 1e-8)
  if zero.size:
    raise ValueError(f"attribute {names[int(zero[0])]!r} is constant over the training images: "
                     f"its σ is 0, so ±δσ tweaks would not change it")
  reg = (1 - shrinkage) * cov + shrinkage * np.diag(var)
  reg += ridge * var.mean() * np.eye(len(names))
  np.linalg.cholesky(reg)  # raises LinAlgError if the regularisation were ever insufficient
  return AttributePrior(mean.astype(np.float32), reg.astype(np.float32),
                        sigma.astype(np.float32), tuple(names), int(z_dim), float(shrinkage),
                        float(ridge), len(y), y.min(0).astype(np.float32),
                        y.max(0).astype(np.float32))


def sample_identities(key: jax.Array, prior: AttributePrior, n: int
                      ) -> tuple[np.ndarray, np.ndarray]:
  """Draws n identities (y_j, z_j): y ~ N(μ, Σ) (n, A), z ~ N(0, I) (n, z_dim), float32."""
  ky, kz = jax.random.split(key)
  chol = jnp.linalg.cholesky(jnp.asarray(prior.cov, jnp.float32))
  eps = jax.random.normal(ky, (n, len(prior.names)), jnp.float32)
  y = jnp.asarray(prior.mean) + eps @ chol.T
  z = jax.random.normal(kz, (n, prior.z_dim), jnp.float32)
  return np.asarray(y), np.asarray(z)


def tweak(y: np.ndarray, prior: AttributePrior, attribute: str, delta: float
          ) -> tuple[np.ndarray, np.ndarray]:
  """y⁻ = y − δσ_A and y⁺ = y + δσ_A on dimension A only; every other dimension unchanged."""
  a = prior.index(attribute)
  step = np.zeros(y.shape[-1], np.float32)
  step[a] = delta * prior.sigma[a]
  return (y - step).astype(np.float32), (y + step).astype(np.float32)
