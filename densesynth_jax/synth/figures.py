"""`figures/synth_pairs_<attribute>.png`: spectra of a few identities and sample auto-labelled pairs."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from densesynth_jax import io  # noqa: E402
from densesynth_jax.synth.jitter import INTER, INTRA, SynthSet  # noqa: E402


def save_synth_pairs_figure(path: str | os.PathLike, s: SynthSet, num_identities: int = 4,
                            num_pairs: int = 4, seed: int = 0) -> None:
  """Top: x⁻, x, x⁺ for `num_identities` identities. Bottom: intra and inter pairs, labelled."""
  rng = np.random.default_rng(seed)
  a_idx = s.images.attribute_names.index(s.info["attribute"])
  ids = rng.choice(len(s.images) // 3, min(num_identities, len(s.images) // 3), replace=False)
  intra = np.flatnonzero(s.kind == INTRA)
  inter = np.flatnonzero(s.kind == INTER)
  show = [rng.choice(k, min(num_pairs, len(k)), replace=False) for k in (intra, inter)]
  ncols = max(3 * 2, 2 * num_pairs)
  nrows = -(-len(ids) // 2) + 2
  fig, axes = plt.subplots(nrows, ncols, figsize=(1.2 * ncols, 1.45 * nrows), squeeze=False)
  for ax in axes.flat:
    ax.set_axis_off()
  y = s.images.strengths[:, a_idx]
  for n, j in enumerate(ids):
    r, c0 = divmod(n, 2)
    for t, name in enumerate(("−", "", "+")):
      ax = axes[r, 3 * c0 + t]
      ax.imshow(s.images.images[3 * j + t], interpolation="nearest")
      ax.set_title(f"id {j} x{name}\ny={y[3 * j + t]:.2f}", fontsize=6)
  sym = {1: ">", -1: "<", 0: "="}
  for row, (kind, picks) in enumerate(zip(("intra", "inter"), show)):
    for n, p in enumerate(picks):
      for side, idx in enumerate((s.pairs.a[p], s.pairs.b[p])):
        ax = axes[nrows - 2 + row, 2 * n + side]
        ax.imshow(s.images.images[idx], interpolation="nearest")
        if side == 0:
          ax.set_title(f"{kind} {sym[int(s.pairs.label[p])]}  (y {y[s.pairs.a[p]]:.2f} vs "
                       f"{y[s.pairs.b[p]]:.2f})", fontsize=6, loc="left")
  fig.suptitle(f"semantic jitter: {s.info['attribute']} ±{s.info['delta']:g}σ "
               f"(σ = {s.info['sigma']:.3f}); labels: '>' left shows more", fontsize=8)
  fig.tight_layout()
  io.save_figure(fig, path)
