"""The Attribute2Image generator on the 15,000 UT-Zap50K catalogue shoes (category one-hots + image measures).

  DENSESYNTH_DATA_DIR=/path/to/data python train_generator.py --config=configs/generator_shoes.py
  DENSESYNTH_DATA_DIR=/path/to/data python train_generator.py --config=configs/generator_shoes.py:smoke

The default is the paper's full-size model at 64×64 for ~100 epochs (a GPU job); `:smoke` trains
a tiny model at 32×32 on the first images for a minute on a CPU.
"""

from configs.common import parse_arg
from configs.generator_sprites import small_model
from densesynth_jax.data import shoes
from densesynth_jax.models import cvae
from densesynth_jax.train import generator


def get_config(arg=None):
  arg = parse_arg(arg, smoke=False)
  config = generator.default_train_config()
  config.data = shoes.default_config()  # the domain (data/shoes.py); strengths pre-labelled
  config.model = cvae.default_config()  # the paper's CVAE at 64×64, z = 256
  config.eval.attributes = ()  # () = every graded strength column
  config.eval.identities = 64
  if arg.smoke:
    config.data.limit = 200  # per category
    config.data.train_last = 140
    config.data.val_last = 170
    config.data.prelabel.on_one_class = "skip"  # rare attributes may have no positives
    config.model = small_model(image_size=32, z_dim=16, width=8)
    config.train.num_steps = 100
    config.train.log_every = 25
    config.train.eval_every = 100
    config.train.checkpoint_every = 50
    config.eval.identities = 8
    config.figures.identities = 3
  return config
