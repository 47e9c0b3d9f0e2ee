"""Apply what a run learned: score and compare new images, evaluate on any pairs file.

Every finished cell of `train_ranker.py` keeps its trained ranker in
`<run>/rankers/<ranker>/<method>/<attribute>/seed<k>_model/` (rankers/base.py: `save`, `load`),
and the run records in `<run>/images.json` how new images meet the rankers: the pair files' rule
(data/pairfiles.py: the largest centred square, or a white pad for the shoe domains; grey for a
grey domain) at the domain's side, then `imageio.resize_images` to the run's rank image size.

  python -m densesynth_jax.predict score --run=DIR --ranker=R --method=M --attribute=A \
      IMAGES_OR_FOLDERS... [--out=scores.csv] [--seed=K]
  python -m densesynth_jax.predict compare --run=DIR --ranker=R --method=M --attribute=A A.png B.png
  python -m densesynth_jax.predict evaluate --run=DIR --pairs=PAIRS.csv --images=DIR [--attribute=A]

From Python: `load_ranker(run, ranker, method, attribute)` gives an object with `score(images)`
and `compare(a, b)` (images: file paths, folders, or uint8 arrays). The local RankSVM is a lazy
learner: it compares pairs but has no per-image score. Without `seed`, the lowest replicate that
has a saved model is used.

What loading needs: nothing of the original training images, except the local RankSVM, whose
saved model holds the pool's standardised features (its training set); no ranker retrains.

Bad input is one line on stderr and exit status 1, and no output file is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from densesynth_jax import io
from densesynth_jax.data import imageio, pairfiles
from densesynth_jax.errors import one_line
from densesynth_jax.experiments import runner, tables
from densesynth_jax.experiments.methods import REFERENCE_METHODS
from densesynth_jax.metrics import margin_accuracy
from densesynth_jax.rankers import classifier, deepstn, local, ranksvm
from densesynth_jax.rankers.base import FORMAT_VERSION
from densesynth_jax.types import PairSet

LOADERS = {"ranksvm_global": ranksvm.load, "ranksvm_local": local.load,
           "deepstn": deepstn.load, "classifier": classifier.load}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
_SEED = re.compile(r"^seed(\d+)_model$")
USER_ERRORS = (OSError, ValueError, KeyError, IndexError)


# ---------------------------------------------------------------------------------------------
# Images.

def image_files(items: Sequence[str | os.PathLike]) -> list[Path]:
  """Files given, with each folder replaced by its image files (sorted by name)."""
  out = []
  for item in items:
    p = Path(item).expanduser()
    if p.is_dir():
      found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
      if not found:
        raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in folder: {p}")
      out += found
    elif p.is_file():
      out.append(p)
    else:
      raise FileNotFoundError(f"missing image file: {p}")
  if not out:
    raise ValueError("no images given")
  return out


@dataclasses.dataclass(frozen=True)
class ImageRule:
  """How new images meet a run's rankers: `preprocessing` (an imageio spec at the domain's side)
  then a resize to `size`."""
  preprocessing: dict
  size: int

  @classmethod
  def of_run(cls, run: str | os.PathLike) -> "ImageRule":
    path = Path(run) / runner.IMAGES_FILE
    if not path.is_file():
      raise FileNotFoundError(f"{path} is missing: not a run folder of train_ranker.py, or a run "
                              f"from before rankers were kept (rerun it into a new workdir)")
    d = io.read_json(path)
    if d.get("format_version") != FORMAT_VERSION:
      raise ValueError(f"run's saved models have format version {d.get('format_version')}, the "
                       f"code's is {FORMAT_VERSION}; rerun the run: {path}")
    return cls(dict(d["preprocessing"]), int(d["rank_image_size"]))

  def load(self, paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """uint8 (N, size, size, 3) of image files (one-line error naming an undecodable one)."""
    x = np.stack([imageio.load_image(p, self.preprocessing) for p in paths])
    return imageio.resize_images(x, self.size)

  def prepare(self, images) -> np.ndarray:
    """uint8 images at the run's size from file paths / folders, or from uint8 arrays (N, H, W,
    3) or (H, W, 3): arrays at the run's size are used as given (e.g. a domain's own images),
    others are preprocessed like files (grey by ITU-R 601 luma where the run is grey)."""
    if isinstance(images, (str, os.PathLike)):
      images = [images]
    if isinstance(images, np.ndarray):
      x = images[None] if images.ndim == 3 else images
      if x.ndim != 4 or x.dtype != np.uint8 or x.shape[-1] != 3 or not len(x):
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {x.dtype} {x.shape}")
      if x.shape[1:3] == (self.size, self.size):
        return x
      if self.preprocessing.get("gray"):
        x = np.repeat(np.round(x @ np.asarray([0.299, 0.587, 0.114])).clip(0, 255)
                      .astype(np.uint8)[..., None], 3, axis=-1)
      x = np.stack([imageio.preprocess_image(im, self.preprocessing) for im in x])
      return imageio.resize_images(x, self.size)
    return self.load(image_files(list(images)))


# ---------------------------------------------------------------------------------------------
# Saved rankers.

def model_folders(run: str | os.PathLike, ranker: str, method: str, attribute: str
                  ) -> dict[int, Path]:
  """{seed: saved model folder} of a cell; one-line errors for a missing run, ranker, method or
  attribute (naming what the run has)."""
  run = Path(run)
  if not run.is_dir():
    raise FileNotFoundError(f"missing run folder: {run}")
  where = run / "rankers"
  for what, name in (("ranker", ranker), ("method", method), ("attribute", attribute)):
    have = sorted(p.name for p in where.iterdir() if p.is_dir()) if where.is_dir() else []
    if name not in have:
      raise KeyError(f"run {run} has no {what} {name!r}; it has {have}")
    where = where / name
  found = {int(m.group(1)): p for p in where.iterdir() if (m := _SEED.match(p.name))}
  if not found:
    raise FileNotFoundError(f"no saved model in {where} (a run from before rankers were kept: "
                            f"rerun it into a new workdir)")
  return dict(sorted(found.items()))


@dataclasses.dataclass
class Predictor:
  """A loaded ranker of a run, with the run's image rule: `score` and `compare` take file paths,
  folders or uint8 arrays."""
  ranker: str
  method: str
  attribute: str
  seed: int
  model: object
  rule: ImageRule

  @property
  def scores_images(self) -> bool:
    return hasattr(self.model, "score")

  def score(self, images) -> np.ndarray:
    """float32 (N,) scores; higher = more of the attribute."""
    if not self.scores_images:
      raise ValueError(f"ranker {self.ranker!r} is a lazy learner with no per-image score; use "
                       f"compare (pairs) instead")
    return np.asarray(self.model.score(self.rule.prepare(images)), np.float32)

  def compare(self, a, b) -> np.ndarray:
    """float32 (P,) margins s(a) − s(b): > 0 when a shows more of the attribute."""
    xa, xb = self.rule.prepare(a), self.rule.prepare(b)
    return np.asarray(self.model.compare(xa, xb), np.float32)


def load_ranker(run: str | os.PathLike, ranker: str, method: str, attribute: str,
                seed: int | None = None) -> Predictor:
  """The saved ranker of a run's cell (the lowest saved seed when `seed` is None)."""
  if ranker not in LOADERS:
    raise KeyError(f"unknown ranker {ranker!r}; valid: {sorted(LOADERS)}")
  folders = model_folders(run, ranker, method, attribute)
  rule = ImageRule.of_run(run)
  if seed is None:
    seed = next(iter(folders))
  if int(seed) not in folders:
    raise KeyError(f"run {run} has no saved {ranker}/{method}/{attribute} model for seed {seed}; "
                   f"it has seeds {sorted(folders)}")
  return Predictor(ranker, method, attribute, int(seed), LOADERS[ranker](folders[int(seed)]), rule)


