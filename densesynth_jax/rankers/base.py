"""The ranker interface: every ranker fits on a pool and gives a trained ranker that compares.

A ranker is a function `fit(ctx: FitContext) -> Trained`, registered by name in
`rankers/registry.py`. The trained ranker answers `compare(a, b, tag)`: margins s(a) − s(b) for
pairs of pool images (positive: a shows more of the attribute). Rankers that score single images
(global RankSVM, DeepSTN, the classifier baseline) are `ScoreRanker`s; the local RankSVM is a lazy
learner that solves a small RankSVM per queried pair.

The experiment runner builds the FitContext (pools, features, caching) and never looks inside a
ranker; a ranker records JSON facts for the cell's record in `ctx.info` and arrays in
`ctx.artifacts`.

Saved rankers: a trained ranker that can be applied to new images has `save(folder)`; its module
has `load(folder) -> Loaded`, with `compare(images_a, images_b)` (margins) and, for rankers that
score single images, `score(images)` (uint8 images at the run's rank image size). A folder holds
`model.json` (FORMAT_VERSION, the ranker, its settings) and `arrays.npz`, written atomically
(`write_model`); `read_model` refuses another format version in one line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Mapping, Protocol

import ml_collections
import numpy as np

from densesynth_jax import io
from densesynth_jax.features import extract
from densesynth_jax.types import Domain, PairSet, Pool


@dataclasses.dataclass
class FitContext:
  """What a ranker may use to fit on one cell's pool.

  Attributes:
    config: the experiment config (each ranker reads its own block: `ranksvm`, `deepstn`, ...).
    domain: the replicate's domain; its val pairs index the pool's leading images.
    pool: training images and pairs.
    attribute, seed, method: the cell.
    workdir: the cell's folder (a ranker that trains keeps its checkpoints there).
    features: feature name -> (len(pool.images), D) float32 features of every pool image.
    prelabel: attribute -> (N_domain,) pre-label classifier strengths of the domain's images.
    prelabel_model: attribute -> that classifier as `data/prelabel.apply_model` applies it (for
      saving it; None where the caller has none).
    figures_dir: where the ranker may draw its figures (None: not for this cell).
    headline: this cell's figures are also the run's headline ones (the first method).
  """
  config: ml_collections.ConfigDict
  domain: Domain
  pool: Pool
  attribute: str
  seed: int
  method: str
  workdir: Path
  features: Callable[[str], np.ndarray]
  prelabel: Callable[[str], np.ndarray]
  figures_dir: Path | None = None
  headline: bool = False
  prelabel_model: Callable[[str], dict] | None = None
  info: dict = dataclasses.field(default_factory=dict)  # JSON facts for the cell record
  artifacts: dict = dataclasses.field(default_factory=dict)  # arrays kept beside the record

  def val_pairs(self) -> PairSet | None:
    """The domain's val pairs of the attribute (indices into the pool's leading images)."""
    return self.domain.pairs[self.attribute].get("val")


class Trained(Protocol):
  def compare(self, a: np.ndarray, b: np.ndarray, tag: str = "") -> np.ndarray:
    """Margins (P,) s(a) − s(b) for pool image indices a, b (P,); `tag` names the pair set."""


@dataclasses.dataclass
class ScoreRanker:
  """A trained ranker that scores single images: `score(indices) -> (len,)` of pool images."""
  score: Callable[[np.ndarray], np.ndarray]

  def compare(self, a: np.ndarray, b: np.ndarray, tag: str = "") -> np.ndarray:
    a, b = np.asarray(a), np.asarray(b)
    used, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    s = np.asarray(self.score(used), np.float32)[inverse]
    return s[:len(a)] - s[len(a):]


FitFn = Callable[[FitContext], Trained]


def pool_features(ctx: FitContext) -> np.ndarray:
  """The `ranksvm.feature` of every pool image, z-scored with the training pairs' images."""
  return pool_standardization(ctx)[0]


