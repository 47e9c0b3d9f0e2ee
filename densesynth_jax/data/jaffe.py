"""JAFFE: 213 posed expressions of 10 Japanese women, with graded human emotion ratings.

Files under `<data_dir>/jaffe/`:
  KA.HA1.29.jpg ...              256×256 grey images (stored as 3-channel JPEGs): poser "KA",
                                 expression "HA" (NE AN DI FE HA SA SU), take 1, serial 29
  jaffe_semantic_ratings.txt     "# HAP SAD SUR ANG DIS FEA PIC", then one row per picture:
                                 index, the 6 mean ratings (1-5, by 60 raters), key "KA-HA1"
Join: "KA.HA1.29.jpg" -> "KA-HA1". The ratings file spells one key "YN-HA2"; no poser YN exists
and YM-HA2 has no other row, so it is read as "YM-HA2" (`RATING_KEY_FIXES`). The file has 219
ratings for 213 images: 6 rated pictures (KM-DI2, KM-HA5, KM-SA4, KR-HA3, NM-DI2, TM-HA4) are
not in the image set; they are listed in info["ratings_without_image"]. An image without a
rating is dropped with a warning and listed in info["images_without_rating"].

Conversion to the model's input: the grey image is repeated over 3 channels and cropped to a
square of side 0.766·W (196 px) centred at (0.5·W, 0.578·H) = (128, 148), then resampled to
`image_size`. JAFFE faces are roughly centred with the eyes near row 125 and the mouth near row
186; this box puts the eyes at about 0.37 and the mouth at about 0.68 of the crop's height, the
face filling most of the width: close to the framing of the CelebA crop (`celeba.py`), so that a
model trained on CelebA crops sees JAFFE faces at a similar scale.

Strengths = the 6 mean ratings (columns HAP SAD SUR ANG DIS FEA, 1-5); groups = poser index
(10 posers, sorted by code); ids = the file's serial number. HAP is a graded smile strength:
`jaffe_test_pairs` makes within-poser "which smiles more" test pairs from it (in the spirit of
the paper's PFSmile). With the default margin 0.5 there are 1,272 such pairs (943 at margin
1.0, 474 at 2.0).
"""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import ml_collections
import numpy as np

from densesynth_jax.data import imageio
from densesynth_jax.data.paths import data_dir as resolve_data_dir
from densesynth_jax.data.paths import require_file
from densesynth_jax.types import Domain, ImageSet, PairSet

FOLDER = "jaffe"
RATINGS_FILE = "jaffe_semantic_ratings.txt"
RATINGS = ("HAP", "SAD", "SUR", "ANG", "DIS", "FEA")
EXPRESSIONS = ("NE", "HA", "SA", "SU", "AN", "DI", "FE")
# Known typos in the ratings file's picture keys.
RATING_KEY_FIXES = {"YN-HA2": "YM-HA2"}
_IMAGE_NAME = re.compile(r"^([A-Z]{2})\.([A-Z]{2})(\d+)\.(\d+)\.(jpe?g|tiff?)$", re.IGNORECASE)
_KEY = re.compile(r"^[A-Z]{2}-[A-Z]{2}\d+$")


class UnratedImages(UserWarning):
  """Some JAFFE images have no rating row and were left out."""


def default_config() -> ml_collections.ConfigDict:
  """The data-config block of the JAFFE domain (a test domain: every image is in "test")."""
  c = ml_collections.ConfigDict()
  c.name = "jaffe"
  c.data_dir = None  # real-data folder holding jaffe/; None = $DENSESYNTH_DATA_DIR
  c.image_size = 64  # output side, pixels
  c.crop_center = (0.5, 0.578)  # crop centre as fractions of (width, height)
  c.crop_side = 0.766  # crop side as a fraction of the width (196 of 256 px)
  c.test_attribute = "HAP"  # the rating that orders the test pairs
  c.test_margin = 0.5  # minimum rating difference of a test pair
  c.test_attribute_name = "smiling"  # the attribute name the pairs are evaluated as
  c.allow_corrupt = False  # True: skip undecodable images with a warning (listed in info)
  c.cache_dir = None  # decoded-image cache; None = $DENSESYNTH_CACHE or ~/.cache/densesynth_jax
  c.num_threads = 0  # decoding threads; 0 = min(4, CPU count)
  return c


