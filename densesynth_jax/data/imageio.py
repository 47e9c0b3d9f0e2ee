"""Decoding, cropping and caching of real images: Pillow only, no TensorFlow.

Every real-data reader (CelebA, UT-Zap50K shoes, JAFFE, the label packs' stand-in images) goes
through `load_images`: a list of files plus a preprocessing SPEC (a small JSON-able dict that both
drives the preprocessing and enters the cache key) gives one uint8 (N, S, S, 3) array.

Preprocessing (`preprocess_image`):
  {"op": "crop", "size": S, "center": (fx, fy), "side": fs, "gray": bool}
      a square box centred at (fx·W, fy·H) with side fs·W source pixels (fractions, so the same
      spec fits a half-size and a full-size copy of a dataset), resampled to S×S;
  {"op": "pad", "size": S, "fill": (r, g, b)}
      the image padded to a square with `fill` (white for catalogue shoes), resized to S×S.
  `gray` converts to luminance first and repeats it over 3 channels (JAFFE is grey).
Resampling is Pillow's antialiased bicubic filter, sub-pixel exact for fractional boxes.

Decoding runs in a thread pool (min(4, CPU count) threads): Pillow releases the GIL while
decoding and resampling. Decoding and cache times: benchmarks/RESULTS.md, "Image decoding".

The decoded-image CACHE. A second run should not decode 10k JPEGs again, so the decoded array is
stored in `<cache_dir>/images/<name>-<fingerprint>.npz`, where the fingerprint hashes the file list
(relative paths, sizes, mtimes), the preprocessing spec and `CACHE_VERSION`. Any change to a file
or to the spec gives a new key; an unreadable or mismatched cache file is reported and rebuilt.
The corrupt files found while decoding are stored with the images, so a cached run reports (or
refuses) them exactly as the first run did.
The cache folder is the config's `cache_dir`, else $DENSESYNTH_CACHE, else ~/.cache/densesynth_jax.

Why a plain `.npz` and not a TFDS builder with array_record files: both were tried. A
`GeneratorBasedBuilder` with a `Tensor(uint8)` image feature does work without TensorFlow
(tensorflow-datasets 4.9.10; `DatasetInfo` must be built directly, since
`dataset_info_from_configs` looks for metadata files beside the builder's module), but it wrote
and read back far slower than an atomic `.npz` (`densesynth_jax.io.save_npz`) and stored more
(benchmarks/RESULTS.md, "Image decoding"). The readers need the whole array in memory anyway, so
random access by record buys nothing here: the `.npz` is the cache.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from densesynth_jax import io
from densesynth_jax.progress import Progress

CACHE_ENV = "DENSESYNTH_CACHE"
# Bump when decoding or preprocessing changes for the same spec, so old caches are not reused.
CACHE_VERSION = 1
# How many corrupt paths a warning or an info record lists by name.
SHOW_FIRST = 5
_RESAMPLE = Image.Resampling.BICUBIC


class CorruptImageError(ValueError):
  """An image file exists but cannot be decoded."""


class CorruptImagesSkipped(UserWarning):
  """Corrupt images were skipped because the config allows it (`allow_corrupt=True`)."""


# ---------------------------------------------------------------------------------------------
# One image.

def decode_image(path: str | os.PathLike, gray: bool = False) -> np.ndarray:
  """Decodes one image file fully.

  Returns uint8 (H, W, 3) RGB; with `gray`, the luminance repeated over the 3 channels.
  Raises FileNotFoundError ("missing image file: <path>") or CorruptImageError ("corrupt image
  file (<cause>): <path>"), each one line.
  """
  path = Path(path)
  try:
    with Image.open(path) as im:
      im.load()  # decode now: a truncated file fails here, not later
      im = im.convert("L" if gray else "RGB")
      x = np.asarray(im, dtype=np.uint8)
  except FileNotFoundError:
    raise FileNotFoundError(f"missing image file: {path}") from None
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    cause = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise CorruptImageError(f"corrupt image file ({cause}): {path}") from None
  if gray:
    x = np.repeat(x[..., None], 3, axis=2)
  return x


def _as_pil(image: np.ndarray) -> Image.Image:
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise ValueError(f"expected a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
  return Image.fromarray(image)


def center_crop_resize(image: np.ndarray, size: int, center: tuple[float, float] = (0.5, 0.5),
                       side: float | None = None) -> np.ndarray:
  """A square crop resampled to size×size.

  Args:
    image: uint8 (H, W, 3).
    size: output side, pixels.
    center: crop centre (fx, fy) as fractions of the width and height.
    side: crop side as a fraction of the WIDTH; None = the largest square that fits at `center`.
  Returns:
    uint8 (size, size, 3). A box reaching outside the image raises ValueError with the box.
  """
  h, w = image.shape[:2]
  cx, cy = center[0] * w, center[1] * h
  s = min(2 * cx, 2 * (w - cx), 2 * cy, 2 * (h - cy)) if side is None else side * w
  box = (cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2)
  eps = 1e-6
  if s <= 0 or box[0] < -eps or box[1] < -eps or box[2] > w + eps or box[3] > h + eps:
    raise ValueError(f"crop box {tuple(round(v, 2) for v in box)} (left, top, right, bottom) "
                     f"does not fit inside a {w}×{h} image")
  box = (max(box[0], 0.0), max(box[1], 0.0), min(box[2], w), min(box[3], h))
  out = _as_pil(image).resize((size, size), _RESAMPLE, box=box)
  return np.asarray(out, dtype=np.uint8)


def pad_to_square_resize(image: np.ndarray, size: int,
                         fill: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
  """Pads the shorter side symmetrically with `fill` (white by default), resizes to size×size.

  image uint8 (H, W, 3) -> uint8 (size, size, 3).
  """
  h, w = image.shape[:2]
  n = max(h, w)
  canvas = np.empty((n, n, 3), np.uint8)
  canvas[:] = np.asarray(fill, np.uint8)
  top, left = (n - h) // 2, (n - w) // 2
  canvas[top:top + h, left:left + w] = image
  if n == size:
    return canvas
  return np.asarray(_as_pil(canvas).resize((size, size), _RESAMPLE), dtype=np.uint8)


def crop_spec(size: int, center: Sequence[float] = (0.5, 0.5), side: float | None = None,
              gray: bool = False) -> dict:
  """The spec of `center_crop_resize` (side None: the largest square that fits at `center`)."""
  return {"op": "crop", "size": int(size), "center": [float(center[0]), float(center[1])],
          "side": None if side is None else float(side), "gray": bool(gray)}


def pad_spec(size: int, fill: Sequence[int] = (255, 255, 255)) -> dict:
  """The spec of `pad_to_square_resize` (see the module docstring)."""
  return {"op": "pad", "size": int(size), "fill": [int(v) for v in fill]}


def preprocess_image(image: np.ndarray, spec: Mapping) -> np.ndarray:
  """Applies a preprocessing spec: uint8 (H, W, 3) -> uint8 (S, S, 3)."""
  op = spec.get("op")
  if op == "crop":
    return center_crop_resize(image, int(spec["size"]), tuple(spec["center"]), spec["side"])
  if op == "pad":
    return pad_to_square_resize(image, int(spec["size"]), tuple(spec["fill"]))
  raise ValueError(f"unknown preprocessing op {op!r} in {dict(spec)}; valid: 'crop', 'pad'")


def load_image(path: str | os.PathLike, spec: Mapping) -> np.ndarray:
  """decode_image + preprocess_image; a box that does not fit is a CorruptImageError naming it."""
  x = decode_image(path, gray=bool(spec.get("gray", False)))
  try:
    return preprocess_image(x, spec)
  except ValueError as e:
    raise CorruptImageError(f"cannot preprocess ({e}): {path}") from None


# ---------------------------------------------------------------------------------------------
# Many images, with a cache.

@dataclasses.dataclass(frozen=True)
class LoadedImages:
  """The result of `load_images`.

  Attributes:
    images: uint8 (M, S, S, 3), the decodable files in input order.
    kept: int64 (M,) index of each image into the input path list.
    corrupt: the paths (as given) that could not be decoded, in input order (skipped).
    seconds: wall time of this call (decode or cache load).
    cache_hit: whether the images came from the cache.
    cache_path: the cache file, or None when caching is off.
  """
  images: np.ndarray
  kept: np.ndarray
  corrupt: tuple[str, ...]
  seconds: float
  cache_hit: bool
  cache_path: Path | None

  def info(self) -> dict:
    """A JSON-able summary for a Domain's info."""
    return dict(decoded=int(len(self.images)), corrupt_skipped=list(self.corrupt),
                load_seconds=round(self.seconds, 3), cache_hit=self.cache_hit,
                cache_path=str(self.cache_path) if self.cache_path else None)


def default_cache_dir() -> Path:
  """$DENSESYNTH_CACHE, else ~/.cache/densesynth_jax."""
  value = os.environ.get(CACHE_ENV, "")
  return Path(value).expanduser() if value else Path("~/.cache/densesynth_jax").expanduser()


def resolve_cache_dir(value: str | os.PathLike | None) -> Path | None:
  """A config's `cache_dir`: None or "" -> the default folder; "none" / "off" -> no cache."""
  if value is None or str(value) == "":
    return default_cache_dir()
  if str(value).lower() in ("none", "off", "false"):
    return None
  return Path(value).expanduser()


def fingerprint(paths: Sequence[str | os.PathLike], spec: Mapping, root: str | os.PathLike | None,
                extra: Mapping | None = None) -> str:
  """16 hex digits hashing (relative path, size, mtime) of every file, the spec and the version.

  A missing file raises FileNotFoundError naming it (checked here, before any decoding).
  """
  h = hashlib.sha256()
  h.update(json.dumps(dict(spec=dict(spec), version=CACHE_VERSION, extra=dict(extra or {})),
                      sort_keys=True).encode())
  root = Path(root) if root is not None else None
  for p in paths:
    p = Path(p)
    try:
      st = p.stat()
    except FileNotFoundError:
      raise FileNotFoundError(f"missing image file: {p}") from None
    rel = p.relative_to(root) if root is not None and p.is_relative_to(root) else p
    h.update(f"{rel.as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
  return h.hexdigest()[:16]


def corrupt_message(corrupt: Sequence[str], what: str) -> str:
  """One line: how many corrupt files were skipped and the first few paths."""
  shown = ", ".join(str(p) for p in corrupt[:SHOW_FIRST])
  more = f" (and {len(corrupt) - SHOW_FIRST} more)" if len(corrupt) > SHOW_FIRST else ""
  return (f"{what}: skipped {len(corrupt)} corrupt image file(s) because allow_corrupt=True: "
          f"{shown}{more}")


def _decode_all(paths: Sequence[Path], spec: Mapping, num_threads: int, what: str):
  """Decodes every file; returns (list of arrays or CorruptImageError, seconds)."""

  def one(p):
    try:
      return load_image(p, spec)
    except CorruptImageError as e:
      return e

  t0 = time.perf_counter()
  n = len(paths)
  bar = Progress(f"decode {what}", n, unit="images") if n >= 2000 else None
  out = []
  if num_threads <= 1 or n < 64:
    for i, p in enumerate(paths):
      out.append(one(p))
      if bar is not None and (i + 1) % 500 == 0:
        bar.update(i + 1)
  else:
    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
      for i, x in enumerate(pool.map(one, paths)):
        out.append(x)
        if bar is not None and (i + 1) % 500 == 0:
          bar.update(i + 1)
  if bar is not None and bar.step != n:  # the last line, unless the loop printed it
    bar.update(n, force=True)
  return out, time.perf_counter() - t0


def load_images(paths: Sequence[str | os.PathLike], spec: Mapping, *, name: str,
                root: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                allow_corrupt: bool = False, num_threads: int | None = None) -> LoadedImages:
  """Decodes and preprocesses every file (or loads the cached result).

  Args:
    paths: image files, in the order wanted.
    spec: preprocessing spec (`crop_spec` / `pad_spec`); all outputs share its size.
    name: short name for the cache file and messages (e.g. "celeba").
    root: the dataset folder; paths enter the cache key relative to it, so moving the whole
      folder keeps the cache valid.
    cache_dir: as in `resolve_cache_dir` (None: the default folder; "none": no cache).
    allow_corrupt: skip undecodable files with a warning (listed in `corrupt`); otherwise the
      first one raises CorruptImageError naming it.
    num_threads: decoding threads (None: min(4, CPU count)).
  Returns:
    LoadedImages. A missing file raises FileNotFoundError naming it; an empty path list raises
    ValueError.
  """
  t0 = time.perf_counter()
  paths = [Path(p) for p in paths]
  if not paths:
    raise ValueError(f"{name}: no image files to load")
  folder = resolve_cache_dir(cache_dir)
  key = fingerprint(paths, spec, root)
  cache_path = folder / "images" / f"{name}-{key}.npz" if folder is not None else None
  size = int(spec["size"])

  images = kept = corrupt = None
  hit = False
  if cache_path is not None and cache_path.exists():
    try:
      z = io.load_npz(cache_path)
      images, kept, corrupt = z["images"], z["kept"].astype(np.int64), tuple(map(str, z["corrupt"]))
      if images.shape[1:] != (size, size, 3) or len(images) != len(kept) or \
          len(kept) + len(corrupt) != len(paths):
        raise ValueError(f"cache file {cache_path} does not match {len(paths)} files of size "
                         f"{size}")
      hit = True
    except (ValueError, KeyError) as e:
      print(f"[{name}] unusable image cache ({e}); decoding again", flush=True)
      images = None

  if images is None:
    threads = num_threads if num_threads is not None else min(4, os.cpu_count() or 1)
    decoded, _ = _decode_all(paths, spec, threads, name)
    good = [i for i, x in enumerate(decoded) if not isinstance(x, Exception)]
    corrupt = tuple(str(paths[i]) for i, x in enumerate(decoded) if isinstance(x, Exception))
    kept = np.asarray(good, np.int64)
    images = (np.stack([decoded[i] for i in good]) if good
              else np.zeros((0, size, size, 3), np.uint8))
    first_error = next((x for x in decoded if isinstance(x, Exception)), None)
    if cache_path is not None:
      io.save_npz(cache_path, images=images, kept=kept,
                  corrupt=np.asarray(corrupt, dtype=str) if corrupt else np.zeros(0, "<U1"))
  else:
    first_error = None

  if corrupt and not allow_corrupt:
    if first_error is not None:
      raise first_error
    raise CorruptImageError(f"corrupt image file (found when the cache was built): {corrupt[0]}")
  if corrupt:
    msg = corrupt_message(corrupt, name)
    print(f"WARNING {msg}", flush=True)
    warnings.warn(msg, CorruptImagesSkipped, stacklevel=2)
  if len(images) == 0:
    raise ValueError(f"{name}: none of the {len(paths)} image files could be decoded "
                     f"(first: {paths[0]})")
  return LoadedImages(images, kept, corrupt, time.perf_counter() - t0, hit, cache_path)


def duplicate_files(paths: Sequence[str | os.PathLike]) -> list[list[str]]:
  """Groups of byte-identical files (by SHA-1 of the content), each group in input order."""
  groups: dict[str, list[str]] = {}
  for p in paths:
    try:
      digest = hashlib.sha1(Path(p).read_bytes()).hexdigest()
    except FileNotFoundError:
      raise FileNotFoundError(f"missing image file: {p}") from None
    groups.setdefault(digest, []).append(str(p))
  return [g for g in groups.values() if len(g) > 1]


def resize_images(images: np.ndarray, size: int, chunk: int = 1024) -> np.ndarray:
  """uint8 (N, H, W, C) -> (N, size, size, C), antialiased linear resampling, chunk by chunk.

  Used wherever images must meet at one side: the generator's input, and the paper's resolution
  rule (real images downsized to the synthetic ones', `data/registry.resize_domain`).
  """
  if images.shape[1] == size and images.shape[2] == size:
    return images
  fn = jax.jit(lambda x: jnp.clip(jnp.round(jax.image.resize(
      x.astype(jnp.float32), (x.shape[0], size, size, x.shape[-1]), "linear", antialias=True)),
      0, 255).astype(jnp.uint8))
  return np.concatenate([np.asarray(fn(images[i:i + chunk]))
                         for i in range(0, len(images), chunk)])
