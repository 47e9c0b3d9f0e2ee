"""The synthesis stage of an experiment run: generator -> prior -> spectra -> pairs -> votes.

Everything lands under the run's workdir:
  generator/                 the CVAE run (trained here when missing and `synth.train_generator`)
  synth/<attribute>/         synth.npz, prior.npz, meta.json (synth/store.py), and after
                             verification verified.npz + verification.json (synth/verify.py)
  figures/synth_pairs_<attribute>.png
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import ml_collections
import numpy as np

from densesynth_jax import io
from densesynth_jax.data import crowd as crowd_lib
from densesynth_jax.data.registry import load_domain
from densesynth_jax.synth import jitter, measure, store, verify
from densesynth_jax.synth.prior import fit_prior
from densesynth_jax.types import Domain, PairSet


def generator_dir(config: ml_collections.ConfigDict, workdir: Path) -> Path:
  return Path(config.synth.generator_workdir) if config.synth.generator_workdir else (
      Path(workdir) / "generator")


def ready_generator(config: ml_collections.ConfigDict, workdir: Path):
  """The run's trained generator, training it first when allowed and missing."""
  from densesynth_jax.train import generator as gen_lib
  gdir = generator_dir(config, workdir)
  if not gen_lib.is_trained(gdir, config.generator):
    if not config.synth.train_generator:
      raise FileNotFoundError(
          f"no finished generator run in {gdir} matching config.generator: run `python "
          f"train_generator.py --config=... --workdir={gdir}` or set synth.train_generator=True")
    print(f"[synth] training the generator into {gdir}", flush=True)
    from densesynth_jax import cli
    cli.write_config(config.generator, gdir)
    gen_lib.train_and_evaluate(config.generator, gdir)
  return gen_lib.load_generator(gdir)


def generator_domain(config: ml_collections.ConfigDict, domain: Domain) -> Domain:
  """The generator's training domain: the run's own when the data blocks agree, else loaded."""
  if config.generator.data.to_dict() == config.data.to_dict():
    return domain
  return load_domain(config.generator.data)


def synth_set(config: ml_collections.ConfigDict, workdir: Path, gen, attribute: str,
              domain: Domain) -> jitter.SynthSet:
  """The attribute's synthetic set, made once and reused while generator and config match."""
  cfg = config.synth
  gen_attr = dict(cfg.attribute_map).get(attribute, attribute)
  folder = Path(workdir) / "synth" / attribute
  fp = store.fingerprint(gen.fingerprint, cfg.jitter, gen_attr)

  def make() -> jitter.SynthSet:
    gdomain = generator_domain(config, domain)
    train = np.asarray(gdomain.splits["train"])
    prior = fit_prior(gdomain.images.strengths[train], gdomain.images.attribute_names, gen.z_dim,
                      shrinkage=cfg.jitter.prior_shrinkage, ridge=cfg.jitter.prior_ridge)
    return jitter.synthesize(gen.render, prior, gen_attr, cfg.jitter)

  s, reused = store.load_or_make(folder, fp, make)
  print(f"[synth] {attribute}: {'reused' if reused else 'made'} {len(s.pairs)} pairs from "
        f"{s.info['num_identities']} identities ({folder})", flush=True)
  if not reused and config.figures.synth:
    from densesynth_jax.synth.figures import save_synth_pairs_figure
    save_synth_pairs_figure(Path(workdir) / "figures" / f"synth_pairs_{attribute}.png", s)
  if gen_attr != attribute:  # pools need the ranker's attribute name
    s = dataclasses.replace(s, pairs=dataclasses.replace(s.pairs, attribute=attribute))
  return s


def simulated_votes(s: jitter.SynthSet, measured: np.ndarray, cfg: ml_collections.ConfigDict,
                    seed: int) -> list[verify.Vote]:
  """A crowd of `cfg.workers` perceiving the MEASURED strengths of the rendered images + noise.

  The noise and "equal" margin are given in units of the measurement's spread over the synthetic
  images (std), so the same settings mean the same difficulty for any scorer's scale.
  """
  rng = np.random.default_rng([seed, 7])
  spread = float(np.std(measured)) or 1.0
  crowd = crowd_lib.simulate_crowd(rng, measured[s.pairs.a] / spread, measured[s.pairs.b] / spread,
                                   workers=cfg.workers, noise=cfg.noise,
                                   equal_margin=cfg.equal_margin)
  votes = crowd["votes"]
  return [verify.Vote(f"sim{w}", int(p), int(votes[p, w]))
          for p in range(votes.shape[0]) for w in range(votes.shape[1])]


