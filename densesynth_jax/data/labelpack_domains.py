"""Ranker domains on the official label packs: UT-Zap50K-1, UT-Zap50K-2, and LFW-10 -> PFSmile.

The label packs (`data/labelpacks.py`) give pairs that name images by path; the images are the
user's own copies of the official releases. These builders join the two and hand the runner a
`Domain`. Before any image is decoded, every required file and folder is checked, and whatever is
missing is reported in ONE FileNotFoundError, one line, naming each item and where to put it.

zap50k (registry name "zap50k", data block `zap50k_config()`)
  images    the label pack's image table: the distinct UT-Zap50K images that the chosen
            attributes' protocol pairs use (5,551 for protocol 2 with equal pairs; fewer
            otherwise), in imagepath order, read from `image_root` (the unzipped official
            ut-zap50k-images folder; default <data_dir>/ut-zap50k-images; the folder-name fixes of
            `labelpacks.zap50k_path_candidates` apply), padded to a square (white: the catalogue
            background the shoes generator also sees) and resized to `image_size`.
            ids = the imagepath row (0-based).
  pairs     {attribute: {"train", "val", "test"}} for each of `attributes`:
            protocol 1 (UT-Zap50K-1): official split `split` (0-9): test = its 300 ordered test
              pairs, train = its training pairs. The protocol's number is the mean over the 10
              splits: one run per split (see configs/zap50k_1.py).
            protocol 2 (UT-Zap50K-2): train = every ordered (coarse) pair of the attribute,
              test = its fine-grained pairs (4,334 over the 4 attributes).
            `include_equal` adds the attribute's "equal" pairs (label 0) to train, never one whose
            image pair is a test pair (`labelpacks._train_with_equal`).
  val       THE OFFICIAL PROTOCOLS HAVE NO VAL SET. A fixed, seeded `val_fraction` (10%) of the
            train pairs is held out as "val" and REMOVED from "train" (`holdout_val`; the seed is
            (val_seed, the attribute's position in the pack), so every method, ranker and run
            gets the same hold-out): local RankSVM chooses K on it and DeepSTN early-stops on it.
            Rankers therefore train on 90% of the official training pairs.
  splits    {"train", "val", "test"}: the images the respective pairs use. They OVERLAP: the
            official protocols split pairs, not images (a test pair's images may also appear in
            training pairs).
  strengths None (groups None, attribute_names ()): the packs have pairwise labels only, no
            per-image strengths or binary labels, and `ImageSet` allows None. So the methods that
            need them on the run's domain (Real+, Classifier, DSynth's simulated verification)
            do not apply: see configs/zap50k_1.py.

lfw10 (registry name "lfw10", data block `lfw10_config()`): the paper's face setting
  images    the LFW-10 images that the `smile` pairs use (1,281 of LFW-10's 2,000), read from
            `image_root` (the unzipped LFW10 folder or its images/ folder; default
            <data_dir>/lfw10-images), followed by the PFSmile images. Each part is cut to a
            square (`crop_*`, `pfsmile_crop_*`) and resized to `image_size`. ids = the LFW-10 file
            number ("815.jpg" -> 815); PFSmile ids = PFSMILE_ID_OFFSET + row in its image table.
  pairs     {"smile": {"train", "val", "test", "lfw10_test"}}:
            train      LFW-10's 500 smile training pairs (plurality of 5 votes, ties = equal;
                       `labelpacks.lfw10_pairs`), less the val hold-out (as for zap50k);
            val        the seeded `val_fraction` hold-out of them (LFW-10 has no val set either);
            test       the PFSmile pairs (the paper's test set), which the user supplies;
            lfw10_test LFW-10's own 500 smile test pairs (majority labels): an in-domain check.
            Only ordered pairs count for accuracy (label 0 is excluded by the runner).
  splits    {"train", "val", "lfw10_test"}: the LFW-10 images of those pairs (overlapping);
            "test": every PFSmile image.
  strengths None, as for zap50k.

PFSmile file format (`<pfsmile_dir>/`, default <data_dir>/pfsmile/; PFSmile is not public, so
the user builds these from their own copy; every pair-file test set, `data/pairfiles.py`, reads
the same CSV):
  pairs.csv   UTF-8 CSV. First line exactly `image_a,image_b,label`; then one pair per line:
              two image paths relative to images/ (subfolders allowed, e.g. per person), and the
              label: +1 (image_a smiles more), -1 (image_b smiles more) or 0 (equal; kept, but not
              counted in accuracy). Blank lines and lines starting with '#' are ignored.
  images/     the image files that pairs.csv names (any format Pillow reads). The paper's
              PFSmile: 8 frontal images of each of 8 people from PubFig, 211 pairs within the
              same person after pruning.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import ml_collections
import numpy as np

from densesynth_jax.data import imageio
from densesynth_jax.data import labelpacks as lp
from densesynth_jax.data import pairfiles
from densesynth_jax.data.paths import data_dir as resolve_data_dir
from densesynth_jax.types import Domain, ImageSet, PairSet, concat_images

ZAP50K_IMAGE_FOLDER = "ut-zap50k-images"
ZAP50K_LABEL_FILES = ("zappos-labels.mat", "zappos-labels-fg.mat", "train-test-splits.mat",
                      "image-path.mat")
LFW10_IMAGE_FOLDER = "lfw10-images"
LFW10_LABEL_FILES = ("lfw10_train_votes.txt", "lfw10_test_majority.txt")
LFW10_ATTRIBUTE = "smile"  # the LFW-10 attribute of the paper's face setting (PFSmile tests it)
PFSMILE_FOLDER = "pfsmile"
PFSMILE_PAIRS = "pairs.csv"
PFSMILE_IMAGES = "images"
PFSMILE_HEADER = pairfiles.HEADER
PFSMILE_ID_OFFSET = 1_000_000  # PFSmile image ids start here (LFW-10 ids are 1..2000)

PairsByAttribute = dict[str, dict[str, PairSet]]


# ---------------------------------------------------------------------------------------------
# Data blocks.

def _common_fields(c: ml_collections.ConfigDict, image_size: int) -> None:
  # Paths are strings ("" = the default) so that --config.data.x=/path can override them.
  c.data_dir = ""  # real-data folder holding the label pack; "" = $DENSESYNTH_DATA_DIR
  c.image_size = image_size  # output side, pixels
  c.weight = "uniform"  # train pair weight: "uniform" (1) or "agreement" (the crowd's share)
  c.val_fraction = 0.1  # share of the train pairs held out as val (the protocols have no val)
  c.val_seed = 0  # seed of that hold-out (with the attribute's position in the pack)
  c.limit = 0  # keep the first `limit` pairs of every official pair set (0 = all); smoke runs
  c.allow_corrupt = False  # True: skip undecodable images and their pairs (listed in info)
  c.cache_dir = ""  # decoded-image cache; "" = $DENSESYNTH_CACHE or ~/.cache/densesynth_jax
  c.num_threads = 0  # decoding threads; 0 = min(4, CPU count)


def zap50k_config() -> ml_collections.ConfigDict:
  """The data-config block of the UT-Zap50K label-pack domain."""
  c = ml_collections.ConfigDict()
  c.name = "zap50k"  # domain registry name (densesynth_jax/data/registry.py)
  c.labels = lp.ZAP50K_FOLDER  # label pack folder, relative to data_dir (or absolute)
  c.image_root = ""  # the official images (unzipped); "" = <data_dir>/ut-zap50k-images
  c.protocol = 1  # 1: UT-Zap50K-1 (coarse test pairs of a split); 2: UT-Zap50K-2 (fine-grained)
  c.split = 0  # protocol 1: the official split, 0-9 (ignored by protocol 2)
  c.attributes = lp.ZAP50K_ATTRIBUTES  # attributes whose pairs (and images) the domain holds
  c.include_equal = False  # add the "equal" pairs (label 0) to train, never a test pair
  c.pad_fill = (255, 255, 255)  # square padding colour (the catalogue images' white)
  _common_fields(c, image_size=64)
  return c


def lfw10_config() -> ml_collections.ConfigDict:
  """The data-config block of the LFW-10 smile -> PFSmile domain."""
  c = ml_collections.ConfigDict()
  c.name = "lfw10"  # domain registry name (densesynth_jax/data/registry.py)
  c.labels = lp.LFW10_FOLDER  # label pack folder, relative to data_dir (or absolute)
  c.image_root = ""  # LFW-10 images (LFW10/ or LFW10/images/); "" = <data_dir>/lfw10-images
  c.pfsmile_dir = ""  # PFSmile pairs.csv + images/ (module docstring); "" = <data_dir>/pfsmile
  # LFW-10's images are LFW's 250×250 frames, the face in the central ~45%: this box (unchecked
  # here, no LFW images at hand) keeps brow to chin, close to the CelebA crop the face
  # generator is trained on. Fractions of the width / height, as in imageio.crop_spec.
  c.crop_center = (0.5, 0.5)  # LFW-10 crop centre as fractions of (width, height)
  c.crop_side = 0.5  # LFW-10 crop side as a fraction of the width; 0 = the largest square
  c.pfsmile_crop_center = (0.5, 0.5)  # PFSmile crop centre (fractions of width, height)
  c.pfsmile_crop_side = 0.0  # PFSmile crop side (fraction of width); 0 = the largest square
  _common_fields(c, image_size=64)
  return c


# ---------------------------------------------------------------------------------------------
# Shared steps.

def raise_missing(domain: str, items: Sequence[str]) -> None:
  """Raises ONE one-line FileNotFoundError listing every missing item, if there are any."""
  if items:
    listed = "; ".join(f"[{k}] {item}" for k, item in enumerate(items, 1))
    raise FileNotFoundError(f"{domain} domain: {len(items)} required item(s) missing; place "
                            f"{listed}")


def _resolve_or_report(resolve: Callable, names: Sequence[str], root: Path, what: str
                       ) -> tuple[list[Path] | None, str | None]:
  """(files, None), or (None, a missing-files item) when some named image is not under root."""
  try:
    return resolve(names, root), None
  except FileNotFoundError as e:
    return None, f"{what} ({e})"


def holdout_val(pairs: PairSet, fraction: float, seed) -> tuple[PairSet, PairSet]:
  """A fixed random `fraction` of `pairs` as val; returns (train, val), each in file order.

  round(fraction · P) pairs (at least 1 when fraction > 0 and P > 1) are drawn with
  `np.random.default_rng(seed)`; the rest stay train.
  """
  if not 0.0 <= fraction < 1.0:
    raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
  n = len(pairs)
  m = int(round(fraction * n))
  if fraction > 0 and m == 0 and n > 1:
    m = 1
  order = np.random.default_rng(seed).permutation(n)
  return pairs.take(np.sort(order[m:])), pairs.take(np.sort(order[:m]))


def _first(pairs: PairSet, limit: int) -> PairSet:
  return pairs.take(np.arange(min(limit, len(pairs)))) if limit > 0 else pairs


def _reindex(pairs: PairSet, remap: np.ndarray) -> PairSet:
  """Pairs with image indices mapped through `remap`; pairs touching a -1 are dropped."""
  a, b = remap[pairs.a], remap[pairs.b]
  keep = np.flatnonzero((a >= 0) & (b >= 0))
  return PairSet(a[keep].astype(np.int32), b[keep].astype(np.int32), pairs.label[keep],
                 pairs.weight[keep], pairs.source[keep], pairs.attribute)


def _compact(parts: Sequence[tuple[Mapping[str, PairSet], Sequence[str]]],
             position: Mapping[str, int]) -> tuple[list[dict[str, PairSet]], tuple[str, ...]]:
  """Pair sets over their own name tables -> pair sets over ONE table of the names they use.

  Args:
    parts: (pair sets by split, the names their indices point into) per attribute.
    position: name -> rank that orders the joint table (e.g. the imagepath row).
  Returns:
    (the pair sets re-indexed, in the order of `parts`; the joint table).
  """
  used = set()
  for by_split, names in parts:
    for p in by_split.values():
      used.update(names[i] for i in np.unique(np.concatenate([p.a, p.b])))
  table = tuple(sorted(used, key=position.__getitem__))
  index = {name: i for i, name in enumerate(table)}
  out = []
  for by_split, names in parts:
    remap = np.asarray([index.get(name, -1) for name in names], np.int64)
    out.append({split: _reindex(p, remap) for split, p in by_split.items()})
  return out, table


def _load_images(files: Sequence[Path], spec: dict, name: str, root: Path,
                 cfg: ml_collections.ConfigDict) -> imageio.LoadedImages:
  return imageio.load_images(files, spec, name=name, root=root, cache_dir=cfg.get("cache_dir"),
                             allow_corrupt=bool(cfg.get("allow_corrupt", False)),
                             num_threads=int(cfg.get("num_threads", 0)) or None)


def _keep_loaded(pairs: PairsByAttribute, loaded: imageio.LoadedImages, n: int
                 ) -> tuple[PairsByAttribute, int]:
  """Re-indexes pairs to the images that decoded (all, unless allow_corrupt skipped some)."""
  remap = np.full(n, -1, np.int64)
  remap[loaded.kept] = np.arange(len(loaded.kept))
  out = {a: {s: _reindex(p, remap) for s, p in by_split.items()} for a, by_split in pairs.items()}
  dropped = sum(len(p) - len(out[a][s]) for a, by_split in pairs.items()
                for s, p in by_split.items())
  return out, dropped


def _pair_images(pairs: PairsByAttribute) -> dict[str, np.ndarray]:
  """split name -> int64 sorted indices of the images its pairs use (over all attributes)."""
  found: dict[str, list[np.ndarray]] = {}
  for by_split in pairs.values():
    for split, p in by_split.items():
      found.setdefault(split, []).append(np.concatenate([p.a, p.b]))
  return {s: np.unique(np.concatenate(v)).astype(np.int64) for s, v in found.items()}


def _pair_counts(pairs: PairsByAttribute) -> dict:
  return {a: {s: dict(pairs=len(p), ordered=int(np.sum(p.label != 0)))
              for s, p in by_split.items()} for a, by_split in pairs.items()}


def _under(base: Path, value) -> Path:
  """A config path: absolute as given, else relative to the data folder."""
  return base / Path(value).expanduser()


# ---------------------------------------------------------------------------------------------
# UT-Zap50K.

def zap50k_pairs(labels: lp.Zap50KLabels, cfg: ml_collections.ConfigDict
                 ) -> tuple[PairsByAttribute, tuple[str, ...]]:
  """The protocol's pairs of every attribute in `cfg.attributes`, over one image table.

  Returns ({attribute: {"train", "val", "test"}}, the imagepath entries the pairs index, in
  imagepath order). No image is touched. See the module docstring for the protocols and val.
  """
  protocol, limit = int(cfg.protocol), int(cfg.get("limit", 0) or 0)
  if protocol not in (1, 2):
    raise ValueError(f"zap50k: protocol must be 1 (UT-Zap50K-1) or 2 (UT-Zap50K-2), got "
                     f"{protocol}")
  if not len(cfg.attributes):
    raise ValueError("zap50k: data.attributes is empty")
  parts = []
  for attr in cfg.attributes:
    common = dict(include_equal=bool(cfg.include_equal), weight=cfg.weight)
    if protocol == 1:
      train, test, paths = lp.zap50k_protocol_1(labels, attr, int(cfg.split), **common)
    else:
      train, test, paths = lp.zap50k_protocol_2(labels, attr, **common)
    seed = [int(cfg.val_seed), lp.ZAP50K_ATTRIBUTES.index(attr)]
    train, val = holdout_val(_first(train, limit), float(cfg.val_fraction), seed)
    parts.append((dict(train=train, val=val, test=_first(test, limit)), paths))
  row = {path: i for i, path in enumerate(labels.image_paths)}
  by_attr, table = _compact(parts, row)
  return dict(zip(cfg.attributes, by_attr)), table


def build_zap50k(cfg: ml_collections.ConfigDict) -> Domain:
  """The UT-Zap50K-1 / UT-Zap50K-2 domain over the user's official images (module docstring)."""
  t0 = time.perf_counter()
  base = resolve_data_dir(cfg.get("data_dir"))
  labels_dir = _under(base, cfg.labels)
  image_root = _under(base, cfg.image_root or ZAP50K_IMAGE_FOLDER)
  missing = [f"the UT-Zap50K label pack file {name} at {labels_dir / name}"
             for name in ZAP50K_LABEL_FILES if not (labels_dir / name).is_file()]
  if not image_root.is_dir():
    missing.append(f"the official UT-Zap50K images (the unzipped ut-zap50k-images folder with "
                   f"Boots/ Sandals/ Shoes/ Slippers/; or set data.image_root) at {image_root}")
  raise_missing("zap50k", missing)

  labels = lp.load_zap50k_labels(labels_dir)
  pairs, table = zap50k_pairs(labels, cfg)
  files, report = _resolve_or_report(lp.resolve_zap50k_images, table, image_root,
                                     "the official UT-Zap50K image files the pairs use")
  raise_missing("zap50k", [report] if report else [])

  spec = imageio.pad_spec(int(cfg.image_size), tuple(cfg.pad_fill))
  loaded = _load_images(files, spec, "zap50k", image_root, cfg)
  pairs, dropped = _keep_loaded(pairs, loaded, len(table))
  row = {path: i for i, path in enumerate(labels.image_paths)}
  ids = np.asarray([row[table[i]] for i in loaded.kept], np.int64)
  protocol = int(cfg.protocol)
  info = dict(
      labels_dir=str(labels_dir), image_root=str(image_root), num_images=len(ids),
      image_size=int(cfg.image_size), preprocessing=spec, protocol=protocol,
      protocol_name=f"UT-Zap50K-{protocol}", split=int(cfg.split) if protocol == 1 else None,
      attributes=list(cfg.attributes), include_equal=bool(cfg.include_equal), weight=cfg.weight,
      limit=int(cfg.get("limit", 0) or 0), pairs=_pair_counts(pairs),
      val_rule=f"seeded {float(cfg.val_fraction):.0%} hold-out of the official train pairs "
               f"(seed ({int(cfg.val_seed)}, attribute position)); the protocol has no val set",
      label_pack_totals=dict(labels.info["totals"]), pairs_dropped_corrupt=dropped,
      **loaded.info())
  info["build_seconds"] = round(time.perf_counter() - t0, 3)
  return Domain("zap50k", ImageSet(loaded.images, ids), _pair_images(pairs), pairs, info)


