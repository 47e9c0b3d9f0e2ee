"""Real shoes: rankers of "open" trained and tested on category-ordered UT-Zap50K shoes.

  DENSESYNTH_DATA_DIR=/path/to/data python train_ranker.py --config=configs/shoes_open.py
  DENSESYNTH_DATA_DIR=/path/to/data python train_ranker.py --config=configs/shoes_open.py:smoke

The domain (densesynth_jax/data/shoes_open.py): the 15,000 catalogue shoes with pairs of two
different categories ordered Sandal > Shoe > Boot (the official crowd labels agree on 98.7% of
such pairs): 500 train, 300 val, 1,000 test pairs from the file-number splits. Read that
module's docstring for what this test can and cannot show (category-level openness only).

Synthetic pairs: the generator (configs/generator_shoes.py; here a reduced model at 32×32 that
trains in minutes on a CPU, `:full_generator` for the paper's size) is conditioned on the three
category strengths and five image measures; "open" is jittered through its Sandal strength
(±2σ: a shoe made more or less sandal-like), `synth.attribute_map`.

Resolution (the paper's rule, `rank_image_size` = 0): the rankers see every image, real and
synthetic, at the generator's side: 32×32 with the reduced generator, 64×64 (the paper's shoes)
with `:full_generator`.
"""

from configs import generator_shoes
from configs.common import parse_arg, small_model
from configs.experiment import experiment_config, reduce_generator_for_cpu
from densesynth_jax.data import shoes, shoes_open


def get_config(arg=None):
  arg = parse_arg(arg, smoke=False, full_generator=False)
  data = shoes_open.default_config()
  generator = generator_shoes.get_config()  # the paper's CVAE on the 15k shoes
  generator.data = shoes.default_config()  # the generator's own domain (no pairs needed)
  if not arg.full_generator:
    reduce_generator_for_cpu(generator, num_steps=4000)  # ~10 epochs of the 12,000 train shoes
  config = experiment_config(data, generator, attributes=("open",),
                             test_sets=("test",))  # shared blocks, commented in experiment.py
  config.seeds = (0, 1, 2)  # replicates: each redraws the real train pairs (tables: mean ± std, Δ)

  config.synth.attribute_map = {"open": "Sandal"}  # ranker attribute -> generator attribute
  config.synth.jitter.num_identities = 500  # synthetic identities
  config.synth.jitter.num_pairs = 1000  # synthetic pairs (≥ what pools draw: 500 real pairs)
  config.deepstn.scale_init = 0.4  # the paper's shoes setting
  config.deepstn.stn_epochs = 3
  config.deepstn.combined_epochs = 5
  config.figures.domain = False  # "open" has no graded strength to plot

  if arg.smoke:
    config.seeds = (0,)
    for block in (config.data, config.generator.data):
      block.limit = 200  # the first 200 files of each category
      block.train_last = 140  # N <= 140 train, <= 170 val, the rest test
      block.val_last = 170
      block.prelabel.on_one_class = "skip"
    config.data.train_pairs = 120
    config.data.val_pairs = 60
    config.data.test_pairs = 150
    config.rankers = ("ranksvm_local",)
    config.methods = ("real", "dsynth", "dsynth_auto", "classifier")
    config.generator.model = small_model(image_size=32, z_dim=16, width=8)
    config.generator.train.num_steps = 100
    config.generator.train.eval_every = 100
    config.generator.train.checkpoint_every = 100
    config.generator.eval.identities = 8
    config.generator.figures.identities = 3
    config.synth.jitter.num_identities = 60
    config.synth.jitter.num_pairs = 120
    config.ranksvm.k_grid = (25, 50)
  return config