def verified_pairs(config: ml_collections.ConfigDict, workdir: Path, domain: Domain,
                   s: jitter.SynthSet, attribute: str, features) -> PairSet:
  """The synthetic pairs kept by verification (human answers or a simulated crowd)."""
  cfg = config.verification
  folder = Path(workdir) / "synth" / attribute
  if cfg.mode == "human":
    if not (folder / "verified.npz").exists():
      raise FileNotFoundError(
          f"no verification answers imported for {attribute!r}: run `python -m "
          f"densesynth_jax.synth.verify export --synth={folder} --out=verify/{attribute}`, have "
          f"people answer, then `... verify import --synth={folder} --answers FILES`")
    v = verify.load_verification(folder)
  elif cfg.mode == "simulated":
    path = folder / "verification.json"
    report = io.read_json(path) if path.exists() else {}
    fp = store.load(folder)[1]
    if report.get("synth_fingerprint") == fp and report.get("settings") == cfg.to_dict():
      v = verify.load_verification(folder)
    else:
      x_dom = features.domain_features(cfg.measure_feature)
      binary = None
      if attribute in domain.binary:
        binary = domain.binary[attribute]
      scorer = measure.fit_scorer(domain, attribute, x_dom, binary=binary)
      measured = scorer(features.of(cfg.measure_feature, s.images))
      votes = simulated_votes(s, measured, cfg, int(config.synth.jitter.seed))
      v = verify.aggregate(votes, s.pairs.label, cfg.min_agreement)
      truth = np.sign(measured[s.pairs.a] - measured[s.pairs.b])
      v.report.update(
          mode="simulated", settings=cfg.to_dict(), synth_fingerprint=fp, scorer=scorer.report,
          auto_label_accuracy_vs_measured=float(np.mean(truth == s.pairs.label)),
          auto_label_accuracy_vs_measured_by_kind={
              name: float(np.mean((truth == s.pairs.label)[s.kind == k]))
              for name, k in (("intra", jitter.INTRA), ("inter", jitter.INTER))
              if np.any(s.kind == k)})
      verify.save_verification(folder, v)
      r = v.report
      print(f"[verify] {attribute}: simulated crowd kept {r['kept']}/{r['num_pairs']} pairs; "
            f"auto labels agree with the crowd on {r['auto_label_agreement_decided']:.1%} of "
            f"decided pairs, with the measured truth on "
            f"{r['auto_label_accuracy_vs_measured']:.1%}", flush=True)
  else:
    raise ValueError(f"unknown verification.mode {cfg.mode!r}; valid: ['simulated', 'human']")
  return verify.verified_pairs(s, v)


def default_config() -> ml_collections.ConfigDict:
  """The `synth` block of an experiment config."""
  cfg = ml_collections.ConfigDict()
  cfg.generator_workdir = ""  # a trained generator's workdir; "" = <workdir>/generator
  cfg.train_generator = True  # train the generator (config.generator) when it is missing
  cfg.attribute_map = ml_collections.ConfigDict()  # ranker attribute -> generator attribute
  cfg.jitter = jitter.default_config()  # identities, δ, pair counts, intra/inter mix
  return cfg


def verification_config() -> ml_collections.ConfigDict:
  """The `verification` block: how DSynth's synthetic pairs are verified."""
  cfg = ml_collections.ConfigDict()
  cfg.mode = "simulated"  # "simulated" crowd, or "human": answers imported with synth/verify.py
  cfg.workers = 5  # simulated workers per pair (the paper: 5)
  cfg.noise = 0.15  # perception noise, in units of the measured strengths' std
  cfg.equal_margin = 0.1  # perceived |difference| below this is voted "can't tell"
  cfg.min_agreement = 0.8  # keep pairs whose majority has at least this share (4 of 5)
  cfg.measure_feature = "gist_lab"  # features of the independent measurement (synth/measure.py)
  return cfg
