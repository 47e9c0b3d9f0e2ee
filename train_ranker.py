"""Trains and evaluates rankers for every (ranker, method, attribute, seed) the config asks for.

  python train_ranker.py --config=configs/demo.py [--workdir=runs/demo] [--config.seeds='(0,1)']
"""

from absl import app

from configs import experiment
from densesynth_jax import cli
from densesynth_jax.experiments import runner

_CONFIG, _WORKDIR = cli.define_flags()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cli.run(runner.train_and_evaluate, _CONFIG, _WORKDIR, "train_ranker",
          check=experiment.check_config)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.flags_parser("train_ranker"))
