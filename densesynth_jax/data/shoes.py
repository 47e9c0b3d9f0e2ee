"""UT-Zap50K catalogue shoes (a 15k subset with category labels) as a generator-training domain.

Files under `<data_dir>/ut-zap50k-shoes/`:
  Boot/boot (N).jpg, Sandal/Sandal (N).jpg, Shoe/Shoe (N).jpg, N = 1..5000
  136×102 RGB JPEGs on a white background (two are 135×102). Two files are byte-identical copies
  of two others (Boot 383/1493 and 384/1494): they are detected by content hash, reported in
  info["duplicates"], and (config `drop_duplicates`, default True) the later copy in file order
  is dropped, so no image is both in train and test.
The original UT-Zap50K paths of these files were lost, so the official pair labels
(`densesynth_jax.data.labelpacks`) cannot be joined to them; this domain trains the generator.

Preprocessing: padded to a square on white (136×136), resized (antialiased bicubic) to
`image_size`.

Attribute columns (strengths, in this order):
  Boot, Sandal, Shoe   category one-hots (1 = in the category);
  colourfulness        Hasler & Süsstrunk (2003) on the shoe pixels: with rg = R - G and
                       yb = (R + G)/2 - B (0-255 units),
                       sqrt(σ_rg² + σ_yb²) + 0.3·sqrt(μ_rg² + μ_yb²);
                       0 for grey/black/white shoes, ~100 for saturated multicolour ones;
  darkness             1 - mean luminance (Rec. 601, in [0, 1]) of the shoe pixels;
  height               fraction of the square frame's rows that contain shoe pixels (boots tall,
                       flats and sandals low);
  fill                 shoe pixels / area of the shoe's bounding box: an openness measure (strappy
                       sandals and open shoes leave white inside the box; closed boots fill it);
  aspect               bounding-box width / height: toe-to-heel length over height.
"Shoe pixels" are those farther than `white_tolerance` (0-255, max over channels) from pure
white, measured on the preprocessed image; an image with none gets 0 for every measure except
aspect = 1, and is listed in info["empty_foreground"].
The measures are z-scored with the train split's mean and standard deviation (info keeps the raw
statistics). With strengths="prelabel" (default) the three one-hots become the decision values of
linear classifiers (the appendix recipe, `densesynth_jax.data.prelabel`, fitted on the train split);
with strengths="true" they stay 0/1. The measures are real-valued already and are never
pre-labelled.

Splits by file number N within each category (config): N <= 4000 train, <= 4500 val, rest test.
`limit` keeps the first `limit` files (by N) of each category, for smoke runs and tests.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import ml_collections
import numpy as np

from densesynth_jax.data import imageio, prelabel
from densesynth_jax.data.paths import data_dir as resolve_data_dir
from densesynth_jax.types import Domain, ImageSet

FOLDER = "ut-zap50k-shoes"
CATEGORIES = ("Boot", "Sandal", "Shoe")
MEASURES = ("colourfulness", "darkness", "height", "fill", "aspect")
ATTRIBUTES = CATEGORIES + MEASURES
# ids are category_index * ID_STRIDE + N, unique across categories.
ID_STRIDE = 1_000_000
_NUMBER = re.compile(r"\((\d+)\)\.jpe?g$", re.IGNORECASE)


def default_config() -> ml_collections.ConfigDict:
  """The data-config block of the shoes domain."""
  c = ml_collections.ConfigDict()
  c.name = "ut_zap50k_shoes"  # domain registry name (densesynth_jax/data/registry.py)
  c.data_dir = None  # real-data folder holding ut-zap50k-shoes/; None = $DENSESYNTH_DATA_DIR
  c.image_size = 64  # output side, pixels (the paper's shoes: 64×64)
  c.limit = 0  # first `limit` files (by N) of each category; 0 = all
  c.train_last = 4000  # files N <= train_last of each category are train
  c.val_last = 4500  # train_last < N <= val_last are val; the rest test
  c.drop_duplicates = True  # drop the later copy of byte-identical files (listed in info)
  c.white_tolerance = 20  # a pixel is background if every channel is >= 255 - white_tolerance
  c.allow_corrupt = False  # True: skip undecodable images with a warning (listed in info)
  c.cache_dir = None  # decoded-image cache; None = $DENSESYNTH_CACHE or ~/.cache/densesynth_jax
  c.num_threads = 0  # decoding threads; 0 = min(4, CPU count)
  c.strengths = "prelabel"  # "prelabel" (one-hots -> decision values) or "true" (one-hots 0/1)
  c.prelabel = prelabel.default_config()
  c.prelabel.attributes = CATEGORIES  # the measures are real-valued already
  c.prelabel.threshold = 0.5  # one-hots are 0/1
  return c


def list_files(root: Path, limit: int = 0) -> tuple[list[Path], np.ndarray, np.ndarray]:
  """The image files of every category folder, sorted by category then N.

  Returns (paths, category index int64 (M,), file number N int64 (M,)). A missing category
  folder, or a file name without "(N)", raises a one-line error naming it.
  """
  paths, cats, nums = [], [], []
  for k, cat in enumerate(CATEGORIES):
    folder = root / cat
    if not folder.is_dir():
      raise FileNotFoundError(f"missing UT-Zap50K shoes category folder: {folder} (expected "
                              f"{', '.join(CATEGORIES)} folders of JPEGs)")
    found = []
    for p in folder.iterdir():
      if p.name.startswith(".") or not p.is_file():
        continue
      m = _NUMBER.search(p.name)
      if m is None:
        raise ValueError(f"unexpected file name (expected '<name> (N).jpg'): {p}")
      found.append((int(m.group(1)), p))
    if not found:
      raise FileNotFoundError(f"no images in UT-Zap50K shoes category folder: {folder}")
    found.sort()
    numbers = [n for n, _ in found]
    if len(set(numbers)) != len(numbers):
      dup = next(n for n in numbers if numbers.count(n) > 1)
      raise ValueError(f"two files share the number ({dup}) in {folder}")
    if limit:
      found = found[:limit]
    paths += [p for _, p in found]
    cats += [k] * len(found)
    nums += [n for n, _ in found]
  return paths, np.asarray(cats, np.int64), np.asarray(nums, np.int64)


def shape_measures(images: np.ndarray, white_tolerance: int = 20,
                   chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
  """The image-derived measures of MEASURES for shoes on a white background.

  Args:
    images: uint8 (N, S, S, 3).
    white_tolerance: background = every channel >= 255 - white_tolerance.
    chunk: images per step (bounds memory; does not change the result).
  Returns:
    (float32 (N, 5) raw measures in MEASURES order, bool (N,) True where no shoe pixel exists).
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
    raise ValueError(f"shape_measures needs uint8 (N, S, S, 3), got {images.dtype} "
                     f"{images.shape}")
  parts = [_measures(images[i:i + chunk], white_tolerance) for i in range(0, len(images), chunk)]
  return (np.concatenate([m for m, _ in parts]).astype(np.float32),
          np.concatenate([e for _, e in parts]))


