"""What the methods beyond Real need, prepared lazily and cached in the run's workdir.

- `prelabel(attribute)`: the pre-label classifier's strengths for the domain's images (the
  paper's appendix): a linear classifier trained on the generator's training images (the
  domain's train split) with BINARY labels — the dataset's own binary annotation where it has one
  (CelebA), else the attribute's strength thresholded at the train split's median (sprites) —
  with the domain's pre-label recipe (`data/prelabel.domain_settings`: the same features and
  settings that pre-label the domain's strengths). Real+ orders pseudo pairs by it; the
  Classifier baseline ranks by it.
- `synth(attribute)`: the semantic-jitter set of the attribute, made from the run's generator
  (trained first into `<workdir>/generator` when `synth.train_generator` and it is missing),
  persisted under `<workdir>/synth/<attribute>/` and reused until its inputs change.
- `synth_oracle(attribute)`: the same set rendered by the sprites oracle (synth/oracle.py), a
  perfect generator: the reference row `dsynth_auto_oracle` (sprites only), under
  `<workdir>/synth_oracle/<attribute>/`.
- Synthetic images are rendered at the side of the run's (resized) domain images, so real and
  synthetic images meet the rankers at one resolution. The first time a generator is used, its
  control on identities drawn from the prior is measured for `synth.control_attributes` into
  `<workdir>/<synth|synth_oracle>/prior_control.json` (synth/pipeline.py).
- `verified(attribute)`: the synthetic pairs that survived verification: imported human answers
  (`verification.mode = "human"`, see synth/verify.py), or a simulated crowd
  (`verification.mode = "simulated"`) whose 5 workers perceive an independent measurement of the
  rendered images (`features/measure.py`) plus noise, like the crowd of the real sprite pairs.
  `verification(attribute)` is that vote on EVERY synthetic pair, rejected ones included: what
  people answered or would answer, which active verification (synth/active.py) draws on.
- `measurement(attribute, feature)`: the independent measurement of the synthetic images
  (features/measure.py on `feature`), for the `measure` scorer of active verification.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import ml_collections
import numpy as np

from densesynth_jax import io
from densesynth_jax.data import pairfiles
from densesynth_jax.data import prelabel as prelabel_lib
from densesynth_jax.experiments import methods
from densesynth_jax.generator import artifact as generator_artifact
from densesynth_jax.generator import trainer as generator_trainer
from densesynth_jax.synth import pipeline, verify
from densesynth_jax.synth.oracle import SpriteOracle
from densesynth_jax.types import Domain, PairSet, Pool

GENERATORS = ("learned", "oracle")


def generator_dir(config: ml_collections.ConfigDict, workdir: Path) -> Path:
  """The learned generator's workdir: `synth.generator_workdir`, else <workdir>/generator."""
  return Path(config.synth.generator_workdir) if config.synth.generator_workdir else (
      Path(workdir) / "generator")


def ready_generator(config: ml_collections.ConfigDict, workdir: Path, kind: str | None = None,
                    render_size: int | None = None):
  """The run's generator (`kind`, default `synth.generator`), rendering at `render_size`.

  "learned": the trained CVAE, trained first when `synth.train_generator` allows and no finished
  run of `config.generator` is there; "oracle": the sprite renderer (synth/oracle.py).
  """
  kind = kind or config.synth.generator
  if kind not in GENERATORS:
    raise ValueError(f"unknown synth.generator {kind!r}; valid: {list(GENERATORS)}")
  if kind == "oracle":
    if config.data.name != "sprites":
      raise ValueError(f"synth.generator 'oracle' renders sprites only; domain "
                       f"{config.data.name!r} has no renderer")
    return SpriteOracle(render_size or config.data.image_size, nuisance=config.data.nuisance)
  gdir = generator_dir(config, workdir)
  if not generator_artifact.is_trained(gdir, config.generator):
    if not config.synth.train_generator:
      raise FileNotFoundError(
          f"no finished generator run in {gdir} matching config.generator: run `python "
          f"train_generator.py --config=... --workdir={gdir}` or set synth.train_generator=True")
    print(f"[synth] training the generator into {gdir}", flush=True)
    io.write_config(config.generator, gdir)
    generator_trainer.train_and_evaluate(config.generator, gdir)
  return generator_artifact.load_generator(gdir, render_size=render_size)


def binary_labels(domain: Domain, attribute: str) -> np.ndarray:
  """{0, 1} (N,) labels of `attribute`: the dataset's own, else strength > train median."""
  if attribute in domain.binary:
    return np.asarray(domain.binary[attribute], np.int8)
  strength = domain.images.strength(attribute)
  threshold = np.median(strength[np.asarray(domain.splits["train"])])
  return (strength > threshold).astype(np.int8)