# ---------------------------------------------------------------------------------------------
# LFW-10 -> PFSmile.

def read_pfsmile_pairs(path: str | Path) -> tuple[list[str], list[str], np.ndarray]:
  """Parses a PFSmile pairs.csv (format in the module docstring; the parser is
  `pairfiles.read_pairs_csv`, shared with every pair-file test set).

  Returns (image_a paths, image_b paths, int8 labels). A malformed line raises a one-line
  ValueError naming the file and line.
  """
  rows = pairfiles.read_pairs_csv(path, what="PFSmile pairs file")
  return list(rows.image_a), list(rows.image_b), rows.label


def pfsmile_pairs(path: str | Path, limit: int = 0) -> tuple[PairSet, tuple[str, ...]]:
  """The PFSmile test pairs over their image table (the images in order of first mention)."""
  a, b, label = read_pfsmile_pairs(path)
  if limit > 0:
    a, b, label = a[:limit], b[:limit], label[:limit]
  names = tuple(dict.fromkeys(x for pair in zip(a, b) for x in pair))
  index = {n: i for i, n in enumerate(names)}
  pick = lambda xs: np.asarray([index[x] for x in xs], np.int32)
  return PairSet.create(pick(a), pick(b), label, attribute=LFW10_ATTRIBUTE), names


