"""UT-Zap50K-2: train on every ordered coarse pair, test on the 4,334 fine-grained pairs.

  DENSESYNTH_DATA_DIR=/path/to/data python train_ranker.py --config=configs/zap50k_2.py
  python train_ranker.py --config=configs/zap50k_2.py:smoke          # "open", 100 pairs, CPU
  python train_ranker.py --config=configs/zap50k_2.py:open_sandal    # + DSynth-Auto

Per attribute: train on all of its ordered pairs (mturkOrder) less a seeded 10% val hold-out,
test on its fine-grained pairs (mturkHard: open 1,100, pointy 1,172, sporty 1,083, comfort 979),
which coarse annotators had called "equal". Data, images, the val hold-out, the methods (Real and
Jitter) and the `:open_sandal` proxy are as in configs/zap50k_1.py, whose docstring explains why
DSynth, DSynth-Auto, Real+ and Classifier do not apply to this domain. The `split` argument is
ignored.
"""

from configs.zap50k_1 import zap50k_experiment


def get_config(arg=None):
  return zap50k_experiment(protocol=2, arg=arg)
