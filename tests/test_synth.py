"""Semantic jitter: the prior, the tweaks, pair construction, persistence and reuse."""

import jax
import numpy as np
import pytest

from densesynth_jax.synth import jitter, prior as prior_lib, store

NAMES = ("smiling", "mouth_open", "face_width")


def _prior(n=4000, seed=0):
  rng = np.random.default_rng(seed)
  cov = np.array([[1.0, 0.5, 0.1], [0.5, 2.0, -0.3], [0.1, -0.3, 0.5]])
  y = rng.multivariate_normal([0.5, -1.0, 2.0], cov, size=n)
  return y, cov, prior_lib.fit_prior(y, NAMES, z_dim=4, shrinkage=0.0, ridge=1e-6)


def fake_render(y, z):
  """A stand-in generator: a 4x4 image whose pixels encode (y[:, 0], z[:, 0])."""
  img = np.zeros((len(y), 4, 4, 3), np.uint8)
  img[..., 0] = np.clip(128 + 40 * y[:, :1, None], 0, 255)[..., None][..., 0]
  img[..., 1] = np.clip(128 + 40 * z[:, :1, None], 0, 255)[..., None][..., 0]
  return img


def test_prior_recovers_known_gaussian():
  y, cov, p = _prior()
  np.testing.assert_allclose(p.mean, [0.5, -1.0, 2.0], atol=0.06)
  np.testing.assert_allclose(p.cov, cov, atol=0.1)
  np.testing.assert_allclose(p.sigma, np.sqrt(np.diag(cov)), rtol=0.05)
  ys, zs = prior_lib.sample_identities(jax.random.PRNGKey(0), p, 20000)
  assert zs.shape == (20000, 4)
  np.testing.assert_allclose(np.cov(ys, rowvar=False), cov, atol=0.1)
  np.testing.assert_allclose(zs.std(0), 1.0, atol=0.03)


def test_prior_regularisation_keeps_singular_covariance_pd():
  rng = np.random.default_rng(0)
  onehot = np.eye(3)[rng.integers(0, 3, 500)]  # rows sum to one: singular covariance
  p = prior_lib.fit_prior(onehot, ("a", "b", "c"), z_dim=2)
  assert np.linalg.eigvalsh(p.cov).min() > 0
  with pytest.raises(ValueError, match="attribute 'b' is constant"):
    prior_lib.fit_prior(np.stack([rng.random(10), np.ones(10)], 1), ("a", "b"), 2)
  with pytest.raises(ValueError, match="non-finite attribute strength at training image 3"):
    prior_lib.fit_prior(np.where(np.arange(10)[:, None] == 3, np.nan, rng.random((10, 2))),
                        ("a", "b"), 2)


def test_tweak_changes_only_dimension_a_by_delta_sigma():
  _, _, p = _prior(500)
  y = np.random.default_rng(1).normal(size=(7, 3)).astype(np.float32)
  y_minus, y_plus = prior_lib.tweak(y, p, "mouth_open", 2.0)
  np.testing.assert_array_equal(np.delete(y_minus, 1, 1), np.delete(y, 1, 1))
  np.testing.assert_array_equal(np.delete(y_plus, 1, 1), np.delete(y, 1, 1))
  np.testing.assert_allclose(y_plus[:, 1] - y[:, 1], 2.0 * p.sigma[1], rtol=1e-6)
  np.testing.assert_allclose(y[:, 1] - y_minus[:, 1], 2.0 * p.sigma[1], rtol=1e-6)


@pytest.mark.parametrize("num_pairs, frac", [(40, 0.5), (40, 0.25), (100, 0.5)])
def test_pair_counts_mix_and_labels(num_pairs, frac):
  n = 30
  rng = np.random.default_rng(0)
  base = rng.normal(size=n)
  strength = np.stack([base - 1, base, base + 1], 1).reshape(-1)
  a, b, label, kind = jitter.identity_pairs(strength, np.random.default_rng(1), num_pairs, frac)
  n_intra = min(2 * n, round(num_pairs * frac))
  assert (kind == jitter.INTRA).sum() == n_intra
  assert (kind == jitter.INTER).sum() == min(2 * n, num_pairs - n_intra)
  ident_a, ident_b = a // 3, b // 3
  assert np.all(ident_a[kind == jitter.INTRA] == ident_b[kind == jitter.INTRA])
  assert np.all(ident_a[kind == jitter.INTER] != ident_b[kind == jitter.INTER])
  # Intra pairs are neighbours on one spectrum; inter pairs join a base image with a tweaked one.
  assert np.all(np.abs(a - b)[kind == jitter.INTRA] == 1)
  roles = np.sort(np.stack([a % 3, b % 3], 1)[kind == jitter.INTER], axis=1)
  assert set(map(tuple, roles)) <= {(1, 2), (0, 1)}
  np.testing.assert_array_equal(label, np.sign(strength[a] - strength[b]))
  assert 0.2 < np.mean(label > 0) < 0.8  # members shuffled: both label signs occur


