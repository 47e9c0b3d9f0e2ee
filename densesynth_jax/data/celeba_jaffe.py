"""CelebA -> JAFFE: train rankers on CelebA faces, test them on human-rated JAFFE smiles.

The real-face experiment of `configs/celeba_smile.py`. One Domain holds both image sets, CelebA
first, so that every method's pool (which always starts with the domain's images) can be
evaluated on the JAFFE pairs:

  images   CelebA faces (data/celeba.py, the block `celeba`) followed by the JAFFE faces
           (data/jaffe.py, the block `jaffe`), both cropped to the same face framing and size;
           JAFFE's grey images are repeated over 3 channels.
  splits   train / val: CelebA's own image-number splits (the generator and the pre-label
           classifier see only CelebA train images); test_celeba: CelebA's test split;
           test: every JAFFE image.
  pairs    {name: {"train", "val", "test_celeba", "test"}} where name is `attribute_name`:
           - train / val / test_celeba: CATEGORY-LEVEL pairs (`celeba.category_pairs`): an image
             labelled with the CelebA attribute (e.g. Smiling) against one labelled without it,
             in the sparse budgets `train_pairs` / `val_pairs` / `test_celeba_pairs`. They say
             "this face smiles, that one does not", never "this one smiles MORE": the coarse
             supervision the paper's dense synthetic pairs are meant to complement.
           - test: JAFFE within-poser pairs whose mean human HAP ratings differ by at least
             `jaffe.test_margin`, ordered by HAP (`jaffe.jaffe_test_pairs`): graded, fine
             comparisons of the same face, the spirit of the paper's PFSmile test.
           - test_strong: the subset whose ratings differ by at least `strong_margin` (mostly a
             smiling vs a not-smiling take of the same poser: the easy end of the test).
  binary   {name: CelebA's own labels for CelebA rows, "posed the HA expression" for JAFFE rows}:
           the pre-label classifier and the simulated verifier fit on train (+ val) rows only,
           so the JAFFE labels never train anything.
  strengths None: graded strengths exist for neither part in a common unit (the generator is
           trained on its own CelebA domain, `config.generator.data`, with pre-labelled strengths).
"""

from __future__ import annotations

import dataclasses
import time

import ml_collections
import numpy as np

from densesynth_jax.data import celeba, jaffe
from densesynth_jax.types import Domain, ImageSet, PairSet


def default_config() -> ml_collections.ConfigDict:
  """The data-config block of the CelebA -> JAFFE domain."""
  c = ml_collections.ConfigDict()
  c.name = "celeba_jaffe"  # domain registry name (densesynth_jax/data/registry.py)
  c.attribute = "Smiling"  # the CelebA attribute of the category-level pairs
  c.attribute_name = "smiling"  # the ranker's attribute name (JAFFE pairs are evaluated as it)
  c.train_pairs = 500  # category-level train pairs (CelebA train split): the sparse budget
  c.val_pairs = 300  # category-level val pairs (CelebA val split): K / early stopping
  c.test_celeba_pairs = 500  # category-level pairs on CelebA's test split (in-domain check)
  c.strong_margin = 2.0  # JAFFE pairs for test_strong: |HAP difference| >= this (0: none)
  c.pair_seed = 0  # seed of the pair sampling (fixed: every method gets the same real pairs)
  c.celeba = celeba.default_config()
  c.celeba.strengths = "true"  # the ranker domain needs no pre-labelled strengths
  c.jaffe = jaffe.default_config()
  # One data_dir / image_size for both parts: set them here, not in the sub-blocks.
  c.data_dir = ""  # real-data folder holding celeba/ and jaffe/; "" = $DENSESYNTH_DATA_DIR
  c.image_size = 64  # output side of both parts, pixels
  return c


def build_domain(cfg: ml_collections.ConfigDict) -> Domain:
  """CelebA images then JAFFE images, with the pairs and splits of the module docstring."""
  t0 = time.perf_counter()
  sub = {}
  for part in ("celeba", "jaffe"):
    block = ml_collections.ConfigDict(cfg[part].to_dict())
    block.data_dir = cfg.data_dir or None
    block.image_size = int(cfg.image_size)
    sub[part] = block
  sub["jaffe"].test_attribute_name = cfg.attribute_name
  face = celeba.build_domain(sub["celeba"])
  test = jaffe.build_domain(sub["jaffe"])
  n = len(face.images)
  if cfg.attribute not in face.binary:
    raise KeyError(f"unknown CelebA attribute {cfg.attribute!r}; valid: {sorted(face.binary)}")
  own = face.binary[cfg.attribute]
  labels = own[:, None], (cfg.attribute,)
  rng = np.random.default_rng(int(cfg.pair_seed))
  name = cfg.attribute_name
  pairs = {}
  for split, budget in (("train", cfg.train_pairs), ("val", cfg.val_pairs),
                        ("test_celeba", cfg.test_celeba_pairs)):
    p = celeba.category_pairs(face, cfg.attribute, "test" if split == "test_celeba" else split,
                              int(budget), rng, labels=labels)
    pairs[split] = dataclasses.replace(p, attribute=name)
  pairs["test"] = test.pairs[name]["test"].offset(n)
  if cfg.strong_margin > 0:
    strong = jaffe.jaffe_test_pairs(test.images, cfg.jaffe.test_attribute,
                                    float(cfg.strong_margin), name)
    pairs["test_strong"] = strong.offset(n)
  images = ImageSet(np.concatenate([face.images.images, test.images.images]),
                    np.concatenate([face.images.ids, test.images.ids]), None, None, ())
  happy = np.asarray([e == "HA" for e in test.info["expressions"]], np.int8)
  binary = {name: np.concatenate([own, happy]).astype(np.int8)}
  splits = dict(train=face.splits["train"], val=face.splits["val"],
                test_celeba=face.splits["test"], test=n + test.splits["test"])
  info = dict(
      parts=dict(celeba=dict(face.info), jaffe=dict(test.info)), num_celeba=n,
      num_jaffe=len(test.images), attribute=cfg.attribute, attribute_name=name,
      pairs={split: len(p) for split, p in pairs.items()},
      pair_rule=dict(train="CelebA category pairs (attribute vs not), train split",
                     val="CelebA category pairs, val split",
                     test_celeba="CelebA category pairs, test split",
                     test=f"JAFFE within-poser pairs, |HAP difference| >= "
                          f"{float(cfg.jaffe.test_margin)}",
                     test_strong=f"the same, |HAP difference| >= {float(cfg.strong_margin)}"),
      build_seconds=round(time.perf_counter() - t0, 3))
  return Domain("celeba_jaffe", images, splits, {name: pairs}, info, binary)



def redraw_train_pairs(cfg: ml_collections.ConfigDict, domain: Domain, replicate: int
                       ) -> dict[str, PairSet]:
  """Replicate `replicate`'s train pairs: the same budget of CelebA category-level pairs among
  the CelebA train images, drawn with the stream (pair_seed, replicate); replicate 0 keeps the
  domain's own."""
  name = cfg.attribute_name
  if int(replicate) == 0:
    return {name: domain.pairs[name]["train"]}
  labels = np.asarray(domain.binary[name])[:, None], (cfg.attribute,)
  rng = np.random.default_rng([int(cfg.pair_seed), int(replicate)])
  p = celeba.category_pairs(domain, cfg.attribute, "train", int(cfg.train_pairs), rng,
                            labels=labels)
  return {name: dataclasses.replace(p, attribute=name)}
