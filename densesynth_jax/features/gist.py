"""Colour GIST (Oliva & Torralba), laid out as LEAR's `gist.c`: 960-d for a colour image.

The RankSVM features of RelAttr / FG-LP are "960-d colour GIST + Lab histogram" (REFERENCE.md §4);
960 = 3 RGB channels x 20 Gabor filters (orientations per scale (8, 8, 4)) x 4x4 blocks, which is
LEAR's `color_gist_scaletab(img, 4, 3, {8, 8, 4})`. This module computes the same numbers as that
C code (and as Torralba's MATLAB `prefilt` + `createGabor` + `gistGabor` for one channel), as
per-image jnp math with FFTs, batched and jitted:

1. Resize. The image (uint8, any size, RGB or grey) is centre-cropped to a square and resized to
   `image_size` x `image_size` (bilinear with antialiasing; untouched if already that size).
   Default 64: the paper's images are 64x64 and LEAR's C code computes GIST on the image as
   given, so 64 reproduces LEAR on them exactly, whereas upsampling to the 128 of Torralba's
   `demo.m` would give the finest scale (0.3 cycles/pixel) only interpolation to look at.
2. Prefilter (`prefilt`, fc = 4), on values in [0, 255]:
     x = log(I + 1); pad 5 px symmetrically;
     whitening: x <- x - lowpass(x), lowpass = the Gaussian exp(-(fx² + fy²) / s1²) applied in the
       Fourier domain, s1 = fc / sqrt(ln 2), (fx, fy) in cycles per padded image;
     local contrast normalisation: x <- x / (0.2 + sqrt(|lowpass(mean_channels(x)²)|));
     crop the padding. A constant image becomes exactly 0 here: the high-pass's DC gain is
     1 - 1 = 0, and 0 / (0.2 + 0) = 0, so its whole descriptor is 0.
3. Gabor bank (`createGabor`), transfer functions on the image's DFT grid: filter l of scale
   i = 1..S with j = 1..or_i orientations has
     G(fx, fy) = exp(-10·0.35·(fr / n / f0 - 1)² - 2·p·π·tr²),
     f0 = 0.3 / 1.85^(i-1) cycles/pixel, p = 16·or_i² / 32², θ = π(j-1)/or_i,
     fr = sqrt(fx² + fy²), tr = atan2(fy, fx) + θ wrapped into [-π, π]
   (fy is the ROW frequency). Each filter is one-sided: it peaks at radial frequency f0·n and
   angle atan2(fy, fx) = -θ, so θ = 0 responds to luminance changing along x (vertical edges)
   and θ = π/2 to changes along y (horizontal edges).
4. Energy: |ifft2(fft2(x) · G)| per channel and filter, averaged over a blocks x blocks grid with
   LEAR's integer block edges (`down_N`: edge_i = i·size // blocks).

Output order (LEAR's): index = ((c · F + l) · B + bx) · B + by, i.e. an array [c, l, bx, by]
flattened in C order: channel (R, G, B) slowest, then filter l (finest scale first, orientation
θ increasing within a scale), then the block COLUMN bx (left to right), then the block ROW by
(top to bottom) fastest. (LEAR writes res[k·N + l] with k the x-block, MATLAB's column-major
reshape gives the same.) The grey variant (R, G, B averaged first, as LMgist) has no channel
axis: 20 x 16 = 320-d.

Where this differs from LEAR: (a) frequencies use `numpy.fft.fftfreq`, which equals LEAR's and
MATLAB's grid for even sizes (the usual case; odd sizes differ there in a half-pixel convention);
(b) `boundary` > 0 adds LMgist's symmetric boundary extension before the Gabor stage (LEAR uses
none, and neither does the default); (c) no per-image [0, 255] stretch (LMgist does one for grey
images; LEAR does not).
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from densesynth_jax.features.color import as_rgb

PREFILTER_PAD = 5  # pixels of symmetric padding around the image in `prefilt`
CONTRAST_FLOOR = 0.2  # the 0.2 in x / (0.2 + local std)
# Complex Gabor responses held at once per lax.map step, in bytes: bounds peak memory per chunk
# (a chunk of 256 64x64 colour images would otherwise hold 0.5 GB of responses).
_RESPONSE_BYTES = 1 << 25


def gabor_parameters(orientations: Sequence[int]) -> np.ndarray:
  """float64 (F, 4) rows (0.35, f0, p, θ) of `createGabor`, finest scale first; F = Σ orientations."""
  rows = []
  for i, n_or in enumerate(orientations):
    for j in range(n_or):
      rows.append((0.35, 0.3 / 1.85 ** i, 16.0 * n_or ** 2 / 32.0 ** 2, np.pi / n_or * j))
  return np.asarray(rows, np.float64)


def _frequency_grid(n: int) -> tuple[np.ndarray, np.ndarray]:
  """(fx, fy), each (n, n), integer frequencies (cycles per n pixels) in unshifted DFT order."""
  f = np.fft.fftfreq(n) * n
  fx, fy = np.meshgrid(f, f)  # fy varies along rows
  return fx, fy


@functools.lru_cache(maxsize=None)
def gabor_bank(n: int, orientations: tuple[int, ...]) -> np.ndarray:
  """Gabor transfer functions for an n x n image: float32 (F, n, n), unshifted DFT order.

  Entry [l, v, u] is filter l at row frequency fftfreq(n)[v]·n and column frequency
  fftfreq(n)[u]·n (cycles per image); see the module docstring for the formula. Cached per
  (n, orientations): a bank is built once per image size.
  """
  fx, fy = _frequency_grid(n)
  fr = np.hypot(fx, fy)
  t = np.arctan2(fy, fx)
  bank = []
  for damp, f0, p, theta in gabor_parameters(orientations):
    tr = t + theta
    tr = np.where(tr > np.pi, tr - 2 * np.pi, np.where(tr < -np.pi, tr + 2 * np.pi, tr))
    bank.append(np.exp(-10.0 * damp * (fr / n / f0 - 1.0) ** 2 - 2.0 * p * np.pi * tr ** 2))
  bank = np.stack(bank).astype(np.float32)
  bank.setflags(write=False)
  return bank


@functools.lru_cache(maxsize=None)
def whitening_lowpass(n: int, fc: float) -> np.ndarray:
  """The prefilter's Gaussian low-pass on the rfft2 grid of an n x n image: float32 (n, n//2+1).

  exp(-(fx² + fy²) / s1²), s1 = fc / sqrt(ln 2): its gain is 1/2 at radius fc cycles per image.
  """
  fy = np.fft.fftfreq(n) * n
  fx = np.fft.rfftfreq(n) * n
  s1 = fc / np.sqrt(np.log(2.0))
  g = np.exp(-(fx[None, :] ** 2 + fy[:, None] ** 2) / s1 ** 2).astype(np.float32)
  g.setflags(write=False)
  return g


@functools.lru_cache(maxsize=None)
def block_means(size: int, blocks: int) -> np.ndarray:
  """float32 (blocks, size): row b averages pixels [b·size // blocks, (b+1)·size // blocks)."""
  edges = [i * size // blocks for i in range(blocks + 1)]
  m = np.zeros((blocks, size), np.float32)
  for b in range(blocks):
    m[b, edges[b]:edges[b + 1]] = 1.0 / (edges[b + 1] - edges[b])
  m.setflags(write=False)
  return m


def resize_square(image: jax.Array, size: int) -> jax.Array:
  """float (H, W, C) -> (size, size, C): centre square crop, then bilinear (antialiased) resize."""
  h, w, c = image.shape
  m = min(h, w)
  top, left = (h - m) // 2, (w - m) // 2
  image = image[top:top + m, left:left + m]
  if m == size:
    return image
  return jax.image.resize(image, (size, size, c), "linear", antialias=True)


def prefilter(x: jax.Array, fc: float = 4.0) -> jax.Array:
  """LMgist / LEAR `prefilt`: float (C, S, S) with values in [0, 255] -> (C, S, S).

  log(x + 1), symmetric 5-px padding, whitening by subtracting the Gaussian low-pass, division by
  (0.2 + local std) where the local variance is the low-passed square of the channel mean, crop.
  """
  pad = PREFILTER_PAD
  n = x.shape[-1] + 2 * pad
  x = jnp.log1p(x)
  x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad)), mode="symmetric")
  # The low-pass is real and even, so half-spectrum transforms give the same result at half cost.
  lowpass = jnp.asarray(whitening_lowpass(n, float(fc)))
  x = x - jnp.fft.irfft2(jnp.fft.rfft2(x) * lowpass, s=(n, n))
  local_var = jnp.fft.irfft2(jnp.fft.rfft2(x.mean(axis=0) ** 2) * lowpass, s=(n, n))
  x = x / (CONTRAST_FLOOR + jnp.sqrt(jnp.abs(local_var)))
  return x[:, pad:-pad, pad:-pad]


