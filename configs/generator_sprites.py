"""The Attribute2Image generator on the embedded sprites domain.

  python train_generator.py --config=configs/generator_sprites.py        # full size (GPU)
  python train_generator.py --config=configs/generator_sprites.py:demo   # minutes on a CPU
  python train_generator.py --config=configs/generator_sprites.py:smoke  # about a minute

The generator conditions on all 7 sprite strengths (3 expressions + 4 appearance attributes).
"""

import ml_collections

from configs.common import parse_arg
from densesynth_jax.data import sprites
from densesynth_jax.models import cvae
from densesynth_jax.train import generator


def small_model(image_size: int, z_dim: int, width: int) -> ml_collections.ConfigDict:
  """The paper's architecture with every width scaled down (for CPU runs)."""
  m = cvae.default_config()
  m.image_size = image_size
  m.z_dim = z_dim
  m.enc_widths = (width, 2 * width, 2 * width)
  m.enc_top = 2 * width
  m.enc_fc = 8 * width
  m.y_enc = 4 * width
  m.y_dec = 4 * width
  m.dec_fc = 4 * width
  m.dec_base = 2 * width
  m.dec_widths = (2 * width, 2 * width, width)
  return m


def demo_config() -> ml_collections.ConfigDict:
  """A small generator that trains in minutes on 2 CPU cores and visibly controls expressions."""
  config = generator.default_train_config()
  config.data = sprites.default_config()
  config.model = small_model(image_size=32, z_dim=16, width=16)
  config.train.num_steps = 2000
  config.train.batch_size = 32
  config.train.log_every = 100
  config.train.eval_every = 1000
  config.train.checkpoint_every = 1000
  config.optim.lr = 1e-3  # a small model and few steps: a larger step than the paper's 3e-4
  config.eval.attributes = sprites.EXPRESSIONS
  config.eval.identities = 48
  return config


def get_config(arg=None):
  arg = parse_arg(arg, smoke=False, demo=False)
  if arg.demo:
    return demo_config()
  config = generator.default_train_config()
  config.data = sprites.default_config()  # the domain (data/sprites.py)
  config.model = cvae.default_config()  # the paper's CVAE at 64×64, z = 256
  config.eval.attributes = sprites.EXPRESSIONS
  if arg.smoke:
    config.data.num_train_identities = 40
    config.data.num_val_identities = 4
    config.data.num_test_identities = 8
    config.data.test_fine_pairs = 100
    config.data.test_coarse_pairs = 100
    config.model = small_model(image_size=16, z_dim=8, width=8)
    config.train.num_steps = 60
    config.train.log_every = 20
    config.train.eval_every = 60
    config.train.checkpoint_every = 30
    config.eval.identities = 8
    config.figures.identities = 3
  return config
