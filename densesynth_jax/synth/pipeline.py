"""The synthesis stage of an experiment run: generator -> prior -> spectra -> pairs -> votes.

It receives a LOADED generator (generator/artifact.py, or the sprites oracle of synth/oracle.py):
whether one is trained first is the experiment runner's decision (experiments/assets.py).
Everything lands under the run's workdir:
  synth/<attribute>/         synth.npz, prior.npz, meta.json (synth/store.py), and after
                             verification verified.npz + verification.json (synth/verify.py)
  synth/prior_control.json   how well the generator's ±δσ pairs of identities drawn from the
                             prior follow their auto labels, per attribute (`prior_control`)
  synth_oracle/<attribute>/  the same set rendered by the sprites oracle (synth/oracle.py), for the
                             reference method `dsynth_auto_oracle`
  figures/synth_pairs_<attribute>.png

Synthetic images are rendered at the rankers' resolution (the generator's `render_size`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import ml_collections
import numpy as np

from densesynth_jax import io
from densesynth_jax.data import crowd as crowd_lib
from densesynth_jax.data.registry import load_domain
from densesynth_jax.features import measure
from densesynth_jax.synth import jitter, store, verify
from densesynth_jax.synth.figures import save_synth_pairs_figure
from densesynth_jax.synth.prior import fit_prior
from densesynth_jax.types import Domain


# data block (JSON) -> strengths of that domain's train split and its attribute names.
_TRAIN_STRENGTHS: dict[str, tuple[np.ndarray, tuple[str, ...]]] = {}


def _train_strengths(data: ml_collections.ConfigDict) -> tuple[np.ndarray, tuple[str, ...]]:
  """Strengths of a domain's train split, built once per process (a run asks several times)."""
  key = data.to_json_best_effort(sort_keys=True)
  if key not in _TRAIN_STRENGTHS:
    domain = load_domain(data)
    _TRAIN_STRENGTHS[key] = (domain.images.strengths[np.asarray(domain.splits["train"])],
                             tuple(domain.images.attribute_names))
  return _TRAIN_STRENGTHS[key]


def generator_prior(config: ml_collections.ConfigDict, domain: Domain, gen):
  """p(y) = N(μ, Σ) fitted to the strengths of the generator's real training images.

  The generator's own domain (when it differs from the run's) is built once per process.
  """
  cfg = config.synth.jitter
  if config.generator.data.to_dict() == config.data.to_dict():
    strengths = domain.images.strengths[np.asarray(domain.splits["train"])]
    names = tuple(domain.images.attribute_names)
  else:
    strengths, names = _train_strengths(config.generator.data)
  return fit_prior(strengths, names, gen.z_dim, shrinkage=cfg.prior_shrinkage,
                   ridge=cfg.prior_ridge)


def synth_set(config: ml_collections.ConfigDict, workdir: Path, gen, attribute: str,
              domain: Domain, store_name: str = "synth") -> jitter.SynthSet:
  """The attribute's synthetic set, made once and reused while generator and config match.

  Kept in `<workdir>/<store_name>/<attribute>/`; its figure is
  `figures/<store_name>_pairs_<attribute>.png`.
  """
  cfg = config.synth
  gen_attr = dict(cfg.attribute_map).get(attribute, attribute)
  folder = Path(workdir) / store_name / attribute
  fp = store.fingerprint(f"{gen.fingerprint}@{gen.render_size}", cfg.jitter, gen_attr)

  def make() -> jitter.SynthSet:
    return jitter.synthesize(gen.render, generator_prior(config, domain, gen), gen_attr,
                             cfg.jitter)

  s, reused = store.load_or_make(folder, fp, make, f"{gen.fingerprint}@{gen.render_size}")
  print(f"[synth] {attribute}: {'reused' if reused else 'made'} {len(s.pairs)} pairs from "
        f"{s.info['num_identities']} identities ({folder})", flush=True)
  if not reused and config.figures.synth:
    save_synth_pairs_figure(Path(workdir) / "figures" / f"{store_name}_pairs_{attribute}.png", s)
  if gen_attr != attribute:  # pools need the ranker's attribute name
    s = dataclasses.replace(s, pairs=dataclasses.replace(s.pairs, attribute=attribute))
  return s


def measurement_scorer(config: ml_collections.ConfigDict, domain: Domain, attribute: str,
                       features, feature: str | None = None) -> measure.Scorer:
  """The independent measurement of `attribute` (features/measure.py) on the run's real images.

  A fixed penalty (ridge α 10, logistic C 1) on `feature` (default
  `verification.measure_feature`, what the simulated crowd perceives).
  """
  name = feature or config.verification.measure_feature
  return measure.fit_scorer(domain, attribute, features.domain_features(name), feature_name=name)


