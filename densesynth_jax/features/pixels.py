"""Raw pixels as a baseline feature: the image area-averaged to a small square, scaled to [0, 1].

Area averaging (every output pixel is the mean of the input area it covers, with fractional
overlaps weighted by their length) is the resampling that loses no input pixel and never aliases
when shrinking; it is written as two small matrices, out = A_h · image · A_wᵀ, so non-integer
ratios (e.g. 35 -> 16) need no special case.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from densesynth_jax.features.color import as_rgb


@functools.lru_cache(maxsize=None)
def area_matrix(n_in: int, n_out: int) -> np.ndarray:
  """float32 (n_out, n_in): row o averages input cells [o·n_in/n_out, (o+1)·n_in/n_out).

  Each row sums to 1; an input cell cut by a boundary contributes its overlap fraction.
  """
  if n_in < 1 or n_out < 1:
    raise ValueError(f"area_matrix needs positive sizes, got n_in={n_in}, n_out={n_out}")
  edges = np.arange(n_out + 1) * (n_in / n_out)
  lo, hi = edges[:-1, None], edges[1:, None]
  cells = np.arange(n_in)[None, :]
  overlap = np.clip(np.minimum(hi, cells + 1) - np.maximum(lo, cells), 0.0, None)
  return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


def area_resize(image: jax.Array, height: int, width: int) -> jax.Array:
  """Area-average resize: float (H, W, C) -> (height, width, C)."""
  ah = jnp.asarray(area_matrix(image.shape[0], height))
  aw = jnp.asarray(area_matrix(image.shape[1], width))
  return jnp.einsum("oh,hwc,pw->opc", ah, image, aw, precision=jax.lax.Precision.HIGHEST)


def pixel_feature(image: jax.Array, size: int = 16, gray: bool = False) -> jax.Array:
  """One image's raw-pixel feature.

  Args:
    image: uint8 (H, W, C), C in {1, 3}.
    size: output side; the image is area-averaged to (size, size) (a non-square image is
      stretched, not cropped: every pixel counts).
    gray: average R, G, B into one channel first.
  Returns:
    float32 (size * size * C',) in [0, 1], C' = 1 if gray else 3, flattened in (y, x, channel)
    order.
  """
  x = as_rgb(image).astype(jnp.float32) / 255.0
  if gray:
    x = x.mean(axis=-1, keepdims=True)
  return area_resize(x, size, size).reshape(-1)


@functools.partial(jax.jit, static_argnames=("size", "gray"))
def pixel_features(images: jax.Array, size: int = 16, gray: bool = False) -> jax.Array:
  """uint8 (N, H, W, C) -> float32 (N, size * size * C'); see `pixel_feature`."""
  if size < 1:
    raise ValueError(f"pixels feature size must be >= 1, got {size}")
  return jax.vmap(lambda im: pixel_feature(im, size, gray))(images)
