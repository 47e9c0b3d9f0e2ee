"""Attribute pre-labelling (the paper's appendix): binary labels -> real-valued strengths.

The generator p(x | y, z) needs REAL-valued attribute strengths y, but CelebA's 40 attributes and
the shoes' categories are binary. The paper's recipe: train a linear classifier per attribute on
image features and use its decision values on every image as that attribute's strength. Here:

  features (N, F) --standardise, PCA (both fitted on fit_index only)--> Z (N, K)
  per attribute: LogisticRegression (or LinearSVC) fitted on Z[fit_index], binary[fit_index]
  strengths[:, a] = decision_function(Z) for ALL N images (float32, signed distance-like units:
                    > 0 means "has the attribute"; the scale is the classifier's, not a probability)

Everything is fitted ONLY on `fit_index` (the generator-training split), so the rows the rankers
are later tested on never shape the strengths. The report gives, per attribute, the accuracy on the
fit rows and on the held-out rows (default: every row outside fit_index).

An attribute with a single class among the fit rows cannot be separated: by default this raises an
error naming the attribute; `on_one_class="skip"` instead drops that attribute's column and lists
it in the report (for tiny smoke subsets where rare attributes have no positives).

Default feature: "hog_color" (features/hog.py: HOG of the grey image, a joint RGB histogram and
a colour thumbnail). Any feature of `densesynth_jax.features.extract.FEATURES` (e.g.
"gist_lab") can be named instead.

C = 0.01 by default, chosen on CelebA's validation accuracy (the measurement:
benchmarks/RESULTS.md, "Pre-label classifier's C").

`apply_prelabel(domain, cfg)` is the switch the domain builders call: cfg.strengths = "true"
keeps the domain's own strengths (sprites: the known truth; CelebA: the ±1 labels; shoes: 0/1
category one-hots and z-scored measures), "prelabel" binarises the listed columns at
cfg.prelabel.threshold (sprites: 0.5, CelebA: 0) and replaces them by decision values, so the two
paths can be compared on sprites, where the truth is known. The strengths are cached beside the
decoded images
(`<cache_dir>/prelabel/<domain>-<fingerprint>.npz`, keyed by the images' bytes, the label
columns, the fit rows, the settings and `PRELABEL_VERSION`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from typing import Mapping, Sequence

import ml_collections
import numpy as np
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from densesynth_jax import io
from densesynth_jax.data import imageio
from densesynth_jax.features import extract
from densesynth_jax.features.hog import hog_color_features
from densesynth_jax.types import Domain, ImageSet

CLASSIFIERS = ("logistic", "linear_svm")
STRENGTH_MODES = ("true", "prelabel")
# Bump when the strengths change for the same inputs and settings (invalidates cached ones).
PRELABEL_VERSION = 1


def default_config() -> ml_collections.ConfigDict:
  """The `prelabel` block of a data config."""
  c = ml_collections.ConfigDict()
  c.fit_split = "train"  # the classifier sees only this split (the generator-training images)
  c.attributes = ()  # strength columns to pre-label; () = every column
  c.threshold = 0.5  # a column is binarised as value > threshold (sprites 0.5, ±1 labels 0)
  c.feature = "hog_color"  # "hog_color" (this module) or a key of features.extract.FEATURES
  c.classifier = "logistic"  # "logistic" (LogisticRegression) or "linear_svm" (LinearSVC)
  c.C = 0.01  # inverse regularisation (sklearn's: weight of the summed loss vs ½‖w‖²)
  c.pca_dim = 256  # PCA components kept (fitted on the fit split); 0 = no PCA
  c.standardize = True  # z-score features with the fit split's statistics first
  c.max_iter = 2000  # solver iterations per attribute
  c.seed = 0  # LinearSVC's coordinate-descent order
  c.on_one_class = "error"  # "error" or "skip" (drop the column) when the fit split has 1 class
  return c


def prelabel_features(images: np.ndarray, feature: str = "hog_color") -> np.ndarray:
  """The features the classifier sees: "hog_color" or a features.extract name. float32 (N, F)."""
  if feature == "hog_color":
    return hog_color_features(images)
  if feature not in extract.FEATURES:
    raise ValueError(f"unknown prelabel feature {feature!r}; valid: "
                     f"{['hog_color'] + sorted(extract.FEATURES)}")
  return extract.extract_features(feature, images, extract.default_config())


# ---------------------------------------------------------------------------------------------
# The classifier.

def _positive(binary: np.ndarray) -> np.ndarray:
  """binary (N, A) in {0, 1} or {-1, 1} -> bool (N, A) positives."""
  binary = np.asarray(binary)
  if binary.ndim != 2:
    raise ValueError(f"binary labels must be (N, A), got shape {binary.shape}")
  values = np.unique(binary)
  if binary.dtype.kind == "f" and not np.isfinite(values).all():
    bad = np.argwhere(~np.isfinite(binary))[0]
    raise ValueError(f"binary label at image index {bad[0]}, column {bad[1]} is not finite")
  allowed = values[np.isin(values, (-1, 0, 1))]
  if len(allowed) != len(values):
    bad = np.argwhere(~np.isin(binary, (-1, 0, 1)))[0]
    raise ValueError(f"binary label {binary[tuple(bad)]} at image index {bad[0]}, column {bad[1]}"
                     f" is not in {{0, 1}} or {{-1, 1}}")
  if -1 in values and 0 in values:
    raise ValueError("binary labels mix 0 and -1; use {0, 1} or {-1, 1}")
  return binary == 1


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
  if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
    return float("nan")
  return float(spearmanr(x, y).statistic)


def _principal_axes(xc: np.ndarray, k: int) -> np.ndarray:
  """The top-k principal axes (F, k) of centred rows xc (n, F).

  An eigendecomposition of the smaller Gram matrix (F×F or n×n): much cheaper than an SVD of a
  tall 8000×2020 matrix, and the same axes up to sign (signs are fixed so that each axis's
  largest-magnitude entry is positive, for reproducibility).
  """
  n, f = xc.shape
  if n >= f:
    w, v = np.linalg.eigh(xc.T @ xc)
    axes = v[:, ::-1][:, :k]
  else:
    w, u = np.linalg.eigh(xc @ xc.T)
    w, u = w[::-1][:k], u[:, ::-1][:, :k]
    axes = xc.T @ u / np.sqrt(np.maximum(w, 1e-12))
  sign = np.sign(axes[np.argmax(np.abs(axes), axis=0), np.arange(axes.shape[1])])
  return axes * np.where(sign == 0, 1.0, sign)


def prelabel_strengths(features: np.ndarray, binary: np.ndarray, fit_index: Sequence[int],
                       C: float = 0.01, *, classifier: str = "logistic",
                       attribute_names: Sequence[str] | None = None,
                       eval_index: Sequence[int] | None = None, standardize: bool = True,
                       pca_dim: int = 256, max_iter: int = 2000, seed: int = 0,
                       on_one_class: str = "error", reference: np.ndarray | None = None,
                       return_models: bool = False):
  """Decision values of a linear classifier per attribute, fitted on `fit_index` only.

  Args:
    features: float (N, F) image features.
    binary: (N, A) labels in {0, 1} or {-1, 1} (1 = has the attribute).
    fit_index: indices of the rows the scaler, PCA and classifiers are fitted on.
    C: classifier inverse regularisation.
    classifier: "logistic" or "linear_svm".
    attribute_names: A names for messages and the report (default "attr0", ...).
    eval_index: rows for the held-out accuracy (default: every row not in fit_index).
    standardize, pca_dim: feature z-scoring and PCA size (0 = none), fitted on fit rows.
    on_one_class: "error" or "skip" for an attribute with one class among the fit rows.
    reference: optional float (N, A) real strengths (e.g. sprites' truth); the report then gives
      the Spearman correlation of each column's decision values with it on the held-out rows.
    return_models: also return {attribute: model}, each model a dict of float64 arrays that
      `apply_model` applies to new features: mean, std (empty without standardisation), centre,
      axes, scale (empty without PCA), w, b.
  Returns:
    (strengths float32 (N, A') with A' = A minus skipped attributes, report dict: per attribute
    fit/held-out accuracy, positive fraction, optional Spearman; "attributes" kept, "skipped")
    [, models].
  """
  x = np.asarray(features, np.float64)
  if x.ndim != 2:
    raise ValueError(f"features must be (N, F), got shape {x.shape}")
  n = len(x)
  bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
  if bad.size:
    raise ValueError(f"features are not finite at image index {int(bad[0])}")
  pos = _positive(binary)
  if pos.shape[0] != n:
    raise ValueError(f"binary labels have {pos.shape[0]} rows, features {n}")
  a = pos.shape[1]
  names = list(attribute_names) if attribute_names is not None else [f"attr{i}" for i in range(a)]
  if len(names) != a:
    raise ValueError(f"{len(names)} attribute names for {a} label columns")
  fit = np.asarray(fit_index, np.int64).reshape(-1)
  if fit.size == 0:
    raise ValueError("prelabel: fit_index is empty")
  badi = fit[(fit < 0) | (fit >= n)]
  if badi.size:
    raise IndexError(f"prelabel: fit_index {int(badi[0])} out of range for {n} images")
  fit = np.unique(fit)
  if eval_index is None:
    held = np.setdiff1d(np.arange(n), fit)
  else:
    held = np.asarray(eval_index, np.int64).reshape(-1)
    badi = held[(held < 0) | (held >= n)]
    if badi.size:
      raise IndexError(f"prelabel: eval_index {int(badi[0])} out of range for {n} images")
  if classifier not in CLASSIFIERS:
    raise ValueError(f"unknown classifier {classifier!r}; valid: {list(CLASSIFIERS)}")
  if on_one_class not in ("error", "skip"):
    raise ValueError(f"on_one_class must be 'error' or 'skip', got {on_one_class!r}")

  # Shared feature transform, fitted on the fit rows only.
  empty = np.zeros((0,), np.float64)
  transform = dict(mean=empty, std=empty, centre=empty, axes=np.zeros((0, 0)), scale=empty)
  if standardize:
    mu = x[fit].mean(axis=0)
    sd = x[fit].std(axis=0)
    sd = np.where(sd > 1e-8, sd, 1.0)
    x = (x - mu) / sd
    transform.update(mean=mu, std=sd)
  k = min(int(pca_dim), len(fit) - 1, x.shape[1]) if pca_dim else 0
  if k > 0:
    centre = x[fit].mean(axis=0)
    axes = _principal_axes(x[fit] - centre, k)
    x = (x - centre) @ axes
    scale = np.sqrt(np.mean(x[fit] ** 2)) + 1e-12  # a unit scale keeps C meaningful across pca_dim
    x /= scale
    transform.update(centre=centre, axes=axes, scale=np.asarray([scale]))
  models = {}

  cols, skipped, per = [], [], {}
  for j, name in enumerate(names):
    y = pos[fit, j]
    if y.all() or not y.any():
      which = "positive" if y.all() else "negative"
      if on_one_class == "error":
        raise ValueError(f"prelabel: attribute {name!r} has only {which} labels among the "
                         f"{len(fit)} fit images; a classifier needs both classes "
                         f"(use more images, or on_one_class='skip')")
      skipped.append(name)
      continue
    if classifier == "logistic":
      clf = LogisticRegression(C=C, max_iter=max_iter)
    else:
      clf = LinearSVC(C=C, max_iter=max_iter, random_state=seed)
    clf.fit(x[fit], y)
    d = clf.decision_function(x).astype(np.float32)
    models[name] = dict(transform, w=np.asarray(clf.coef_, np.float64).reshape(-1),
                        b=np.asarray(clf.intercept_, np.float64).reshape(-1))
    row = dict(fit_accuracy=float(np.mean((d[fit] > 0) == y)),
               fit_positive_fraction=float(y.mean()),
               heldout_accuracy=(float(np.mean((d[held] > 0) == pos[held, j])) if held.size
                                 else float("nan")),
               heldout_count=int(held.size),
               strength_mean=float(d[fit].mean()), strength_std=float(d[fit].std()))
    if reference is not None:
      row["heldout_spearman_vs_reference"] = _spearman(d[held], np.asarray(reference)[held, j])
    per[name] = row
    cols.append(d)
  strengths = (np.stack(cols, axis=1) if cols else np.zeros((n, 0), np.float32))
  report = dict(classifier=classifier, C=float(C), pca_dim=int(k), standardize=bool(standardize),
                fit_count=int(len(fit)), feature_dim=int(np.asarray(features).shape[1]),
                attributes=[nm for nm in names if nm not in skipped], skipped=skipped,
                per_attribute=per)
  if per:
    report["mean_heldout_accuracy"] = float(np.nanmean([r["heldout_accuracy"]
                                                        for r in per.values()]))
  return (strengths, report, models) if return_models else (strengths, report)


def apply_model(model: Mapping[str, np.ndarray], features: np.ndarray) -> np.ndarray:
  """float32 (N,) decision values of a model of `prelabel_strengths(return_models=True)` on
  features (N, F), by the same steps as in the fit."""
  x = np.asarray(features, np.float64)
  if len(model["mean"]):
    x = (x - model["mean"]) / model["std"]
  if len(model["scale"]):
    x = (x - model["centre"]) @ model["axes"]
    x /= model["scale"][0]
  return ((x @ model["w"][:, None])[:, 0] + model["b"][0]).astype(np.float32)  # as sklearn


# ---------------------------------------------------------------------------------------------
# The switch the domain builders call.

def domain_settings(data: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The one pre-label recipe of a run: its domain's `prelabel` block over the defaults.

  The block is `data.prelabel`, or for a composite domain the `prelabel` block of its first
  part that has one (CelebA -> JAFFE: `data.celeba.prelabel`; shoes "open": `data.shoes.prelabel`).
  The experiment runner's pre-label classifier (Real+, the Classifier baseline) uses the same
  settings as the domain builder's pre-labelled strengths.
  """
  if "prelabel" in data:
    return _settings(data)
  for key in data.keys():
    child = data[key]
    if isinstance(child, ml_collections.ConfigDict) and "prelabel" in child:
      return _settings(child)
  return default_config()


def _settings(cfg) -> ml_collections.ConfigDict:
  """cfg.prelabel merged over the defaults (a missing block or field takes the default)."""
  out = default_config()
  block = cfg.get("prelabel") if cfg is not None else None
  if block:
    for key in block.keys():
      if key not in out:
        raise ValueError(f"unknown prelabel setting {key!r}; valid: {sorted(out.keys())}")
      out[key] = block[key]
  return out


def apply_prelabel(domain: Domain, cfg: ml_collections.ConfigDict,
                   features: np.ndarray | None = None) -> Domain:
  """Applies the config's strength mode to a domain (see the module docstring).

  Args:
    domain: a Domain whose ImageSet has strengths (the truth or the binary labels).
    cfg: the domain's data config: `strengths` ("true" | "prelabel"; missing = "true") and an
      optional `prelabel` block (`default_config()` fields).
    features: optional precomputed float (N, F) features (else computed by `prelabel.feature`).
  Returns:
    The domain with the listed strength columns replaced by decision values (other columns
    kept; skipped one-class columns dropped) and `info["prelabel"]` holding the report.
  """
  mode = cfg.get("strengths", "true") if cfg is not None else "true"
  if mode not in STRENGTH_MODES:
    raise ValueError(f"unknown strengths mode {mode!r}; valid: {list(STRENGTH_MODES)}")
  if mode == "true":
    return domain
  p = _settings(cfg)
  imgs = domain.images
  if imgs.strengths is None:
    raise ValueError(f"domain {domain.name}: no strengths to pre-label (strengths='prelabel')")
  names = list(p.attributes) or list(imgs.attribute_names)
  for name in names:
    imgs.attribute_index(name)  # raises KeyError listing the valid names
  cols = [imgs.attribute_index(nm) for nm in names]
  if p.fit_split not in domain.splits:
    raise KeyError(f"domain {domain.name}: prelabel fit_split {p.fit_split!r} is not a split; "
                   f"valid: {sorted(domain.splits)}")
  fit = np.asarray(domain.splits[p.fit_split])
  raw = imgs.strengths[:, cols]
  binary = (raw > float(p.threshold)).astype(np.int8)
  graded = [len(np.unique(raw[:, j])) > 2 for j in range(len(cols))]
  t0 = time.perf_counter()
  # The strengths are cached like the decoded images: a rerun on the same images, labels, split
  # and settings loads them instead of refitting 40 classifiers. Explicit features bypass it.
  folder = imageio.resolve_cache_dir(cfg.get("cache_dir")) if features is None else None
  cache_path = None
  if folder is not None:
    key = _fingerprint(imgs.images, raw, fit, _jsonable(p))
    cache_path = folder / "prelabel" / f"{domain.name}-{key}.npz"
  new = report = None
  if cache_path is not None and cache_path.exists():
    try:
      z = io.load_npz(cache_path)
      new, report = z["strengths"], json.loads(str(z["report"]))
      if len(new) != len(imgs) or new.shape[1] != len(report["attributes"]):
        raise ValueError("shape mismatch")
    except (ValueError, KeyError) as e:
      print(f"[prelabel] unusable cache {cache_path} ({e}); refitting", flush=True)
      new = report = None
  hit = new is not None
  if not hit:
    if features is None:
      features = prelabel_features(imgs.images, p.feature)
    new, report = prelabel_strengths(
        features, binary, fit, float(p.C), classifier=p.classifier, attribute_names=names,
        standardize=bool(p.standardize), pca_dim=int(p.pca_dim), max_iter=int(p.max_iter),
        seed=int(p.seed), on_one_class=p.on_one_class, reference=raw if any(graded) else None)
    if report.get("per_attribute") and any(graded):
      for nm, g in zip(names, graded):
        if not g and nm in report["per_attribute"]:
          report["per_attribute"][nm].pop("heldout_spearman_vs_reference", None)
    if cache_path is not None:
      io.save_npz(cache_path, strengths=new, report=np.asarray(json.dumps(report)))
  report = dict(report, cache_hit=hit, cache_path=str(cache_path) if cache_path else None,
                seconds=round(time.perf_counter() - t0, 3))

  strengths = imgs.strengths.copy()
  for j, nm in enumerate(report["attributes"]):
    strengths[:, imgs.attribute_index(nm)] = new[:, j]
  keep = [i for i, nm in enumerate(imgs.attribute_names) if nm not in report["skipped"]]
  attribute_names = tuple(imgs.attribute_names[i] for i in keep)
  images = ImageSet(imgs.images, imgs.ids, strengths[:, keep].astype(np.float32), imgs.groups,
                    attribute_names)
  info = dict(domain.info)
  info["strengths"] = "prelabel"
  info["prelabel"] = dict(settings=_jsonable(p), threshold=float(p.threshold),
                          fit_split=p.fit_split, **report)
  return dataclasses.replace(domain, images=images, info=info)


def _fingerprint(images: np.ndarray, raw: np.ndarray, fit: np.ndarray, settings: dict) -> str:
  """16 hex digits hashing the images, the label columns, the fit rows, settings and version."""
  h = hashlib.sha256()
  h.update(json.dumps(dict(settings=settings, version=PRELABEL_VERSION), sort_keys=True).encode())
  for x in (np.ascontiguousarray(images), np.ascontiguousarray(raw, np.float32),
            np.ascontiguousarray(fit, np.int64)):
    h.update(f"{x.shape}{x.dtype}".encode())
    h.update(memoryview(x).cast("B"))
  return h.hexdigest()[:16]


def _jsonable(cfg: ml_collections.ConfigDict) -> dict:
  return {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.to_dict().items()}


def strengths_table(report: Mapping) -> str:
  """A small text table of a prelabel report: attribute, fit and held-out accuracy."""
  rows = [f"{'attribute':<22} {'fit acc':>8} {'held acc':>8} {'pos frac':>8}"]
  for name, r in report.get("per_attribute", {}).items():
    rows.append(f"{name:<22} {r['fit_accuracy']:8.3f} {r['heldout_accuracy']:8.3f} "
                f"{r['fit_positive_fraction']:8.3f}")
  return "\n".join(rows)
