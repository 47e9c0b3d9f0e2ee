"""Low-level jitter: the "Jitter" baseline's image-space alterations, vectorised in JAX.

Each image is altered by a random combination of the five changes the paper takes from
Dosovitskiy et al. ("parameters in [15]"): translation, scaling, rotation, contrast and colour.
One affine warp (rotation about the centre, isotropic scale, translation) is applied by bilinear
sampling with edge replication, then contrast (scale around the image mean) and colour
(per-channel gain). Defaults are mild so that the attribute — and so the pair's label — survives:

  translation  uniform in ±`translate` of the image size per axis   (default 0.08)
  scaling      log-uniform in [1/`scale`, `scale`]                    (default 1.1)
  rotation     uniform in ±`rotate_deg` degrees                       (default 10)
  contrast     factor uniform in [1 − `contrast`, 1 + `contrast`]     (default 0.2)
  colour       per-channel gain uniform in [1 − `color`, 1 + `color`] (default 0.1)

A jittered pair inherits the real pair's label.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np


def default_config() -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict()
  cfg.copies = 1  # jittered copies of every real pair added to the pool
  cfg.translate = 0.08  # max shift, fraction of the image size per axis
  cfg.scale = 1.1  # max zoom factor (log-uniform in [1/scale, scale])
  cfg.rotate_deg = 10.0  # max rotation, degrees
  cfg.contrast = 0.2  # contrast factor in [1 - contrast, 1 + contrast]
  cfg.color = 0.1  # per-channel gain in [1 - color, 1 + color]
  cfg.chunk_size = 512  # images per jitted call
  return cfg


def _warp_one(img, params, translate, scale, rotate_deg, contrast, color):
  """One image (H, W, C) float in [0, 1] and 7 uniform(0,1) numbers -> jittered image."""
  h, w, _ = img.shape
  u = params
  tx, ty = (2 * u[0] - 1) * translate * w, (2 * u[1] - 1) * translate * h
  s = jnp.exp((2 * u[2] - 1) * jnp.log(scale))
  theta = jnp.deg2rad((2 * u[3] - 1) * rotate_deg)
  c = 1 + (2 * u[4] - 1) * contrast
  gains = 1 + (2 * u[5:8] - 1) * color
  # Output pixel (r, q) samples the input at the inverse transform of its centred coordinates.
  rr, qq = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                        indexing="ij")
  cy, cx = (h - 1) / 2, (w - 1) / 2
  y, x = rr - cy - ty, qq - cx - tx
  cos, sin = jnp.cos(theta), jnp.sin(theta)
  src_x = (cos * x + sin * y) / s + cx
  src_y = (-sin * x + cos * y) / s + cy
  warped = jax.vmap(lambda ch: jax.scipy.ndimage.map_coordinates(
      ch, [src_y, src_x], order=1, mode="nearest"), in_axes=2, out_axes=2)(img)
  mean = warped.mean()
  out = (mean + c * (warped - mean)) * gains
  return jnp.clip(out, 0.0, 1.0)


@functools.partial(jax.jit, static_argnames=("translate", "scale", "rotate_deg", "contrast",
                                             "color"))
def _jitter_batch(images_u8, key, translate, scale, rotate_deg, contrast, color):
  params = jax.random.uniform(key, (images_u8.shape[0], 8))
  x = images_u8.astype(jnp.float32) / 255.0
  out = jax.vmap(_warp_one, in_axes=(0, 0, None, None, None, None, None))(
      x, params, translate, scale, rotate_deg, contrast, color)
  return jnp.round(out * 255.0).astype(jnp.uint8)


def jitter_images(images: np.ndarray, key: jax.Array, cfg: ml_collections.ConfigDict) -> np.ndarray:
  """Independently jittered copies of uint8 images (N, H, W, C), in chunks; same seed, same output."""
  if images.dtype != np.uint8 or images.ndim != 4:
    raise ValueError(f"jitter_images needs uint8 (N, H, W, C), got {images.dtype} {images.shape}")
  out = []
  n, chunk = len(images), int(cfg.chunk_size)
  for i, lo in enumerate(range(0, n, chunk)):
    batch = images[lo:lo + chunk]
    pad = chunk - len(batch) if n > chunk else 0  # one compiled shape for every chunk
    if pad:
      batch = np.concatenate([batch, np.repeat(batch[-1:], pad, 0)])
    res = _jitter_batch(batch, jax.random.fold_in(key, i), float(cfg.translate),
                        float(cfg.scale), float(cfg.rotate_deg), float(cfg.contrast),
                        float(cfg.color))
    out.append(np.asarray(res)[:len(batch) - pad])
  return np.concatenate(out) if out else images[:0].copy()
