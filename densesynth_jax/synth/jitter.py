"""Semantic jitter: dense, subtly different synthetic pairs from an attribute-conditioned generator.

For a target attribute A: sample identities (y_j, z_j) from the prior, tweak y_j by ±δσ_A on
dimension A only, render x⁻_j, x_j, x⁺_j with the generator's decoder MEAN, and pair them:

- intra-identity pairs (x⁻_j, x_j) and (x_j, x⁺_j): the same face, one attribute nudged;
- inter-identity pairs (x_j, x⁺_k) and (x⁻_k, x_j) over a random pairing j -> k of identities.

Auto labels (DSynth-Auto) come from the generating strengths y[A]. Images of identity j sit at
indices 3j (x⁻), 3j+1 (x) and 3j+2 (x⁺) of the synthetic ImageSet, whose `strengths` are the raw
generating y and whose `groups` are the identity numbers, so every pair records which identities
and strengths made it. The two members of each pair are put in random order (labels follow), so
label signs are balanced.

Strengths at the edges (`range_policy`): the prior is a Gaussian, so y and y ± δσ_A often fall
outside the strengths the generator was trained on, where what it draws is an extrapolation and
the auto label may not hold.
- "none" (the paper): y and y ± δσ_A are used as drawn.
- "clip": every strength of y, y⁻ and y⁺ is clipped into its attribute's training range [lo, hi]
  (`AttributePrior.clip`), so the generator is only asked for strengths it has seen; the images'
  recorded strengths and the auto labels are the clipped ones. A pair whose two generating
  strengths of A are then closer than `min_gap`·δσ_A (e.g. x and x⁺ of an identity already at
  the top of the range) asks for a difference the image cannot show, so it is not used; the
  other candidates fill its place.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import ml_collections
import numpy as np

from densesynth_jax.synth.prior import AttributePrior, sample_identities, tweak
from densesynth_jax.progress import Progress
from densesynth_jax.types import ImageSet, PairSet

INTRA, INTER = 0, 1

# (y (B, A) raw strengths, z (B, Z)) -> uint8 images (B, H, W, 3): the generator's decoder mean.
RenderFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class SynthSet:
  """A synthetic ImageSet + PairSet for one attribute, with how it was made."""
  images: ImageSet
  pairs: PairSet
  kind: np.ndarray  # int8 (P,): INTRA or INTER
  prior: AttributePrior
  info: dict

  @property
  def attribute(self) -> str:
    return self.pairs.attribute


def default_config() -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict()
  cfg.num_identities = 1000  # identities (y_j, z_j) sampled per attribute (paper: 1,000–2,000)
  cfg.delta = 2.0  # tweak size in units of σ_A (paper: 2)
  cfg.num_pairs = 2000  # synthetic pairs kept per attribute (paper: ~2,000 shoes; 5,000 faces)
  cfg.intra_fraction = 0.5  # share of intra-identity pairs (paper: a 50-50 mix works best)
  cfg.chunk_identities = 256  # identities rendered per jitted call (bounds memory)
  cfg.prior_shrinkage = 0.05  # Σ shrinkage towards its diagonal (see synth/prior.py)
  cfg.prior_ridge = 1e-3  # ridge on Σ, relative to the mean variance
  cfg.range_policy = "none"  # strengths outside the training range: "none" (paper) or "clip"
  cfg.min_gap = 0.0  # pairs closer than min_gap·δσ_A in A are not used (see the module doc)
  cfg.seed = 0  # PRNG seed of identities and pairing
  return cfg


RANGE_POLICIES = ("none", "clip")


def spectrum_strengths(y: np.ndarray, prior: AttributePrior, attribute: str, delta: float,
                       range_policy: str = "none") -> np.ndarray:
  """(y⁻, y, y⁺) of every identity as float32 (N, 3, A), under `range_policy` (module doc)."""
  if range_policy not in RANGE_POLICIES:
    raise ValueError(f"unknown synth.jitter.range_policy {range_policy!r}; valid: "
                     f"{list(RANGE_POLICIES)}")
  if range_policy == "clip":
    y = prior.clip(y)
  y_minus, y_plus = tweak(y, prior, attribute, delta)
  ys = np.stack([y_minus, y, y_plus], 1)
  return prior.clip(ys) if range_policy == "clip" else ys.astype(np.float32)


def render_spectra(render: RenderFn, ys: np.ndarray, z: np.ndarray, attribute: str,
                   chunk_identities: int = 256, progress: bool = True) -> np.ndarray:
  """Renders x⁻, x, x⁺ of every identity from `spectrum_strengths` ys (N, 3, A), in chunks.

  Returns uint8 (3N, H, W, 3), interleaved (x⁻, x, x⁺ of identity 0, then of identity 1, ...).
  """
  n = len(ys)
  out = []
  prog = Progress(f"synth {attribute}", n, unit="identities") if progress else None
  for lo in range(0, n, chunk_identities):
    hi = min(n, lo + chunk_identities)
    zs = np.repeat(z[lo:hi], 3, axis=0)
    out.append(np.asarray(render(ys[lo:hi].reshape(-1, ys.shape[-1]), zs)))
    if prog:
      prog.update(hi)
  images = np.concatenate(out)
  if images.dtype != np.uint8 or len(images) != 3 * n:
    raise ValueError(f"render returned {images.dtype} {images.shape}, expected uint8 ({3 * n}, ...)")
  return images


def identity_pairs(strength: np.ndarray, rng: np.random.Generator, num_pairs: int,
                   intra_fraction: float, min_diff: float = 0.0
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Chooses intra and inter pairs among 3N spectrum images and labels them.

  Args:
    strength: (3N,) generating strength of the target attribute per image (x⁻, x, x⁺ of each
      identity in turn).
    rng: seeded generator (pairing, subsampling, member order).
    num_pairs: pairs wanted; at most 2N of each kind exist.
    intra_fraction: share of intra-identity pairs.
    min_diff: candidates whose strengths differ by less than this are not used; where too few
      of a kind remain, fewer pairs of that kind are returned.
  Returns:
    a, b (P,) image indices, label (P,) in {-1, 0, 1} (+1: a has the larger strength), kind (P,).
  """
  n = len(strength) // 3
  if n < 2:
    raise ValueError(f"need at least 2 identities to make inter-identity pairs, got {n}")
  if not 0 <= intra_fraction <= 1:
    raise ValueError(f"intra_fraction must be in [0, 1], got {intra_fraction}")
  j = np.arange(n)
  intra = np.concatenate([np.stack([3 * j, 3 * j + 1], 1), np.stack([3 * j + 1, 3 * j + 2], 1)])
  # A random pairing without fixed points: identity perm[i] is paired with perm[i + 1].
  perm = rng.permutation(n)
  jj, kk = perm, np.roll(perm, -1)
  inter = np.concatenate([np.stack([3 * jj + 1, 3 * kk + 2], 1),   # (x_j, x⁺_k)
                          np.stack([3 * kk, 3 * jj + 1], 1)])      # (x⁻_k, x_j)
  if min_diff > 0:
    gap = lambda c: np.abs(strength[c[:, 0]] - strength[c[:, 1]]) >= min_diff
    intra, inter = intra[gap(intra)], inter[gap(inter)]
  n_intra = min(len(intra), int(round(num_pairs * intra_fraction)))
  n_inter = min(len(inter), num_pairs - n_intra)
  chosen = np.concatenate([intra[rng.choice(len(intra), n_intra, replace=False)],
                           inter[rng.choice(len(inter), n_inter, replace=False)]])
  kind = np.concatenate([np.full(n_intra, INTRA, np.int8), np.full(n_inter, INTER, np.int8)])
  swap = rng.random(len(chosen)) < 0.5
  chosen[swap] = chosen[swap, ::-1]
  a, b = chosen[:, 0], chosen[:, 1]
  label = np.sign(strength[a] - strength[b]).astype(np.int8)
  return a.astype(np.int32), b.astype(np.int32), label, kind


