"""Pools per method: sizes, sources, labels; DSynth really halves the real pairs; jitter."""

import jax
import ml_collections
import numpy as np
import pytest

from densesynth_jax.data import lowjitter
from densesynth_jax.experiments import methods
from densesynth_jax.synth import jitter, prior as prior_lib
from densesynth_jax.types import SOURCE_CODE, Domain, ImageSet, PairSet

N = 40


def _domain():
  rng = np.random.default_rng(0)
  strength = rng.random(N).astype(np.float32)
  images = ImageSet((rng.random((N, 8, 8, 3)) * 255).astype(np.uint8), np.arange(N),
                    strength[:, None], np.arange(N) // 4, ("smiling",))
  a, b = rng.integers(0, 30, 24), rng.integers(0, 30, 24)
  keep = a != b
  a, b = a[keep], b[keep]
  label = np.sign(strength[a] - strength[b])
  train = PairSet.create(a, b, label, attribute="smiling", weight=np.full(len(a), 0.8))
  test = PairSet.create([30, 31], [32, 33], [1, -1], attribute="smiling")
  return Domain("fake", images, {"train": np.arange(30), "test": np.arange(30, N)},
                {"smiling": {"train": train, "test_fine": test}})


class FakeAssets(methods.Assets):
  def __init__(self, domain):
    self.domain = domain
    p = prior_lib.fit_prior(np.random.default_rng(0).normal(size=(50, 1)), ("smiling",), 2)
    cfg = jitter.default_config()
    cfg.update(dict(num_identities=20, num_pairs=40, chunk_identities=20))
    render = lambda y, z: np.full((len(y), 8, 8, 3), 7, np.uint8)
    self._synth = jitter.synthesize(render, p, "smiling", cfg)

  def prelabel(self, attribute):
    return self.domain.images.strength(attribute) * 2 + 1  # monotone in the truth

  def synth(self, attribute):
    return self._synth

  def verified(self, attribute):
    return self._synth.pairs.take(np.arange(0, 40, 2))


def _cfg():
  cfg = ml_collections.ConfigDict()
  cfg.pools = methods.default_config()
  return cfg


def _build(method, seed=0):
  d = _domain()
  return d, methods.build_pool(method, d, "smiling", _cfg(), seed, FakeAssets(d))


def test_real_pool_is_the_real_pairs():
  d, pool = _build("real")
  assert pool.images is d.images and len(pool.pairs) == len(d.pairs["smiling"]["train"])
  assert pool.info["pairs_by_source"] == {"real": len(pool.pairs)}


def test_real_plus_adds_equal_number_of_pseudo_pairs_from_train_images():
  d, pool = _build("real_plus")
  n = len(d.pairs["smiling"]["train"])
  src = pool.pairs.source
  assert (src == SOURCE_CODE["real"]).sum() == n and (src == SOURCE_CODE["pseudo"]).sum() == n
  pseudo = pool.pairs.take(np.flatnonzero(src == SOURCE_CODE["pseudo"]))
  assert np.isin(pseudo.a, d.splits["train"]).all() and np.isin(pseudo.b, d.splits["train"]).all()
  s = d.images.strength("smiling")
  np.testing.assert_array_equal(pseudo.label, np.sign(s[pseudo.a] - s[pseudo.b]))


def test_jitter_pool_appends_copies_with_inherited_labels():
  d, pool = _build("jitter")
  real = d.pairs["smiling"]["train"]
  jit = pool.pairs.take(np.flatnonzero(pool.pairs.source == SOURCE_CODE["jitter"]))
  assert len(jit) == len(real)
  np.testing.assert_array_equal(jit.label, real.label)
  assert (jit.a >= N).all() and (jit.b >= N).all()
  # Each jittered member is a copy of the corresponding real member: same id and strength.
  np.testing.assert_array_equal(pool.images.ids[jit.a], d.images.ids[real.a])
  np.testing.assert_array_equal(pool.images.strengths[jit.b], d.images.strengths[real.b])
  assert not np.array_equal(pool.images.images[jit.a], d.images.images[real.a])


def test_dsynth_halves_the_real_pairs_and_fills_with_verified_synthetic():
  d, pool = _build("dsynth")
  n = len(d.pairs["smiling"]["train"])
  src = pool.pairs.source
  n_real = (src == SOURCE_CODE["real"]).sum()
  assert n_real == round(n * 0.5) and (src == SOURCE_CODE["synth"]).sum() == n - n_real
  assert len(pool.pairs) == n  # the same number of labelled pairs as Real
  synth = pool.pairs.take(np.flatnonzero(src == SOURCE_CODE["synth"]))
  assert (synth.a >= N).all() and len(pool.images) == N + 60
  # Real pairs kept are a subset of the real pairs.
  real = d.pairs["smiling"]["train"]
  kept = set(zip(pool.pairs.a[src == 0], pool.pairs.b[src == 0]))
  assert kept <= set(zip(real.a, real.b))


def test_dsynth_auto_keeps_all_real_and_adds_ratio_of_synthetic():
  d, pool = _build("dsynth_auto")
  n = len(d.pairs["smiling"]["train"])
  src = pool.pairs.source
  assert (src == SOURCE_CODE["real"]).sum() == n and (src == SOURCE_CODE["synth"]).sum() == n
  cfg = _cfg()
  cfg.pools.num_synth_pairs = 7
  pool7 = methods.build_pool("dsynth_auto", d, "smiling", cfg, 0, FakeAssets(d))
  assert (pool7.pairs.source == SOURCE_CODE["synth"]).sum() == 7


def test_pools_are_seeded_and_unknown_method_errors():
  _, p1 = _build("dsynth", seed=1)
  _, p2 = _build("dsynth", seed=1)
  _, p3 = _build("dsynth", seed=2)
  np.testing.assert_array_equal(p1.pairs.a, p2.pairs.a)
  assert not np.array_equal(p1.pairs.a, p3.pairs.a)
  with pytest.raises(ValueError, match="unknown method 'nope'"):
    methods.build_pool("nope", _domain(), "smiling", _cfg(), 0, None)
  with pytest.raises(KeyError, match="no pairs for attribute 'eyes'"):
    methods.build_pool("real", _domain(), "eyes", _cfg(), 0, None)


def test_low_level_jitter_stays_in_range_and_identity_is_exact():
  rng = np.random.default_rng(0)
  img = np.zeros((3, 16, 16, 3), np.uint8)
  img[:, 8, 8] = 255
  cfg = lowjitter.default_config()
  cfg.update(dict(translate=0.0, scale=1.0, rotate_deg=0.0, contrast=0.0, color=0.0))
  np.testing.assert_array_equal(lowjitter.jitter_images(img, jax.random.PRNGKey(0), cfg), img)
  cfg.update(dict(translate=0.25))
  moved = lowjitter.jitter_images(img, jax.random.PRNGKey(1), cfg)
  assert moved.dtype == np.uint8 and moved.shape == img.shape
  peaks = [np.unravel_index(m[..., 0].argmax(), (16, 16)) for m in moved]
  assert any(p != (8, 8) for p in peaks)
  full = lowjitter.default_config()
  big = (rng.random((5, 16, 16, 3)) * 255).astype(np.uint8)
  a = lowjitter.jitter_images(big, jax.random.PRNGKey(3), full)
  np.testing.assert_array_equal(a, lowjitter.jitter_images(big, jax.random.PRNGKey(3), full))
