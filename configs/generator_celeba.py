"""The Attribute2Image generator on the 10,000 aligned CelebA faces (40 pre-labelled attributes).

  DENSESYNTH_DATA_DIR=/path/to/data python train_generator.py --config=configs/generator_celeba.py
  DENSESYNTH_DATA_DIR=/path/to/data python train_generator.py --config=configs/generator_celeba.py:smoke

The default is the paper's full-size model at 64×64 for ~100 epochs (a GPU job); `:smoke` trains
a tiny model at 32×32 on the first images for a minute on a CPU.
"""

from configs.common import parse_arg
from configs.generator_sprites import small_model
from densesynth_jax.data import celeba
from densesynth_jax.models import cvae
from densesynth_jax.train import generator


def real_domain_config(data, eval_attributes, smoke: bool, limit: int, train_last: int,
                       val_last: int):
  """A generator config on a real domain; `smoke` shrinks data, model and steps for a CPU."""
  config = generator.default_train_config()
  config.data = data  # the domain's data block; strengths pre-labelled
  config.model = cvae.default_config()  # the paper's CVAE at 64×64, z = 256
  config.eval.attributes = eval_attributes  # () = every graded strength column
  config.eval.identities = 64
  if smoke:
    config.data.limit = limit
    config.data.train_last = train_last
    config.data.val_last = val_last
    config.data.prelabel.on_one_class = "skip"  # rare attributes may have no positives
    config.model = small_model(image_size=32, z_dim=16, width=8)
    config.train.num_steps = 100
    config.train.log_every = 25
    config.train.eval_every = 100
    config.train.checkpoint_every = 50
    config.eval.identities = 8
    config.figures.identities = 3
  return config


def get_config(arg=None):
  arg = parse_arg(arg, smoke=False)
  return real_domain_config(celeba.default_config(), ("Smiling", "Mouth_Slightly_Open", "Male"),
                            arg.smoke, limit=600, train_last=400, val_last=500)
