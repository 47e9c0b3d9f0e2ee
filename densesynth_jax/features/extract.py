"""Image features for the rankers by name: a registry, chunked extraction, an on-disk cache.

  FEATURES["gist_lab"]   960-d colour GIST ++ 30-d Lab histogram = 990-d (RelAttr / FG-LP's φ)
  FEATURES["gist"]       960-d colour GIST
  FEATURES["gist_gray"]  320-d GIST of the grey image
  FEATURES["lab"]        30-d Lab colour histogram
  FEATURES["pixels"]     raw pixels, area-averaged to pixels_size², in [0, 1]

`extract_features` runs a feature over a whole uint8 image array in fixed-size chunks: memory
stays bounded, and every chunk (the last one padded) has the same shape, so one compile serves
the whole set. `cached_features` stores the result under
`cache_dir/<name>-<fingerprint>.npz`, the fingerprint hashing the images' bytes (or a caller's
key), the config fields the feature reads, and `FEATURES_VERSION`; a changed image or config
gives a new file, an unchanged one is loaded instead of recomputed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Callable

import jax
import ml_collections
import numpy as np

from densesynth_jax import io
from densesynth_jax.features import color, gist, pixels
from densesynth_jax.progress import Progress
from densesynth_jax.types import ImageSet

# Bump when a feature's numbers change for the same config, so old caches are not reused.
FEATURES_VERSION = 1
# Sets at least this large print a progress line (rate, ETA) while extracting.
_PROGRESS_MIN_IMAGES = 2048


def default_config() -> ml_collections.ConfigDict:
  """The feature block of an experiment config (`config.features`)."""
  cfg = ml_collections.ConfigDict()
  cfg.name = "gist_lab"  # default feature (a key of FEATURES); rankers may name their own
  # GIST (see densesynth_jax/features/gist.py).
  cfg.gist_image_size = 64  # square side images are resized to (64: the paper's); 0 = their own
  cfg.gist_orientations = (8, 8, 4)  # Gabor orientations per scale, finest first (LEAR: 960-d)
  cfg.gist_blocks = 4  # responses averaged over a gist_blocks x gist_blocks grid
  cfg.gist_fc = 4.0  # prefilter (whitening) cut-off in cycles per image (LMgist: 4)
  cfg.gist_boundary = 0  # symmetric padding before the Gabor stage; 0 = LEAR, LMgist uses 32
  # Lab colour histogram (see densesynth_jax/features/color.py).
  cfg.lab_bins = 10  # equal-width bins per L, a, b channel (3 x 10 = 30-d)
  cfg.lab_a_range = color.A_RANGE  # (lo, hi) of the a bins: the sRGB gamut's extent
  cfg.lab_b_range = color.B_RANGE  # (lo, hi) of the b bins: the sRGB gamut's extent
  # Raw pixels (see densesynth_jax/features/pixels.py).
  cfg.pixels_size = 16  # images area-averaged to pixels_size x pixels_size
  cfg.pixels_gray = False  # average R, G, B into one channel first
  cfg.chunk_size = 256  # images per jitted call; bounds memory, not results
  return cfg


def _gist_kwargs(cfg, gray: bool, side: int) -> dict:
  """GIST settings; gist_image_size 0 means the images' own side (`side`)."""
  return dict(image_size=int(cfg.gist_image_size) or int(side),
              orientations=tuple(int(o) for o in cfg.gist_orientations),
              blocks=int(cfg.gist_blocks), fc=float(cfg.gist_fc),
              boundary=int(cfg.get("gist_boundary", 0)), gray=gray)


def _lab(images, cfg) -> jax.Array:
  return color.lab_histogram_batch(
      images, bins=int(cfg.lab_bins),
      a_range=tuple(float(v) for v in cfg.get("lab_a_range", color.A_RANGE)),
      b_range=tuple(float(v) for v in cfg.get("lab_b_range", color.B_RANGE)))


def _gist_lab(images, cfg) -> jax.Array:
  return jax.numpy.concatenate(
      [_gist(images, cfg), _lab(images, cfg)], axis=1)


def _gist(images, cfg) -> jax.Array:
  return gist.gist_features(images, **_gist_kwargs(cfg, gray=False, side=images.shape[1]))


def _gist_gray(images, cfg) -> jax.Array:
  return gist.gist_features(images, **_gist_kwargs(cfg, gray=True, side=images.shape[1]))


def _pixels(images, cfg) -> jax.Array:
  return pixels.pixel_features(images, size=int(cfg.pixels_size), gray=bool(cfg.pixels_gray))


