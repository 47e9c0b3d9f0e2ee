"""The embedded default: the whole pipeline on procedural "sprites" faces, no downloads.

  python train_ranker.py --config=configs/demo.py            # about 14 minutes on 2 CPU cores
  python train_ranker.py --config=configs/demo.py:smoke      # about a minute, for tests

Sprites have KNOWN attribute strengths, so every number here is measured against the truth. The
run trains a small generator into <workdir>/generator (or reuses it), synthesises ±2σ pairs per
attribute, verifies them with a simulated crowd, and compares every method on the same real pairs.
"""

from configs import generator_sprites
from configs.common import parse_arg
from configs.experiment import experiment_config
from densesynth_jax.data import sprites


def get_config(arg=None):
  arg = parse_arg(arg, smoke=False)
  # The domain: procedural cartoon faces, clustered real strengths, simulated crowd labels. The
  # generator is trained on the run's own real images.
  data = sprites.default_config()
  generator = generator_sprites.demo_config()
  generator.data = data
  config = experiment_config(data, generator)  # shared blocks, commented in configs/experiment.py

  config.rankers = ("ranksvm_local", "deepstn")  # add "ranksvm_global" for RelAttr's global one
  # Attributes with real pairs; add "mouth_open", "eyes_open" for the other two expressions
  # (each adds about as much time again), e.g. --config.attributes='("smiling","eyes_open")'.
  config.attributes = ("smiling",)
  config.test_sets = ("test_fine", "test_coarse")  # the domain's test PairSets to evaluate on

  # DeepSTN from scratch on 2 CPU cores: a few epochs, fewer test crops than the paper's 10.
  config.deepstn.stn_epochs = 3  # epochs of the STN-only stage
  config.deepstn.combined_epochs = 5  # epochs of the combined stage
  config.deepstn.test_crops = 2  # views summed per test image: centre + mirror (paper: 10)
  config.synth.jitter.num_identities = 600  # identities per attribute
  config.synth.jitter.num_pairs = 1200  # synthetic pairs per attribute (≥ what pools draw)

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
