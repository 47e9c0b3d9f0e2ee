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
  config.rankers = ("ranksvm_global", "ranksvm_local")  # registry in densesynth_jax/experiments/runner.py
  config.methods = ("real",)  # registry in densesynth_jax/experiments/methods.py
  config.attributes = ("smiling", "mouth_open", "eyes_open")  # attributes with real pairs
  config.seeds = (0,)  # results are mean ± std over these
  config.test_sets = ("test_fine", "test_coarse")  # the domain's test PairSets to evaluate on

  # The domain: procedural cartoon faces, clustered real strengths, simulated crowd labels.
  config.data = sprites.default_config()
  # Image features for the RankSVM rankers (GIST, Lab histogram, pixels).
  config.features = extract.default_config()

  config.ranksvm = ml_collections.ConfigDict()
  config.ranksvm.feature = "gist_lab"  # the paper's 990-d GIST + Lab (features/extract.py)
  config.ranksvm.C = 0.1  # RankSVM trade-off (RelAttr's default)
  config.ranksvm.max_iter = 10  # Newton steps (RelAttr: at most 10)
  config.ranksvm.standardize = True  # z-score features with the training pool's statistics
  config.ranksvm.k = 0  # local learning: neighbours per test pair; <= 0 chooses K on val pairs
  config.ranksvm.k_grid = (25, 50, 100, 200)  # the K candidates validated when k <= 0
  config.ranksvm.metric = "euclidean"  # neighbour distance: "euclidean" or "kissme" (learned)
  config.ranksvm.metric_rank = 32  # KISSME's PCA dimension
  config.ranksvm.chunk_size = 256  # test pairs solved together per compiled chunk

  config.figures = ml_collections.ConfigDict()
  config.figures.domain = True  # contact sheet and strength histograms of the domain
  config.figures.neighbours = True  # local rankers: test pairs with their nearest training pairs

  if arg.smoke:
    config.data.num_train_identities = 40
    config.data.num_val_identities = 8
    config.data.num_test_identities = 12
    config.data.train_pairs = 120
    config.data.val_pairs = 60
    config.data.test_fine_pairs = 150
    config.data.test_coarse_pairs = 150
  return config