def saved_cells(run: str | os.PathLike, attribute: str) -> list[tuple[str, str, int]]:
  """(ranker, method, seed) of every saved model of `attribute`, in the run's table order."""
  run = Path(run)
  results = io.read_json(run / "results.json")
  seen = list(dict.fromkeys((c["ranker"], c["method"], int(c["seed"]))
                            for c in results["cells"] if c["attribute"] == attribute))
  if not seen:
    attrs = sorted({c["attribute"] for c in results["cells"]})
    raise KeyError(f"run {run} has no attribute {attribute!r}; it has {attrs}")
  return [(r, m, s) for r, m, s in seen
          if (run / "rankers" / r / m / attribute / f"seed{s}_model").is_dir()]


# ---------------------------------------------------------------------------------------------
# Evaluation on a pairs file.

def read_pair_file(run: str | os.PathLike, pairs_csv: str | os.PathLike,
                   images_dir: str | os.PathLike) -> tuple[np.ndarray, PairSet]:
  """(uint8 images at the run's size, ordered PairSet into them) of a pairs CSV + image folder
  (data/pairfiles.py's format and checks)."""
  pairs_csv, images_dir = Path(pairs_csv).expanduser(), Path(images_dir).expanduser()
  rows = pairfiles.read_pairs_csv(pairs_csv)
  if not images_dir.is_dir():
    raise FileNotFoundError(f"image folder does not exist: {images_dir}")
  files, _, a, b = pairfiles.files_of_rows(rows, images_dir, pairs_csv)
  pairs = PairSet.create(a, b, rows.label, attribute="pairs", source="real").ordered()
  if not len(pairs):
    raise ValueError(f"every pair is labelled 0 (equal): no accuracy to measure: {pairs_csv}")
  return ImageRule.of_run(run).load(files), pairs


