"""Plotting shared by every layer: contact sheets of images, test pairs with their neighbours.

Matplotlib with the Agg backend (no display needed); files are written atomically through
`densesynth_jax.io.save_figure`.
"""

from __future__ import annotations

import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from densesynth_jax import io  # noqa: E402
from densesynth_jax.types import SOURCES  # noqa: E402


def save_contact_sheet(path: str | os.PathLike, images: np.ndarray, ncols: int = 10,
                       titles: Sequence[str] | None = None, upscale: int = 2) -> None:
  """A grid of images, optionally titled, saved as PNG.

  Args:
    path: output .png.
    images: uint8 (N, H, W, 3) or (N, H, W) / (N, H, W, 1) grey.
    ncols: images per row.
    titles: N short strings (one per image, shown above it), or None.
    upscale: each image pixel becomes upscale × upscale screen pixels (nearest neighbour, so
      small images stay crisp).
  """
  images = np.asarray(images)
  if images.ndim == 4 and images.shape[-1] == 1:
    images = images[..., 0]
  if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
    raise ValueError(f"save_contact_sheet({path}): images must be (N, H, W, 3) or (N, H, W), got "
                     f"shape {images.shape}")
  if images.dtype != np.uint8:
    raise ValueError(f"save_contact_sheet({path}): images must be uint8, got {images.dtype}")
  n = len(images)
  if n == 0:
    raise ValueError(f"save_contact_sheet({path}): no images to show")
  if titles is not None and len(titles) != n:
    raise ValueError(f"save_contact_sheet({path}): {len(titles)} titles for {n} images")
  if ncols < 1 or upscale < 1:
    raise ValueError(f"save_contact_sheet({path}): ncols and upscale must be >= 1, got {ncols}, "
                     f"{upscale}")
  ncols = min(ncols, n)
  nrows = -(-n // ncols)
  h, w = images.shape[1:3]
  dpi = 100
  title_h = 0.32 if titles is not None else 0.05  # inches of title space per row
  cell_w, cell_h = w * upscale / dpi + 0.06, h * upscale / dpi + title_h
  fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * cell_w, nrows * cell_h), dpi=dpi,
                           squeeze=False)
  for i, ax in enumerate(axes.flat):
    ax.set_axis_off()
    if i >= n:
      continue
    img = np.repeat(np.repeat(images[i], upscale, axis=0), upscale, axis=1)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255,
              interpolation="nearest")
    if titles is not None:
      ax.set_title(titles[i], fontsize=6, pad=2)
  fig.subplots_adjust(left=0, right=1, bottom=0, top=1, wspace=0.03, hspace=0.05)
  io.save_figure(fig, path, dpi=dpi)


# Frame colours of training pairs by source (types.SOURCES order): real, synth, jitter, pseudo.
_SOURCE_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:gray")


def save_neighbour_figure(path: str | os.PathLike, images: np.ndarray, test_a: np.ndarray,
                          test_b: np.ndarray, test_label: np.ndarray, train_pairs,
                          neighbours: np.ndarray, num_test: int = 4, num_neighbours: int = 4,
                          title: str = "") -> None:
  """Test pairs and their most analogous training pairs (the paper's Figure 4), as PNG.

  Each row: a test pair (black frame) followed by its `num_neighbours` nearest training pairs,
  framed by source (blue real, orange synthetic, green jitter, grey pseudo), labelled with the
  pair's label (">": left shows more, "<": right shows more, "=": equal).

  Args:
    images: uint8 (N, H, W, 3) pool images that test and training pairs index.
    test_a, test_b, test_label: (T,) the test pairs.
    train_pairs: PairSet into `images`.
    neighbours: int (T, K) indices into `train_pairs`, nearest first.
  """
  t = min(num_test, len(test_a))
  k = min(num_neighbours, neighbours.shape[1])
  if t == 0 or k == 0:
    raise ValueError(f"save_neighbour_figure({path}): nothing to show ({t} test pairs, {k} "
                     f"neighbours)")
  sym = {1: ">", -1: "<", 0: "="}
  fig, axes = plt.subplots(t, 2 * (k + 1), figsize=(1.1 * 2 * (k + 1), 1.35 * t), squeeze=False)
  for r in range(t):
    rows = [(test_a[r], test_b[r], int(test_label[r]), "black", "test")]
    for j in neighbours[r, :k]:
      src = int(train_pairs.source[j])
      rows.append((train_pairs.a[j], train_pairs.b[j], int(train_pairs.label[j]),
                   _SOURCE_COLOURS[src], SOURCES[src]))
    for c, (a, b, lab, colour, name) in enumerate(rows):
      for side, idx in enumerate((a, b)):
        ax = axes[r, 2 * c + side]
        ax.imshow(images[idx], interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
          spine.set_edgecolor(colour)
          spine.set_linewidth(3)
        if side == 0:
          ax.set_title(f"{name} {sym[lab]}", fontsize=7, loc="left", color=colour)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  io.save_figure(fig, path)
