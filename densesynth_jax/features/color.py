"""CIE Lab colour and the 30-bin Lab colour histogram of the RankSVM features (REFERENCE.md §4).

RelAttr and FG-LP describe an image by colour GIST plus a Lab colour histogram; the exact binning
is not published, so this module fixes one and states it:

  * RGB -> Lab: sRGB with the D65 white point, the standard formulas (IEC 61966-2-1 gamma, the
    sRGB -> XYZ matrix, CIE 1976 L*a*b*). The white point is taken as the matrix's row sums so
    that pure white maps to exactly (100, 0, 0).
  * Histogram: `bins` equal-width bins per channel (default 10), hard assignment, each channel's
    histogram normalised to sum 1, the three concatenated as [L bins, a bins, b bins] (30-d).
    L spans [0, 100]; a and b span the bounding box of the sRGB gamut in Lab
    (a in [-86.2, 98.3], b in [-107.9, 94.5]) by default, so no sRGB colour falls outside the
    range and no bin lies wholly outside the gamut. Values on or beyond an edge go to the edge bin.

Everything is per-image jnp math, vmapped over the batch and jitted.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

# sRGB (linear) -> CIE XYZ, D65 (IEC 61966-2-1).
SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]], np.float64)
# Reference white = XYZ of RGB (1, 1, 1): (0.95047, 1.0, 1.08883), D65.
WHITE_XYZ = SRGB_TO_XYZ.sum(axis=1)

L_RANGE = (0.0, 100.0)
# Bounding box of the sRGB gamut in Lab (min at green / blue, max at magenta / yellow), rounded out.
A_RANGE = (-86.2, 98.3)
B_RANGE = (-107.9, 94.5)


def as_rgb(images: jax.Array) -> jax.Array:
  """(..., H, W, C) with C in {1, 3} -> (..., H, W, 3); a grey channel is repeated.

  Shapes are static, so this is a trace-time decision; other channel counts raise.
  """
  c = images.shape[-1]
  if c == 3:
    return images
  if c == 1:
    return jnp.repeat(images, 3, axis=-1)
  raise ValueError(f"images must have 1 or 3 channels, got shape {tuple(images.shape)}")


def srgb_to_linear(rgb: jax.Array) -> jax.Array:
  """Inverse sRGB gamma: (..., 3) in [0, 1] -> linear light in [0, 1]."""
  return jnp.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)


def _srgb_lut() -> np.ndarray:
  """float32 (256,): linear light of each uint8 sRGB level (the gamma as a table, no pow)."""
  v = np.arange(256) / 255.0
  return np.where(v > 0.04045, ((v + 0.055) / 1.055) ** 2.4, v / 12.92).astype(np.float32)


_SRGB_LUT = _srgb_lut()


def _linear_to_lab(r: jax.Array, g: jax.Array, b: jax.Array) -> tuple[jax.Array, ...]:
  """Linear sRGB channels (same shapes) -> (L, a, b) channels, CIE 1976 with the D65 white."""
  # XYZ / white as three explicit sums: a (P, 3) x (3, 3) matmul is slower on CPU.
  m = SRGB_TO_XYZ / WHITE_XYZ[:, None]
  delta = 6.0 / 29.0

  def f(row):
    t = m[row, 0] * r + m[row, 1] * g + m[row, 2] * b
    # The cube root's linear continuation below delta^3 keeps f finite-sloped near black.
    return jnp.where(t > delta ** 3, jnp.cbrt(jnp.maximum(t, delta ** 3)),
                     t / (3 * delta ** 2) + 4.0 / 29.0)

  fx, fy, fz = f(0), f(1), f(2)
  return 116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)


def rgb_to_lab(rgb: jax.Array) -> jax.Array:
  """sRGB (D65) -> CIE L*a*b*.

  Args:
    rgb: (..., 3) float sRGB values in [0, 1] (uint8 images: divide by 255 first).
  Returns:
    (..., 3) float32 (L in [0, 100], a, b), e.g. white -> (100, 0, 0),
    pure red -> (53.24, 80.09, 67.20).
  """
  lin = srgb_to_linear(jnp.clip(jnp.asarray(rgb, jnp.float32), 0.0, 1.0))
  return jnp.stack(_linear_to_lab(lin[..., 0], lin[..., 1], lin[..., 2]), axis=-1)


def uint8_to_lab(image: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """uint8 RGB (..., 3) -> (L, a, b), each (...) float32; the gamma by table lookup."""
  lin = jnp.asarray(_SRGB_LUT)[image.astype(jnp.int32)]
  return _linear_to_lab(lin[..., 0], lin[..., 1], lin[..., 2])


def _channel_histogram(values: jax.Array, bins: int, lo: float, hi: float) -> jax.Array:
  """(..., P) values -> (..., bins) fractions summing to 1; equal-width bins on [lo, hi], edges
  clipped."""
  idx = jnp.clip(jnp.floor((values - lo) * (bins / (hi - lo))).astype(jnp.int32), 0, bins - 1)
  rows = values.shape[:-1]
  # One flat scatter-add over the whole batch: on CPU several times faster than a vmapped
  # per-image scatter or a one-hot sum.
  flat = idx + bins * jnp.arange(int(np.prod(rows)), dtype=jnp.int32).reshape(*rows, 1)
  counts = jnp.zeros((int(np.prod(rows)) * bins,), jnp.float32).at[flat.reshape(-1)].add(1.0)
  return counts.reshape(*rows, bins) / values.shape[-1]


def _lab_histograms(images: jax.Array, bins: int, a_range, b_range) -> jax.Array:
  """uint8 (..., H, W, C) -> (..., 3 * bins)."""
  lead = images.shape[:-3]
  l, a, b = (c.reshape(*lead, -1) for c in uint8_to_lab(as_rgb(images)))
  return jnp.concatenate([_channel_histogram(l, bins, *L_RANGE),
                          _channel_histogram(a, bins, *a_range),
                          _channel_histogram(b, bins, *b_range)], axis=-1)


def lab_histogram(image: jax.Array, bins: int = 10, a_range: tuple[float, float] = A_RANGE,
                  b_range: tuple[float, float] = B_RANGE) -> jax.Array:
  """The Lab colour histogram of one image.

  Args:
    image: uint8 (H, W, C), C in {1, 3}, RGB.
    bins: bins per channel.
    a_range, b_range: (lo, hi) of the a and b bins; L always spans [0, 100].
  Returns:
    float32 (3 * bins,): [L histogram, a histogram, b histogram], each summing to 1.
  """
  return _lab_histograms(image, bins, a_range, b_range)


@functools.partial(jax.jit, static_argnames=("bins", "a_range", "b_range"))
def lab_histogram_batch(images: jax.Array, bins: int = 10,
                        a_range: tuple[float, float] = A_RANGE,
                        b_range: tuple[float, float] = B_RANGE) -> jax.Array:
  """uint8 (N, H, W, C) -> float32 (N, 3 * bins); see `lab_histogram`."""
  for name, (lo, hi) in (("a_range", a_range), ("b_range", b_range)):
    if not hi > lo:
      raise ValueError(f"Lab histogram {name} must have hi > lo, got {(lo, hi)}")
  if bins < 1:
    raise ValueError(f"Lab histogram needs at least 1 bin per channel, got {bins}")
  return _lab_histograms(images, bins, a_range, b_range)
