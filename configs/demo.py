"""The embedded default: the whole pipeline on procedural "sprites" faces, no downloads.

  python train_ranker.py --config=configs/demo.py            # a few minutes on 2 CPU cores
  python train_ranker.py --config=configs/demo.py:smoke      # about a minute, for tests

Sprites have KNOWN attribute strengths, so every number here is measured against the truth.
"""

import ml_collections

from configs.common import parse_arg
from densesynth_jax.data import sprites
from densesynth_jax.features import extract


def get_config(arg=None):
  arg = parse_arg(arg, smoke=False)
  config = ml_collections.ConfigDict()

  # Which cells run: every (ranker, method, attribute, seed) combination.
  config.rankers = ("ranksvm_global",)  # registry in densesynth_jax/experiments/runner.py
  config.methods = ("real",)  # registry in densesynth_jax/experiments/methods.py
  config.attributes = ("smiling", "mouth_open", "eyes_open")  # attributes with real pairs
  config.seeds = (0,)  # results are mean ± std over these
  config.test_sets = ("test_fine", "test_coarse")  # the domain's test PairSets to evaluate on

  # The domain: procedural cartoon faces, clustered real strengths, simulated crowd labels.
  config.data = sprites.default_config()
  # Image features for the RankSVM rankers (GIST, Lab histogram, pixels).
  config.features = extract.default_config()

  config.ranksvm = ml_collections.ConfigDict()
  config.ranksvm.feature = "pixels"  # feature name from densesynth_jax/features/extract.py
  config.ranksvm.C = 0.1  # RankSVM trade-off (RelAttr's default)
  config.ranksvm.max_iter = 10  # Newton steps (RelAttr: at most 10)
  config.ranksvm.standardize = True  # z-score features with the training pool's statistics

  config.figures = ml_collections.ConfigDict()
  config.figures.domain = True  # contact sheet and strength histograms of the domain

  if arg.smoke:
    config.data.num_train_identities = 40
    config.data.num_val_identities = 8
    config.data.num_test_identities = 12
    config.data.train_pairs = 120
    config.data.val_pairs = 60
    config.data.test_fine_pairs = 150
    config.data.test_coarse_pairs = 150
  return config
