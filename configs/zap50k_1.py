"""UT-Zap50K-1: the official coarse pairs, 10 train/test splits with 300 test pairs each.

  DENSESYNTH_DATA_DIR=/path/to/data python train_ranker.py --config=configs/zap50k_1.py:split=0
  for s in 0 1 2 3 4 5 6 7 8 9; do      # the protocol's number: mean accuracy over the 10 splits
    python train_ranker.py --config=configs/zap50k_1.py:split=$s --workdir=runs/zap50k_1/split$s
  done
  python -m densesynth_jax.experiments.tables runs/zap50k_1/split* --out=runs/zap50k_1  # mean ± std
  python train_ranker.py --config=configs/zap50k_1.py:smoke          # "open", 100 pairs, CPU
  python train_ranker.py --config=configs/zap50k_1.py:open_sandal    # + DSynth-Auto, see below

Data (densesynth_jax/data/labelpack_domains.py, domain "zap50k"): the label pack
<data_dir>/ut-zap50k-labels/ and the OFFICIAL UT-Zap50K images, which the user places at
<data_dir>/ut-zap50k-images/ (the unzipped ut-zap50k-images zip) or names with
--config.data.image_root=/path; without them the run stops at once, with one line listing what
to put where. The protocol has no val set: local RankSVM's K is chosen (and DeepSTN
early-stopped) on a seeded 10% hold-out of the split's training pairs, which the rankers then
do not train on.

Methods: Real and Jitter. The others cannot sensibly run on this domain:
- DSynth and DSynth-Auto synthesise pairs by moving the GENERATOR's strength of the ranked
  attribute by ±2σ (synth/jitter.py); `synth.attribute_map` only renames, it cannot invent or
  flip a column. The project's shoes generator (config.generator = configs/generator_shoes.py)
  is conditioned on Boot, Sandal, Shoe, colourfulness, darkness, height, fill and aspect
  (data/shoes.py): nothing for pointy, sporty or comfort, and for open only proxies ("fill" even
  runs the opposite way: an open shoe leaves its bounding box emptier). The paper's generator
  was conditioned on these words themselves, pre-labelled from its new lexicon pairs on 38,866
  UT-Zap50K images (its appendix); neither those labels nor those images' paths are available.
- DSynth's simulated verification (features/measure.py) and Real+ / Classifier (the pre-label
  classifier, experiments/assets.py) fit a model to the RUN domain's per-image strengths or
  binary labels; the label pack has pairwise labels only, so there is nothing to fit.
`:open_sandal` runs the one defensible proxy: "open" only, adding DSynth-Auto with the shoes
generator's Sandal strength (sandals are the open category: 615 of the 623 official "open"
pairs between a Boots, Shoes or Sandals image and one of another of these folders order them
Sandal > Shoe > Boot). The generator is trained into <workdir>/generator first (a GPU job;
reuse one with --config.synth.generator_workdir). Read its numbers as "sandal-ness pairs help
openness", not as the paper's DSynth-Auto.
"""

import ml_collections

from configs import generator_shoes
from configs.common import parse_arg
from configs.experiment import experiment_config
from densesynth_jax.data import labelpack_domains


def zap50k_experiment(protocol: int, arg) -> ml_collections.ConfigDict:
  """The UT-Zap50K experiment of `protocol` (1 or 2); `arg` as in get_config (module docstring).

  Shared by configs/zap50k_1.py and configs/zap50k_2.py.
  """
  arg = parse_arg(arg, split=0, smoke=False, open_sandal=False)
  data = labelpack_domains.zap50k_config()  # official pairs + the user's official images
  data.protocol = protocol
  data.split = arg.split  # protocol 1: the official split 0-9
  # Attributes: open, pointy, sporty, comfort. Test: protocol 1: the split's 300 pairs; 2: the
  # fine-grained pairs.
  config = experiment_config(data, generator_shoes.get_config(), attributes=data.attributes,
                             test_sets=("test",))  # shared blocks: configs/experiment.py

  config.rankers = ("ranksvm_local", "deepstn")  # FG-LP-style local RankSVM and DeepSTN
  config.methods = ("real", "jitter")  # the methods that apply here (module docstring)
  config.deepstn.scale_init = 0.4  # DeepSTN's shoes setting (patch 0.4 of the image)
  config.figures.domain = False  # the domain has no per-image strengths to plot
  # DSynth-Auto only in :open_sandal; elsewhere a listed DSynth method stops at "no generator"
  # instead of training one whose attributes cannot serve.
  config.synth.train_generator = False
  config.synth.attribute_map = {"open": "Sandal"}  # used by :open_sandal only (see docstring)

  if arg.open_sandal:
    config.attributes = ("open",)
    config.methods = ("real", "jitter", "dsynth_auto")
    config.synth.train_generator = True  # trained into <workdir>/generator when missing
  if arg.smoke:
    config.data.attributes = ("open",)
    config.attributes = ("open",)
    config.data.limit = 100  # the first 100 train and test pairs (10 of the train go to val)
    config.ranksvm.k_grid = (10, 25)
    config.deepstn.stn_epochs = 1
    config.deepstn.combined_epochs = 1
    config.deepstn.cnn_channels = (8, 16, 16, 16)
  return config


def get_config(arg=None):
  return zap50k_experiment(protocol=1, arg=arg)