def _cfg(**kw):
  cfg = jitter.default_config()
  cfg.update(dict(num_identities=12, num_pairs=30, chunk_identities=5) | kw)
  return cfg


def test_synthesize_builds_spectra_with_generating_strengths():
  _, _, p = _prior(500)
  s = jitter.synthesize(fake_render, p, "smiling", _cfg())
  assert len(s.images) == 36 and s.images.images.shape == (36, 4, 4, 3)
  y = s.images.strengths.reshape(12, 3, 3)
  np.testing.assert_allclose(y[:, 2, 0] - y[:, 1, 0], 2 * p.sigma[0], rtol=1e-5)
  np.testing.assert_array_equal(y[:, 0, 1:], y[:, 1, 1:])
  assert np.all(s.images.groups == np.repeat(np.arange(12), 3))
  # The same z within an identity: the fake renderer's green channel is equal across x⁻, x, x⁺.
  g = s.images.images[..., 1].reshape(12, 3, -1)
  assert np.all(g[:, 0] == g[:, 1]) and np.all(g[:, 1] == g[:, 2])
  assert s.pairs.source_counts()["synth"] == 30 and s.info["num_intra"] == 15
  again = jitter.synthesize(fake_render, p, "smiling", _cfg())
  np.testing.assert_array_equal(again.images.images, s.images.images)
  np.testing.assert_array_equal(again.pairs.a, s.pairs.a)


def test_store_roundtrip_and_reuse(tmp_path):
  _, _, p = _prior(500)
  cfg = _cfg()
  calls = []

  def make():
    calls.append(1)
    return jitter.synthesize(fake_render, p, "smiling", cfg)

  fp = store.fingerprint("gen-abc", cfg, "smiling")
  s1, reused1 = store.load_or_make(tmp_path / "smiling", fp, make)
  s2, reused2 = store.load_or_make(tmp_path / "smiling", fp, make)
  assert (reused1, reused2, len(calls)) == (False, True, 1)
  for f in ("images", "ids", "strengths", "groups"):
    np.testing.assert_array_equal(getattr(s1.images, f), getattr(s2.images, f))
  for f in ("a", "b", "label", "weight", "source"):
    np.testing.assert_array_equal(getattr(s1.pairs, f), getattr(s2.pairs, f))
  np.testing.assert_array_equal(s1.kind, s2.kind)
  np.testing.assert_array_equal(s1.prior.cov, s2.prior.cov)
  assert s2.images.attribute_names == NAMES and s2.info == s1.info
  # A different generator or config regenerates.
  store.load_or_make(tmp_path / "smiling", store.fingerprint("gen-xyz", cfg, "smiling"), make)
  assert len(calls) == 2
  # A corrupt file is reported with its path and regenerated rather than half-read.
  (tmp_path / "smiling" / "synth.npz").write_bytes(b"junk")
  with pytest.raises(ValueError, match="synth.npz"):
    store.load(tmp_path / "smiling")


def test_clip_range_policy_keeps_strengths_in_the_training_range():
  _, _, p = _prior(500)
  lo, hi = p.range
  np.testing.assert_allclose(lo, _prior(500)[0].min(0), rtol=1e-6)
  s = jitter.synthesize(fake_render, p, "smiling", _cfg(num_identities=40, num_pairs=60,
                                                          range_policy="clip", min_gap=0.5))
  y = s.images.strengths
  assert np.all(y >= lo - 1e-6) and np.all(y <= hi + 1e-6)
  # Pairs closer than min_gap·δσ after clipping are not used; labels follow the clipped strengths.
  d = y[s.pairs.a, 0] - y[s.pairs.b, 0]
  assert np.all(np.abs(d) >= 0.5 * 2.0 * p.sigma[0] - 1e-5)
  np.testing.assert_array_equal(s.pairs.label, np.sign(d))
  assert s.info["range_policy"] == "clip" and s.info["min_gap"] == 0.5
  # The paper's policy uses y ± δσ as drawn, outside the range too.
  paper = jitter.synthesize(fake_render, p, "smiling", _cfg(num_identities=40))
  assert (paper.images.strengths[:, 0] > hi[0]).any() or (paper.images.strengths[:, 0] < lo[0]).any()
  with pytest.raises(ValueError, match="range_policy"):
    jitter.synthesize(fake_render, p, "smiling", _cfg(range_policy="wrap"))


def test_identity_pairs_min_diff_drops_close_candidates():
  strength = np.array([0.0, 0.1, 0.9, 0.5, 0.5, 0.6, 0.0, 0.4, 0.8], np.float32)
  a, b, label, kind = jitter.identity_pairs(strength, np.random.default_rng(0), 12, 0.5,
                                            min_diff=0.3)
  assert np.all(np.abs(strength[a] - strength[b]) >= 0.3) and 0 < len(a) < 12
