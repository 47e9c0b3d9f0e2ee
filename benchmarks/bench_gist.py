"""Speed of the RankSVM image features: GIST (+ Lab) extraction in images per second.

  python benchmarks/bench_gist.py                       # 1024 random 64x64 images, CPU
  python benchmarks/bench_gist.py --num_images=4096 --chunk_size=128

Times `extract_features` (chunked, jitted) after a warm-up call that compiles every shape, for
the features the rankers use, next to a NumPy/SciPy baseline of the same colour GIST (the
per-image float64 recipe of LEAR's C code with `scipy.fft`, every core) so the JAX number has a
reference point. Prints the jax backend, device and core count, and a markdown table for
`benchmarks/RESULTS.md` (section `## GIST`).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import jax
import numpy as np
import scipy.fft

from densesynth_jax.features import extract, gist


def _numpy_color_gist(img: np.ndarray, bank: np.ndarray, lowpass: np.ndarray, blocks: int
                      ) -> np.ndarray:
  """The same colour GIST in NumPy/SciPy (float64): (S, S, 3) uint8 -> (3·F·B²,)."""
  pad = gist.PREFILTER_PAD
  x = np.log1p(img.astype(np.float64)).transpose(2, 0, 1)
  x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)), mode="symmetric")
  n = x.shape[-1]
  x = x - scipy.fft.irfft2(scipy.fft.rfft2(x, workers=-1) * lowpass, s=(n, n), workers=-1)
  local = scipy.fft.irfft2(scipy.fft.rfft2(x.mean(0) ** 2) * lowpass, s=(n, n))
  x = (x / (0.2 + np.sqrt(np.abs(local))))[:, pad:-pad, pad:-pad]
  s = x.shape[-1]
  r = np.abs(scipy.fft.ifft2(scipy.fft.fft2(x, workers=-1)[:, None] * bank[None], workers=-1))
  means = r.reshape(3, len(bank), blocks, s // blocks, blocks, s // blocks).mean(axis=(3, 5))
  return means.swapaxes(-1, -2).reshape(-1)


def _time(fn, repeats: int) -> list[float]:
  out = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    out.append(time.perf_counter() - t0)
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--num_images", type=int, default=1024)
  p.add_argument("--image_size", type=int, default=64, help="input side (also the GIST side)")
  p.add_argument("--chunk_size", type=int, default=256)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--baseline_images", type=int, default=128,
                 help="images for the NumPy baseline (it is slow; 0 skips it)")
  args = p.parse_args()

  rng = np.random.default_rng(0)
  s = args.image_size
  images = rng.integers(0, 256, (args.num_images, s, s, 3), dtype=np.uint8)
  cfg = extract.default_config()
  cfg.gist_image_size = s
  cfg.chunk_size = args.chunk_size

  print(f"jax {jax.__version__} backend={jax.default_backend()} devices={jax.devices()} "
        f"cpu_cores={os.cpu_count()} ({platform.processor() or platform.machine()})")
  print(f"{args.num_images} images {s}x{s}x3, chunk {args.chunk_size}, "
        f"best / median of {args.repeats} after warm-up")
  rows = []
  for name in ("gist_lab", "gist", "gist_gray", "lab", "pixels"):
    t0 = time.perf_counter()
    extract.extract_features(name, images[:args.chunk_size], cfg, progress=False)
    warm = time.perf_counter() - t0
    times = _time(lambda: extract.extract_features(name, images, cfg, progress=False),
                  args.repeats)
    best, med = min(times), statistics.median(times)
    rows.append((f"jax `{name}`", args.num_images / best, args.num_images / med, warm))
    print(f"{name:10s} {args.num_images / best:8.0f} img/s (median {args.num_images / med:.0f})"
          f"  warm-up incl. compile {warm:.1f}s", flush=True)

  if args.baseline_images:
    bank = gist.gabor_bank(s, tuple(cfg.gist_orientations)).astype(np.float64)
    lowpass = gist.whitening_lowpass(s + 2 * gist.PREFILTER_PAD, cfg.gist_fc).astype(np.float64)
    sub = images[:args.baseline_images]
    ref = np.stack([_numpy_color_gist(im, bank, lowpass, cfg.gist_blocks) for im in sub[:4]])
    ours = extract.extract_features("gist", sub[:4], cfg, progress=False)
    err = float(np.abs(ref - ours).max() / np.abs(ref).max())
    times = _time(lambda: [_numpy_color_gist(im, bank, lowpass, cfg.gist_blocks) for im in sub],
                  args.repeats)
    best, med = min(times), statistics.median(times)
    rows.append(("numpy/scipy.fft colour GIST (float64, per image)", len(sub) / best,
                 len(sub) / med, 0.0))
    print(f"numpy gist {len(sub) / best:8.0f} img/s (median {len(sub) / med:.0f}); "
          f"max rel. difference to jax {err:.1e}")

  print("\n| feature | images/s (best) | images/s (median) | warm-up incl. compile (s) |")
  print("|---|---:|---:|---:|")
  for label, b, m, w in rows:
    print(f"| {label} | {b:.0f} | {m:.0f} | {w:.1f} |")


if __name__ == "__main__":
  main()
