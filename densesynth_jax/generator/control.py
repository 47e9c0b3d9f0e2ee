"""Does the generator control the attribute? Attribute sweeps measured by an INDEPENDENT scorer.

A generated image has no ground-truth strength: its generating y says what was asked for, not what
was drawn. So for sampled identities (y of random real training images, z ~ N(0, I)) we sweep one
attribute A, y[A] + t·σ_A (σ_A = std of A over the real training images), render each image with
the decoder mean, and measure A with a model trained on REAL images only.

The scorer is `features/measure.py` on area-averaged pixels (`pixels_size`²×3), its penalty
chosen on the val split; its own held-out quality is reported beside every control number.

Control metrics per attribute:
- `spearman`: requested vs measured strength over all swept images;
- `spearman_within_identity`: the same within each identity's sweep, averaged;
- `pair_accuracy`: the fraction of (y, y + gap·σ_A) pairs of one identity (gap = 2: DSynth-Auto's
  ±2σ pairs) that the scorer orders like the request, i.e. the accuracy of DSynth-Auto's free
  labels as this scorer sees it (the paper reports 78% agreement with human labels).
"""

from __future__ import annotations

from typing import Callable, Sequence

import ml_collections
import numpy as np
from scipy import stats

from densesynth_jax.features import extract, measure
from densesynth_jax.types import Domain

# (y (B, A) raw strengths, z (B, Z)) -> uint8 images (B, H, W, 3): the generator's decoder mean.
RenderFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def default_config() -> ml_collections.ConfigDict:
  """The `eval` block of a generator config."""
  cfg = ml_collections.ConfigDict()
  cfg.attributes = ()  # attributes whose control is measured; () = every one a scorer can learn
  cfg.identities = 64  # identities (y of random train images, z ~ N(0, I)) swept per attribute
  cfg.steps = (-2.0, -1.0, 0.0, 1.0, 2.0)  # requested offsets t: y[A] + t·σ_A
  cfg.gap = 2.0  # pair test between y and y + gap·σ_A (DSynth-Auto's ±2σ pairs); gap ∈ steps diffs
  cfg.pixels_size = 32  # scorer features: images area-averaged to pixels_size², standardised
  cfg.ridge_alphas = (1.0, 10.0, 100.0, 1000.0)  # regressor penalties, chosen on the val split
  cfg.logistic_cs = (1e-3, 1e-2, 1e-1)  # classifier inverse penalties, chosen on the val split
  cfg.max_pairs = 20000  # held-out real pairs sampled to measure the scorer's own accuracy
  return cfg


def pixel_features(images: np.ndarray, size: int) -> np.ndarray:
  """uint8 (N, H, W, 3) -> float32 (N, size·size·3): area-averaged pixels in [0, 1]."""
  fcfg = extract.default_config()
  fcfg.pixels_size = int(size)
  fcfg.pixels_gray = False
  return np.asarray(extract.extract_features("pixels", np.asarray(images), fcfg), np.float32)


def fit_scorer(domain: Domain, attribute: str, cfg: ml_collections.ConfigDict,
               features: np.ndarray | None = None, seed: int = 0) -> measure.Scorer:
  """The independent pixel scorer of `attribute` with the `eval` block's settings.

  `features`: optional `pixel_features(domain.images.images, cfg.pixels_size)`, to share the
  extraction between attributes.
  """
  size = int(cfg.pixels_size)
  if features is None:
    features = pixel_features(domain.images.images, size)
  return measure.fit_scorer(domain, attribute, features, ridge_alphas=cfg.ridge_alphas,
                            logistic_cs=cfg.logistic_cs,
                            featurize=lambda images: pixel_features(images, size),
                            feature_name=f"pixels {size}²×3", gap=float(cfg.gap),
                            max_pairs=int(cfg.max_pairs), seed=seed)


