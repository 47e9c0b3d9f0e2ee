"""Does a sprites generator variant control the expressions? Train it, then measure its ±δσ pairs.

  python benchmarks/generator_control.py --workdir=runs/gc_demo                   # the demo's
  python benchmarks/generator_control.py --workdir=runs/gc_b1 optim.kl_weight=1.0  # one lever
  python benchmarks/generator_control.py --workdir=runs/gc_base data.num_train_identities=200 \
      model.logvar_min=None optim.kl_weight=1.0                                 # the old demo's

Overrides (`key=value`, Python literals) apply to `configs/generator_sprites.py:demo`. The
generator is trained (or resumed) in --workdir; then identities are drawn from the prior fitted
to its training strengths, their ±δσ spectra rendered at 32×32 and paired as semantic jitter does
(`--policy`: the paper's pairs "none", or "clip" with `--min-gap`), and every image is measured
by the demo's independent scorer (a ridge regressor of the true strength on GIST + Lab of real
sprites, features/measure.py). Prints and appends to <workdir>/control.json the share of pairs whose
auto label agrees with the measured order: all, intra and inter, per expression. This is how the
README's "Generator control on sprites" table was measured.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from configs import generator_sprites  # noqa: E402
from densesynth_jax import io  # noqa: E402
from densesynth_jax.data import registry, sprites  # noqa: E402
from densesynth_jax.features import extract  # noqa: E402
from densesynth_jax.features import measure  # noqa: E402
from densesynth_jax.synth import jitter  # noqa: E402
from densesynth_jax.synth.prior import fit_prior  # noqa: E402
from densesynth_jax.generator import artifact as gen_lib, trainer as gen_trainer  # noqa: E402


def _override(cfg, item: str) -> None:
  key, _, value = item.partition("=")
  *path, last = key.split(".")
  for p in path:
    cfg = cfg[p]
  try:
    cfg[last] = ast.literal_eval(value)
  except (ValueError, SyntaxError):
    cfg[last] = value


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--size", type=int, default=32, help="side of renders and measurement")
  parser.add_argument("--policy", default="clip", choices=jitter.RANGE_POLICIES)
  parser.add_argument("--min-gap", type=float, default=0.5)
  parser.add_argument("--delta", type=float, default=2.0)
  parser.add_argument("--identities", type=int, default=600)
  parser.add_argument("overrides", nargs="*", help="key=value on the generator config")
  args = parser.parse_args(argv)

  cfg = generator_sprites.get_config("demo")
  cfg.lock()  # as train_generator.py does: an override may change a field, not add one
  for item in args.overrides:
    _override(cfg, item)
  workdir = Path(args.workdir)
  gen_trainer.train_and_evaluate(cfg, workdir)
  gen = gen_lib.load_generator(workdir, render_size=args.size)

  # The measurement: the demo's ranker domain (seed 0, never seen by the generator) at `size`.
  domain = registry.resize_domain(registry.load_domain(sprites.default_config()), args.size)
  fcfg = extract.default_config()
  fcfg.gist_image_size = 0
  x = np.asarray(extract.extract_features("gist_lab", domain.images.images, fcfg))
  gdomain = registry.load_domain(cfg.data)
  train = np.asarray(gdomain.splits["train"])
  prior = fit_prior(gdomain.images.strengths[train], gdomain.images.attribute_names, gen.z_dim)

  jcfg = jitter.default_config()
  jcfg.num_identities, jcfg.num_pairs = args.identities, 2 * args.identities
  jcfg.delta, jcfg.range_policy, jcfg.min_gap = args.delta, args.policy, args.min_gap
  report = dict(overrides=args.overrides, policy=args.policy, min_gap=args.min_gap,
                delta=args.delta, identities=args.identities, step=gen.step, attributes={})
  for attr in sprites.EXPRESSIONS:
    scorer = measure.fit_scorer(domain, attr, x)
    s = jitter.synthesize(gen.render, prior, attr, jcfg)
    m = scorer.score_features(extract.extract_features("gist_lab", s.images.images, fcfg))
    ok = np.sign(m[s.pairs.a] - m[s.pairs.b]) == s.pairs.label
    report["attributes"][attr] = dict(
        all=float(ok.mean()), intra=float(ok[s.kind == jitter.INTRA].mean()),
        inter=float(ok[s.kind == jitter.INTER].mean()), pairs=int(len(ok)))
    r = report["attributes"][attr]
    print(f"{attr}: {r['all']:.1%} of {r['pairs']} pairs agree (intra {r['intra']:.1%}, inter "
          f"{r['inter']:.1%})", flush=True)
  path = workdir / "control.json"
  old = io.read_json(path) if path.exists() else []
  io.write_json(path, old + [report])
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
