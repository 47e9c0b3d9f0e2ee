"""The embedded default: the whole pipeline on procedural "sprites" faces, no downloads.

  python train_ranker.py --config=configs/demo.py            # 3 replicates, smiling, on a CPU
  python train_ranker.py --config=configs/demo.py:full       # 5 replicates, all 3 expressions
  python train_ranker.py --config=configs/demo.py:smoke      # tiny, for tests
  python train_ranker.py --config=configs/demo.py:active     # active verification's budget sweep

Sprites have KNOWN attribute strengths, so every number here is measured against the truth. The
run trains a small generator into <workdir>/generator on its own pool of sprites (or reuses it),
synthesises ±δσ pairs per attribute, verifies them with a simulated crowd, and compares every
method on the same real pairs, replicate by replicate (each replicate redraws the sparse real
training pairs). `dsynth_auto_oracle` is DSynth-Auto with the sprite renderer as a PERFECT
generator: a reference row, the ceiling of what semantic jitter gives here.

`:active` compares active verification (synth/active.py) with random verification at equal human
budgets on `eyes_open`, the expression whose auto labels the simulated crowd changes most (about
1 in 6 of its synthetic pairs flipped or rejected; on smiling 1 in 40): DSynth-Auto (budget 0),
B = 30 and 100 of its 300 synthetic pairs verified (the top by each scorer, or at random), all
300 verified, and Real and DSynth for reference. Same generator as the default (pass
`--workdir=runs/demo` to reuse the default's).

Measured run times and results of each variant: README.md (quick start, demo tables).
"""

import copy

from configs import generator_sprites
from configs.common import parse_arg
from configs.experiment import experiment_config
from densesynth_jax.data import sprites


def get_config(arg=None):
  arg = parse_arg(arg, smoke=False, full=False, active=False)
  if arg.smoke + arg.full + arg.active > 1:
    raise ValueError("choose one of the variants :smoke, :full and :active")
  # The domain: procedural cartoon faces, clustered real strengths, simulated crowd labels.
  data = sprites.default_config()
  # The run's pre-label classifier (Real+, the Classifier baseline): GIST + Lab at the rankers'
  # resolution. Sprites keep their true strengths, so this recipe pre-labels nothing else here.
  data.prelabel.feature = "gist_lab"
  data.prelabel.C = 1.0
  data.prelabel.pca_dim = 128
  # The generator trains on its own, larger pool of sprites (new identities, same clustered
  # strengths), kept apart from the sparse labelled pairs as in the paper.
  generator = generator_sprites.demo_config()
  generator.data = generator_sprites.generator_pool(data)
  # Attributes with real pairs (:full runs all three expressions); the domain's test PairSets.
  config = experiment_config(data, generator, attributes=("smiling",),
                             test_sets=("test_fine", "test_coarse"))  # configs/experiment.py

  config.rankers = ("ranksvm_local", "deepstn")  # add "ranksvm_global" for RelAttr's global one
  config.methods = ("real", "real_plus", "jitter", "dsynth", "dsynth_auto",
                    "dsynth_auto_oracle", "classifier")
  config.seeds = (0, 1, 2)  # replicates: each redraws the real train pairs and every training draw

  # Semantic jitter inside the strengths the generator has seen: clip y, y ± δσ to the training
  # range, and use only pairs whose generating strengths differ by at least one step δσ (after
  # clipping; inter-identity pairs can be closer than that by chance). See synth/jitter.py.
  config.synth.jitter.range_policy = "clip"
  config.synth.jitter.min_gap = 1.0
  config.synth.jitter.num_identities = 800  # identities per attribute
  config.synth.jitter.num_pairs = 1200  # synthetic pairs per attribute (≥ what pools draw)
  # Prior-sampled control of every expression -> synth/prior_control.json.
  config.synth.control_attributes = sprites.EXPRESSIONS

  # DeepSTN from scratch on 2 CPU cores at the rankers' 32×32: a few epochs, 2 test views.
  config.deepstn.image_size = 32  # the rankers' resolution (the paper's rule, rank_image_size)
  config.deepstn.patch_size = 16
  config.deepstn.stn_epochs = 3  # epochs of the STN-only stage
  config.deepstn.combined_epochs = 5  # epochs of the combined stage
  config.deepstn.test_crops = 2  # views summed per test image: centre + mirror (paper: 10)

  if arg.full:
    config.attributes = sprites.EXPRESSIONS
    config.seeds = (0, 1, 2, 3, 4)
  if arg.active:
    config.attributes = ("eyes_open",)
    n = int(round(config.pools.synth_ratio * config.data.train_pairs))  # DSynth-Auto's pairs
    budgets = (30, 100)  # 10% and a third of the n = 300 synthetic pairs
    config.methods = ("real", "dsynth_auto", "dsynth",
                      *[m for b in budgets for m in (f"dsynth_active_real_margin@{b}",
                                                     f"dsynth_active_measure@{b}",
                                                     f"dsynth_random@{b}")],
                      f"dsynth_random@{n}")  # all n verified (active or random alike)
    # The `measure` scorer measures on pixels, NOT on the GIST + Lab features whose measurement
    # the simulated crowd perceives (verification.measure_feature): on those it would see what
    # the crowd sees, which no scorer of real people's answers can.
    config.active.measure_feature = "pixels"
  if arg.smoke:
    config.rankers = ("ranksvm_local",)
    config.seeds = (0,)
    config.data.num_train_identities = 40
    config.data.num_val_identities = 8
    config.data.num_test_identities = 12
    config.data.train_pairs = 120
    config.data.val_pairs = 60
    config.data.test_fine_pairs = 150
    config.data.test_coarse_pairs = 150
    config.generator = generator_sprites.get_config("smoke")
    # The smoke generator trains on the smoke domain's own settings: a copy, not an alias, so a
    # later change to config.data leaves the generator's block as it is here.
    config.generator.data = copy.deepcopy(config.data)
    config.synth.jitter.num_identities = 120  # min_gap drops some of their candidate pairs
    config.synth.jitter.num_pairs = 240
    config.synth.control_attributes = ()
    config.ranksvm.k_grid = (25, 50)
    config.deepstn.stn_epochs = 1
    config.deepstn.combined_epochs = 1
    config.deepstn.cnn_channels = (8, 16, 16, 16)
  return config
