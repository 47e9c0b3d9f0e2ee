"""CelebA: aligned celebrity faces with 40 binary attributes, as a generator-training domain.

Files under `<data_dir>/celeba/` (the project's copy holds the first 10,000 images at half size):
  img_align_celeba/000001.jpg ... 010000.jpg   89×109 RGB JPEGs (the official aligned crop, halved)
  list_attr_celeba.txt                         line 1: image count; line 2: the 40 attribute
                                               names; then `NNNNNN.jpg` + 40 values of ±1
                                               (CRLF line ends are accepted)
A user with the full official release (178×218) can point `data_dir` at it unchanged: the crop
below is given in FRACTIONS of the image, and `limit` / the split boundaries are by image number.

Face crop. The aligned images put the eyes at about 51% of the height and the mouth at about 71%;
the face (brow to chin) spans roughly 32%-85% of the height and the central 70% of the width. The
crop is a square of side 0.72·W centred at (0.5·W, 0.587·H), i.e. 64 px centred at (44.5, 64) in
the 89×109 copy (rows 32-96): forehead to just below the chin, ears at the edges, little
background, the face-tight framing the paper's generator sees. It is resampled (antialiased
bicubic) to `image_size`.

Splits by image number (config): 1-8000 train (the generator and the pre-labelling classifier
see only these), 8001-9000 val, 9001-10000 test.

Strengths. `strengths="prelabel"` (default): the appendix recipe (`densesynth_jax.data.prelabel`)
turns the ±1 labels into 40 real-valued decision values, fitted on the train split only.
`strengths="true"`: the raw ±1 labels as float strengths. The raw labels stay available through
`celeba_binary_labels(domain)` either way. No pairs are built here (`pairs == {}`); the experiment
stage makes CelebA pairs, e.g. with `category_pairs`.
"""

from __future__ import annotations

import dataclasses

import functools
import os
import time
from pathlib import Path

import ml_collections
import numpy as np

from densesynth_jax.data import imageio, prelabel
from densesynth_jax.data.paths import data_dir as resolve_data_dir
from densesynth_jax.data.paths import require_file
from densesynth_jax.types import Domain, ImageSet, PairSet

FOLDER = "celeba"
IMAGE_FOLDER = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
NUM_ATTRIBUTES = 40


def default_config() -> ml_collections.ConfigDict:
  """The data-config block of the CelebA domain."""
  c = ml_collections.ConfigDict()
  c.name = "celeba"  # domain registry name (densesynth_jax/data/registry.py)
  c.data_dir = None  # real-data folder holding celeba/; None = $DENSESYNTH_DATA_DIR
  c.image_size = 64  # output side, pixels (Attribute2Image: 64)
  c.limit = 0  # use only the first `limit` rows of the attribute file (0 = all); for smoke runs
  c.train_last = 8000  # images 1..train_last are the train split (generator + prelabel fit)
  c.val_last = 9000  # train_last+1..val_last are val; the rest are test
  c.crop_center = (0.5, 0.587)  # crop centre as fractions of (width, height): the face centre
  c.crop_side = 0.72  # crop side as a fraction of the width (64 px of the 89-px copy)
  c.allow_corrupt = False  # True: skip undecodable images with a warning (listed in info)
  c.cache_dir = None  # decoded-image cache; None = $DENSESYNTH_CACHE or ~/.cache/densesynth_jax
  c.num_threads = 0  # decoding threads; 0 = min(4, CPU count)
  c.strengths = "prelabel"  # "prelabel" (classifier decision values) or "true" (the ±1 labels)
  c.prelabel = prelabel.default_config()
  c.prelabel.threshold = 0.0  # the labels are ±1
  return c


def _folder(cfg_or_dir) -> Path:
  if isinstance(cfg_or_dir, ml_collections.ConfigDict):
    return resolve_data_dir(cfg_or_dir.get("data_dir")) / FOLDER
  return resolve_data_dir(cfg_or_dir) / FOLDER


@functools.lru_cache(maxsize=4)
def _parse_cached(path: str, mtime_ns: int, size: int):
  return _parse(Path(path))