def evaluate(run: str | os.PathLike, pairs_csv: str | os.PathLike,
             images_dir: str | os.PathLike, attribute: str | None = None) -> tuple[dict, str]:
  """Pairwise accuracy on the ordered pairs of a pairs file for every saved (ranker, method)
  of the run: (summary as `tables.summarize` gives it, markdown in the run's layout)."""
  run = Path(run)
  if not run.is_dir():
    raise FileNotFoundError(f"missing run folder: {run}")
  results = io.read_json(run / "results.json")
  attrs = list(dict.fromkeys(c["attribute"] for c in results["cells"]))
  if attribute is None:
    if len(attrs) != 1:
      raise ValueError(f"run {run} has attributes {attrs}: choose one with --attribute")
    attribute = attrs[0]
  cells = saved_cells(run, attribute)
  if not cells:
    raise FileNotFoundError(f"run {run} has no saved models of {attribute!r}; rerun it")
  images, pairs = read_pair_file(run, pairs_csv, images_dir)
  name = Path(pairs_csv).stem
  records = []
  for r, m, s in cells:
    model = load_ranker(run, r, m, attribute, s).model
    margins = model.compare(images[pairs.a], images[pairs.b])
    records.append(dict(ranker=r, method=m, attribute=attribute, seed=s,
                        accuracy={name: margin_accuracy(margins, pairs)}))
  summary = tables.summarize(records, [name])
  rankers = list(dict.fromkeys(r for r, _, _ in cells))
  methods = list(dict.fromkeys(m for _, m, _ in cells))
  md = tables.markdown_tables(summary, rankers, methods, [attribute],
                              reference_rows=[m for m in methods if m in REFERENCE_METHODS],
                              title=f"Pairs file {pairs_csv} on run {run}",
                              notes=f"{len(pairs)} ordered pairs over {len(images)} images")
  return summary, md


# ---------------------------------------------------------------------------------------------
# The command.

def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m densesynth_jax.predict",
                              description="Score, compare and evaluate with a run's rankers.")
  sub = p.add_subparsers(dest="command", required=True)
  for cmd in ("score", "compare", "evaluate"):
    s = sub.add_parser(cmd)
    s.add_argument("--run", required=True, help="the run folder (train_ranker.py's workdir)")
    s.add_argument("--attribute", required=cmd != "evaluate")
    if cmd != "evaluate":
      s.add_argument("--ranker", required=True, help=f"one of {sorted(LOADERS)}")
      s.add_argument("--method", required=True)
      s.add_argument("--seed", type=int, default=None, help="replicate (default: the lowest)")
    if cmd == "score":
      s.add_argument("images", nargs="+", help="image files or folders")
      s.add_argument("--out", default=None, help="write image,score lines to this CSV")
    elif cmd == "compare":
      s.add_argument("a")
      s.add_argument("b")
    else:
      s.add_argument("--pairs", required=True, help="pairs CSV: image_a,image_b,label")
      s.add_argument("--images", required=True, help="the folder the CSV's paths are under")
      s.add_argument("--out", default=None, help="also write the markdown table here")
  return p


def _csv_field(text: str) -> str:
  return f'"{text}"' if any(c in text for c in ',"\n') else text


def main(argv: Sequence[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  try:
    if args.command == "score":
      predictor = load_ranker(args.run, args.ranker, args.method, args.attribute, args.seed)
      if not predictor.scores_images:
        raise ValueError(f"ranker {args.ranker!r} is a lazy learner with no per-image score; "
                         f"use compare A B")
      files = image_files(args.images)
      scores = predictor.score(files)
      text = "image,score\n" + "".join(f"{_csv_field(str(f))},{float(v):.6g}\n"
                                       for f, v in zip(files, scores))
      if args.out:
        io.write_text(args.out, text)
        print(f"{len(files)} scores written to {args.out}")
      else:
        sys.stdout.write(text)
    elif args.command == "compare":
      predictor = load_ranker(args.run, args.ranker, args.method, args.attribute, args.seed)
      margin = float(predictor.compare([args.a], [args.b])[0])
      if margin == 0:
        print(f"equal {args.attribute}: {args.a} and {args.b} (margin 0)")
      else:
        more, less = (args.a, args.b) if margin > 0 else (args.b, args.a)
        print(f"{more} shows more {args.attribute} than {less} (margin {margin:+.6g})")
    else:
      _, md = evaluate(args.run, args.pairs, args.images, args.attribute)
      if args.out:
        io.write_text(args.out, md + "\n")
      print(md)
  except USER_ERRORS as e:
    if os.environ.get("DENSESYNTH_DEBUG"):
      raise
    print(f"predict: error: {one_line(e)}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
