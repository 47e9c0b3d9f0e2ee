"""The Attribute2Image generator (CVAE) on aligned CelebA faces (40 pre-labelled attributes).

  DENSESYNTH_DATA_DIR=/path/to/data python train_generator.py --config=configs/generator_celeba.py
  DENSESYNTH_DATA_DIR=/path/to/data python train_generator.py --config=configs/generator_celeba.py:smoke

The default is the paper's full-size model at 64×64 for ~100 epochs over the 8,000 train images
(a GPU job: 25,000 steps); `:smoke` trains a tiny model at 32×32 on the first 600 images on a
CPU. y is the 40 decision values of the appendix's pre-labelling classifiers
(data/prelabel.py); the control evaluation scores generated faces with classifiers trained on the
REAL images' own binary labels (generator/control.py).
"""

from configs.common import parse_arg, small_model
from densesynth_jax.data import celeba
from densesynth_jax.models import cvae
from densesynth_jax.generator import trainer as generator


def real_domain_config(data, eval_attributes, smoke: bool, limit: int, train_last: int,
                       val_last: int):
  """A generator config on a real domain; `smoke` shrinks data, model and steps for a CPU.

  `limit`, `train_last` and `val_last` are the domain's own smoke-size split (data/celeba.py
  counts images, data/shoes.py files per category).
  """
  config = generator.default_train_config()  # seed, optim, train, figures, eval (commented there)
  config.data = data  # the domain's data block; strengths pre-labelled
  config.model = cvae.default_config()  # the paper's CVAE at 64×64, z = 256
  config.train.num_epochs = 100  # the paper's ~100 epochs
  config.eval.attributes = eval_attributes  # spectra and control
  config.eval.identities = 64  # identities swept per attribute
  if smoke:
    config.data.image_size = 32  # decode and crop straight to the model's size
    config.data.limit = limit
    config.data.train_last = train_last
    config.data.val_last = val_last
    config.data.prelabel.on_one_class = "skip"  # rare attributes may have no positives
    config.model = small_model(image_size=32, z_dim=16, width=8)
    config.optim.lr = 1e-3  # few steps: a larger step than the paper's 3e-4
    config.train.num_steps = 300
    config.train.log_every = 50
    config.train.eval_every = 150
    config.train.checkpoint_every = 150
    config.eval.identities = 8
    config.eval.pixels_size = 16
    config.figures.identities = 3
  return config


def get_config(arg=None):
  arg = parse_arg(arg, smoke=False)
  # Smoke: images 1-400 train, 401-500 val, 501-600 test.
  return real_domain_config(celeba.default_config(), ("Smiling", "Mouth_Slightly_Open", "Male"),
                            arg.smoke, limit=600, train_last=400, val_last=500)