def _measures(images: np.ndarray, white_tolerance: int) -> tuple[np.ndarray, np.ndarray]:
  fg = images.min(axis=-1) < 255 - white_tolerance  # (B, H, W): some channel is not white
  count = fg.sum(axis=(1, 2)).astype(np.float32)
  empty = count == 0
  safe = np.maximum(count, 1.0)
  x = images.astype(np.float32)
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  rg, yb = r - g, 0.5 * (r + g) - b

  def fg_mean(v):
    return (v * fg).sum(axis=(1, 2)) / safe

  def fg_std(v):
    m = fg_mean(v)
    return np.sqrt(np.maximum(fg_mean(v * v) - m * m, 0.0))

  colourfulness = np.hypot(fg_std(rg), fg_std(yb)) + 0.3 * np.hypot(fg_mean(rg), fg_mean(yb))
  darkness = 1.0 - fg_mean((0.299 * r + 0.587 * g + 0.114 * b) / 255.0)
  rows, cols = fg.any(axis=2), fg.any(axis=1)  # (B, H), (B, W)
  height = rows.mean(axis=1)

  def extent(m):
    first = np.argmax(m, axis=1)
    last = m.shape[1] - 1 - np.argmax(m[:, ::-1], axis=1)
    return (last - first + 1).astype(np.float32)

  box_h, box_w = extent(rows), extent(cols)
  fill = count / np.maximum(box_h * box_w, 1.0)
  aspect = box_w / np.maximum(box_h, 1.0)
  out = np.stack([colourfulness, darkness, height, fill, aspect], axis=1)
  out[empty] = (0.0, 0.0, 0.0, 0.0, 1.0)
  return out, empty


