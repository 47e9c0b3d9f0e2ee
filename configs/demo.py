"""The embedded default: the whole pipeline on procedural "sprites" faces, no downloads.

  python train_ranker.py --config=configs/demo.py            # minutes on 2 CPU cores
  python train_ranker.py --config=configs/demo.py:smoke      # about a minute, for tests

Sprites have KNOWN attribute strengths, so every number here is measured against the truth. The
run trains a small generator into <workdir>/generator (or reuses it), synthesises ±2σ pairs per
attribute, verifies them with a simulated crowd, and compares every method on the same real pairs.
"""

import ml_collections

from configs import generator_sprites
from configs.common import parse_arg
from densesynth_jax.data import sprites
from densesynth_jax.experiments import assets, methods
from densesynth_jax.features import extract
from densesynth_jax.synth import pipeline
from densesynth_jax.train import ranker as deepstn


def get_config(arg=None):
  arg = parse_arg(arg, smoke=False)
  config = ml_collections.ConfigDict()

  # Which cells run: every (ranker, method, attribute, seed) combination.
  # Registry in densesynth_jax/experiments/runner.py; add "deepstn" for the Siamese STN ranker
  # (minutes per cell on a CPU).
  config.rankers = ("ranksvm_global", "ranksvm_local")
  config.methods = ("real", "real_plus", "jitter", "dsynth", "dsynth_auto", "classifier")
  config.attributes = ("smiling", "mouth_open", "eyes_open")  # attributes with real pairs
  config.seeds = (0,)  # results are mean ± std over these, e.g. --config.seeds='(0,1,2)'
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

  # DeepSTN (densesynth_jax/train/ranker.py): a small CNN from scratch at 64×64 on CPU.
  config.deepstn = deepstn.default_config()
  config.deepstn.stn_epochs = 4  # epochs of the STN-only stage
  config.deepstn.combined_epochs = 6  # epochs of the combined stage
  config.deepstn.lr = 0.01  # from scratch on CPU: 1e-3 (the paper's, for fine-tuning) is too slow

  # The generator (trained into <workdir>/generator when missing) and semantic jitter.
  config.generator = generator_sprites.demo_config()
  config.generator.data = config.data  # trained on the run's own real images
  config.synth = pipeline.default_config()
  config.synth.jitter.num_identities = 600  # identities per attribute
  config.synth.jitter.num_pairs = 1200  # synthetic pairs per attribute (≥ what pools draw)
  config.verification = pipeline.verification_config()  # DSynth: simulated crowd of 5
  config.pools = methods.default_config()  # synthetic-to-real ratio, DSynth's real share, jitter
  config.assets = assets.default_config()  # the pre-label classifier (Real+, Classifier)

  config.figures = ml_collections.ConfigDict()
  config.figures.domain = True  # contact sheet and strength histograms of the domain
  config.figures.neighbours = True  # local rankers: test pairs with their nearest training pairs
  config.figures.synth = True  # synthetic spectra and pairs per attribute

  if arg.smoke:
    config.rankers = ("ranksvm_local",)
    config.attributes = ("smiling",)
    config.data.num_train_identities = 40
    config.data.num_val_identities = 8
    config.data.num_test_identities = 12
    config.data.train_pairs = 120
    config.data.val_pairs = 60
    config.data.test_fine_pairs = 150
    config.data.test_coarse_pairs = 150
    config.generator = generator_sprites.get_config("smoke")
    config.generator.data = config.data
    config.synth.jitter.num_identities = 60
    config.synth.jitter.num_pairs = 120
    config.ranksvm.k_grid = (25, 50)
    config.deepstn.stn_epochs = 1
    config.deepstn.combined_epochs = 1
    config.deepstn.cnn_channels = (8, 16, 16, 16)
  return config
