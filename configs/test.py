"""A tiny config for the test suite: 32x32 sprites, few identities, sized for a CPU.

  python train_ranker.py --config=configs/test.py --workdir=/tmp/densesynth_test
"""

import copy

from configs import demo


def get_config(arg=None):
  del arg
  config = demo.get_config("smoke")
  config.rankers = ("ranksvm_global", "ranksvm_local")
  config.methods = ("real",)
  config.attributes = ("smiling", "mouth_open")
  config.data.image_size = 32  # small images: cheap rendering and features
  config.data.num_train_identities = 16
  config.data.num_val_identities = 4
  config.data.num_test_identities = 6
  config.data.images_per_identity = 6
  config.data.train_pairs = 60
  config.data.val_pairs = 30
  config.data.test_fine_pairs = 60
  config.data.test_coarse_pairs = 60
  config.generator.data = copy.deepcopy(config.data)  # the generator trains on this tiny domain
  config.features.pixels_size = 8  # 8x8x3 = 192-d pixel features
  config.features.gist_image_size = 32  # GIST at the images' own size
  config.ranksvm.feature = "pixels"  # cheap features keep the end-to-end test fast
  config.ranksvm.k_grid = (10, 30)  # few candidates for local K
  return config


def tiny_deepstn(config):
  """`config` with the DeepSTN ranker only, at its smallest, for a CPU."""
  config.rankers = ("deepstn",)
  config.attributes = ("smiling",)
  config.deepstn.image_size = 32
  config.deepstn.patch_size = 16
  config.deepstn.cnn_channels = (4, 8, 8, 8)
  config.deepstn.stn_epochs = 1
  config.deepstn.combined_epochs = 1
  config.deepstn.test_crops = 2
  config.deepstn.xla_fast_compile = True
  return config
