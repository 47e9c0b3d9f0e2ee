"""Trains the Attribute2Image CVAE on a domain, then writes its figures and control evaluation.

  python train_generator.py --config=configs/generator_sprites.py [--workdir=runs/generator_sprites]
"""

from absl import app

from densesynth_jax import cli
from densesynth_jax.generator import trainer as generator

_CONFIG, _WORKDIR = cli.define_flags()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cli.run(generator.train_and_evaluate, _CONFIG, _WORKDIR, "train_generator")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.flags_parser("train_generator"))
