"""The blocks every experiment config shares (`configs/demo.py`, `celeba_smile.py`, ...).

`experiment_config(data, generator, attributes=..., test_sets=...)` returns a full
`train_ranker.py` config with the paper's defaults and the choices every experiment must make
(which attributes, which test sets), checked; a config file then sets its other domain-specific
choices (rankers, methods, budgets). `check_config` checks the fields that choose the cells once
the command line has overridden them (train_ranker.py calls it before any work).
"""

import ml_collections

from configs.common import small_model
from densesynth_jax.data import pairfiles
from densesynth_jax.experiments import methods
from densesynth_jax.features import extract
from densesynth_jax.rankers import deepstn
from densesynth_jax.synth import pipeline


# The fields that choose the cells: name -> (element type, what to put there when it is empty).
SELECTION_FIELDS = {
    "rankers": (str, "name the rankers to train (densesynth_jax/experiments/runner.py)"),
    "methods": (str, "name the methods to compare (densesynth_jax/experiments/methods.py)"),
    "attributes": (str, "name the attributes with real pairs in the domain"),
    "test_sets": (str, "name the domain's test PairSets to evaluate on"),
    "seeds": (int, "name the replicate seeds, e.g. --config.seeds='(0,1,2)'"),
}


def _check_selection(where: str, name: str, value) -> None:
  """Raises a one-line ValueError unless `value` is a non-empty tuple of SELECTION_FIELDS' type."""
  kind, hint = SELECTION_FIELDS[name]
  # bool is an int to Python, never a seed.
  ok = isinstance(value, tuple) and all(isinstance(v, kind) and not isinstance(v, bool)
                                        for v in value)
  if not ok:
    raise ValueError(f"{where}: {name} must be a tuple of {kind.__name__}, got {value!r}")
  if not value:
    raise ValueError(f"{where}: {name} is empty; {hint}")


def check_config(config: ml_collections.ConfigDict) -> None:
  """Checks the fields that choose the cells: non-empty tuples of names (seeds: of ints), and
  `extra_test_sets` (a tuple, maybe empty, of `pairfiles.SPEC_FORMAT` strings, each of one of
  the run's attributes, with a name that is not one of `test_sets`).

  Raises a one-line ValueError naming the field. Whether the names exist (a registered ranker,
  an attribute of the domain) and whether the pair files do is the runner's check, once the
  domain is loaded.
  """
  for name in SELECTION_FIELDS:
    if name not in config:
      raise ValueError(f"config: {name} is missing; {SELECTION_FIELDS[name][1]}")
    _check_selection("config", name, config[name])
  # An empty tuple in the config file gives cli.check_override_types no element type to check
  # an override against: `--config.extra_test_sets='(1,)'` is caught here.
  pairfiles.parse_specs(config.get("extra_test_sets", ()), config.attributes, config.test_sets)


