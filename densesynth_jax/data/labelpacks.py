"""Official pairwise label packs without images: UT-Zap50K and LFW-10.

Both packs name images by path; the images themselves are the user's (official zips). These
readers give the protocols' PairSets over a small IMAGE TABLE (the distinct paths the pairs use,
in a fixed order) plus functions that map those paths to files in the user's image folder and
load them, with an error that lists exactly which files are missing where.

UT-Zap50K (`<data_dir>/ut-zap50k-labels/`, Yu & Grauman, CVPR 2014)
  zappos-labels.mat     mturkOrder, mturkEqual: per attribute (open, pointy, sporty, comfort) an
                        (N, 6) matrix: image A, image B (1-based rows of imagepath), attribute id,
                        label (1 = A more, 2 = B more, 3 = equal), mean confidence, agreement.
  zappos-labels-fg.mat  mturkHard: the fine-grained pairs (UT-Zap50K-2 test), labels 1/2.
  train-test-splits.mat trainIndexAll / testIndexAll: per attribute 10 splits of 1-based rows of
                        mturkOrder (UT-Zap50K-1: 300 test pairs per split).
  image-path.mat        imagepath: 50,025 relative paths ("Shoes/Oxfords/Bostonian/100627.72.jpg").
  meta-data.mat         metadata: 9 string columns for the 50,025 images.
Checked facts (asserted by the tests): 6,751 ordered, 4,612 equal, 4,334 fine-grained pairs over
the 4 attributes; every label in mturkOrder is 1 or 2 and every label in mturkEqual is 3 (a label
3 found in mturkOrder would be moved to the equal pairs and counted in info["equal_in_order"]);
every fine-grained pair is also an mturkEqual pair (coarse annotators called them equal); the
split index files agree row for row with train-test-splits-pairs.mat; all labelled pairs use
5,551 distinct images. Labels here: +1 = A more, -1 = B more, 0 = equal.
Path fixes for the user's image folder (`resolve_zap50k_images`): the path as given, then with a
trailing '.' stripped from every folder name ("T.U.K./" -> "T.U.K/"), then with that trailing
'.' spelled "%2E" (the square-image zip), then with every '.' of a folder name spelled "%2E".

LFW-10 (`<data_dir>/lfw10-labels/`, Sandeep, Verma & Jawahar, BMVC 2014)
  lfw10_train_votes.txt   25,000 lines "path_a,path_b,vote,attr_id": 500 pairs per attribute,
                          5 consecutive lines (annotators) per pair; vote +1, -1, 0 (equal).
  lfw10_test_majority.txt 5,000 lines, one majority label per test pair.
Only the base name matters ("815.jpg" = LFW-10's images/815.jpg); 1,540 distinct images.
ASSUMPTIONS (not stated by the source, flagged wherever they matter):
  - attr_id 0-9 is the alphabetical order of the original annotation files: `LFW10_ATTRIBUTES`;
  - vote +1 means the FIRST image shows more of the attribute (the same sign convention as
    PairSet: +1 = a more).
Train label = the plurality of the 5 votes; a tie between the top two options (2-2-1) is
"equal" (label 0). Agreement = votes for the winning label / votes (0.4-1.0; 0.4 or less for
ties). About 10% of the train pairs are ties.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import scipy.io

from densesynth_jax.data import imageio
from densesynth_jax.data.paths import require_file
from densesynth_jax.types import ImageSet, PairSet

ZAP50K_ATTRIBUTES = ("open", "pointy", "sporty", "comfort")
ZAP50K_FOLDER = "ut-zap50k-labels"
ZAP50K_NUM_SPLITS = 10
ZAP50K_METADATA = ("CID", "Category", "SubCategory", "HeelHeight", "Insole", "Closure", "Gender",
                   "Material", "ToeStyle")
LFW10_ATTRIBUTES = ("baldhead", "darkhair", "eyesopen", "goodlooking", "masculinelooking",
                    "mouthopen", "smile", "v_teeth", "vforehead", "young")
LFW10_FOLDER = "lfw10-labels"
WEIGHTS = ("uniform", "agreement")


@dataclasses.dataclass(frozen=True)
class LabelledPairs:
  """Raw labelled pairs of one attribute, indexing a pack's full image list.

  Attributes:
    a, b: int64 (P,) 0-based indices into the pack's image paths.
    label: int8 (P,) +1 (a more), -1 (b more), 0 (equal).
    confidence: float32 (P,) mean annotator confidence (UT-Zap50K; 1 = most sure), or NaN.
    agreement: float32 (P,) fraction of annotators agreeing with the label.
  """
  a: np.ndarray
  b: np.ndarray
  label: np.ndarray
  confidence: np.ndarray
  agreement: np.ndarray

  def __len__(self) -> int:
    return len(self.a)

  def take(self, index) -> "LabelledPairs":
    index = np.asarray(index)
    return LabelledPairs(self.a[index], self.b[index], self.label[index], self.confidence[index],
                         self.agreement[index])


@dataclasses.dataclass(frozen=True)
class Zap50KLabels:
  """The UT-Zap50K label pack.

  Attributes:
    image_paths: the 50,025 relative image paths (row i of imagepath = index i).
    ordered, equal, fine_grained: attribute -> LabelledPairs (mturkOrder, mturkEqual, mturkHard).
    train_splits, test_splits: attribute -> 10 int64 arrays of 0-based rows of ordered[attribute].
    info: counts and checks (JSON-able).
  """
  image_paths: tuple[str, ...]
  ordered: Mapping[str, LabelledPairs]
  equal: Mapping[str, LabelledPairs]
  fine_grained: Mapping[str, LabelledPairs]
  train_splits: Mapping[str, list[np.ndarray]]
  test_splits: Mapping[str, list[np.ndarray]]
  info: Mapping[str, object]

  @property
  def attributes(self) -> tuple[str, ...]:
    return tuple(self.ordered)


# ---------------------------------------------------------------------------------------------
# Reading .mat files.

def _loadmat(path: Path, keys: Sequence[str]) -> dict:
  path = require_file(path, "UT-Zap50K label pack file")
  try:
    m = scipy.io.loadmat(path)
  except Exception as e:  # scipy raises several types for a damaged file
    cause = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise ValueError(f"corrupt .mat file ({cause}): {path}") from None
  for k in keys:
    if k not in m:
      raise ValueError(f"corrupt .mat file (no variable {k!r}; has "
                       f"{sorted(x for x in m if not x.startswith('__'))}): {path}")
  return m


def _cells(m: dict, key: str, path: Path, count: int = 4) -> list:
  cell = np.asarray(m[key], dtype=object).reshape(-1)
  if len(cell) != count:
    raise ValueError(f"corrupt .mat file ({key} has {len(cell)} cells, expected {count}): {path}")
  return list(cell)


def _pairs_from_matrix(x, n_images: int, where: str) -> LabelledPairs:
  x = np.asarray(x, np.float64)
  if x.ndim != 2 or x.shape[1] != 6:
    raise ValueError(f"{where}: expected an (N, 6) pair matrix, got shape {x.shape}")
  if not np.isfinite(x).all():
    raise ValueError(f"{where}: non-finite value at row {int(np.argwhere(~np.isfinite(x))[0, 0])}")
  a, b = x[:, 0].astype(np.int64) - 1, x[:, 1].astype(np.int64) - 1
  for name, v in (("A", a), ("B", b)):
    bad = np.flatnonzero((v < 0) | (v >= n_images))
    if bad.size:
      raise IndexError(f"{where}: row {int(bad[0])} image {name} = {int(v[bad[0]]) + 1} is not a "
                       f"1-based row of the {n_images} image paths")
  code = x[:, 3].astype(np.int64)
  bad = np.flatnonzero(~np.isin(code, (1, 2, 3)))
  if bad.size:
    raise ValueError(f"{where}: row {int(bad[0])} has label {x[bad[0], 3]}, expected 1, 2 or 3")
  label = np.select([code == 1, code == 2], [1, -1], 0).astype(np.int8)
  return LabelledPairs(a, b, label, x[:, 4].astype(np.float32), x[:, 5].astype(np.float32))


def _concat(p: LabelledPairs, q: LabelledPairs) -> LabelledPairs:
  return LabelledPairs(*(np.concatenate([getattr(p, f.name), getattr(q, f.name)])
                         for f in dataclasses.fields(LabelledPairs)))


def _zap_folder(folder: str | os.PathLike) -> Path:
  folder = Path(folder)
  if (folder / ZAP50K_FOLDER).is_dir() and not (folder / "zappos-labels.mat").exists():
    folder = folder / ZAP50K_FOLDER  # the data dir was given
  return folder


@functools.lru_cache(maxsize=2)
def _load_zap50k_cached(folder: str, stamp: tuple) -> Zap50KLabels:
  return _load_zap50k(Path(folder))


def load_zap50k_labels(folder: str | os.PathLike) -> Zap50KLabels:
  """Reads the UT-Zap50K label pack from `folder` (the ut-zap50k-labels folder or the data dir).

  Indices become 0-based; labels +1 / -1 / 0. Any label 3 in mturkOrder is moved to the equal
  pairs (there are none in the official pack; counted in info["equal_in_order"]). The result is
  cached per folder (and file mtimes) for the process.
  """
  folder = _zap_folder(folder)
  names = ("zappos-labels.mat", "zappos-labels-fg.mat", "train-test-splits.mat", "image-path.mat")
  stamp = tuple(require_file(folder / n, "UT-Zap50K label pack file").stat().st_mtime_ns
                for n in names)
  return _load_zap50k_cached(str(folder.resolve()), stamp)


def _load_zap50k(folder: Path) -> Zap50KLabels:
  p_paths = folder / "image-path.mat"
  m = _loadmat(p_paths, ["imagepath"])
  raw = np.asarray(m["imagepath"], dtype=object).reshape(-1)
  paths = []
  for i, cell in enumerate(raw):
    v = np.asarray(cell).reshape(-1)
    if v.size != 1:
      raise ValueError(f"corrupt .mat file (imagepath row {i + 1} is empty): {p_paths}")
    paths.append(str(v[0]))
  n = len(paths)

  p_labels, p_fg = folder / "zappos-labels.mat", folder / "zappos-labels-fg.mat"
  m = _loadmat(p_labels, ["mturkOrder", "mturkEqual"])
  order_cells = _cells(m, "mturkOrder", p_labels)
  equal_cells = _cells(m, "mturkEqual", p_labels)
  hard_cells = _cells(_loadmat(p_fg, ["mturkHard"]), "mturkHard", p_fg)
  p_split = folder / "train-test-splits.mat"
  m = _loadmat(p_split, ["trainIndexAll", "testIndexAll"])
  train_cells = _cells(m, "trainIndexAll", p_split)
  test_cells = _cells(m, "testIndexAll", p_split)

  ordered, equal, hard, train_splits, test_splits = {}, {}, {}, {}, {}
  equal_in_order, checks = {}, {}
  for k, attr in enumerate(ZAP50K_ATTRIBUTES):
    o = _pairs_from_matrix(order_cells[k], n, f"{p_labels} mturkOrder[{attr}]")
    e = _pairs_from_matrix(equal_cells[k], n, f"{p_labels} mturkEqual[{attr}]")
    h = _pairs_from_matrix(hard_cells[k], n, f"{p_fg} mturkHard[{attr}]")
    for name, x in (("mturkOrder", order_cells[k]), ("mturkEqual", equal_cells[k]),
                    ("mturkHard", hard_cells[k])):
      ids = np.unique(np.asarray(x)[:, 2])
      if not np.array_equal(ids, [k + 1]):
        raise ValueError(f"{name}[{attr}] has attribute ids {ids.tolist()}, expected {k + 1}")
    in_order = np.flatnonzero(o.label == 0)
    equal_in_order[attr] = int(in_order.size)
    if in_order.size:
      e = _concat(e, o.take(in_order))
    # Rows of mturkOrder keep their original numbering for the split files, so equal rows
    # that were in mturkOrder stay there too (they are excluded from accuracy, as label 0).
    ordered[attr], equal[attr], hard[attr] = o, e, h
    if np.any(e.label != 0):
      raise ValueError(f"{p_labels}: mturkEqual[{attr}] has a pair not labelled 3 (equal)")
    if np.any(h.label == 0):
      raise ValueError(f"{p_fg}: mturkHard[{attr}] has a pair labelled 3 (equal)")
    tr = np.asarray(train_cells[k], dtype=object).reshape(-1)
    te = np.asarray(test_cells[k], dtype=object).reshape(-1)
    if len(tr) != ZAP50K_NUM_SPLITS or len(te) != ZAP50K_NUM_SPLITS:
      raise ValueError(f"corrupt .mat file ({attr}: {len(tr)} train / {len(te)} test splits, "
                       f"expected {ZAP50K_NUM_SPLITS}): {p_split}")
    train_splits[attr], test_splits[attr] = [], []
    for s in range(ZAP50K_NUM_SPLITS):
      rows = []
      for name, cell in (("train", tr[s]), ("test", te[s])):
        r = np.asarray(cell).reshape(-1).astype(np.int64) - 1
        bad = np.flatnonzero((r < 0) | (r >= len(o)))
        if bad.size:
          raise IndexError(f"{p_split}: {attr} split {s} {name} row {int(r[bad[0]]) + 1} is not a "
                           f"row of the {len(o)} mturkOrder pairs")
        rows.append(r)
      if np.intersect1d(rows[0], rows[1]).size:
        raise ValueError(f"{p_split}: {attr} split {s} has a pair in both train and test")
      train_splits[attr].append(rows[0])
      test_splits[attr].append(rows[1])
    fg_in_equal = _pair_keys(h.a, h.b) & _pair_keys(e.a, e.b)
    checks[attr] = dict(fine_grained_in_equal=len(fg_in_equal), fine_grained=len(h))

  # Cross-check the index splits against the pair-row copy, where it is present.
  p_rows = folder / "train-test-splits-pairs.mat"
  if p_rows.exists():
    m = _loadmat(p_rows, ["trainPairsAll", "testPairsAll"])
    for key, splits in (("trainPairsAll", train_splits), ("testPairsAll", test_splits)):
      cells = _cells(m, key, p_rows)
      for k, attr in enumerate(ZAP50K_ATTRIBUTES):
        per = np.asarray(cells[k], dtype=object).reshape(-1)
        for s in range(ZAP50K_NUM_SPLITS):
          rows = np.asarray(per[s], np.float64)
          o = ordered[attr].take(splits[attr][s])
          if len(rows) != len(o) or not (np.array_equal(rows[:, 0] - 1, o.a)
                                         and np.array_equal(rows[:, 1] - 1, o.b)):
            raise ValueError(f"{p_rows}: {key} {attr} split {s} disagrees with "
                             f"train-test-splits.mat")

  used = set()
  for group in (ordered, equal, hard):
    for p in group.values():
      used.update(p.a.tolist())
      used.update(p.b.tolist())
  info = dict(
      folder=str(folder), num_image_paths=n,
      ordered={a: len(p) for a, p in ordered.items()},
      equal={a: len(p) for a, p in equal.items()},
      fine_grained={a: len(p) for a, p in hard.items()},
      totals=dict(ordered=sum(len(p) for p in ordered.values()),
                  equal=sum(len(p) for p in equal.values()),
                  fine_grained=sum(len(p) for p in hard.values())),
      equal_in_order=equal_in_order, checks=checks, distinct_labelled_images=len(used))
  return Zap50KLabels(tuple(paths), ordered, equal, hard, train_splits, test_splits, info)


def _pair_keys(a: np.ndarray, b: np.ndarray) -> set:
  return set(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist()))


def load_zap50k_metadata(folder: str | os.PathLike) -> dict[str, list[str]]:
  """meta-data.mat as {column (ZAP50K_METADATA): 50,025 strings} ("" where empty)."""
  path = _zap_folder(folder) / "meta-data.mat"
  cells = _cells(_loadmat(path, ["metadata"]), "metadata", path, len(ZAP50K_METADATA))
  out = {}
  for name, col in zip(ZAP50K_METADATA, cells):
    rows = np.asarray(col, dtype=object).reshape(-1)
    out[name] = [str(np.asarray(r).reshape(-1)[0]) if np.asarray(r).size else "" for r in rows]
  return out


def zap50k_labelled_images(labels: Zap50KLabels) -> np.ndarray:
  """int64 sorted indices of every image used by any labelled pair (5,551 in the official pack)."""
  idx = [np.concatenate([p.a, p.b]) for group in (labels.ordered, labels.equal,
                                                  labels.fine_grained) for p in group.values()]
  return np.unique(np.concatenate(idx))


# ---------------------------------------------------------------------------------------------
# Protocols.

def _check_attr(labels: Zap50KLabels, attribute: str) -> None:
  if attribute not in labels.ordered:
    raise KeyError(f"unknown UT-Zap50K attribute {attribute!r}; valid: {list(labels.attributes)}")


def _to_pairsets(parts: Sequence[tuple[str, LabelledPairs]], paths: Sequence[str],
                 attribute: str, weight: str) -> tuple[list[PairSet], tuple[str, ...]]:
  """LabelledPairs over the full path list -> PairSets over the table of the paths they use."""
  if weight not in WEIGHTS:
    raise ValueError(f"unknown pair weight {weight!r}; valid: {list(WEIGHTS)}")
  table = np.unique(np.concatenate([np.concatenate([p.a, p.b]) for _, p in parts]))
  out = []
  for _, p in parts:
    w = p.agreement if weight == "agreement" else None
    out.append(PairSet.create(np.searchsorted(table, p.a), np.searchsorted(table, p.b), p.label,
                              attribute=attribute, weight=w, source="real"))
  return out, tuple(paths[i] for i in table)


def _train_with_equal(labels: Zap50KLabels, attribute: str, train: LabelledPairs,
                      test: LabelledPairs) -> LabelledPairs:
  """Adds the equal pairs of `attribute` whose image pair is not a test pair."""
  e = labels.equal[attribute]
  banned = _pair_keys(test.a, test.b)
  keep = [i for i, k in enumerate(zip(np.minimum(e.a, e.b).tolist(),
                                       np.maximum(e.a, e.b).tolist())) if k not in banned]
  return _concat(train, e.take(np.asarray(keep, np.int64)))


def zap50k_protocol_1(labels: Zap50KLabels, attribute: str, split: int,
                      include_equal: bool = False, weight: str = "uniform"
                      ) -> tuple[PairSet, PairSet, tuple[str, ...]]:
  """UT-Zap50K-1: train / test ordered pairs of one of the 10 official splits.

  Args:
    labels: `load_zap50k_labels(...)`.
    attribute: open, pointy, sporty or comfort.
    split: 0..9.
    include_equal: add the attribute's equal pairs (label 0) to train, except those whose image
      pair is a test pair.
    weight: "uniform" (1) or "agreement" (the crowd's agreement) as PairSet.weight.
  Returns:
    (train PairSet, test PairSet (300 pairs), image paths): pair indices point into the returned
    path tuple, which lists the distinct images of train and test (sorted by imagepath row).
  """
  _check_attr(labels, attribute)
  if not 0 <= split < len(labels.test_splits[attribute]):
    raise IndexError(f"UT-Zap50K-1 split {split} out of range "
                     f"0..{len(labels.test_splits[attribute]) - 1}")
  o = labels.ordered[attribute]
  train = o.take(labels.train_splits[attribute][split])
  test = o.take(labels.test_splits[attribute][split])
  if include_equal:
    train = _train_with_equal(labels, attribute, train, test)
  (tr, te), paths = _to_pairsets([("train", train), ("test", test)], labels.image_paths,
                                 attribute, weight)
  return tr, te, paths


def zap50k_protocol_2(labels: Zap50KLabels, attribute: str, include_equal: bool = False,
                      weight: str = "uniform") -> tuple[PairSet, PairSet, tuple[str, ...]]:
  """UT-Zap50K-2: train on every ordered pair of the attribute, test on the fine-grained pairs.

  `include_equal` adds the equal pairs except the fine-grained test pairs themselves (every
  fine-grained pair is also an equal pair). Returns (train, test, image paths) as protocol 1.
  """
  _check_attr(labels, attribute)
  train, test = labels.ordered[attribute], labels.fine_grained[attribute]
  if include_equal:
    train = _train_with_equal(labels, attribute, train, test)
  (tr, te), paths = _to_pairsets([("train", train), ("test", test)], labels.image_paths,
                                 attribute, weight)
  return tr, te, paths


# ---------------------------------------------------------------------------------------------
# Mapping label-pack paths to the user's image files.

def zap50k_path_candidates(rel_path: str) -> list[str]:
  """The spellings tried for one imagepath entry, in order (see the module docstring)."""
  parts = rel_path.replace("\\", "/").split("/")
  folders, name = parts[:-1], parts[-1]
  variants = [
      folders,
      [f.rstrip(".") for f in folders],
      [f[:-1] + "%2E" if f.endswith(".") else f for f in folders],
      [f.replace(".", "%2E") for f in folders],
  ]
  out = []
  for v in variants:
    c = "/".join(v + [name])
    if c not in out:
      out.append(c)
  return out


def _resolve(rel_paths: Sequence[str], root: Path, candidates, what: str) -> list[Path]:
  if not root.is_dir():
    raise FileNotFoundError(f"{what} image folder does not exist: {root}")
  found, missing = [], []
  for rel in rel_paths:
    hit = next((root / c for c in candidates(rel) if (root / c).is_file()), None)
    if hit is None:
      missing.append(rel)
    found.append(hit)
  if missing:
    shown = ", ".join(missing[:imageio.SHOW_FIRST])
    extra = len(missing) - imageio.SHOW_FIRST
    more = f" (and {extra} more)" if extra > 0 else ""
    raise FileNotFoundError(f"missing {len(missing)} of {len(rel_paths)} {what} image file(s) "
                            f"under {root}: {shown}{more}")
  return found


def resolve_zap50k_images(rel_paths: Sequence[str], image_root: str | os.PathLike) -> list[Path]:
  """Maps imagepath entries to files under `image_root` (the unzipped ut-zap50k-images folder),
  trying `zap50k_path_candidates` for each. Raises one FileNotFoundError listing the missing ones.
  """
  return _resolve(rel_paths, Path(image_root), zap50k_path_candidates, "UT-Zap50K")


def zap50k_imageset(rel_paths: Sequence[str], image_root: str | os.PathLike, image_size: int = 64,
                    cache_dir: str | os.PathLike | None = None) -> ImageSet:
  """Loads the images of a protocol's path table: padded to a square on white, resized.

  Returns an ImageSet whose index i is rel_paths[i] (ids = 0..n-1), so the protocol's PairSets
  index it directly. Every file must exist and decode (a corrupt one raises, naming it).
  """
  files = _resolve(rel_paths, Path(image_root), zap50k_path_candidates, "UT-Zap50K")
  loaded = imageio.load_images(files, imageio.pad_spec(image_size), name="zap50k",
                               root=image_root, cache_dir=cache_dir)
  return ImageSet(loaded.images, np.arange(len(files), dtype=np.int64))


# ---------------------------------------------------------------------------------------------
# LFW-10.

@dataclasses.dataclass(frozen=True)
class LFW10Votes:
  """LFW-10 labels of one attribute, by image base name.

  Attributes:
    train_a, train_b: base names (P,) of the train pairs, in file order.
    votes: int8 (P, V) the annotators' votes (+1 a more, -1 b more, 0 equal), V = 5.
    train_label: int8 (P,) plurality vote, ties -> 0; train_agreement: float32 (P,).
    test_a, test_b: base names (Q,) of the test pairs; test_label: int8 (Q,).
  """
  train_a: tuple[str, ...]
  train_b: tuple[str, ...]
  votes: np.ndarray
  train_label: np.ndarray
  train_agreement: np.ndarray
  test_a: tuple[str, ...]
  test_b: tuple[str, ...]
  test_label: np.ndarray


def _lfw_folder(folder: str | os.PathLike) -> Path:
  folder = Path(folder)
  if (folder / LFW10_FOLDER).is_dir() and not (folder / "lfw10_train_votes.txt").exists():
    folder = folder / LFW10_FOLDER
  return folder


def _read_lfw_lines(path: Path) -> list[tuple[str, str, int, int]]:
  path = require_file(path, "LFW-10 label file")
  out = []
  try:
    text = path.read_text()
  except UnicodeDecodeError as e:
    raise ValueError(f"corrupt LFW-10 label file (not text: {e.reason}): {path}") from None
  for i, ln in enumerate(text.splitlines(), start=1):
    if not ln.strip():
      continue
    tok = [t.strip() for t in ln.split(",")]
    if len(tok) != 4:
      raise ValueError(f"corrupt LFW-10 label file (line {i} has {len(tok)} fields, expected 4):"
                       f" {path}")
    try:
      vote, attr = int(tok[2]), int(tok[3])
    except ValueError:
      raise ValueError(f"corrupt LFW-10 label file (line {i}: vote/attr_id not integers): "
                       f"{path}") from None
    if vote not in (-1, 0, 1) or not 0 <= attr < len(LFW10_ATTRIBUTES):
      raise ValueError(f"corrupt LFW-10 label file (line {i}: vote {vote} / attr_id {attr} out "
                       f"of range): {path}")
    out.append((re.split(r"[\\/]", tok[0])[-1], re.split(r"[\\/]", tok[1])[-1], vote, attr))
  if not out:
    raise ValueError(f"corrupt LFW-10 label file (no lines): {path}")
  return out


def plurality(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """votes int (P, V) in {-1, 0, 1} -> (label int8 (P,), agreement float32 (P,)).

  The most frequent vote wins; a tie between the top two options gives 0 (equal).
  """
  votes = np.asarray(votes)
  counts = np.stack([(votes == v).sum(axis=1) for v in (-1, 0, 1)], axis=1)  # (P, 3)
  top = counts.max(axis=1)
  tie = (counts == top[:, None]).sum(axis=1) > 1
  label = np.where(tie, 0, np.array([-1, 0, 1])[counts.argmax(axis=1)]).astype(np.int8)
  return label, (top / votes.shape[1]).astype(np.float32)


@functools.lru_cache(maxsize=2)
def _lfw10_cached(folder: str, stamp: tuple) -> dict[str, LFW10Votes]:
  folder = Path(folder)
  train = _read_lfw_lines(folder / "lfw10_train_votes.txt")
  test = _read_lfw_lines(folder / "lfw10_test_majority.txt")
  groups: dict[tuple, list[int]] = {}
  for a, b, v, t in train:
    groups.setdefault((t, a, b), []).append(v)
  sizes = {len(v) for v in groups.values()}
  if len(sizes) != 1:
    raise ValueError(f"LFW-10 train pairs have different vote counts {sorted(sizes)}: "
                     f"{folder / 'lfw10_train_votes.txt'}")
  out = {}
  for t, attr in enumerate(LFW10_ATTRIBUTES):
    keys = [k for k in groups if k[0] == t]
    votes = np.asarray([groups[k] for k in keys], np.int8).reshape(len(keys), -1)
    label, agree = plurality(votes) if len(keys) else (np.zeros(0, np.int8),
                                                       np.zeros(0, np.float32))
    rows = [r for r in test if r[3] == t]
    out[attr] = LFW10Votes(tuple(k[1] for k in keys), tuple(k[2] for k in keys), votes, label,
                           agree, tuple(r[0] for r in rows), tuple(r[1] for r in rows),
                           np.asarray([r[2] for r in rows], np.int8))
  return out


def load_lfw10_labels(folder: str | os.PathLike) -> dict[str, LFW10Votes]:
  """Reads both LFW-10 label files: {attribute (LFW10_ATTRIBUTES, an ASSUMED order): votes}."""
  folder = _lfw_folder(folder)
  stamp = tuple(require_file(folder / n, "LFW-10 label file").stat().st_mtime_ns
                for n in ("lfw10_train_votes.txt", "lfw10_test_majority.txt"))
  return _lfw10_cached(str(folder.resolve()), stamp)


def _name_key(name: str):
  stem = name.rsplit(".", 1)[0]
  return (0, int(stem), name) if stem.isdigit() else (1, 0, name)


def lfw10_pairs(folder: str | os.PathLike, attribute: str, weight: str = "uniform"
                ) -> tuple[PairSet, PairSet, tuple[str, ...]]:
  """LFW-10 train and test pairs of one attribute over a table of image base names.

  Args:
    folder: the lfw10-labels folder (or the data dir holding it).
    attribute: one of LFW10_ATTRIBUTES (their attr_id order is an assumption, see the docstring).
    weight: "uniform" (1) or "agreement" (train: fraction of the 5 votes for the label; test: 1).
  Returns:
    (train PairSet (500 pairs; label 0 for equal majorities and ties), test PairSet (500),
    image names like "815.jpg" sorted by number): pair indices point into the names.
  """
  if weight not in WEIGHTS:
    raise ValueError(f"unknown pair weight {weight!r}; valid: {list(WEIGHTS)}")
  labels = load_lfw10_labels(folder)
  if attribute not in labels:
    raise KeyError(f"unknown LFW-10 attribute {attribute!r}; valid: {list(LFW10_ATTRIBUTES)}")
  v = labels[attribute]
  names = tuple(sorted(set(v.train_a) | set(v.train_b) | set(v.test_a) | set(v.test_b),
                       key=_name_key))
  index = {n: i for i, n in enumerate(names)}
  pick = lambda xs: np.asarray([index[x] for x in xs], np.int32)
  train = PairSet.create(pick(v.train_a), pick(v.train_b), v.train_label, attribute=attribute,
                         weight=v.train_agreement if weight == "agreement" else None)
  test = PairSet.create(pick(v.test_a), pick(v.test_b), v.test_label, attribute=attribute)
  return train, test, names


def lfw10_path_candidates(name: str) -> list[str]:
  """LFW-10 ships its images as images/<N>.jpg; the user may point at either folder."""
  return [name, f"images/{name}"]


def resolve_lfw10_images(names: Sequence[str], image_root: str | os.PathLike) -> list[Path]:
  """Maps base names to files under `image_root` (the LFW10 folder or its images/ folder).
  Raises one FileNotFoundError listing the missing ones."""
  return _resolve(names, Path(image_root), lfw10_path_candidates, "LFW-10")


def lfw10_imageset(names: Sequence[str], image_root: str | os.PathLike, image_size: int = 64,
                   spec: Mapping | None = None,
                   cache_dir: str | os.PathLike | None = None) -> ImageSet:
  """Loads LFW-10 images by base name (index i = names[i], ids = 0..n-1).

  `spec` is an `imageio` preprocessing spec; the default is the largest centred square resized
  to image_size (LFW-10's own framing was not checked here: pass a tighter `imageio.crop_spec`
  to match another face domain).
  """
  files = _resolve(names, Path(image_root), lfw10_path_candidates, "LFW-10")
  spec = spec or imageio.crop_spec(image_size)
  loaded = imageio.load_images(files, spec, name="lfw10", root=image_root, cache_dir=cache_dir)
  return ImageSet(loaded.images, np.arange(len(files), dtype=np.int64))