def resolve_pfsmile_images(names: Sequence[str], image_dir: str | Path) -> list[Path]:
  """Maps pairs.csv's names to files under `image_dir`; one FileNotFoundError lists the missing.

  (labelpacks' resolver, with each name taken as given.)
  """
  return lp._resolve(names, Path(image_dir), lambda name: [name], "PFSmile")


def lfw10_smile_pairs(labels_dir: Path, cfg: ml_collections.ConfigDict
                      ) -> tuple[dict[str, PairSet], tuple[str, ...]]:
  """LFW-10's smile pairs {"train", "val", "lfw10_test"} over the image names they use."""
  train, test, names = lp.lfw10_pairs(labels_dir, LFW10_ATTRIBUTE, weight=cfg.weight)
  limit = int(cfg.get("limit", 0) or 0)
  seed = [int(cfg.val_seed), lp.LFW10_ATTRIBUTES.index(LFW10_ATTRIBUTE)]
  train, val = holdout_val(_first(train, limit), float(cfg.val_fraction), seed)
  (pairs,), table = _compact([(dict(train=train, val=val, lfw10_test=_first(test, limit)), names)],
                             {n: i for i, n in enumerate(names)})
  return pairs, table


def _crop(cfg: ml_collections.ConfigDict, prefix: str) -> dict:
  side = float(cfg[f"{prefix}crop_side"])
  return imageio.crop_spec(int(cfg.image_size), tuple(cfg[f"{prefix}crop_center"]),
                           side if side > 0 else None)