def split_indices(numbers: np.ndarray, train_last: int, val_last: int) -> dict[str, np.ndarray]:
  """{"train", "val", "test"} -> int64 indices by file number N (per category)."""
  if not 0 < train_last <= val_last:
    raise ValueError(f"need 0 < train_last <= val_last, got {train_last}, {val_last}")
  numbers = np.asarray(numbers)
  return dict(train=np.flatnonzero(numbers <= train_last).astype(np.int64),
              val=np.flatnonzero((numbers > train_last) & (numbers <= val_last)).astype(np.int64),
              test=np.flatnonzero(numbers > val_last).astype(np.int64))


def build_domain(cfg: ml_collections.ConfigDict) -> Domain:
  """The shoes domain: padded 64×64 shoes, category + measure strengths, file-number splits.

  ids = category index · 1,000,000 + N; groups = category index (0 Boot, 1 Sandal, 2 Shoe);
  no pairs (the shoes have no pair labels).
  """
  t0 = time.perf_counter()
  root = resolve_data_dir(cfg.get("data_dir")) / FOLDER
  if not root.is_dir():
    raise FileNotFoundError(f"missing UT-Zap50K shoes folder: {root}")
  limit = int(cfg.get("limit", 0) or 0)
  if limit < 0:
    raise ValueError(f"shoes: limit must be >= 0, got {limit}")
  paths, cats, nums = list_files(root, limit)

  duplicates = imageio.duplicate_files(paths)
  dropped = [p for group in duplicates for p in group[1:]]
  if cfg.get("drop_duplicates", True) and dropped:
    drop = set(dropped)
    keep = np.asarray([str(p) not in drop for p in paths])
    paths = [p for p, k in zip(paths, keep) if k]
    cats, nums = cats[keep], nums[keep]

  spec = imageio.pad_spec(int(cfg.image_size))
  loaded = imageio.load_images(
      paths, spec, name="shoes", root=root, cache_dir=cfg.get("cache_dir"),
      allow_corrupt=bool(cfg.get("allow_corrupt", False)),
      num_threads=int(cfg.get("num_threads", 0)) or None)
  cats, nums = cats[loaded.kept], nums[loaded.kept]
  kept_paths = [paths[i] for i in loaded.kept]
  splits = split_indices(nums, int(cfg.train_last), int(cfg.val_last))

  raw, empty = shape_measures(loaded.images, int(cfg.get("white_tolerance", 20)))
  fit = splits["train"] if len(splits["train"]) else np.arange(len(raw))
  mu, sd = raw[fit].mean(axis=0), raw[fit].std(axis=0)
  z = (raw - mu) / np.where(sd > 1e-8, sd, 1.0)
  onehot = np.eye(len(CATEGORIES), dtype=np.float32)[cats]
  strengths = np.concatenate([onehot, z], axis=1).astype(np.float32)
  ids = cats * ID_STRIDE + nums
  images = ImageSet(loaded.images, ids, strengths, cats.copy(), ATTRIBUTES)

  rel = lambda p: Path(p).relative_to(root).as_posix()
  info = dict(
      data_dir=str(root), num_images=int(len(ids)), image_size=int(cfg.image_size),
      preprocessing=spec, limit=limit,
      per_category={c: int(np.sum(cats == k)) for k, c in enumerate(CATEGORIES)},
      split_rule=f"file number N <= {cfg.train_last} train, <= {cfg.val_last} val, rest test",
      images_per_split={k: int(len(v)) for k, v in splits.items()},
      duplicates=[[rel(p) for p in g] for g in duplicates],
      duplicates_dropped=[rel(p) for p in dropped] if cfg.get("drop_duplicates", True) else [],
      measures=list(MEASURES),
      measure_mean={m: float(v) for m, v in zip(MEASURES, mu)},
      measure_std={m: float(v) for m, v in zip(MEASURES, sd)},
      empty_foreground=[rel(kept_paths[i]) for i in np.flatnonzero(empty)],
      strengths="true", **loaded.info())
  domain = Domain("ut_zap50k_shoes", images, splits, {}, info)
  domain = prelabel.apply_prelabel(domain, cfg)
  info = dict(domain.info)
  info["build_seconds"] = round(time.perf_counter() - t0, 3)
  return Domain(domain.name, domain.images, domain.splits, domain.pairs, info)