class RunAssets(methods.Assets):
  """Assets of one run; each is computed at most once per process and cached on disk."""

  def __init__(self, config: ml_collections.ConfigDict, domain: Domain, workdir: Path,
               features):
    self.config, self.domain, self.workdir, self.features = config, domain, Path(workdir), features
    self._prelabel: dict[str, np.ndarray] = {}
    self._prelabel_models: dict[str, dict] = {}
    self._synth: dict = {}
    self._verification: dict[str, verify.Verification] = {}
    self._measured: dict[tuple[str, str], np.ndarray] = {}
    self._generators: dict = {}

  # -- pre-label classifier -------------------------------------------------------------------

  def prelabel(self, attribute: str) -> np.ndarray:
    """The pre-label classifier's strengths of the domain's images (the domain's recipe)."""
    if attribute not in self._prelabel:
      self._prelabel[attribute] = self._prelabel_fit(attribute, need_model=False)[0]
    return self._prelabel[attribute]

  def prelabel_model(self, attribute: str) -> dict:
    """The pre-label classifier of `attribute` as `prelabel.apply_model` applies it, with
    `feature` (its features' name) and `features` (their config; None for hog_color)."""
    if attribute not in self._prelabel_models:  # read once, not once per replicate's cell
      self._prelabel_models[attribute] = self._prelabel_fit(attribute, need_model=True)[1]
    return self._prelabel_models[attribute]

  def _prelabel_fit(self, attribute: str, need_model: bool) -> tuple[np.ndarray, dict | None]:
    p = prelabel_lib.domain_settings(self.config.data)
    what = dict(p.to_dict(), attribute=attribute)
    extras = [[e["name"], e["digest"]] for e in self.domain.info.get(pairfiles.INFO_KEY, ())]
    if extras:  # pair-file test images: more rows to score (none without, as before)
      what["extra_test_sets"] = extras
    key = hashlib.sha256(io.dumps(what).encode()).hexdigest()
    path = self.workdir / "cache" / f"prelabel_{attribute}_{key[:12]}.npz"
    model_path = path.with_name(path.stem + "_model.npz")
    feature_info = dict(feature=p.feature, features=(None if p.feature == "hog_color"
                                                      else self.config.features.to_dict()))
    if path.exists() and (not need_model or model_path.exists()):
      strengths = io.load_npz(path)["strengths"]
      model = dict(io.load_npz(model_path), **feature_info) if need_model else None
      return strengths, model
    if p.feature == "hog_color":
      x = prelabel_lib.prelabel_features(self.domain.images.images, p.feature)
    else:  # the run's feature cache, at the rankers' resolution
      x = self.features.domain_features(p.feature)
    binary = binary_labels(self.domain, attribute)[:, None]
    fit = np.asarray(self.domain.splits[p.fit_split])
    # Held out: the domain's own images only (pair-file test images have no label).
    held = np.setdiff1d(np.arange(pairfiles.own_image_count(self.domain)), fit)
    strengths, report, models = prelabel_lib.prelabel_strengths(
        x, binary, fit, float(p.C), eval_index=held, classifier=p.classifier,
        attribute_names=[attribute], standardize=bool(p.standardize), pca_dim=int(p.pca_dim),
        max_iter=int(p.max_iter), seed=int(p.seed), return_models=True)
    strengths = strengths[:, 0]
    io.save_npz(model_path, **models[attribute])
    io.save_npz(path, strengths=strengths)
    io.write_json(path.with_suffix(".json"), report)
    acc = report["per_attribute"][attribute]
    print(f"[prelabel] {attribute}: classifier accuracy fit {acc.get('fit_accuracy')}, "
          f"held-out {acc.get('heldout_accuracy')}", flush=True)
    return strengths, dict(models[attribute], **feature_info)

  # -- generator and synthetic pairs ----------------------------------------------------------

  def _store(self, kind: str) -> str:
    """The workdir folder of a generator's sets: `synth` for the run's own, else synth_<kind>."""
    return "synth" if kind == self.config.synth.generator else f"synth_{kind}"

  def generator(self, kind: str | None = None):
    """The run's generator (`synth.generator`) or the one named by `kind`, ready to render."""
    kind = kind or self.config.synth.generator
    if kind not in self._generators:
      gen = ready_generator(self.config, self.workdir, kind,
                                     render_size=self.domain.images.image_shape[0])
      if self.config.synth.control_attributes:
        pipeline.prior_control(self.config, self.workdir, gen, self.domain, self.features,
                               tuple(self.config.synth.control_attributes),
                               store_name=self._store(kind))
      self._generators[kind] = gen
    return self._generators[kind]

  def synth(self, attribute: str, kind: str | None = None):
    """The synthetic set of `attribute` from the run's generator (or the one named by `kind`)."""
    kind = kind or self.config.synth.generator
    if (kind, attribute) not in self._synth:
      self._synth[kind, attribute] = pipeline.synth_set(
          self.config, self.workdir, self.generator(kind), attribute, self.domain,
          self._store(kind))
    return self._synth[kind, attribute]

  def synth_oracle(self, attribute: str):
    return self.synth(attribute, "oracle")

  def verification(self, attribute: str) -> verify.Verification:
    if attribute not in self._verification:
      self._verification[attribute] = pipeline.verification(
          self.config, self.workdir, self.domain, self.synth(attribute), attribute,
          self.features)
    return self._verification[attribute]

  def verified(self, attribute: str) -> PairSet:
    return verify.verified_pairs(self.synth(attribute), self.verification(attribute))

  def measurement(self, attribute: str, feature: str) -> np.ndarray:
    if (attribute, feature) not in self._measured:
      scorer = pipeline.measurement_scorer(self.config, self.domain, attribute, self.features,
                                           feature)
      self._measured[attribute, feature] = scorer.score_features(
          self.features.of(feature, self.synth(attribute).images))
    return self._measured[attribute, feature]

  def pool_features(self, pool: Pool):
    return self.features.for_pool(pool)