def parse_image_name(name: str) -> tuple[str, str, str, int]:
  """"KA.HA1.29.jpg" -> (key "KA-HA1", poser "KA", expression "HA", serial 29)."""
  m = _IMAGE_NAME.match(name)
  if m is None:
    raise ValueError(f"unexpected JAFFE file name {name!r} (expected like KA.HA1.29.jpg)")
  poser, expr, take, serial = m.group(1), m.group(2), m.group(3), int(m.group(4))
  return f"{poser}-{expr}{take}", poser, expr, serial


def read_ratings(path: str | Path) -> tuple[dict[str, np.ndarray], list[str]]:
  """Parses the ratings file.

  Returns ({picture key: float32 (6,) mean ratings in RATINGS order}, the key fixes applied as
  "OLD->NEW"). A malformed row, a rating outside [1, 5] or a repeated key raises a one-line
  error naming the file and line.
  """
  path = require_file(path, "JAFFE ratings jaffe_semantic_ratings.txt")
  try:
    lines = path.read_text().splitlines()
  except UnicodeDecodeError as e:
    raise ValueError(f"corrupt ratings file (not text: {e.reason}): {path}") from None
  out, fixes = {}, []
  header = None
  for i, ln in enumerate(lines, start=1):
    tok = ln.split()
    if not tok:
      continue
    if tok[0].startswith("#"):
      header = [t for t in tok if t != "#"]
      header = [t.lstrip("#") for t in header if t.lstrip("#")]
      if header[:6] != list(RATINGS):
        raise ValueError(f"corrupt ratings file (header {header} does not start with "
                         f"{list(RATINGS)}): {path}")
      continue
    if len(tok) != 8:
      raise ValueError(f"corrupt ratings file (line {i} has {len(tok)} fields, expected 8): "
                       f"{path}")
    try:
      values = np.asarray([float(t) for t in tok[1:7]], np.float32)
    except ValueError:
      raise ValueError(f"corrupt ratings file (line {i} has a non-numeric rating): "
                       f"{path}") from None
    if not (np.isfinite(values).all() and (values >= 1).all() and (values <= 5).all()):
      raise ValueError(f"corrupt ratings file (line {i} has a rating outside 1-5): {path}")
    key = tok[7]
    if key in RATING_KEY_FIXES:
      fixes.append(f"{key}->{RATING_KEY_FIXES[key]}")
      key = RATING_KEY_FIXES[key]
    if not _KEY.match(key):
      raise ValueError(f"corrupt ratings file (line {i}: picture key {key!r} is not like "
                       f"KA-HA1): {path}")
    if key in out:
      raise ValueError(f"corrupt ratings file (line {i}: picture key {key} repeated): {path}")
    out[key] = values
  if header is None:
    raise ValueError(f"corrupt ratings file (no '# HAP SAD ...' header line): {path}")
  if not out:
    raise ValueError(f"corrupt ratings file (no rating rows): {path}")
  return out, fixes


def jaffe_test_pairs(images: ImageSet, attribute: str = "HAP", margin: float = 0.5,
                     attribute_name: str = "smiling") -> PairSet:
  """Within-poser pairs whose `attribute` ratings differ by at least `margin`.

  Every pair (i, j), i < j, of images of the same poser (`images.groups`) with
  |r_i - r_j| >= margin; label sign(r_i - r_j) (+1: image a is rated higher). Source "real",
  weight 1, PairSet.attribute = attribute_name. Raises if no such pair exists.
  """
  if images.groups is None:
    raise ValueError("jaffe_test_pairs needs images.groups (the poser ids)")
  if not margin > 0:
    raise ValueError(f"margin must be > 0 (ties make no ordered pair), got {margin}")
  r = images.strength(attribute)
  g = np.asarray(images.groups)
  i, j = np.triu_indices(len(r), k=1)
  keep = (g[i] == g[j]) & (np.abs(r[i] - r[j]) >= margin - 1e-6)
  i, j = i[keep], j[keep]
  if not len(i):
    raise ValueError(f"no within-poser pair differs by >= {margin} in {attribute}")
  label = np.sign(r[i] - r[j]).astype(np.int8)
  return PairSet.create(i, j, label, attribute=attribute_name, source="real")