def _parse(path: Path) -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray]:
  try:
    lines = path.read_text().splitlines()  # splitlines drops the CRLF's '\r' too
  except UnicodeDecodeError as e:
    raise ValueError(f"corrupt attribute file (not text: {e.reason}): {path}") from None
  if len(lines) < 2:
    raise ValueError(f"corrupt attribute file (fewer than 2 lines): {path}")
  try:
    count = int(lines[0].strip())
  except ValueError:
    raise ValueError(f"corrupt attribute file (line 1 is not an image count: "
                     f"{lines[0][:40]!r}): {path}") from None
  names = tuple(lines[1].split())
  if len(names) != NUM_ATTRIBUTES:
    raise ValueError(f"corrupt attribute file (line 2 has {len(names)} attribute names, "
                     f"expected {NUM_ATTRIBUTES}): {path}")
  rows = [ln for ln in lines[2:] if ln.strip()]
  if len(rows) != count:
    raise ValueError(f"corrupt attribute file (line 1 says {count} images, found {len(rows)} "
                     f"rows): {path}")
  files, labels = [], np.empty((count, NUM_ATTRIBUTES), np.int8)
  for i, ln in enumerate(rows):
    tok = ln.split()
    if len(tok) != NUM_ATTRIBUTES + 1:
      raise ValueError(f"corrupt attribute file (line {i + 3} has {len(tok)} fields, expected "
                       f"{NUM_ATTRIBUTES + 1}): {path}")
    try:
      v = [int(t) for t in tok[1:]]
    except ValueError:
      raise ValueError(f"corrupt attribute file (line {i + 3} has a non-integer label): "
                       f"{path}") from None
    if any(x not in (-1, 1) for x in v):
      raise ValueError(f"corrupt attribute file (line {i + 3} has a label not in ±1): {path}")
    files.append(tok[0])
    labels[i] = v
  return tuple(files), names, labels


def read_attributes(path: str | os.PathLike) -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray]:
  """Parses `list_attr_celeba.txt`.

  Returns (file names like "000001.jpg", the 40 attribute names, int8 (N, 40) labels in ±1).
  A missing or malformed file raises a one-line error naming it (and the line).
  """
  path = require_file(path, "CelebA attribute file list_attr_celeba.txt")
  st = path.stat()
  return _parse_cached(str(path.resolve()), st.st_mtime_ns, st.st_size)


def image_number(file_name: str) -> int:
  """"000123.jpg" -> 123 (the CelebA image number, used as the image id)."""
  stem = file_name.split(".")[0]
  if not stem.isdigit():
    raise ValueError(f"CelebA file name {file_name!r} is not NNNNNN.jpg")
  return int(stem)


def split_indices(ids: np.ndarray, train_last: int, val_last: int) -> dict[str, np.ndarray]:
  """{"train", "val", "test"} -> int64 indices by image number (1..train_last, ..val_last, rest)."""
  if not 0 < train_last <= val_last:
    raise ValueError(f"need 0 < train_last <= val_last, got {train_last}, {val_last}")
  ids = np.asarray(ids)
  return dict(train=np.flatnonzero(ids <= train_last).astype(np.int64),
              val=np.flatnonzero((ids > train_last) & (ids <= val_last)).astype(np.int64),
              test=np.flatnonzero(ids > val_last).astype(np.int64))