@dataclasses.dataclass(frozen=True)
class Feature:
  """A named feature.

  Attributes:
    fn: (uint8 (B, H, W, C) images, config) -> float32 (B, D); jitted inside.
    fields: the config fields `fn` reads (they, and only they, enter the cache fingerprint).
    description: one line for listings.
  """
  fn: Callable[[np.ndarray, ml_collections.ConfigDict], jax.Array]
  fields: tuple[str, ...]
  description: str


_GIST_FIELDS = ("gist_image_size", "gist_orientations", "gist_blocks", "gist_fc", "gist_boundary")
_LAB_FIELDS = ("lab_bins", "lab_a_range", "lab_b_range")

FEATURES: dict[str, Feature] = {
    "gist_lab": Feature(_gist_lab, _GIST_FIELDS + _LAB_FIELDS,
                        "colour GIST (960-d) ++ Lab histogram (30-d): RelAttr / FG-LP's features"),
    "gist": Feature(_gist, _GIST_FIELDS, "colour GIST, LEAR layout (960-d)"),
    "gist_gray": Feature(_gist_gray, _GIST_FIELDS, "GIST of the grey image (320-d)"),
    "lab": Feature(_lab, _LAB_FIELDS, "Lab colour histogram, 10 bins per channel (30-d)"),
    "pixels": Feature(_pixels, ("pixels_size", "pixels_gray"),
                      "raw pixels area-averaged to pixels_size², in [0, 1]"),
}


def get_feature(name: str) -> Feature:
  if name not in FEATURES:
    raise KeyError(f"unknown feature {name!r}; valid: {sorted(FEATURES)}")
  return FEATURES[name]


def _resolve_name(name: str | None, cfg) -> str:
  if name is None:
    name = cfg.get("name") if cfg is not None else None
    if not name:
      raise ValueError("no feature name given and the feature config has no `name`")
  get_feature(name)
  return name


def _check_images(images) -> np.ndarray:
  if not isinstance(images, np.ndarray):
    images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"images must be (N, H, W, C) with C in {{1, 3}}, got shape {images.shape}")
  if images.dtype != np.uint8:
    raise ValueError(f"images must be uint8, got {images.dtype}")
  if len(images) == 0:
    raise ValueError("cannot extract features of an empty image set")
  return images


def feature_dim(name: str, cfg: ml_collections.ConfigDict, image_shape=(32, 32, 3)) -> int:
  """The length D of feature `name` under `cfg` (traced, nothing is computed)."""
  spec = get_feature(name)
  out = jax.eval_shape(lambda x: spec.fn(x, cfg),
                       jax.ShapeDtypeStruct((1, *image_shape), np.uint8))
  return int(out.shape[-1])


def extract_features(name: str | None, images: np.ndarray, cfg: ml_collections.ConfigDict,
                     chunk_size: int | None = None, progress: bool | None = None) -> np.ndarray:
  """Feature `name` of every image, computed chunk by chunk.

  Args:
    name: a key of FEATURES (None: `cfg.name`).
    images: uint8 (N, H, W, C), C in {1, 3}, N >= 1.
    cfg: the feature config (`default_config()`).
    chunk_size: images per jitted call (None: `cfg.chunk_size`, else 256). A set smaller than
      a chunk uses the next power of two >= N instead, so tiny sets do not pay for a full chunk
      while the number of distinct compiles stays small.
    progress: print a progress line with rate and ETA (None: only for >= 2048 images).
  Returns:
    float32 (N, D). A non-finite value raises, naming the first bad image index.
  """
  name = _resolve_name(name, cfg)
  spec = get_feature(name)
  images = _check_images(images)
  n = len(images)
  chunk = int(chunk_size or cfg.get("chunk_size", 256) or 256)
  if chunk < 1:
    raise ValueError(f"chunk_size must be >= 1, got {chunk}")
  chunk = min(chunk, 1 << (n - 1).bit_length())
  show = n >= _PROGRESS_MIN_IMAGES if progress is None else progress
  bar = Progress(f"features {name}", n, unit="images") if show else None

  def launch(start):
    batch = images[start:start + chunk]
    if len(batch) < chunk:  # pad so the last chunk reuses the compiled shape
      pad = np.zeros((chunk - len(batch), *images.shape[1:]), np.uint8)
      batch = np.concatenate([batch, pad])
    return spec.fn(batch, cfg)  # dispatched asynchronously

  out = []
  pending = launch(0)
  for start in range(0, n, chunk):
    # Dispatch the next chunk before waiting on this one, so the host copy overlaps compute.
    upcoming = launch(start + chunk) if start + chunk < n else None
    x = np.asarray(pending, np.float32)[:min(chunk, n - start)]
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if bad.size:
      raise ValueError(f"feature {name}: non-finite value for image index {start + int(bad[0])}")
    out.append(x)
    pending = upcoming
    if bar is not None:
      bar.update(start + len(x))
  return np.concatenate(out)


