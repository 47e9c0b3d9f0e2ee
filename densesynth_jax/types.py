"""Core data types: images, labelled pairs, and the domain that holds them.

`ImageSet` and `PairSet` are frozen dataclasses of arrays registered as pytrees, so they can be
passed through `jax.jit` / `jax.vmap` / `jax.device_put` as a whole. Validation runs only on
concrete NumPy arrays (never on tracers), so constructing one inside a transformed function is free.

Conventions
- images are uint8, shape (N, H, W, C), RGB;
- a pair (a, b) with label +1 means image `a` shows MORE of the attribute, -1 means `b` shows
  more, 0 means the two are judged equal;
- `weight` is a per-pair weight for the rankers' losses (e.g. the crowd's agreement);
- `source` is a per-pair code from `SOURCES`, so that pools mixing real and synthetic pairs keep
  track of where every pair came from.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import jax
import numpy as np

SOURCES = ("real", "synth", "jitter", "pseudo")
SOURCE_CODE = {name: code for code, name in enumerate(SOURCES)}


def _concrete(*arrays) -> bool:
  return all(isinstance(x, np.ndarray) for x in arrays)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ImageSet:
  """A set of images with optional per-image annotations.

  Attributes:
    images: uint8 (N, H, W, C).
    ids: int64 (N,) stable image ids (e.g. file number); altered copies keep their source's id.
    strengths: float32 (N, A) real-valued attribute strengths, or None; a row of NaN marks an
      image whose strengths are unknown (any other non-finite value is an error).
    groups: int64 (N,) identity / poser / group id per image, or None.
    attribute_names: names of the A strength columns (static).
  """
  images: np.ndarray
  ids: np.ndarray
  strengths: np.ndarray | None = None
  groups: np.ndarray | None = None
  attribute_names: tuple[str, ...] = dataclasses.field(default=(), metadata=dict(static=True))

  def __post_init__(self):
    if not _concrete(self.images, self.ids):
      return
    n = len(self.images)
    if self.images.ndim != 4:
      raise ValueError(f"ImageSet.images must be (N, H, W, C), got shape {self.images.shape}")
    if self.images.dtype != np.uint8:
      raise ValueError(f"ImageSet.images must be uint8, got {self.images.dtype}")
    if self.ids.shape != (n,):
      raise ValueError(f"ImageSet.ids has shape {self.ids.shape}, expected ({n},)")
    if self.strengths is not None and _concrete(self.strengths):
      if self.strengths.shape != (n, len(self.attribute_names)):
        raise ValueError(
            f"ImageSet.strengths has shape {self.strengths.shape}, expected "
            f"({n}, {len(self.attribute_names)}) for attributes {self.attribute_names}")
      # A row is finite, or all NaN: strengths unknown (images added without annotations,
      # e.g. a pair file's test images, data/pairfiles.py).
      unknown = np.isnan(self.strengths).all(axis=1)
      bad = np.flatnonzero(~(np.isfinite(self.strengths).all(axis=1) | unknown))
      if bad.size:
        raise ValueError(f"ImageSet.strengths is not finite at image index {int(bad[0])}")
    if self.groups is not None and _concrete(self.groups) and self.groups.shape != (n,):
      raise ValueError(f"ImageSet.groups has shape {self.groups.shape}, expected ({n},)")

  def __len__(self) -> int:
    return len(self.images)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.images.shape[1:])

  def attribute_index(self, name: str) -> int:
    if name not in self.attribute_names:
      raise KeyError(f"unknown attribute {name!r}; this ImageSet has {list(self.attribute_names)}")
    return self.attribute_names.index(name)

  def strength(self, name: str) -> np.ndarray:
    if self.strengths is None:
      raise ValueError(f"ImageSet has no strengths, so attribute {name!r} cannot be read")
    return self.strengths[:, self.attribute_index(name)]

  def replace_images(self, images: np.ndarray) -> "ImageSet":
    """The same annotations with other pixels (e.g. jittered copies)."""
    return dataclasses.replace(self, images=images)

  def take(self, index: Sequence[int] | np.ndarray) -> "ImageSet":
    """The subset at `index` (any integer index array), annotations kept aligned."""
    index = np.asarray(index)
    n = len(self)
    if index.size and (index.min() < -n or index.max() >= n):
      bad = index[(index < -n) | (index >= n)][0]
      raise IndexError(f"image index {int(bad)} out of range for an ImageSet of {n} images")
    pick = lambda x: None if x is None else x[index]
    return ImageSet(self.images[index], self.ids[index], pick(self.strengths), pick(self.groups),
                    self.attribute_names)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PairSet:
  """Labelled comparisons between images of one ImageSet, for one attribute.

  Attributes:
    a, b: int32 (P,) indices into the ImageSet.
    label: int8 (P,) +1 (a more), -1 (b more), 0 (equal).
    weight: float32 (P,) non-negative per-pair weight.
    source: int8 (P,) codes into `SOURCES`.
    attribute: the attribute compared (static).
  """
  a: np.ndarray
  b: np.ndarray
  label: np.ndarray
  weight: np.ndarray
  source: np.ndarray
  attribute: str = dataclasses.field(default="", metadata=dict(static=True))

  def __post_init__(self):
    fields = (self.a, self.b, self.label, self.weight, self.source)
    if not _concrete(*fields):
      return
    n = len(self.a)
    for name, x in zip(("a", "b", "label", "weight", "source"), fields):
      if x.shape != (n,):
        raise ValueError(f"PairSet[{self.attribute}].{name} has shape {x.shape}, expected ({n},)")
    for name, x in (("a", self.a), ("b", self.b)):
      bad = np.flatnonzero(x < 0)
      if bad.size:
        raise IndexError(f"PairSet[{self.attribute}] pair {int(bad[0])}: image index "
                         f"{name}={int(x[bad[0]])} is negative")
    bad = np.flatnonzero(~np.isin(self.label, (-1, 0, 1)))
    if bad.size:
      raise ValueError(f"PairSet[{self.attribute}] pair {int(bad[0])}: label "
                       f"{self.label[bad[0]]} not in {{-1, 0, 1}}")
    bad = np.flatnonzero(~(np.isfinite(self.weight) & (self.weight >= 0)))
    if bad.size:
      raise ValueError(f"PairSet[{self.attribute}] pair {int(bad[0])}: weight "
                       f"{self.weight[bad[0]]} is not a finite non-negative number")
    bad = np.flatnonzero((self.source < 0) | (self.source >= len(SOURCES)))
    if bad.size:
      raise ValueError(f"PairSet[{self.attribute}] pair {int(bad[0])}: source code "
                       f"{self.source[bad[0]]} not in 0..{len(SOURCES) - 1}")

  @classmethod
  def create(cls, a, b, label, *, attribute: str, weight=None, source: str | np.ndarray = "real"
             ) -> "PairSet":
    """Builds a PairSet from array-likes, casting dtypes and filling defaults."""
    a = np.asarray(a, np.int32).reshape(-1)
    b = np.asarray(b, np.int32).reshape(-1)
    label = np.asarray(label).reshape(-1)
    if label.size and not np.isin(label, (-1, 0, 1)).all():
      bad = int(np.flatnonzero(~np.isin(label, (-1, 0, 1)))[0])
      raise ValueError(f"PairSet[{attribute}] pair {bad}: label {label[bad]} not in {{-1, 0, 1}}")
    label = label.astype(np.int8)
    weight = (np.ones(len(a), np.float32) if weight is None
              else np.asarray(weight, np.float32).reshape(-1))
    if isinstance(source, str):
      if source not in SOURCE_CODE:
        raise ValueError(f"unknown pair source {source!r}; expected one of {SOURCES}")
      source = np.full(len(a), SOURCE_CODE[source], np.int8)
    else:
      source = np.asarray(source, np.int8).reshape(-1)
    return cls(a, b, label, weight, source, attribute)

  def __len__(self) -> int:
    return len(self.a)

  def validate(self, num_images: int, where: str = "") -> "PairSet":
    """Raises IndexError naming the first pair whose index is >= num_images."""
    for name, x in (("a", np.asarray(self.a)), ("b", np.asarray(self.b))):
      bad = np.flatnonzero((x < 0) | (x >= num_images))
      if bad.size:
        raise IndexError(f"{where or 'PairSet'}[{self.attribute}] pair {int(bad[0])}: image index "
                         f"{name}={int(x[bad[0]])} out of range for {num_images} images")
    return self

  def take(self, index) -> "PairSet":
    index = np.asarray(index)
    return PairSet(self.a[index], self.b[index], self.label[index], self.weight[index],
                   self.source[index], self.attribute)

  def ordered(self) -> "PairSet":
    """Only the pairs with a strict order (label != 0): the ones accuracy is measured on."""
    return self.take(np.flatnonzero(self.label != 0))

  def offset(self, n: int) -> "PairSet":
    """The same pairs with image indices shifted by n (for concatenated ImageSets)."""
    return PairSet(self.a + n, self.b + n, self.label, self.weight, self.source, self.attribute)

  def source_counts(self) -> dict[str, int]:
    return {name: int(np.sum(self.source == code)) for name, code in SOURCE_CODE.items()}


def concat_pairs(pairsets: Sequence[PairSet]) -> PairSet:
  """Concatenates PairSets of the same attribute (indices must already be in one space)."""
  if not pairsets:
    raise ValueError("concat_pairs needs at least one PairSet")
  attrs = {p.attribute for p in pairsets}
  if len(attrs) != 1:
    raise ValueError(f"cannot concatenate pairs of different attributes: {sorted(attrs)}")
  cat = lambda f: np.concatenate([getattr(p, f) for p in pairsets])
  return PairSet(cat("a"), cat("b"), cat("label"), cat("weight"), cat("source"), attrs.pop())


def concat_images(imagesets: Sequence[ImageSet]) -> tuple[ImageSet, list[int]]:
  """Concatenates ImageSets; returns the result and each input's index offset.

  Strengths are kept only when every input has them with the same attribute names; groups are
  kept only when every input has them.
  """
  if not imagesets:
    raise ValueError("concat_images needs at least one ImageSet")
  shapes = {s.image_shape for s in imagesets}
  if len(shapes) != 1:
    raise ValueError(f"cannot concatenate ImageSets of different image shapes: {sorted(shapes)}")
  offsets = list(np.cumsum([0] + [len(s) for s in imagesets[:-1]]).astype(int))
  names = {s.attribute_names for s in imagesets}
  keep_strengths = len(names) == 1 and all(s.strengths is not None for s in imagesets)
  keep_groups = all(s.groups is not None for s in imagesets)
  out = ImageSet(
      np.concatenate([s.images for s in imagesets]),
      np.concatenate([s.ids for s in imagesets]),
      np.concatenate([s.strengths for s in imagesets]) if keep_strengths else None,
      np.concatenate([s.groups for s in imagesets]) if keep_groups else None,
      imagesets[0].attribute_names if keep_strengths else (),
  )
  return out, offsets


@dataclasses.dataclass(frozen=True)
class Pool:
  """Training data for one (method, attribute, seed): what a ranker fits on.

  The images begin with ALL of the domain's images, in order (so the domain's val / test pairs
  index them too), followed by whatever the method added (synthetic or jittered images).

  Attributes:
    images: the domain's images followed by any added images.
    pairs: training pairs indexing `images`.
    num_domain_images: how many leading images are the domain's.
    info: counts for the results (pairs per source, images added).
  """
  images: ImageSet
  pairs: PairSet
  num_domain_images: int
  info: dict

  def __post_init__(self):
    if len(self.pairs) == 0:
      raise ValueError(f"empty training pool for attribute {self.pairs.attribute!r}")
    self.pairs.validate(len(self.images), where="pool")


@dataclasses.dataclass(frozen=True)
class Domain:
  """A named dataset: one ImageSet, image splits, and real labelled pairs.

  Attributes:
    name: domain name (e.g. "sprites", "celeba").
    images: every image of the domain.
    splits: split name -> int64 indices into `images` (e.g. "train", "val", "test").
    pairs: attribute -> split name -> PairSet indexing into `images` (e.g. "train", "val",
      "test_fine", "test_coarse").
    info: free-form, JSON-serialisable description (how it was built, counts, seeds).
    binary: attribute -> (N,) {0, 1} binary annotations where the dataset has them (CelebA's
      40 attributes); used by the pre-label classifier and the Classifier baseline. Where an
      attribute has none, those derive labels from its strengths (see experiments/assets.py).
  """
  name: str
  images: ImageSet
  splits: Mapping[str, np.ndarray]
  pairs: Mapping[str, Mapping[str, PairSet]]
  info: Mapping[str, object] = dataclasses.field(default_factory=dict)
  binary: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    n = len(self.images)
    for split, idx in self.splits.items():
      idx = np.asarray(idx)
      bad = np.flatnonzero((idx < 0) | (idx >= n))
      if bad.size:
        raise IndexError(f"domain {self.name}: split {split!r} position {int(bad[0])} has image "
                         f"index {int(idx[bad[0]])}, out of range for {n} images")
    for attr, by_split in self.pairs.items():
      for split, ps in by_split.items():
        if ps.attribute != attr:
          raise ValueError(f"domain {self.name}: pairs[{attr!r}][{split!r}] are for attribute "
                           f"{ps.attribute!r}")
        ps.validate(n, where=f"domain {self.name} {split} pairs")
    for attr, lab in self.binary.items():
      if np.shape(lab) != (n,) or not np.isin(lab, (0, 1)).all():
        raise ValueError(f"domain {self.name}: binary labels of {attr!r} must be (N,) in {{0, 1}}")

  @property
  def attributes(self) -> tuple[str, ...]:
    return tuple(self.pairs)
