"""Attribute pre-labelling: decision values as strengths, fitted only on the given rows."""

import ml_collections
import numpy as np
import pytest
from scipy.stats import spearmanr

from densesynth_jax.data import prelabel
from densesynth_jax.types import Domain, ImageSet


def _linear_problem(n=400, f=20, a=2, seed=0):
  """Features whose projections on fixed random directions ARE the true strengths (+ noise)."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, f))
  w = rng.normal(size=(f, a))
  truth = x @ w + 0.1 * rng.normal(size=(n, a))
  binary = (truth > np.median(truth, axis=0)).astype(np.int8)
  return x.astype(np.float32), binary, truth


def test_decision_values_are_monotone_in_the_true_strength():
  x, binary, truth = _linear_problem()
  fit = np.arange(300)
  for classifier in prelabel.CLASSIFIERS:
    s, report = prelabel.prelabel_strengths(x, binary, fit, C=1.0, classifier=classifier,
                                            attribute_names=("a0", "a1"), pca_dim=0)
    assert s.shape == (400, 2) and s.dtype == np.float32
    for j in range(2):
      assert spearmanr(s[300:, j], truth[300:, j]).statistic > 0.9, classifier
      assert report["per_attribute"][f"a{j}"]["heldout_accuracy"] > 0.85
      assert report["per_attribute"][f"a{j}"]["heldout_count"] == 100


def test_pm1_labels_match_01_labels():
  x, binary, _ = _linear_problem()
  s01, _ = prelabel.prelabel_strengths(x, binary, np.arange(300), pca_dim=8)
  spm, _ = prelabel.prelabel_strengths(x, 2 * binary - 1, np.arange(300), pca_dim=8)
  np.testing.assert_allclose(s01, spm)


def test_rows_outside_fit_index_are_ignored():
  x, binary, _ = _linear_problem()
  fit = np.arange(0, 400, 2)  # interleaved: every other row
  s, _ = prelabel.prelabel_strengths(x, binary, fit, pca_dim=10)
  flipped = binary.copy()
  flipped[1::2] = 1 - flipped[1::2]  # change every label outside fit_index
  s2, _ = prelabel.prelabel_strengths(x, flipped, fit, pca_dim=10)
  np.testing.assert_array_equal(s, s2)
  # Features outside the fit rows change only their own decision values.
  x3 = x.copy()
  x3[1] += 5.0
  s3, _ = prelabel.prelabel_strengths(x3, binary, fit, pca_dim=10)
  np.testing.assert_allclose(np.delete(s3, 1, axis=0), np.delete(s, 1, axis=0), rtol=1e-5,
                             atol=1e-5)
  assert not np.allclose(s3[1], s[1])
  # ...whereas changing a fit row's label does change the classifier.
  flipped_fit = binary.copy()
  flipped_fit[fit[:40], 0] = 1 - flipped_fit[fit[:40], 0]
  s4, _ = prelabel.prelabel_strengths(x, flipped_fit, fit, pca_dim=10)
  assert not np.allclose(s4[:, 0], s[:, 0])


def test_one_class_attribute_raises_naming_it_or_is_skipped():
  x, binary, _ = _linear_problem()
  binary[:300, 1] = 1  # only positives among the fit rows
  with pytest.raises(ValueError, match="'Smiling' has only positive labels"):
    prelabel.prelabel_strengths(x, binary, np.arange(300), attribute_names=("Male", "Smiling"))
  s, report = prelabel.prelabel_strengths(x, binary, np.arange(300), on_one_class="skip",
                                          attribute_names=("Male", "Smiling"))
  assert s.shape == (400, 1)
  assert report["skipped"] == ["Smiling"] and report["attributes"] == ["Male"]


def test_bad_inputs_raise_one_line_errors():
  x, binary, _ = _linear_problem()
  bad = binary.copy()
  bad[7, 1] = 2
  with pytest.raises(ValueError, match="image index 7, column 1"):
    prelabel.prelabel_strengths(x, bad, np.arange(300))
  with pytest.raises(IndexError, match="fit_index 400 out of range"):
    prelabel.prelabel_strengths(x, binary, [0, 1, 400])
  xn = x.copy()
  xn[5, 3] = np.nan
  with pytest.raises(ValueError, match="not finite at image index 5"):
    prelabel.prelabel_strengths(xn, binary, np.arange(300))
  with pytest.raises(ValueError, match="fit_index is empty"):
    prelabel.prelabel_strengths(x, binary, [])


def test_hog_color_features_shape_and_orientation_sensitivity():
  stripes_v = np.zeros((1, 32, 32, 3), np.uint8)
  stripes_v[:, :, ::4] = 255
  stripes_h = np.transpose(stripes_v, (0, 2, 1, 3))
  f = prelabel.hog_color_features(np.concatenate([stripes_v, stripes_h]))
  assert f.shape == (2, 7 * 7 * 36 + 64 + 192) and np.isfinite(f).all()
  hog = 7 * 7 * 36
  assert not np.allclose(f[0, :hog], f[1, :hog])  # orientation differs
  np.testing.assert_allclose(f[0, hog:hog + 64], f[1, hog:hog + 64])  # same colours


def _toy_domain(n=120, size=16, seed=0):
  """A sprite-like domain: one attribute drawn as image brightness, another as noise."""
  rng = np.random.default_rng(seed)
  truth = rng.uniform(size=(n, 2)).astype(np.float32)
  images = np.clip(truth[:, :1, None, None] * 200 + rng.normal(0, 10, (n, size, size, 3)),
                   0, 255).astype(np.uint8)
  imgs = ImageSet(images, np.arange(n, dtype=np.int64), truth, None, ("bright", "other"))
  splits = dict(train=np.arange(80), test=np.arange(80, n))
  return Domain("toy", imgs, splits, {}, {"built": True})


def test_apply_prelabel_switch(tmp_path):
  domain = _toy_domain()
  cfg = ml_collections.ConfigDict(dict(strengths="true", cache_dir=str(tmp_path)))
  assert prelabel.apply_prelabel(domain, cfg) is domain

  cfg.strengths = "prelabel"
  cfg.prelabel = ml_collections.ConfigDict(dict(attributes=("bright",), threshold=0.5, C=1.0,
                                                pca_dim=16))
  out = prelabel.apply_prelabel(domain, cfg)
  assert out.images.attribute_names == ("bright", "other")
  np.testing.assert_array_equal(out.images.strengths[:, 1], domain.images.strengths[:, 1])
  s = out.images.strengths[:, 0]
  assert spearmanr(s[80:], domain.images.strengths[80:, 0]).statistic > 0.8
  rep = out.info["prelabel"]
  assert rep["fit_split"] == "train" and rep["fit_count"] == 80 and not rep["cache_hit"]
  assert rep["per_attribute"]["bright"]["heldout_spearman_vs_reference"] > 0.8
  assert out.info["built"]  # the original info is kept

  again = prelabel.apply_prelabel(domain, cfg)  # second run: loaded from the cache
  assert again.info["prelabel"]["cache_hit"]
  np.testing.assert_array_equal(again.images.strengths, out.images.strengths)

  cfg.prelabel.fit_split = "nope"
  with pytest.raises(KeyError, match="fit_split 'nope'"):
    prelabel.apply_prelabel(domain, cfg)
  cfg.prelabel.fit_split = "train"
  cfg.strengths = "fuzzy"
  with pytest.raises(ValueError, match="unknown strengths mode 'fuzzy'"):
    prelabel.apply_prelabel(domain, cfg)