def feature_fingerprint(name: str, cfg: ml_collections.ConfigDict, images: np.ndarray | None = None,
                        key: str | None = None) -> str:
  """16 hex digits hashing the feature, its config fields, the version and the images.

  The images enter through their shape and bytes, or through `key` when given (e.g. the
  fingerprint of the run that produced them), which avoids hashing a large array.
  """
  spec = get_feature(name)
  fields = {f: cfg.get(f) for f in spec.fields}
  h = hashlib.sha256()
  h.update(json.dumps(dict(name=name, fields=fields, version=FEATURES_VERSION), sort_keys=True,
                      default=lambda v: list(v) if isinstance(v, tuple) else str(v)).encode())
  if key is not None:
    h.update(b"key:" + str(key).encode())
  else:
    if images is None:
      raise ValueError("feature_fingerprint needs the images or a key")
    images = np.ascontiguousarray(images)
    h.update(f"{images.shape}{images.dtype}".encode())
    h.update(memoryview(images).cast("B"))
  return h.hexdigest()[:16]


def cached_features(name: str | None, imageset: ImageSet, cfg: ml_collections.ConfigDict,
                    cache_dir: str | Path, key: str | None = None,
                    chunk_size: int | None = None) -> np.ndarray:
  """`extract_features` of `imageset.images`, stored in and reused from `cache_dir`.

  The file is `cache_dir/<name>-<fingerprint>.npz` (see `feature_fingerprint`), written
  atomically. An unreadable or wrongly shaped cache file is recomputed and overwritten.
  Returns float32 (N, D).
  """
  name = _resolve_name(name, cfg)
  images = _check_images(imageset.images)
  path = Path(cache_dir) / f"{name}-{feature_fingerprint(name, cfg, images, key)}.npz"
  if path.exists():
    try:
      x = io.load_npz(path).get("features")
      if x is not None and x.ndim == 2 and len(x) == len(images) and np.isfinite(x).all():
        return x.astype(np.float32, copy=False)
      print(f"[features] cache {path} does not match {len(images)} images; recomputing")
    except ValueError as e:
      print(f"[features] {e}; recomputing")
  x = extract_features(name, images, cfg, chunk_size=chunk_size)
  io.save_npz(path, features=x)
  return x


class FeatureCache:
  """Features of one ImageSet (a run's domain images) computed once per process, of any other
  ImageSet (e.g. synthetic images) on request; both stored in `cache_dir` by content."""

  def __init__(self, cfg: ml_collections.ConfigDict, images: ImageSet, cache_dir: str | Path):
    self.cfg, self.images, self.cache_dir = cfg, images, Path(cache_dir)
    self._domain_feats: dict[str, np.ndarray] = {}

  def domain_features(self, name: str) -> np.ndarray:
    if name not in self._domain_feats:
      self._domain_feats[name] = cached_features(name, self.images, self.cfg, self.cache_dir)
    return self._domain_feats[name]

  def of(self, name: str, images: ImageSet) -> np.ndarray:
    """Features of any other ImageSet, cached by content."""
    return cached_features(name, images, self.cfg, self.cache_dir)


def standardize(train_feats: np.ndarray, *others: np.ndarray, eps: float = 1e-6
                ) -> tuple[np.ndarray, ...]:
  """Z-scores features with the TRAINING rows' statistics.

  Args:
    train_feats: float (N, D) features the statistics come from (N >= 1).
    others: more (M_i, D) arrays transformed with the same statistics (e.g. test features).
    eps: a dimension whose training std is <= eps is only centred (divided by 1), so constant
      dimensions (e.g. an always-empty histogram bin) stay 0 instead of blowing up.
  Returns:
    float32 arrays (train, *others), in the order given.
  """
  train = np.asarray(train_feats, np.float64)
  if train.ndim != 2 or len(train) == 0:
    raise ValueError(f"standardize needs (N >= 1, D) training features, got {train.shape}")
  mu = train.mean(axis=0)
  sd = train.std(axis=0)
  sd = np.where(sd > eps, sd, 1.0)
  out = []
  for i, x in enumerate((train_feats, *others)):
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[1] != train.shape[1]:
      raise ValueError(f"standardize argument {i} has shape {x.shape}, expected (M, "
                       f"{train.shape[1]})")
    out.append(((x - mu) / sd).astype(np.float32))
  return tuple(out)
