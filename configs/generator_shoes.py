"""The Attribute2Image generator on the 15,000 UT-Zap50K catalogue shoes (category one-hots + image measures).

  DENSESYNTH_DATA_DIR=/path/to/data python train_generator.py --config=configs/generator_shoes.py
  DENSESYNTH_DATA_DIR=/path/to/data python train_generator.py --config=configs/generator_shoes.py:smoke

The default is the paper's full-size model at 64×64 for ~100 epochs (a GPU job); `:smoke` trains
a tiny model at 32×32 on the first images for a minute on a CPU.
"""

from configs.common import parse_arg
from configs.generator_celeba import real_domain_config
from densesynth_jax.data import shoes


def get_config(arg=None):
  arg = parse_arg(arg, smoke=False)
  # limit / train_last / val_last count files per category (data/shoes.py).
  return real_domain_config(shoes.default_config(), (), arg.smoke, limit=200, train_last=140,
                            val_last=170)