def experiment_config(data: ml_collections.ConfigDict, generator: ml_collections.ConfigDict, *,
                      attributes: tuple[str, ...],
                      test_sets: tuple[str, ...]) -> ml_collections.ConfigDict:
  """A ranker-experiment config on the domain `data` with the generator config `generator`.

  `attributes` (attributes with real pairs in the domain) and `test_sets` (the domain's test
  PairSets to evaluate on) are required: non-empty tuples of names, else a one-line ValueError.
  """
  _check_selection("experiment_config", "attributes", attributes)
  _check_selection("experiment_config", "test_sets", test_sets)
  config = ml_collections.ConfigDict()

  # Which cells run: every (ranker, method, attribute, seed) combination. Rankers are registered
  # in densesynth_jax/experiments/runner.py, methods in experiments/methods.py.
  config.rankers = ("ranksvm_local", "deepstn")
  config.methods = ("real", "real_plus", "jitter", "dsynth", "dsynth_auto", "classifier")
  config.attributes = attributes  # attributes with real pairs in the domain
  config.seeds = (0,)  # results are mean ± std over these, e.g. --config.seeds='(0,1,2)'
  config.test_sets = test_sets  # the domain's test PairSets to evaluate on
  # Your own test sets, each a pairs CSV (header image_a,image_b,label; +1 = image_a shows more)
  # and its image folder: "NAME:ATTRIBUTE:PAIRS_CSV:IMAGES_DIR[:crop|pad]" (data/pairfiles.py),
  # e.g. --config.extra_test_sets='("mine:smiling:/data/pairs.csv:/data/images",)'. Each is
  # one more test set of its attribute's cells: a table, CSV lines and a figure of its own.
  config.extra_test_sets = ()

  config.data = data  # the domain (densesynth_jax/data/registry.py)
  # The side (pixels) at which rankers see every image, real and synthetic. 0 = the paper's rule
  # ("We downsize real images to match the resolution of the synthetic ones"): the smaller of the
  # domain's side and the generator's model side (faces 35×35 and shoes 64×64 in the paper).
  config.rank_image_size = 0
  # Image features for the RankSVM rankers (GIST, Lab histogram, pixels).
  config.features = extract.default_config()
  config.features.gist_image_size = 0  # GIST at the images' own side (the rankers' resolution)

  config.ranksvm = ml_collections.ConfigDict()
  config.ranksvm.feature = "gist_lab"  # the paper's 990-d GIST + Lab (features/extract.py)
  config.ranksvm.C = 0.1  # RankSVM trade-off (RelAttr's default)
  config.ranksvm.max_iter = 10  # Newton steps (RelAttr: at most 10)
  config.ranksvm.standardize = True  # z-score features with the training pool's statistics
  config.ranksvm.k = 0  # local learning: neighbours per test pair; <= 0 chooses K on val pairs
  config.ranksvm.k_grid = (25, 50, 100, 200)  # the K candidates validated when k <= 0
  config.ranksvm.metric = "euclidean"  # neighbour distance: "euclidean" or "kissme" (learned)
  config.ranksvm.metric_rank = 32  # KISSME's PCA dimension
  config.ranksvm.chunk_size = 256  # test pairs solved together per compiled chunk

  # DeepSTN (densesynth_jax/rankers/deepstn.py): a small CNN from scratch at 64×64 on CPU.
  config.deepstn = deepstn.default_config()
  config.deepstn.lr = 0.01  # from scratch on CPU: 1e-3 (the paper's, for fine-tuning) is too slow

  # The generator (trained into <workdir>/generator when missing) and semantic jitter.
  config.generator = generator
  config.synth = pipeline.default_config()
  config.verification = pipeline.verification_config()  # DSynth: simulated crowd of 5
  config.pools = methods.default_config()  # synthetic-to-real ratio, DSynth's real share, jitter
  # Active verification (methods dsynth_active_SCORER@B, dsynth_random@B; synth/active.py): the
  # defaults of a budgeted method whose name leaves out its budget or scorer.
  config.active = methods.active_config()
  # Real+ and the Classifier baseline use the domain's pre-label recipe (its `prelabel` block).

  config.figures = ml_collections.ConfigDict()
  config.figures.domain = True  # contact sheet and strength histograms of the domain
  config.figures.neighbours = True  # local rankers: test pairs with their nearest training pairs
  config.figures.synth = True  # synthetic spectra and pairs per attribute
  return config


def reduce_generator_for_cpu(generator: ml_collections.ConfigDict, num_steps: int = 4000) -> None:
  """Shrinks a real-domain generator config (in place) to train in minutes on 2 CPU cores.

  32×32 (renders are upsampled to the domain's size), widths 16–128, z 32, `num_steps` steps at
  lr 1e-3 (few steps: a larger step than the paper's 3e-4), a smaller control evaluation.
  """
  generator.model = small_model(image_size=32, z_dim=32, width=16)
  generator.optim.lr = 1e-3
  generator.train.num_steps = num_steps
  generator.train.log_every = 200
  generator.train.eval_every = num_steps // 2
  generator.train.checkpoint_every = 1000
  generator.eval.identities = 32
  generator.eval.pixels_size = 16