def _file_number(name: str, fallback: int) -> int:
  stem = name.rsplit(".", 1)[0]
  return int(stem) if stem.isdigit() else fallback


def build_lfw10(cfg: ml_collections.ConfigDict) -> Domain:
  """LFW-10 smile training pairs, PFSmile test pairs, over the user's images (module docstring).

  Every missing item (label files, the LFW-10 image folder or any image it lacks, pairs.csv,
  the PFSmile image folder or any image it lacks) is listed in one FileNotFoundError before
  any image is decoded.
  """
  t0 = time.perf_counter()
  base = resolve_data_dir(cfg.get("data_dir"))
  labels_dir = _under(base, cfg.labels)
  image_root = _under(base, cfg.image_root or LFW10_IMAGE_FOLDER)
  pf_dir = _under(base, cfg.pfsmile_dir or PFSMILE_FOLDER)
  pf_csv, pf_images = pf_dir / PFSMILE_PAIRS, pf_dir / PFSMILE_IMAGES
  limit = int(cfg.get("limit", 0) or 0)

  missing = [f"the LFW-10 label pack file {name} at {labels_dir / name}"
             for name in LFW10_LABEL_FILES if not (labels_dir / name).is_file()]
  labels_ok = not missing
  if not image_root.is_dir():
    missing.append(f"the LFW-10 images (the unzipped LFW10 release: images/1.jpg ... "
                   f"images/2000.jpg; or set data.image_root) at {image_root}")
  if not pf_csv.is_file():
    missing.append(f"the PFSmile test pairs (CSV with header {','.join(PFSMILE_HEADER)}; label +1"
                   f" = image_a smiles more, -1 = image_b more, 0 = equal; or set "
                   f"data.pfsmile_dir) at {pf_csv}")
  if not pf_images.is_dir():
    missing.append(f"the PFSmile images that {PFSMILE_PAIRS} names (paths relative to this "
                   f"folder) at {pf_images}/")
  lfw = lfw_files = pf = pf_files = None
  if labels_ok:
    lfw = lfw10_smile_pairs(labels_dir, cfg)
    if image_root.is_dir():
      lfw_files, report = _resolve_or_report(lp.resolve_lfw10_images, lfw[1], image_root,
                                             "the LFW-10 image files the smile pairs use")
      missing += [report] if report else []
  if pf_csv.is_file():
    pf = pfsmile_pairs(pf_csv, limit)
    if pf_images.is_dir():
      pf_files, report = _resolve_or_report(resolve_pfsmile_images, pf[1], pf_images,
                                            f"the PFSmile image files that {PFSMILE_PAIRS} names")
      missing += [report] if report else []
  raise_missing("lfw10", missing)

  (lfw_pairs, lfw_names), (pf_test, pf_names) = lfw, pf
  specs = dict(lfw10=_crop(cfg, ""), pfsmile=_crop(cfg, "pfsmile_"))
  lfw_loaded = _load_images(lfw_files, specs["lfw10"], "lfw10", image_root, cfg)
  pf_loaded = _load_images(pf_files, specs["pfsmile"], "pfsmile", pf_images, cfg)
  lfw_kept, dropped_lfw = _keep_loaded({LFW10_ATTRIBUTE: lfw_pairs}, lfw_loaded, len(lfw_names))
  pf_kept, dropped_pf = _keep_loaded({LFW10_ATTRIBUTE: {"test": pf_test}}, pf_loaded,
                                     len(pf_names))
  n = len(lfw_loaded.kept)
  pairs = {LFW10_ATTRIBUTE: dict(lfw_kept[LFW10_ATTRIBUTE],
                                 test=pf_kept[LFW10_ATTRIBUTE]["test"].offset(n))}
  lfw_ids = np.asarray([_file_number(lfw_names[i], i) for i in lfw_loaded.kept], np.int64)
  images, _ = concat_images([ImageSet(lfw_loaded.images, lfw_ids),
                             ImageSet(pf_loaded.images, PFSMILE_ID_OFFSET + pf_loaded.kept)])
  splits = _pair_images(lfw_kept)
  splits["test"] = n + np.arange(len(pf_loaded.kept), dtype=np.int64)
  info = dict(
      labels_dir=str(labels_dir), image_root=str(image_root), pfsmile_dir=str(pf_dir),
      attribute=LFW10_ATTRIBUTE, num_lfw10_images=n, num_pfsmile_images=len(pf_loaded.kept),
      image_size=int(cfg.image_size), preprocessing=specs,
      weight=cfg.weight, limit=limit, pairs=_pair_counts(pairs),
      val_rule=f"seeded {float(cfg.val_fraction):.0%} hold-out of LFW-10's train pairs "
               f"(seed ({int(cfg.val_seed)}, attribute position)); LFW-10 has no val set",
      test_rule="PFSmile pairs from pairs.csv (the paper's test); lfw10_test: LFW-10's own",
      pairs_dropped_corrupt=dropped_lfw + dropped_pf,
      images=dict(lfw10=lfw_loaded.info(), pfsmile=pf_loaded.info()))
  info["build_seconds"] = round(time.perf_counter() - t0, 3)
  return Domain("lfw10", images, splits, pairs, info)
