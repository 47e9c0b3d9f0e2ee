"""Replicates redraw the real training pairs; the same config and seeds give the same bytes;
the resolution rule puts real and synthetic images at one side; the oracle renders sprites."""

import numpy as np
import pytest

from configs import test as test_config
from densesynth_jax.data import registry, sprites
from densesynth_jax.experiments import runner


def _small_domain():
  cfg = test_config.get_config().data
  return cfg, sprites.build_domain(cfg)


def test_replicates_redraw_train_pairs_only():
  cfg, domain = _small_domain()
  r0 = registry.replicate_domain(cfg, domain, 0)
  r1 = registry.replicate_domain(cfg, domain, 1)
  r1_again = registry.replicate_domain(cfg, domain, 1)
  assert r0 is domain  # replicate 0 is the domain's own draw
  for a in cfg.attributes:
    t0, t1 = domain.pairs[a]["train"], r1.pairs[a]["train"]
    assert len(t1) == len(t0) == cfg.train_pairs
    assert not (np.array_equal(t0.a, t1.a) and np.array_equal(t0.b, t1.b))
    np.testing.assert_array_equal(t1.a, r1_again.pairs[a]["train"].a)  # seeded
    train = set(np.asarray(domain.splits["train"]).tolist())
    assert set(t1.a.tolist()) | set(t1.b.tolist()) <= train
    for split in ("val", "test_fine", "test_coarse"):  # everything else stays fixed
      assert r1.pairs[a][split] is domain.pairs[a][split]
  assert r1.images is domain.images


def test_resize_domain_and_rank_image_size():
  cfg, domain = _small_domain()
  small = registry.resize_domain(domain, 16)
  assert small.images.image_shape == (16, 16, 3) and small.info["source_image_size"] == 32
  assert small.pairs is domain.pairs
  assert registry.resize_domain(domain, 32) is domain
  config = test_config.get_config()
  assert runner.rank_image_size(config, 64) == config.generator.model.image_size  # paper's rule
  with config.unlocked():
    config.rank_image_size = 24
  assert runner.rank_image_size(config, 64) == 24


def test_oracle_renders_prior_identities_and_clips_strengths():
  from densesynth_jax.synth import oracle
  gen = oracle.SpriteOracle(render_size=24)
  rng = np.random.default_rng(0)
  y = rng.uniform(-0.5, 1.5, (5, len(sprites.ATTRIBUTES))).astype(np.float32)
  z = rng.standard_normal((5, gen.z_dim)).astype(np.float32)
  images = gen.render(y, z)
  assert images.shape == (5, 24, 24, 3) and images.dtype == np.uint8
  np.testing.assert_array_equal(images, gen.render(y, z))  # a pure function of (y, z)
  p = gen.params(y, z)
  for i, name in enumerate(sprites.ATTRIBUTES):
    np.testing.assert_allclose(p[name], np.clip(y[:, i], 0, 1))
  # Only the smile changes when only y[smiling] does.
  y2 = y.copy()
  y2[:, 0] = np.where(y[:, 0] > 0.5, 0.0, 1.0)
  assert all((images[i] != gen.render(y2, z)[i]).any() for i in range(5))
  with pytest.raises(ValueError, match="z must be"):
    gen.render(y, z[:, :3])


@pytest.mark.slow
def test_same_config_and_seeds_give_identical_results(tmp_path):
  """One small DeepSTN cell of a redrawn replicate, trained twice from scratch: same bytes."""
  config = test_config.tiny_deepstn(test_config.get_config())
  config.seeds = (1,)
  config.figures.domain = False
  first = tmp_path / "first"
  second = tmp_path / "second"
  runner.train_and_evaluate(config, first)
  runner.train_and_evaluate(config, second)
  a = (first / "results.json").read_bytes()
  b = (second / "results.json").read_bytes()
  assert a == b


def test_cell_fingerprint_covers_only_what_the_cell_reads():
  from configs import demo
  from densesynth_jax.experiments.runner import cell_fingerprint
  base = demo.get_config()
  fp = lambda c, r, m: cell_fingerprint(c, r, m, "smiling", 0)
  changed = demo.get_config()
  changed.deepstn.lr = 0.5
  changed.figures.synth = False
  assert fp(changed, "ranksvm_local", "real") == fp(base, "ranksvm_local", "real")
  assert fp(changed, "ranksvm_local", "dsynth") == fp(base, "ranksvm_local", "dsynth")
  assert fp(changed, "deepstn", "real") != fp(base, "deepstn", "real")
  synth = demo.get_config()
  synth.synth.jitter.delta = 1.0
  assert fp(synth, "ranksvm_local", "real") == fp(base, "ranksvm_local", "real")
  assert fp(synth, "ranksvm_local", "dsynth_auto") != fp(base, "ranksvm_local", "dsynth_auto")
  verify = demo.get_config()
  verify.verification.noise = 0.5
  assert fp(verify, "deepstn", "dsynth_auto") == fp(base, "deepstn", "dsynth_auto")
  assert fp(verify, "deepstn", "dsynth") != fp(base, "deepstn", "dsynth")
  # The cell itself: another seed or attribute is another record.
  assert cell_fingerprint(base, "deepstn", "real", "smiling", 1) != fp(base, "deepstn", "real")
