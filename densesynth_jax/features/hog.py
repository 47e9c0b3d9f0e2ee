"""A HOG-like descriptor with colour, in numpy: the pre-label classifier's default feature.

"hog_color" (~2k-d for 64×64 images): gradient orientation histograms (9 unsigned bins with
linear interpolation, on an 8×8 grid of cells, L2-Hys-normalised over 2×2 blocks) of the grey
image, plus a joint RGB colour histogram (4³ bins) and an 8×8 area-averaged colour thumbnail
(colour layout: hair, skin, background).
"""

from __future__ import annotations

import numpy as np


def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
  edges = np.arange(n_out + 1) * (n_in / n_out)
  cells = np.arange(n_in)[None, :]
  overlap = np.clip(np.minimum(edges[1:, None], cells + 1) - np.maximum(edges[:-1, None], cells),
                    0.0, None)
  return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


def _hog(gray: np.ndarray, cells: int, bins: int) -> np.ndarray:
  """gray float32 (B, H, W) in [0, 1] -> (B, (cells-1)² · 4 · bins) block-normalised HOG."""
  b, h, w = gray.shape
  c = min(h, w) // cells
  if c < 2:
    raise ValueError(f"hog: images of {h}×{w} are too small for {cells}×{cells} cells")
  top, left = (h - c * cells) // 2, (w - c * cells) // 2
  g = np.pad(gray, ((0, 0), (1, 1), (1, 1)), mode="edge")
  gx = (g[:, 1:-1, 2:] - g[:, 1:-1, :-2])[:, top:top + c * cells, left:left + c * cells]
  gy = (g[:, 2:, 1:-1] - g[:, :-2, 1:-1])[:, top:top + c * cells, left:left + c * cells]
  mag = np.hypot(gx, gy)
  # Unsigned orientation in [0, π), split linearly between the two nearest bin centres.
  t = (np.arctan2(gy, gx) % np.pi) / np.pi * bins - 0.5
  lo = np.floor(t)
  frac = (t - lo).astype(np.float32)
  lo = lo.astype(np.int64) % bins
  hi = (lo + 1) % bins
  # Histogram by one bincount per neighbour bin over (image, cell row, cell column, bin).
  rows = np.arange(c * cells) // c
  cell = (rows[:, None] * cells + rows[None, :])[None] + np.arange(b)[:, None, None] * cells ** 2
  hist = np.zeros(b * cells * cells * bins, np.float64)
  for which, wgt in ((lo, mag * (1.0 - frac)), (hi, mag * frac)):
    hist += np.bincount((cell * bins + which).ravel(), weights=wgt.ravel(), minlength=hist.size)
  hist = hist.astype(np.float32).reshape(b, cells, cells, bins)
  blocks = np.concatenate([hist[:, :-1, :-1], hist[:, 1:, :-1], hist[:, :-1, 1:], hist[:, 1:, 1:]],
                          axis=-1)  # (B, cells-1, cells-1, 4·bins)
  # L2-Hys: normalise, clip at 0.2, normalise again (Dalal & Triggs).
  blocks = blocks / np.sqrt(np.sum(blocks ** 2, axis=-1, keepdims=True) + 1e-6)
  blocks = np.minimum(blocks, 0.2)
  blocks = blocks / np.sqrt(np.sum(blocks ** 2, axis=-1, keepdims=True) + 1e-6)
  return blocks.reshape(b, -1)


def hog_color_features(images: np.ndarray, cells: int = 8, bins: int = 9, color_bins: int = 4,
                       thumb: int = 8, chunk: int = 512) -> np.ndarray:
  """HOG of the grey image ++ joint RGB histogram ++ colour thumbnail.

  Args:
    images: uint8 (N, H, W, 3).
    cells: HOG cells per side; bins: unsigned orientation bins; color_bins: bins per RGB channel
      of the joint histogram; thumb: thumbnail side (area-averaged).
  Returns:
    float32 (N, (cells-1)²·4·bins + color_bins³ + thumb²·3); 2,020-d with the defaults.
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
    raise ValueError(f"hog_color_features needs uint8 (N, H, W, 3), got {images.dtype} "
                     f"{images.shape}")
  n, h, w, _ = images.shape
  ah, aw = _area_matrix(h, thumb), _area_matrix(w, thumb)
  out = []
  for s in range(0, n, chunk):
    x = images[s:s + chunk]
    xf = x.astype(np.float32) / 255.0
    hog = _hog(xf.mean(axis=-1), cells, bins)
    q = (x.astype(np.int64) * color_bins) // 256
    idx = (q[..., 0] * color_bins + q[..., 1]) * color_bins + q[..., 2]
    k = color_bins ** 3
    idx = idx.reshape(len(x), -1) + np.arange(len(x))[:, None] * k
    hist = np.bincount(idx.ravel(), minlength=len(x) * k).reshape(len(x), k).astype(np.float32)
    hist /= h * w
    th = np.einsum("oh,bhwc,pw->bopc", ah, xf, aw, optimize=True).reshape(len(x), -1)
    out.append(np.concatenate([hog, hist, th], axis=1).astype(np.float32))
  return np.concatenate(out)
