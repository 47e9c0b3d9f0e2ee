"""The generator's figures: reconstructions, random samples and attribute spectra (Figure 3)."""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import ml_collections
import numpy as np

from densesynth_jax.data.imageio import resize_images
from densesynth_jax.generator import control
from densesynth_jax.generator.artifact import Generator
from densesynth_jax.generator.model import to_unit
from densesynth_jax.models import cvae
from densesynth_jax.plotting import save_contact_sheet
from densesynth_jax.types import Domain


def reconstruct(gen: Generator, images: np.ndarray, y_raw: np.ndarray) -> np.ndarray:
  """uint8 reconstructions (decoder mean at the posterior mean z) of uint8 images (B, H, W, 3)."""
  x = to_unit(resize_images(np.asarray(images), gen.image_size))
  mu, _ = jax.jit(functools.partial(cvae.encode, gen.model))(gen.variables, x,
                                                             gen.standardise(y_raw))
  return gen.render(y_raw, np.asarray(mu))


def save_figures(cfg: ml_collections.ConfigDict, gen: Generator, domain: Domain,
                 outdir: str | Path) -> list[Path]:
  """Reconstructions, random samples and one spectra figure per attribute (paper Figure 3)."""
  outdir = Path(outdir)
  n = int(cfg.figures.identities)
  rng = np.random.default_rng([cfg.seed, 21])
  paths = []
  # Reconstructions: a row of validation images over a row of their reconstructions.
  pool = np.asarray(domain.splits.get("val", domain.splits["train"]))
  pick = np.sort(rng.choice(pool, min(2 * n, len(pool)), replace=False))
  real = domain.images.images[pick]
  rec = reconstruct(gen, real, domain.images.strengths[pick])
  paths.append(outdir / "reconstructions.png")
  save_contact_sheet(paths[-1], np.concatenate([real, rec]), ncols=len(pick),
                     titles=["real"] * len(pick) + ["recon"] * len(pick))
  # Random samples: y of random training images, z ~ N(0, I).
  y, z = control.sample_identities(domain, 4 * n, gen.z_dim, cfg.seed + 1)
  paths.append(outdir / "samples.png")
  save_contact_sheet(paths[-1], gen.render(y, z), ncols=2 * n)
  # Spectra: rows = identities (fixed y, z), columns = y[A] + t·σ_A.
  steps = np.asarray(cfg.figures.spectra_steps, np.float32)
  y, z = control.sample_identities(domain, n, gen.z_dim, cfg.seed + 2)
  attrs = list(cfg.figures.attributes) or list(cfg.eval.attributes) or list(gen.attribute_names[:3])
  for attr in attrs:
    if attr not in gen.attribute_names:
      raise KeyError(f"figures.attributes names {attr!r}; the generator's attributes are "
                     f"{list(gen.attribute_names)}")
    col = gen.attribute_names.index(attr)
    imgs, _ = control.sweep(gen.render, y, z, col, float(gen.y_std[col]), steps)
    paths.append(outdir / f"spectra_{attr}.png")
    save_contact_sheet(paths[-1], imgs.reshape(-1, *imgs.shape[2:]), ncols=len(steps),
                       titles=[f"{t:+g}σ" for t in steps] * n)
  return paths