def build_domain(cfg: ml_collections.ConfigDict) -> Domain:
  """The JAFFE domain: 3-channel face crops, 6 rating strengths, poser groups, HAP test pairs.

  splits = {"test": every image}; pairs = {cfg.test_attribute_name: {"test": ...}}.
  """
  t0 = time.perf_counter()
  root = resolve_data_dir(cfg.get("data_dir")) / FOLDER
  if not root.is_dir():
    raise FileNotFoundError(f"missing JAFFE folder: {root}")
  ratings, fixes = read_ratings(root / RATINGS_FILE)
  files = sorted(p for p in root.iterdir()
                 if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".tif", ".tiff"))
  if not files:
    raise FileNotFoundError(f"no JAFFE images (*.jpg) in {root}")
  parsed = [parse_image_name(p.name) for p in files]
  keys = [k for k, *_ in parsed]
  if len(set(keys)) != len(keys):
    dup = next(k for k in keys if keys.count(k) > 1)
    raise ValueError(f"two JAFFE images share the picture key {dup} in {root}")
  unrated = [p.name for p, k in zip(files, keys) if k not in ratings]
  without_image = sorted(set(ratings) - set(keys))
  if unrated:
    msg = (f"jaffe: {len(unrated)} image(s) have no rating and are left out: "
           f"{', '.join(unrated[:imageio.SHOW_FIRST])}")
    print(f"WARNING {msg}", flush=True)
    warnings.warn(msg, UnratedImages, stacklevel=2)
  rated = [n for n, k in enumerate(keys) if k in ratings]
  files, parsed = [files[n] for n in rated], [parsed[n] for n in rated]

  spec = imageio.crop_spec(int(cfg.image_size), tuple(cfg.crop_center), float(cfg.crop_side),
                           gray=True)
  loaded = imageio.load_images(
      files, spec, name="jaffe", root=root, cache_dir=cfg.get("cache_dir"),
      allow_corrupt=bool(cfg.get("allow_corrupt", False)),
      num_threads=int(cfg.get("num_threads", 0)) or None)
  parsed = [parsed[n] for n in loaded.kept]
  posers = sorted({p for _, p, _, _ in parsed})
  groups = np.asarray([posers.index(p) for _, p, _, _ in parsed], np.int64)
  ids = np.asarray([s for *_, s in parsed], np.int64)
  strengths = np.stack([ratings[k] for k, *_ in parsed]).astype(np.float32)
  images = ImageSet(loaded.images, ids, strengths, groups, RATINGS)
  pairs = jaffe_test_pairs(images, cfg.test_attribute, float(cfg.test_margin),
                           cfg.test_attribute_name)
  info = dict(
      data_dir=str(root), ratings_file=str(root / RATINGS_FILE), num_images=int(len(ids)),
      image_size=int(cfg.image_size), crop=spec, posers=posers,
      images_per_poser={p: int(np.sum(groups == k)) for k, p in enumerate(posers)},
      keys=[k for k, *_ in parsed], expressions=[e for _, _, e, _ in parsed],
      key_fixes=fixes, ratings_without_image=without_image, images_without_rating=unrated,
      test_pairs=dict(attribute=cfg.test_attribute, margin=float(cfg.test_margin),
                      count=len(pairs), within_poser=True),
      **loaded.info())
  info["build_seconds"] = round(time.perf_counter() - t0, 3)
  return Domain("jaffe", images, {"test": np.arange(len(ids), dtype=np.int64)},
                {cfg.test_attribute_name: {"test": pairs}}, info)