def synthesize(render: RenderFn, prior: AttributePrior, attribute: str,
               cfg: ml_collections.ConfigDict, key: jax.Array | None = None) -> SynthSet:
  """Samples identities, renders their ±δσ_A spectra and builds auto-labelled pairs."""
  key = jax.random.PRNGKey(cfg.seed) if key is None else key
  a_idx = prior.index(attribute)
  key = jax.random.fold_in(key, a_idx)
  y, z = sample_identities(key, prior, cfg.num_identities)
  policy = cfg.get("range_policy", "none")
  ys = spectrum_strengths(y, prior, attribute, cfg.delta, policy)
  images = render_spectra(render, ys, z, attribute, cfg.chunk_identities)
  strengths = ys.reshape(-1, y.shape[1])
  groups = np.repeat(np.arange(len(y)), 3)
  imageset = ImageSet(images, np.arange(len(images)), strengths, groups, prior.names)
  rng = np.random.default_rng([cfg.seed, a_idx])
  step = float(cfg.delta) * float(prior.sigma[a_idx])
  a, b, label, kind = identity_pairs(strengths[:, a_idx], rng, cfg.num_pairs, cfg.intra_fraction,
                                     min_diff=float(cfg.get("min_gap", 0.0)) * step)
  pairs = PairSet.create(a, b, label, attribute=attribute, source="synth")
  info = dict(attribute=attribute, num_identities=len(y), num_images=len(images),
              num_pairs=len(pairs), num_intra=int(np.sum(kind == INTRA)),
              num_inter=int(np.sum(kind == INTER)), delta=float(cfg.delta),
              sigma=float(prior.sigma[a_idx]), range_policy=policy,
              min_gap=float(cfg.get("min_gap", 0.0)))
  return SynthSet(imageset, pairs, kind, prior, info)
