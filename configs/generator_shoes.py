"""The Attribute2Image generator (CVAE) on 15,000 UT-Zap50K catalogue shoes (categories + measures).

  DENSESYNTH_DATA_DIR=/path/to/data python train_generator.py --config=configs/generator_shoes.py
  DENSESYNTH_DATA_DIR=/path/to/data python train_generator.py --config=configs/generator_shoes.py:smoke

The default is the paper's full-size model at 64×64 for ~100 epochs (a GPU job); `:smoke` trains
a tiny model at 32×32 on 200 shoes per category on a CPU. y is the 3 category
decision values (pre-labelled) and 5 image measures of data/shoes.py; the control evaluation
scores generated shoes with ridge regressors trained on the REAL images' measures
(generator/control.py).
"""

from configs.common import parse_arg
from configs.generator_celeba import real_domain_config
from densesynth_jax.data import shoes


def get_config(arg=None):
  arg = parse_arg(arg, smoke=False)
  # Smoke: the first 200 files of each category; N <= 140 train, <= 170 val, the rest test.
  return real_domain_config(shoes.default_config(), shoes.MEASURES, arg.smoke, limit=200,
                            train_last=140, val_last=170)
