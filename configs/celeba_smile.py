"""Real faces: rankers trained on CelebA "smiling" pairs (+ synthetic ones), tested on JAFFE.

  DENSESYNTH_DATA_DIR=/path/to/data python train_ranker.py --config=configs/celeba_smile.py
  DENSESYNTH_DATA_DIR=/path/to/data python train_ranker.py --config=configs/celeba_smile.py:smoke

The domain (densesynth_jax/data/celeba_jaffe.py): 500 category-level CelebA training pairs (a
face labelled Smiling vs one labelled not: the sparse, coarse supervision), 300 val pairs, and
the TEST on real, human-rated faces: JAFFE within-poser pairs whose mean HAP ratings differ by
at least 0.5 (1,272 pairs; `test_strong`: the 474 differing by at least 2.0), plus an in-domain
check on CelebA test-split category pairs.

The generator is the Attribute2Image CVAE trained on the 8,000 CelebA train faces with 40
pre-labelled strengths (configs/generator_celeba.py). The default trains a reduced model at
32×32 (widths 16–128, z 32, 4,000 steps: ~16 epochs) that fits a 2-core CPU in minutes;
`:full_generator` uses the paper's full-size generator (64×64, z 256, ~100 epochs: a GPU job).
A generator trained beforehand is reused when its config matches:

  python train_generator.py --config=configs/generator_celeba.py --workdir=runs/gen_celeba
  python train_ranker.py --config=configs/celeba_smile.py:full_generator \
      --config.synth.generator_workdir=runs/gen_celeba

DSynth's verification is SIMULATED (5 noisy workers perceiving an independent measure: a
logistic classifier of CelebA's own Smiling labels on GIST + Lab features, features/measure.py);
`verification.mode="human"` uses answers collected with synth/verify.py instead.

Resolution (the paper's rule, `rank_image_size` = 0): the rankers see every image, real and
synthetic, at the generator's side: 32×32 with the reduced generator (the paper's faces are
35×35), 64×64 with `:full_generator`. `--config.rank_image_size=64` keeps the real images at 64.
"""

from configs import generator_celeba
from configs.common import parse_arg
from configs.experiment import experiment_config, reduce_generator_for_cpu
from densesynth_jax.data import celeba, celeba_jaffe


def get_config(arg=None):
  arg = parse_arg(arg, smoke=False, full_generator=False)
  data = celeba_jaffe.default_config()  # CelebA train / val pairs, JAFFE test pairs
  generator = generator_celeba.get_config()  # the paper's CVAE on CelebA (40 pre-labels)
  generator.data = celeba.default_config()  # the generator's own domain: all 8,000 train faces
  if not arg.full_generator:
    reduce_generator_for_cpu(generator, num_steps=4000)  # ~16 epochs of the 8,000 train faces
  # JAFFE HAP pairs (margin 0.5; and 2.0: mostly smiling vs not); CelebA category pairs.
  config = experiment_config(data, generator, attributes=("smiling",),
                             test_sets=("test", "test_strong", "test_celeba"))  # experiment.py
  config.seeds = (0, 1, 2)  # replicates: each redraws the real train pairs (tables: mean ± std, Δ)

  config.synth.attribute_map = {"smiling": "Smiling"}  # ranker attribute -> generator attribute
  config.synth.jitter.num_identities = 500  # synthetic identities
  config.synth.jitter.num_pairs = 1000  # synthetic pairs (≥ what pools draw: 500 real pairs)
  config.deepstn.scale_init = 0.33  # the paper's faces setting (patch ≈ a third of the image)
  config.deepstn.stn_epochs = 3
  config.deepstn.combined_epochs = 5
  config.figures.domain = False  # the domain has no graded strengths to plot

  if arg.smoke:
    config.seeds = (0,)
    config.data.celeba.limit = 600  # images 1-400 train, 401-500 val, 501-600 test
    config.data.celeba.train_last = 400
    config.data.celeba.val_last = 500
    config.data.train_pairs = 120
    config.data.val_pairs = 60
    config.data.test_celeba_pairs = 60
    config.data.jaffe.test_margin = 2.0  # 474 JAFFE pairs
    config.data.strong_margin = 3.0
    config.rankers = ("ranksvm_local",)
    config.methods = ("real", "dsynth", "dsynth_auto", "classifier")
    config.generator = generator_celeba.get_config("smoke")
    config.generator.data.image_size = 64  # render at the ranker domain's size
    config.generator.train.num_steps = 100
    config.synth.jitter.num_identities = 60
    config.synth.jitter.num_pairs = 120
    config.ranksvm.k_grid = (25, 50)
  return config