def gabor_energy(x: jax.Array, bank: jax.Array, blocks: jax.Array, boundary: int = 0
                 ) -> jax.Array:
  """Block-averaged Gabor response magnitudes.

  Args:
    x: float32 (C, S, S) prefiltered channels.
    bank: float32 (F, S + 2·boundary, S + 2·boundary) transfer functions (`gabor_bank`).
    blocks: float32 (B, S) block-averaging matrix (`block_means`).
    boundary: symmetric padding before filtering (0 = LEAR, circular).
  Returns:
    float32 (C, F, B, B) indexed [channel, filter, block column bx, block row by].
  """
  s = x.shape[-1]
  if boundary:
    x = jnp.pad(x, ((0, 0), (boundary, boundary), (boundary, boundary)), mode="symmetric")
  spectrum = jnp.fft.fft2(x)  # the bank is one-sided, so the full spectrum is needed
  response = jnp.abs(jnp.fft.ifft2(spectrum[:, None] * bank[None]))
  response = response[..., boundary:boundary + s, boundary:boundary + s]
  c, f = response.shape[:2]
  b = blocks.shape[0]
  if s % b == 0:
    # Equal blocks: a reshape-mean is several times cheaper than the matrix products below.
    means = response.reshape(c, f, b, s // b, b, s // b).mean(axis=(3, 5))
  else:
    hp = jax.lax.Precision.HIGHEST
    means = jnp.matmul(jnp.matmul(blocks, response, precision=hp), blocks.T, precision=hp)
  # means is [c, l, by, bx]; LEAR's order has the block column first.
  return jnp.swapaxes(means, -1, -2)


def _gist_one(image: jax.Array, bank: jax.Array, blocks: jax.Array, *, image_size: int,
              fc: float, boundary: int, gray: bool) -> jax.Array:
  """uint8 (H, W, C) -> float32 (D,): one image's GIST (see the module docstring)."""
  x = as_rgb(image).astype(jnp.float32)
  if gray:
    x = x.mean(axis=-1, keepdims=True)
  x = resize_square(x, image_size)
  x = jnp.transpose(x, (2, 0, 1))  # channels first: the FFTs run over the last two axes
  x = prefilter(x, fc)
  return gabor_energy(x, bank, blocks, boundary).reshape(-1)


@functools.partial(jax.jit, static_argnames=("image_size", "fc", "boundary", "gray",
                                             "batch_size"))
def _gist_batch(images, bank, blocks, *, image_size, fc, boundary, gray, batch_size):
  one = functools.partial(_gist_one, bank=bank, blocks=blocks, image_size=image_size, fc=fc,
                          boundary=boundary, gray=gray)
  return jax.lax.map(one, images, batch_size=batch_size)


@functools.lru_cache(maxsize=None)
def _device_bank(n: int, orientations: tuple[int, ...]) -> jax.Array:
  return jnp.asarray(gabor_bank(n, orientations))


@functools.lru_cache(maxsize=None)
def _device_blocks(size: int, blocks: int) -> jax.Array:
  return jnp.asarray(block_means(size, blocks))


def gist_dim(orientations: Sequence[int] = (8, 8, 4), blocks: int = 4, gray: bool = False) -> int:
  """Descriptor length: channels (3, or 1 if gray) x Σ orientations x blocks²."""
  return (1 if gray else 3) * int(sum(orientations)) * blocks * blocks


def gist_features(images, *, image_size: int = 64, orientations: Sequence[int] = (8, 8, 4),
                  blocks: int = 4, fc: float = 4.0, boundary: int = 0, gray: bool = False,
                  batch_size: int | None = None) -> jax.Array:
  """Colour (or grey) GIST of a batch of images.

  Args:
    images: uint8 (N, H, W, C), C in {1, 3} (grey images are repeated to RGB).
    image_size: side the images are resized to (square) before filtering; >= 8 and >= blocks.
    orientations: Gabor orientations per scale, finest scale first.
    blocks: the spatial grid is blocks x blocks.
    fc: prefilter cut-off, cycles per image.
    boundary: LMgist boundary extension in pixels before the Gabor stage (0 = LEAR).
    gray: average R, G, B first (320-d instead of 960-d with the defaults).
    batch_size: images filtered at once inside the jitted map (None: bound the complex
      responses held at once to about 32 MB).
  Returns:
    float32 (N, gist_dim(orientations, blocks, gray)), in LEAR's order (module docstring).
  """
  orientations = tuple(int(o) for o in orientations)
  image_size, blocks, boundary = int(image_size), int(blocks), int(boundary)
  if image_size < max(8, blocks):
    raise ValueError(f"gist image_size must be >= 8 and >= blocks ({blocks}), got {image_size}")
  if blocks < 1 or not orientations or min(orientations) < 1 or boundary < 0 or fc <= 0:
    raise ValueError(f"bad GIST parameters: blocks={blocks}, orientations={orientations}, "
                     f"boundary={boundary}, fc={fc}")
  if images.ndim != 4:
    raise ValueError(f"images must be (N, H, W, C), got shape {tuple(images.shape)}")
  n = image_size + 2 * boundary
  channels = 1 if gray else 3
  if batch_size is None:
    per_image = channels * sum(orientations) * n * n * 8
    batch_size = max(1, _RESPONSE_BYTES // per_image)
  batch_size = max(1, min(int(batch_size), images.shape[0]))
  return _gist_batch(images, _device_bank(n, orientations), _device_blocks(image_size, blocks),
                     image_size=image_size, fc=float(fc), boundary=boundary, gray=bool(gray),
                     batch_size=batch_size)
