"""Time to synthesise N identities (x⁻, x, x⁺ each) with a trained generator, on this machine.

  python benchmarks/bench_synth.py --generator=runs/demo/generator [--identities 2000]

Fits the prior to the generator's training strengths, samples identities, renders the spectra
with the decoder mean (jitted, batched, sharded over local devices) and builds the pairs; prints
identities / second and records it in benchmarks/RESULTS.md under "## Synthesis".
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np

from densesynth_jax.data.registry import load_domain
from densesynth_jax.synth import jitter
from densesynth_jax.synth.prior import fit_prior
from densesynth_jax.generator import artifact as gen_lib

from _common import write_section


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--generator", required=True, help="a trained generator's workdir")
  p.add_argument("--identities", type=int, default=2000)
  p.add_argument("--attribute", default="smiling")
  p.add_argument("--no-record", action="store_true")
  a = p.parse_args()
  gen = gen_lib.load_generator(Path(a.generator))
  cfg = ml_collections.ConfigDict(gen.meta["config"])
  domain = load_domain(cfg.data)
  train = np.asarray(domain.splits["train"])
  prior = fit_prior(domain.images.strengths[train], domain.images.attribute_names, gen.z_dim)
  scfg = jitter.default_config()
  scfg.num_identities = a.identities
  scfg.num_pairs = 2 * a.identities
  small = jitter.default_config()
  small.update(dict(num_identities=8, num_pairs=8))
  jitter.synthesize(gen.render, prior, a.attribute, small)  # warm-up: compile
  t0 = time.perf_counter()
  s = jitter.synthesize(gen.render, prior, a.attribute, scfg)
  dt = time.perf_counter() - t0
  line = (f"{a.identities} identities ({len(s.images)} images of "
          f"{s.images.image_shape[0]}×{s.images.image_shape[1]}, {len(s.pairs)} pairs) in "
          f"{dt:.1f} s = {a.identities / dt:.0f} identities/s; generator "
          f"{gen.meta['model']['image_size']}×{gen.meta['model']['image_size']}, z "
          f"{gen.z_dim}; jax {jax.__version__} `{jax.default_backend()}`, {os.cpu_count()} cores")
  print(line)
  if not a.no_record:
    write_section(f"## Synthesis\n\n`python benchmarks/bench_synth.py --generator=... --identities "
                  f"{a.identities}` on {datetime.date.today()}: {line}.\n")


if __name__ == "__main__":
  main()