def sweep(render: RenderFn, y: np.ndarray, z: np.ndarray, column: int, sigma: float,
          steps: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
  """Renders each identity with y[A] + t·σ_A for t in `steps`.

  Args:
    y: (n, A) raw strengths; z: (n, Z); column: A's column; sigma: σ_A in raw units.
  Returns:
    images uint8 (n, T, H, W, 3) and the requested strengths (n, T), raw units.
  """
  steps = np.asarray(steps, np.float32)
  ys = np.repeat(np.asarray(y, np.float32)[:, None], len(steps), 1)
  ys[:, :, column] += steps[None] * np.float32(sigma)
  zs = np.repeat(np.asarray(z, np.float32), len(steps), 0)
  images = render(ys.reshape(-1, y.shape[1]), zs)
  return images.reshape(len(y), len(steps), *images.shape[1:]), ys[:, :, column]


def gap_pairs(steps: Sequence[float], gap: float) -> list[tuple[int, int]]:
  """Index pairs (i, j) of `steps` with steps[j] − steps[i] = gap."""
  steps = np.asarray(steps, np.float64)
  return [(i, j) for i in range(len(steps)) for j in range(len(steps))
          if abs(steps[j] - steps[i] - gap) < 1e-6]


def control_metrics(requested: np.ndarray, measured: np.ndarray, steps: Sequence[float],
                    gap: float) -> dict:
  """requested, measured: (n, T) along n identities' sweeps over `steps` (see module docstring)."""
  requested, measured = np.asarray(requested), np.asarray(measured)
  per = [stats.spearmanr(requested[j], measured[j]).statistic for j in range(len(requested))
         if np.ptp(measured[j]) > 0]
  pairs = gap_pairs(steps, gap)
  if not pairs:
    raise ValueError(f"eval.steps {tuple(steps)} contain no two steps {gap} apart (eval.gap)")
  right = np.concatenate([measured[:, j] > measured[:, i] for i, j in pairs])
  return dict(
      spearman=float(stats.spearmanr(requested.ravel(), measured.ravel()).statistic),
      spearman_within_identity=float(np.nanmean(per)) if per else float("nan"),
      pair_accuracy=float(np.mean(right)), num_pairs=int(right.size),
      measured_mean_by_step=[float(v) for v in measured.mean(0)])


def sample_identities(domain: Domain, n: int, z_dim: int, seed: int
                      ) -> tuple[np.ndarray, np.ndarray]:
  """n identities: y = raw strengths of random train images (n, A), z ~ N(0, I) (n, Z)."""
  rng = np.random.default_rng([seed, 11])
  train = np.asarray(domain.splits["train"])
  y = domain.images.strengths[rng.choice(train, n, replace=len(train) < n)].astype(np.float32)
  z = rng.standard_normal((n, z_dim)).astype(np.float32)
  return y, z


def evaluate_control(gen, domain: Domain, cfg: ml_collections.ConfigDict, seed: int = 0,
                     log: Callable[[str], None] = print) -> dict:
  """Per attribute: the scorer's report and the control metrics of `gen` (module docstring).

  Args:
    gen: a trained generator with `render(y_raw, z) -> uint8`, `attribute_names`, `y_std` (σ of
      each attribute over the training images, raw units) and `z_dim`
      (densesynth_jax.generator.artifact.Generator).
    domain: the generator's training domain (same attribute columns).
  """
  if tuple(domain.images.attribute_names) != tuple(gen.attribute_names):
    raise ValueError(f"domain {domain.name} has attributes {domain.images.attribute_names}, the "
                     f"generator {tuple(gen.attribute_names)}")
  attrs = list(cfg.attributes) or [a for a in gen.attribute_names if measure.scorable(domain, a)]
  features = pixel_features(domain.images.images, cfg.pixels_size)
  y, z = sample_identities(domain, int(cfg.identities), gen.z_dim, seed)
  out = {}
  for attr in attrs:
    if attr not in gen.attribute_names:
      raise KeyError(f"eval.attributes names {attr!r}; the generator's attributes are "
                     f"{list(gen.attribute_names)}")
    scorer = fit_scorer(domain, attr, cfg, features, seed)
    col = gen.attribute_names.index(attr)
    images, requested = sweep(gen.render, y, z, col, float(gen.y_std[col]), cfg.steps)
    measured = scorer(images.reshape(-1, *images.shape[2:])).reshape(requested.shape)
    res = control_metrics(requested, measured, cfg.steps, float(cfg.gap))
    res["scorer"] = scorer.report
    out[attr] = res
    held = {k: round(v, 3) for k, v in scorer.report.items()
            if k.startswith("heldout_") and isinstance(v, float)}
    log(f"[control] {attr}: spearman {res['spearman']:.3f} (within identity "
        f"{res['spearman_within_identity']:.3f}), ±{cfg.gap:g}σ pairs ordered "
        f"{res['pair_accuracy']:.1%}; scorer {scorer.kind} held-out {held}")
  return out
