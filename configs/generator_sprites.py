"""The Attribute2Image generator (CVAE) on the embedded sprites domain: no data to download.

  python train_generator.py --config=configs/generator_sprites.py          # paper size (a GPU job)
  python train_generator.py --config=configs/generator_sprites.py:demo     # small, for 2 CPU cores
  python train_generator.py --config=configs/generator_sprites.py:smoke    # tiny, for tests

The generator conditions on all 7 sprite strengths (3 expressions + 4 appearance attributes);
its figures show spectra of the expressions and `generator_eval.json` measures how well each one
is controlled (an independent ridge regressor on real sprite pixels, generator/control.py).
`demo_generator_config()` is the small generator `configs/demo.py` trains before synthesising pairs.
What its settings were measured to do: README.md ("Generator control on sprites").
"""

import ml_collections

from configs.common import parse_arg, small_model
from densesynth_jax.data import sprites
from densesynth_jax.models import cvae
from densesynth_jax.generator import trainer as generator


def full_config() -> ml_collections.ConfigDict:
  """The paper's generator (64×64, z 256, widths 64–1024, ~100 epochs, batch 32) on sprites."""
  config = generator.default_train_config()  # seed, optim, train, figures, eval (commented there)
  config.data = sprites.default_config()  # the domain (data/sprites.py): 2,000 train images
  config.model = cvae.default_config()  # the paper's CVAE at 64×64, z = 256
  config.train.num_epochs = 100  # the paper's ~100 epochs (62 steps each here)
  config.eval.attributes = sprites.EXPRESSIONS  # spectra and control of the expressions
  return config


def demo_generator_config() -> ml_collections.ConfigDict:
  """A small generator that trains in minutes on 2 CPU cores and controls the expressions.

  32×32 (the paper's rule then downsizes the rankers' real images to 32×32 too), widths 16–128,
  z 16, 2,000 steps at lr 1e-3, trained on its own pool of 10,000 sprites (`generator_pool`).
  Two changes from the paper's loss make the attribute, not z, carry the smile (what each lever
  measured is in the README, "Generator control on sprites"):
  - a floor on the decoder's per-pixel log-variance (`model.logvar_min`), so that the model
    cannot discount the few mouth pixels by declaring them uncertain;
  - β > 1 on the KL term (`optim.kl_weight`), which squeezes z so that the decoder takes what y
    describes from y.
  """
  config = full_config()
  config.data = generator_pool(config.data)
  config.model = small_model(image_size=32, z_dim=16, width=16)
  config.model.logvar_min = -5.0  # per-pixel σ >= e^-2.5 ≈ 0.08 (images in [-1, 1])
  config.optim.lr = 1e-3  # a small model and few steps: a larger step than the paper's 3e-4
  config.optim.kl_weight = 16.0  # β of nll + β·KL (paper: 1)
  config.train.num_steps = 2000  # ~6 epochs of the 10,000 pool images
  config.train.log_every = 100
  config.train.eval_every = 500
  config.train.checkpoint_every = 500
  config.eval.identities = 48  # identities swept per attribute
  config.figures.identities = 6
  return config


# configs/demo.py imports the demo generator by this name.
demo_config = demo_generator_config


def generator_pool(data: ml_collections.ConfigDict, num_identities: int = 1000
                   ) -> ml_collections.ConfigDict:
  """The generator's own training images: a separate, larger pool of sprites.

  The paper trains its generator on a large image set kept apart from the sparse labelled pairs
  (11k LFW faces, 39k shoes). Here: `num_identities` × 10 images of NEW identities (seed + 1, so
  disjoint from the ranker domain's train, val and test identities), with the same CLUSTERED
  expression strengths as the real pool, at the domain's render size. Its crowd pairs are not
  used (kept small); its val / test identities serve the generator's validation and control
  evaluation.
  """
  pool = ml_collections.ConfigDict(data.to_dict())
  pool.seed = int(data.seed) + 1  # new identities: disjoint from every split of the run
  pool.num_train_identities = int(num_identities)
  pool.num_val_identities = 20
  pool.num_test_identities = 40
  pool.train_pairs = 40
  pool.val_pairs = 20
  pool.test_fine_pairs = 100
  pool.test_coarse_pairs = 100
  return pool


def smoke_config() -> ml_collections.ConfigDict:
  """Seconds on a CPU: a tiny model at 16×16 on a few identities (tests, pipeline smoke runs)."""
  config = full_config()
  config.data.num_train_identities = 40
  config.data.num_val_identities = 4
  config.data.num_test_identities = 8
  config.data.test_fine_pairs = 100
  config.data.test_coarse_pairs = 100
  config.model = small_model(image_size=16, z_dim=8, width=8)
  config.optim.lr = 1e-3
  config.train.num_steps = 200
  config.train.log_every = 50
  config.train.eval_every = 100
  config.train.checkpoint_every = 100
  config.eval.identities = 8
  config.eval.pixels_size = 16
  config.figures.identities = 3
  return config


def get_config(arg=None):
  arg = parse_arg(arg, smoke=False, demo=False)
  if arg.smoke and arg.demo:
    raise ValueError("choose one of the variants :smoke and :demo")
  return smoke_config() if arg.smoke else demo_generator_config() if arg.demo else full_config()