def label_agreement(s: jitter.SynthSet, measured: np.ndarray) -> dict:
  """How often the auto labels agree with the measured order: overall and per pair kind."""
  truth = np.sign(measured[s.pairs.a] - measured[s.pairs.b])
  ok = truth == s.pairs.label
  out = dict(all=float(np.mean(ok)), num_pairs=int(len(ok)))
  for name, k in (("intra", jitter.INTRA), ("inter", jitter.INTER)):
    if np.any(s.kind == k):
      out[name] = float(np.mean(ok[s.kind == k]))
  return out


def prior_control(config: ml_collections.ConfigDict, workdir: Path, gen, domain: Domain,
                  features, attributes, num_identities: int = 300,
                  store_name: str = "synth") -> dict:
  """Agreement of auto labels with the independent measurement, for identities from the prior.

  For every attribute: `num_identities` identities drawn from the fitted prior, their ±δσ pairs
  made exactly as the run's (synth.jitter, same range policy), every image measured by the
  scorer of `measurement_scorer`. Written to `<workdir>/<store_name>/prior_control.json`.
  """
  path = Path(workdir) / store_name / "prior_control.json"
  cfg = config.synth.jitter.copy_and_resolve_references()
  cfg.num_identities = int(num_identities)
  cfg.num_pairs = 2 * int(num_identities)
  fp = store.fingerprint(f"{gen.fingerprint}@{gen.render_size}", cfg, ",".join(attributes))
  if path.exists():
    saved = io.read_json(path)
    if saved.get("fingerprint") == fp:
      return saved
  prior = generator_prior(config, domain, gen)
  report = dict(fingerprint=fp, num_identities=int(num_identities), delta=float(cfg.delta),
                range_policy=cfg.get("range_policy", "none"), attributes={})
  for attribute in attributes:
    s = jitter.synthesize(gen.render, prior, attribute, cfg)
    scorer = measurement_scorer(config, domain, attribute, features)
    measured = scorer.score_features(features.of(config.verification.measure_feature, s.images))
    report["attributes"][attribute] = dict(label_agreement(s, measured), scorer=scorer.report)
    r = report["attributes"][attribute]
    print(f"[synth] {store_name} control of {attribute}: auto labels agree with the measurement "
          f"on {r['all']:.1%} (intra {r.get('intra', float('nan')):.1%}, inter "
          f"{r.get('inter', float('nan')):.1%})", flush=True)
  io.write_json(path, report)
  return report


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


def verification(config: ml_collections.ConfigDict, workdir: Path, domain: Domain,
                 s: jitter.SynthSet, attribute: str, features) -> verify.Verification:
  """The vote on every pair of the synthetic set `s` (human answers or a simulated crowd): what
  people answered, or would answer, per pair, rejected pairs included."""
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
      scorer = measurement_scorer(config, domain, attribute, features)
      measured = scorer.score_features(features.of(cfg.measure_feature, s.images))
      votes = simulated_votes(s, measured, cfg, int(config.synth.jitter.seed))
      v = verify.aggregate(votes, s.pairs.label, cfg.min_agreement)
      agree = label_agreement(s, measured)
      v.report.update(
          mode="simulated", settings=cfg.to_dict(), synth_fingerprint=fp, scorer=scorer.report,
          auto_label_accuracy_vs_measured=agree["all"],
          auto_label_accuracy_vs_measured_by_kind={k: agree[k] for k in ("intra", "inter")
                                                   if k in agree})
      verify.save_verification(folder, v)
      r = v.report
      print(f"[verify] {attribute}: simulated crowd kept {r['kept']}/{r['num_pairs']} pairs; "
            f"auto labels agree with the crowd on {r['auto_label_agreement_decided']:.1%} of "
            f"decided pairs, with the measured truth on "
            f"{r['auto_label_accuracy_vs_measured']:.1%}", flush=True)
  else:
    raise ValueError(f"unknown verification.mode {cfg.mode!r}; valid: ['simulated', 'human']")
  return v


def default_config() -> ml_collections.ConfigDict:
  """The `synth` block of an experiment config."""
  cfg = ml_collections.ConfigDict()
  cfg.generator_workdir = ""  # a trained generator's workdir; "" = <workdir>/generator
  cfg.generator = "learned"  # "learned": the CVAE of config.generator; "oracle": the sprite
  #                            renderer itself (synth/oracle.py), a perfect generator (sprites)
  cfg.train_generator = True  # train the generator (config.generator) when it is missing
  # Attributes whose prior-sampled control is measured into synth/prior_control.json (() = none).
  cfg.control_attributes = ()
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
  cfg.measure_feature = "gist_lab"  # features of the independent measurement (features/measure.py)
  return cfg
