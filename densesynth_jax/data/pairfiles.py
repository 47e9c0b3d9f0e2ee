"""Pair files as test sets: a pairs CSV plus an image folder, added to any domain.

A user's own fine-grained test (say, pairs of their photos ordered by smile) joins a run through
the config field `extra_test_sets` (configs/experiment.py): a tuple of strings

  NAME:ATTRIBUTE:PAIRS_CSV:IMAGES_DIR[:crop|pad]

e.g. `--config.extra_test_sets='("mine:smiling:/data/mine/pairs.csv:/data/mine/images",)'`.
NAME becomes a test set of ATTRIBUTE's cells: a row of every table, a line of results.csv and a
figure (`experiments/runner.py`). NAME is letters, digits, '_', '-', '.' and must be new: no
pair set of the domain (train, val, test_fine, ...) and none of `config.test_sets`. Paths may
not contain ':'; relative paths are relative to the working directory.

PAIRS_CSV (the PFSmile format, `labelpack_domains`): UTF-8, first line exactly
`image_a,image_b,label`; then one pair per line: two image paths relative to IMAGES_DIR
(subfolders allowed) and the label: +1 (image_a shows MORE of the attribute), -1 (image_b
more) or 0 (equal: kept, but accuracy counts only ordered pairs). Blank lines and lines
starting with '#' are ignored.

Preprocessing ("the domain's rule"): each image is decoded (`imageio`), cut to a square and
resized to the domain's image side, so it meets the rankers exactly as the domain's own images
do (`registry.resize_domain` then brings everything to the rankers' side):
  crop  the largest centred square (`imageio.crop_spec`, side None). The face domains crop a
        box tuned to their own framing (CelebA's aligned frames); a user's photos have no known
        framing, so their own largest square is the neutral choice (as for PFSmile);
  pad   padded to a square with white, as the shoe domains pad their catalogue images.
Without the optional field: "pad" when the domain pads its own images (its
`info["preprocessing"]["op"]`: UT-Zap50K, shoes), else "crop". Grey follows the domain: when
every image of the domain is grey (R = G = B: JAFFE), the new images are converted to grey.

What the domain gains (`add_pair_file_test_sets`): the set's distinct images appended to its
ImageSet (ids and groups continue after the largest existing ones, one group per image: the
identity is unknown; strengths NaN rows: unknown; `binary` labels 0 as a PLACEHOLDER, since
`Domain.binary` holds only {0, 1}); its pairs, source "real", under
`pairs[ATTRIBUTE][NAME]`; and a record in `info["extra_test_sets"]` (name, attribute, files,
counts, preprocessing, a content digest of the CSV and the images). The added images are in no
split, so nothing fits on them: splits, pre-labels, scorers and the generator read the
domain's own images only (`own_image_count`).

Bad input is one line naming the file (and line): a missing or malformed CSV, a label outside
{-1, 0, 1}, a row naming a missing image, an empty file, an undecodable image, a name clash.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from densesynth_jax.data import imageio
from densesynth_jax.types import Domain, ImageSet, PairSet, concat_images

HEADER = ("image_a", "image_b", "label")
PREPROCESS = ("crop", "pad")
SPEC_FORMAT = "NAME:ATTRIBUTE:PAIRS_CSV:IMAGES_DIR[:crop|pad]"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
INFO_KEY = "extra_test_sets"


# ---------------------------------------------------------------------------------------------
# The CSV.

@dataclasses.dataclass(frozen=True)
class PairRows:
  """The pairs of a pairs CSV, in file order.

  Attributes:
    image_a, image_b: the image paths as written (relative to the image folder).
    label: int8 (P,) +1 (image_a more), -1 (image_b more), 0 (equal).
    line: int (P,) the 1-based line of each pair in the file.
  """
  image_a: tuple[str, ...]
  image_b: tuple[str, ...]
  label: np.ndarray
  line: np.ndarray

  def __len__(self) -> int:
    return len(self.image_a)


def read_pairs_csv(path: str | Path, what: str = "pairs file") -> PairRows:
  """Parses a pairs CSV (format in the module docstring).

  Raises FileNotFoundError ("missing <what>: <path>") or a one-line ValueError naming the file
  and line: not UTF-8, a wrong header, a line without 3 fields, a label outside {-1, 0, 1}, an
  image compared with itself, no pairs at all.
  """
  path = Path(path)
  try:
    lines = path.read_text(encoding="utf-8-sig").splitlines()
  except FileNotFoundError:
    raise FileNotFoundError(f"missing {what}: {path}") from None
  except IsADirectoryError:
    raise ValueError(f"{what} is a folder, not a CSV file: {path}") from None
  except UnicodeDecodeError as e:
    raise ValueError(f"corrupt {what} (not UTF-8 text: {e.reason}): {path}") from None
  a, b, label, where, header = [], [], [], [], None
  for number, line in enumerate(lines, start=1):
    if not line.strip() or line.lstrip().startswith("#"):
      continue
    try:
      fields = [f.strip() for f in next(csv.reader([line]))]
    except csv.Error as e:
      raise ValueError(f"{what}: line {number} is not CSV ({e}): {path}") from None
    if header is None:
      header = tuple(f.lower() for f in fields)
      if header != HEADER:
        raise ValueError(f"{what}: line {number} must be the header {','.join(HEADER)}, got "
                         f"{line.strip()!r}: {path}")
      continue
    if len(fields) != 3 or not fields[0] or not fields[1]:
      raise ValueError(f"{what}: line {number} needs 3 fields image_a,image_b,label: {path}")
    if fields[2] not in ("1", "+1", "-1", "0"):
      raise ValueError(f"{what}: line {number} has label {fields[2]!r}, expected +1, -1 or 0: "
                       f"{path}")
    if fields[0] == fields[1]:
      raise ValueError(f"{what}: line {number} compares {fields[0]} with itself: {path}")
    a.append(fields[0])
    b.append(fields[1])
    label.append(int(fields[2]))
    where.append(number)
  if not a:
    raise ValueError(f"{what} has no pairs: {path}")
  return PairRows(tuple(a), tuple(b), np.asarray(label, np.int8), np.asarray(where, np.int64))


# ---------------------------------------------------------------------------------------------
# The config strings.

@dataclasses.dataclass(frozen=True)
class PairFileSpec:
  """One extra test set: `name` of `attribute`, pairs from `pairs`, images under `images`.

  `preprocess` is "crop", "pad" or None (the domain's rule, module docstring).
  """
  name: str
  attribute: str
  pairs: str
  images: str
  preprocess: str | None = None


def parse_spec(text, where: str = "extra test set") -> PairFileSpec:
  """`NAME:ATTRIBUTE:PAIRS_CSV:IMAGES_DIR[:crop|pad]` -> PairFileSpec; one-line ValueError."""
  if not isinstance(text, str):
    raise ValueError(f"{where}: expected a string {SPEC_FORMAT}, got {text!r}")
  parts = [p.strip() for p in text.split(":")]
  if len(parts) not in (4, 5) or not all(parts):
    raise ValueError(f"{where}: expected {SPEC_FORMAT} (4 or 5 non-empty fields separated by "
                     f"':'), got {text!r}")
  name, attribute, pairs, images = parts[:4]
  preprocess = parts[4] if len(parts) == 5 else None
  if not _NAME.match(name):
    raise ValueError(f"{where}: name {name!r} may use letters, digits, '_', '-' and '.' only "
                     f"(it names a table and a figure file), in {text!r}")
  if preprocess is not None and preprocess not in PREPROCESS:
    raise ValueError(f"{where}: preprocessing {preprocess!r} is not one of {list(PREPROCESS)}, "
                     f"in {text!r}")
  return PairFileSpec(name, attribute, pairs, images, preprocess)


def parse_specs(texts, attributes: Sequence[str] | None = None,
                test_sets: Sequence[str] = (), field: str = "extra_test_sets"
                ) -> list[PairFileSpec]:
  """Parses a config's `extra_test_sets` and checks what the config alone can tell.

  Each entry must parse (`parse_spec`); its attribute must be one of `attributes` (when given:
  the run's attributes), its name none of `test_sets`, and no (name, attribute) may repeat.
  Raises a one-line ValueError naming the entry (`config.<field>[i]`).
  """
  if not isinstance(texts, (tuple, list)):
    raise ValueError(f"config: {field} must be a tuple of str like ('{SPEC_FORMAT}',), got "
                     f"{texts!r}")
  specs, seen = [], set()
  for i, text in enumerate(texts):
    where = f"config.{field}[{i}]"
    spec = parse_spec(text, where)
    if attributes is not None and spec.attribute not in attributes:
      raise ValueError(f"{where}: attribute {spec.attribute!r} is not one of the run's "
                       f"attributes {list(attributes)}")
    if spec.name in test_sets:
      raise ValueError(f"{where}: name {spec.name!r} is already one of config.test_sets "
                       f"{list(test_sets)}; choose a new name")
    if (spec.name, spec.attribute) in seen:
      raise ValueError(f"{where}: a second extra test set {spec.name!r} for attribute "
                       f"{spec.attribute!r}")
    seen.add((spec.name, spec.attribute))
    specs.append(spec)
  return specs


def check_files(specs: Sequence[PairFileSpec]) -> None:
  """Raises a one-line FileNotFoundError for the first pairs CSV or image folder that is
  missing: cheap, so a run can fail before it builds its domain."""
  for spec in specs:
    where = f"extra test set {spec.name!r}"
    if not Path(spec.pairs).expanduser().is_file():
      raise FileNotFoundError(f"missing pairs file of {where}: {Path(spec.pairs).expanduser()}")
    if not Path(spec.images).expanduser().is_dir():
      raise FileNotFoundError(f"{where}: image folder does not exist: "
                              f"{Path(spec.images).expanduser()}")


# ---------------------------------------------------------------------------------------------
# Adding them to a domain.

def own_image_count(domain: Domain) -> int:
  """How many leading images of `domain` are its own (not added by `add_pair_file_test_sets`)."""
  return len(domain.images) - sum(int(e["num_images"]) for e in domain.info.get(INFO_KEY, ()))


def _is_grey(images: np.ndarray, chunk: int = 512) -> bool:
  """True when every image has R = G = B (stops at the first colour chunk)."""
  if images.shape[-1] != 3 or not len(images):
    return False
  for start in range(0, len(images), chunk):
    x = images[start:start + chunk]
    if not (np.array_equal(x[..., 0], x[..., 1]) and np.array_equal(x[..., 0], x[..., 2])):
      return False
  return True


def domain_rule(domain: Domain, preprocess: str | None = None) -> dict:
  """The `imageio` spec that brings new images to `domain`'s side and colour (module docstring).

  preprocess: "crop", "pad" or None (pad when the domain pads its own images, else crop).
  """
  size = int(domain.images.image_shape[0])
  own = domain.info.get("preprocessing")
  own = own if isinstance(own, dict) and "op" in own else {}
  op = preprocess or ("pad" if own.get("op") == "pad" else "crop")
  if op not in PREPROCESS:
    raise ValueError(f"preprocessing {op!r} is not one of {list(PREPROCESS)}")
  gray = _is_grey(domain.images.images)
  if op == "crop":
    return imageio.crop_spec(size, gray=gray)
  fill = tuple(own.get("fill", (255, 255, 255))) if own.get("op") == "pad" else (255, 255, 255)
  return dict(imageio.pad_spec(size, fill), gray=gray)


def files_of_rows(rows: PairRows, images_dir: Path, csv_path: Path
           ) -> tuple[list[Path], list[str], np.ndarray, np.ndarray]:
  """(the distinct image files in order of first mention, their names as written, a and b
  indices into them).

  A named file that does not exist raises one FileNotFoundError naming the CSV line and file.
  """
  index: dict[Path, int] = {}
  files: list[Path] = []
  names: list[str] = []
  missing: list[tuple[int, str, str, Path]] = []
  a = np.empty(len(rows), np.int64)
  b = np.empty(len(rows), np.int64)
  for k in range(len(rows)):
    for column, name, pick in (("image_a", rows.image_a[k], a), ("image_b", rows.image_b[k], b)):
      path = images_dir / name
      if path not in index:
        index[path] = len(files)
        files.append(path)
        names.append(name)
        if not path.is_file():
          missing.append((int(rows.line[k]), column, name, path))
      pick[k] = index[path]
  if missing:
    line, column, name, path = missing[0]
    more = f" ({len(missing) - 1} more image(s) missing)" if len(missing) > 1 else ""
    raise FileNotFoundError(f"{csv_path}: line {line} names {column} {name!r}, which does not "
                            f"exist: {path}{more}")
  return files, names, a, b


def _digest(csv_path: Path, files: Sequence[Path], names: Sequence[str], spec: dict) -> str:
  """16 hex digits of the CSV's bytes, every image's name (as written) and bytes, and the spec:
  the same files anywhere give the same digest, an edited file another."""
  h = hashlib.sha256()
  h.update(repr(sorted(spec.items())).encode())
  h.update(csv_path.read_bytes())
  for p, name in zip(files, names):
    h.update(f"\0{name}\0".encode())
    h.update(hashlib.sha256(p.read_bytes()).digest())
  return h.hexdigest()[:16]


def _extend(images: ImageSet, new: np.ndarray) -> tuple[ImageSet, np.ndarray]:
  """`images` followed by the uint8 `new` images; returns it and the new images' ids."""
  k = len(new)
  start = int(images.ids.max()) + 1 if len(images) else 0
  ids = np.arange(start, start + k, dtype=np.int64)
  strengths = groups = None
  if images.strengths is not None:
    strengths = np.full((k, len(images.attribute_names)), np.nan, np.float32)
  if images.groups is not None:
    first = int(images.groups.max()) + 1 if len(images) else 0
    groups = np.arange(first, first + k, dtype=np.int64)
  added = ImageSet(new, ids, strengths, groups, images.attribute_names)
  out, _ = concat_images([images, added])
  return out, ids


def add_pair_file_test_sets(domain: Domain, specs: Sequence[PairFileSpec | str], *,
                            cache_dir: str | None = None, num_threads: int | None = None
                            ) -> Domain:
  """`domain` with each pair file's images appended and its pairs as a test set.

  Args:
    domain: the domain as built (before `registry.resize_domain`).
    specs: PairFileSpecs or their config strings (`parse_spec`).
    cache_dir: the decoded-image cache (`imageio.resolve_cache_dir`).
    num_threads: decoding threads (None: imageio's default).
  Returns:
    A new Domain (module docstring). Raises one-line errors: an attribute the domain has no
    pairs for, a name clash, a missing folder, any error of `read_pairs_csv`, a row naming a
    missing image, a set without ordered pairs, an image that does not decode.
  """
  specs = [s if isinstance(s, PairFileSpec) else parse_spec(s) for s in specs]
  if not specs:
    return domain
  taken = {split for by_split in domain.pairs.values() for split in by_split}
  pairs = {a: dict(by_split) for a, by_split in domain.pairs.items()}
  images = domain.images
  binary = {a: np.asarray(v) for a, v in domain.binary.items()}
  records = list(domain.info.get(INFO_KEY, ()))
  for spec in specs:
    where = f"extra test set {spec.name!r}"
    if spec.attribute not in domain.pairs:
      raise KeyError(f"{where}: domain {domain.name} has no pairs for attribute "
                     f"{spec.attribute!r}; it has {sorted(domain.pairs)}")
    if spec.name in taken and spec.name not in {r["name"] for r in records}:
      raise ValueError(f"{where}: domain {domain.name} already has pair sets named "
                       f"{spec.name!r}; choose a new name")
    if spec.name in pairs[spec.attribute]:
      raise ValueError(f"{where}: attribute {spec.attribute!r} already has a test set named "
                       f"{spec.name!r}")
    csv_path = Path(spec.pairs).expanduser()
    images_dir = Path(spec.images).expanduser()
    rows = read_pairs_csv(csv_path, what=f"pairs file of {where}")
    if not images_dir.is_dir():
      raise FileNotFoundError(f"{where}: image folder does not exist: {images_dir}")
    files, names, a, b = files_of_rows(rows, images_dir, csv_path)
    if not np.any(rows.label != 0):
      raise ValueError(f"{where}: every pair is labelled 0 (equal), so no accuracy can be "
                       f"measured: {csv_path}")
    spec_dict = domain_rule(domain, spec.preprocess)
    loaded = imageio.load_images(files, spec_dict, name=f"pairfile-{spec.name}", root=images_dir,
                                 cache_dir=cache_dir, num_threads=num_threads)
    n = len(images)
    images, ids = _extend(images, loaded.images)
    binary = {k: np.concatenate([v, np.zeros(len(files), v.dtype)]) for k, v in binary.items()}
    pairs[spec.attribute][spec.name] = PairSet.create(a + n, b + n, rows.label,
                                                      attribute=spec.attribute, source="real")
    taken.add(spec.name)
    records.append(dict(
        name=spec.name, attribute=spec.attribute, pairs_file=str(csv_path),
        images_dir=str(images_dir), preprocessing=spec_dict, num_pairs=len(rows),
        num_ordered_pairs=int(np.sum(rows.label != 0)), num_images=len(files),
        first_image_index=n, first_id=int(ids[0]),
        digest=_digest(csv_path, files, names, spec_dict)))
    print(f"[data] extra test set {spec.name!r} ({spec.attribute}): {len(rows)} pairs over "
          f"{len(files)} images from {csv_path}", flush=True)
  info = dict(domain.info, **{INFO_KEY: records})
  return dataclasses.replace(domain, images=images, pairs=pairs, info=info, binary=binary)