def pool_standardization(ctx: FitContext) -> tuple[np.ndarray, np.ndarray | None,
                                                   np.ndarray | None]:
  """(pool_features(ctx), mean, std): the statistics (float64 (D,)) that z-score new images the
  same way (`apply_standardization`); None, None when `ranksvm.standardize` is off."""
  cfg = ctx.config.ranksvm
  x = ctx.features(cfg.feature)
  if not cfg.standardize:
    return x, None, None
  train_rows = np.unique(np.concatenate([ctx.pool.pairs.a, ctx.pool.pairs.b]))
  train = np.asarray(x[train_rows], np.float64)
  mu, sd = train.mean(axis=0), train.std(axis=0)
  sd = np.where(sd > 1e-6, sd, 1.0)  # extract.standardize's rule
  return apply_standardization(x, mu, sd), mu, sd


def apply_standardization(x: np.ndarray, mu: np.ndarray | None, sd: np.ndarray | None
                          ) -> np.ndarray:
  """float32 (x − mu) / sd, computed as `extract.standardize` does (x as it is without stats)."""
  if mu is None:
    return x
  return ((np.asarray(x, np.float64) - mu) / sd).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Saved rankers.

FORMAT_VERSION = 1  # bump when a saved model's contents change meaning


class Loaded(Protocol):
  def compare(self, images_a: np.ndarray, images_b: np.ndarray) -> np.ndarray:
    """Margins (P,) s(a) − s(b) of uint8 images (P, S, S, C) at the run's rank image size."""


@dataclasses.dataclass
class LoadedScorer:
  """A loaded ranker that scores single images; `compare` is the score difference."""
  score_fn: Callable[[np.ndarray], np.ndarray]

  def score(self, images: np.ndarray) -> np.ndarray:
    return np.asarray(self.score_fn(np.asarray(images)), np.float32)

  def compare(self, images_a: np.ndarray, images_b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(images_a), np.asarray(images_b)
    if len(a) != len(b):
      raise ValueError(f"compare needs as many images a as b, got {len(a)} and {len(b)}")
    s = self.score(np.concatenate([a, b]))
    return s[:len(a)] - s[len(a):]


def write_model(folder: str | Path, ranker: str, meta: Mapping, arrays: Mapping[str, np.ndarray],
                extra: Callable[[Path], None] | None = None) -> None:
  """`folder`/model.json (format version, ranker, meta) and arrays.npz, atomically.

  `extra(tmp)` writes anything else into the folder before it appears (e.g. an orbax checkpoint).
  """
  with io.atomic_dir(folder) as tmp:
    io.write_json(tmp / "model.json", dict(format_version=FORMAT_VERSION, ranker=ranker,
                                           **dict(meta)))
    io.save_npz(tmp / "arrays.npz", **{k: np.asarray(v) for k, v in arrays.items()})
    if extra is not None:
      extra(Path(tmp))


def read_model(folder: str | Path, ranker: str) -> tuple[dict, dict[str, np.ndarray]]:
  """(meta, arrays) of a saved model; one-line errors for a missing folder, another format
  version or another ranker."""
  folder = Path(folder)
  if not (folder / "model.json").is_file():
    raise FileNotFoundError(f"no saved model in {folder} (a run from before models were kept? "
                            f"rerun it into a new workdir)")
  meta = io.read_json(folder / "model.json")
  version = meta.get("format_version")
  if version != FORMAT_VERSION:
    raise ValueError(f"saved model format version {version} does not match the code's "
                     f"{FORMAT_VERSION}; rerun the run to save it again: {folder}")
  if meta.get("ranker") != ranker:
    raise ValueError(f"saved model is of ranker {meta.get('ranker')!r}, not {ranker!r}: {folder}")
  return meta, io.load_npz(folder / "arrays.npz")


def image_features(meta: Mapping, images: np.ndarray) -> np.ndarray:
  """The saved model's feature (`feature`, `features` config) of uint8 images (N, S, S, C)."""
  images = np.asarray(images)
  if images.ndim != 4 or images.dtype != np.uint8 or not len(images):
    raise ValueError(f"images must be a non-empty uint8 (N, H, W, C) array, got {images.dtype} "
                     f"{images.shape}")
  return extract.extract_features(meta["feature"], images,
                                  ml_collections.ConfigDict(meta["features"]))


def margins_for(trained: Trained, pair_sets: Mapping[str, PairSet]) -> dict[str, np.ndarray]:
  """{name: margins} of a trained ranker on named pair sets (indices into the pool)."""
  return {name: np.asarray(trained.compare(p.a, p.b, name)) for name, p in pair_sets.items()}