def build_domain(cfg: ml_collections.ConfigDict) -> Domain:
  """The CelebA domain: face crops, strengths (pre-labelled or ±1), image-number splits, no pairs.

  ids are the image numbers; groups is None (CelebA identities are not in the attribute file).
  """
  t0 = time.perf_counter()
  root = _folder(cfg)
  attr_path = root / ATTR_FILE
  files, names, labels = read_attributes(attr_path)
  limit = int(cfg.get("limit", 0) or 0)
  if limit < 0:
    raise ValueError(f"celeba: limit must be >= 0, got {limit}")
  if limit:
    files, labels = files[:limit], labels[:limit]
  paths = [root / IMAGE_FOLDER / f for f in files]
  spec = imageio.crop_spec(int(cfg.image_size), tuple(cfg.crop_center), float(cfg.crop_side))
  loaded = imageio.load_images(
      paths, spec, name="celeba", root=root, cache_dir=cfg.get("cache_dir"),
      allow_corrupt=bool(cfg.get("allow_corrupt", False)),
      num_threads=int(cfg.get("num_threads", 0)) or None)
  labels = labels[loaded.kept]
  ids = np.asarray([image_number(files[i]) for i in loaded.kept], np.int64)
  images = ImageSet(loaded.images, ids, labels.astype(np.float32), None, names)
  splits = split_indices(ids, int(cfg.train_last), int(cfg.val_last))
  info = dict(
      data_dir=str(root), attribute_file=str(attr_path), num_images=int(len(ids)),
      image_size=int(cfg.image_size), crop=spec, limit=limit,
      split_rule=f"image number 1..{cfg.train_last} train, ..{cfg.val_last} val, rest test",
      images_per_split={k: int(len(v)) for k, v in splits.items()},
      positives={n: int(np.sum(labels[:, j] > 0)) for j, n in enumerate(names)},
      strengths="true", **loaded.info())
  binary = {n: (labels[:, j] > 0).astype(np.int8) for j, n in enumerate(names)}
  domain = Domain("celeba", images, splits, {}, info, binary)
  domain = prelabel.apply_prelabel(domain, cfg)
  info = dict(domain.info)
  info["build_seconds"] = round(time.perf_counter() - t0, 3)
  return dataclasses.replace(domain, info=info)


def celeba_binary_labels(domain: Domain) -> tuple[np.ndarray, tuple[str, ...]]:
  """The raw ±1 labels of the domain's images (re-read from the attribute file by image id).

  Returns (int8 (N, 40) aligned with domain.images, the 40 attribute names).
  """
  path = domain.info.get("attribute_file")
  if not path:
    raise ValueError(f"domain {domain.name} has no info['attribute_file']; not a CelebA domain")
  files, names, labels = read_attributes(path)
  row = {image_number(f): i for i, f in enumerate(files)}
  missing = [int(i) for i in domain.images.ids if int(i) not in row]
  if missing:
    raise KeyError(f"CelebA image id {missing[0]} has no row in {path}")
  return labels[[row[int(i)] for i in domain.images.ids]], names


def category_pairs(domain: Domain, attribute: str, split: str, n_pairs: int,
                   rng: np.random.Generator,
                   labels: tuple[np.ndarray, tuple[str, ...]] | None = None) -> PairSet:
  """Coarse category-level pairs: an image WITH the attribute vs one WITHOUT it.

  Args:
    domain: a CelebA domain.
    attribute: an attribute name of the attribute file (e.g. "Smiling").
    split: a split of the domain; both images of a pair come from it.
    n_pairs: number of distinct pairs wanted (fewer if fewer exist).
    rng: seeded generator (same seed -> same pairs).
    labels: optional (±1 labels (N, 40), names) as `celeba_binary_labels(domain)` returns (pass
      it when making pairs for many attributes, to read the attribute file once).
  Returns:
    PairSet (source "real"): label +1 when `a` is the positive image, -1 when `b` is; the side of
    the positive image is random, so both labels occur about equally often.
  """
  binary, names = celeba_binary_labels(domain) if labels is None else labels
  names = tuple(names)
  if np.shape(binary) != (len(domain.images), len(names)):
    raise ValueError(f"labels have shape {np.shape(binary)}, expected "
                     f"({len(domain.images)}, {len(names)})")
  if attribute not in names:
    raise KeyError(f"unknown CelebA attribute {attribute!r}; valid: {list(names)}")
  if split not in domain.splits:
    raise KeyError(f"domain {domain.name} has no split {split!r}; valid: {sorted(domain.splits)}")
  if n_pairs < 1:
    raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
  idx = np.asarray(domain.splits[split])
  col = np.asarray(binary)[idx, names.index(attribute)]
  pos, neg = idx[col > 0], idx[col <= 0]
  if not len(pos) or not len(neg):
    raise ValueError(f"celeba split {split!r} has {len(pos)} images with {attribute!r} and "
                     f"{len(neg)} without; category pairs need both")
  total = len(pos) * len(neg)
  n = min(int(n_pairs), total)
  flat = rng.choice(total, size=n, replace=False)
  p, q = pos[flat // len(neg)], neg[flat % len(neg)]
  flip = rng.random(n) < 0.5
  a = np.where(flip, q, p)
  b = np.where(flip, p, q)
  label = np.where(flip, -1, 1)
  return PairSet.create(a, b, label, attribute=attribute, source="real")
