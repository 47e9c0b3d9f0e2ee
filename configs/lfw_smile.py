"""The paper's face setting: rankers trained on LFW-10 "smile" pairs, tested on PFSmile.

  DENSESYNTH_DATA_DIR=/path/to/data python train_ranker.py --config=configs/lfw_smile.py
  python train_ranker.py --config=configs/lfw_smile.py:smoke   # 100 pairs, tiny generator, CPU

Data (densesynth_jax/data/labelpack_domains.py, domain "lfw10"), placed by the user:
  <data_dir>/lfw10-labels/      the LFW-10 label pack (in the project's data folder)
  <data_dir>/lfw10-images/      the LFW-10 images: the unzipped LFW10 release (images/N.jpg)
                                (or --config.data.image_root=/path)
  <data_dir>/pfsmile/pairs.csv  the PFSmile test pairs: header image_a,image_b,label, then one
                                pair per line, label +1 = image_a smiles more, -1 = image_b, 0 =
                                equal (or --config.data.pfsmile_dir=/path)
  <data_dir>/pfsmile/images/    the images pairs.csv names, by path relative to this folder
Anything missing stops the run at once with ONE line listing every missing item and its place.
Train = LFW-10's 500 smile pairs less a seeded 10% val hold-out (K for local RankSVM, early
stopping for DeepSTN; LFW-10 has no val set); test = PFSmile (the paper's Table IV), and
lfw10_test = LFW-10's own 500 smile test pairs as an in-domain check.

The generator is the project's face generator: the Attribute2Image CVAE on the 8,000 CelebA
train faces with 40 pre-labelled strengths (configs/generator_celeba.py, the paper's full size,
64×64, a GPU job; trained into <workdir>/generator when missing, or reuse one with
--config.synth.generator_workdir). The paper trained its own on LFW with 73 attributes, which are
not available here; CelebA's "Smiling" is the ranked attribute's column.

Methods: Real, Jitter and DSynth-Auto. Left out:
- DSynth: its verification must be HUMAN here (`verification.mode = "human"`): the simulated crowd
  perceives a measurement fitted on the run domain's per-image strengths or binary labels
  (features/measure.py), and LFW-10 / PFSmile have pairwise labels only. Export the synthetic pairs,
  collect answers and import them (densesynth_jax/synth/verify.py; the run's error says how),
  then add "dsynth" to --config.methods.
- Real+ and Classifier: the pre-label classifier (experiments/assets.py) is fitted to the run
  domain's own binary labels or strengths of the attribute, which LFW-10 does not have.
"""

from configs import generator_celeba
from configs.common import parse_arg
from configs.experiment import experiment_config
from densesynth_jax.data import labelpack_domains


def get_config(arg=None):
  arg = parse_arg(arg, smoke=False)
  data = labelpack_domains.lfw10_config()  # LFW-10 smile pairs + PFSmile, the user's images
  generator = generator_celeba.get_config("smoke" if arg.smoke else None)  # CelebA CVAE
  generator.data.image_size = data.image_size  # render at the ranker domain's size
  # "smile"; PFSmile (the paper's) and LFW-10's own test pairs.
  config = experiment_config(data, generator, attributes=(labelpack_domains.LFW10_ATTRIBUTE,),
                             test_sets=("test", "lfw10_test"))  # configs/experiment.py

  config.rankers = ("ranksvm_local", "deepstn")  # FG-LP-style local RankSVM and DeepSTN
  config.methods = ("real", "jitter", "dsynth_auto")  # what applies here (module docstring)
  config.synth.attribute_map = {"smile": "Smiling"}  # ranker attribute -> generator attribute
  config.synth.jitter.num_identities = 2000  # the paper's faces: 2,000 identities
  config.synth.jitter.num_pairs = 5000  # and 5,000 pairs (≥ what DSynth-Auto draws)
  config.verification.mode = "human"  # no per-image labels to simulate a crowd with (docstring)
  config.deepstn.scale_init = 0.33  # DeepSTN's faces setting (patch a third of the image)
  config.figures.domain = False  # the domain has no per-image strengths to plot

  if arg.smoke:
    config.data.limit = 100  # the first 100 train (10 to val), LFW-10 test and PFSmile pairs
    config.rankers = ("ranksvm_local",)
    config.synth.jitter.num_identities = 60
    config.synth.jitter.num_pairs = 120
    config.ranksvm.k_grid = (10, 25)
  return config
