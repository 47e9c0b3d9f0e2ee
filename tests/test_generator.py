"""The CVAE and its training loop on a tiny model (16×16 images)."""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import stats

from densesynth_jax.models import cvae
from densesynth_jax.train import augment, generator
from densesynth_jax.types import Domain, ImageSet


def tiny_model():
  m = cvae.default_config()
  m.update(dict(image_size=16, z_dim=4, enc_widths=(4, 8), enc_top=8, enc_fc=16, y_enc=8,
                y_dec=8, dec_fc=8, dec_base=8, dec_widths=(8, 4)))
  return m


def tiny_domain(n=48, seed=0):
  rng = np.random.default_rng(seed)
  y = rng.random((n, 2)).astype(np.float32)
  img = np.zeros((n, 16, 16, 3), np.uint8)
  img[..., 0] = (255 * y[:, :1, None]).astype(np.uint8)  # attribute 0 = red level
  img[:, 4:12, 4:12, 1] = (255 * y[:, 1:, None]).astype(np.uint8)
  images = ImageSet(img, np.arange(n), y, np.arange(n), ("red", "green"))
  return Domain("tiny", images, {"train": np.arange(40), "val": np.arange(40, n)}, {})


def tiny_config(steps=6):
  cfg = generator.default_train_config()
  cfg.model = tiny_model()
  cfg.data = ml_collections.ConfigDict(dict(name="tiny"))
  cfg.train.update(dict(batch_size=8, num_steps=steps, log_every=2, eval_every=3,
                        checkpoint_every=3))
  return cfg


def test_shapes_and_sampling():
  model = cvae.CVAE(tiny_model())
  v = cvae.init_variables(model, jax.random.PRNGKey(0), 2)
  x = jnp.zeros((3, 16, 16, 3))
  y = jnp.ones((3, 2))
  mu, logvar = model.apply(v, x, y, method=cvae.CVAE.encode)
  assert mu.shape == (3, 4) and np.allclose(logvar, 0)  # zero-initialised: σ = 1 at start
  out = cvae.sample(model, v, y, jnp.zeros((3, 4)))
  assert out.shape == (3, 16, 16, 3) and float(jnp.abs(out).max()) <= 1.0
  with pytest.raises(ValueError, match="8 · 2\\^k"):
    cvae.num_stages(24)


def test_kl_and_likelihood_formulas():
  assert np.allclose(cvae.kl_standard_normal(jnp.zeros((2, 5)), jnp.zeros((2, 5))), 0.0)
  mu, logvar = jnp.array([[0.5, -1.0]]), jnp.array([[0.3, -0.2]])
  var = np.exp(np.asarray(logvar))
  closed = 0.5 * np.sum(var + np.asarray(mu) ** 2 - 1 - np.asarray(logvar))
  assert np.isclose(cvae.kl_standard_normal(mu, logvar)[0], closed, rtol=1e-6)
  rng = np.random.default_rng(0)
  x, m, lv = (rng.normal(size=(2, 4, 4, 3)).astype(np.float32) for _ in range(3))
  direct = -stats.norm.logpdf(x, m, np.exp(0.5 * lv)).reshape(2, -1).sum(1)
  np.testing.assert_allclose(cvae.gaussian_nll(x, m, lv), direct, rtol=1e-5)


def test_update_lowers_loss_on_a_fixed_batch():
  cfg = tiny_config()
  model = cvae.CVAE(cfg.model)
  tx = generator.make_optimizer(cfg)
  state = generator.init_state(model, tx, jax.random.PRNGKey(0), 2)
  update = jax.jit(generator.make_update(model, tx, augment=False))
  d = tiny_domain()
  batch = dict(images=d.images.images[:8], y=d.images.strengths[:8])
  losses = []
  for _ in range(8):
    state, m = update(state, batch, jax.random.PRNGKey(1))
    losses.append(float(m["neg_elbo"]))
    assert all(np.isfinite(float(v)) for v in m.values())
  assert losses[-1] < losses[0]
  assert int(state.step) == 8


@pytest.mark.skipif(jax.device_count() < 2, reason="needs 2 host devices (XLA_FLAGS)")
def test_sharded_step_equals_single_device():
  from densesynth_jax.train import mesh as mesh_lib
  cfg = tiny_config()
  model = cvae.CVAE(cfg.model)
  tx = generator.make_optimizer(cfg)
  d = tiny_domain()
  batch = dict(images=d.images.images[:8], y=d.images.strengths[:8])
  out = []
  for n in (1, 2):
    mesh = mesh_lib.make_mesh(n)
    state = mesh_lib.replicate(generator.init_state(model, tx, jax.random.PRNGKey(0), 2), mesh)
    update = jax.jit(generator.make_update(model, tx, augment=True))
    state, m = update(state, mesh_lib.shard_batch(batch, mesh), jax.random.PRNGKey(1))
    out.append((jax.device_get(state.params), float(m["neg_elbo"])))
  assert np.isclose(out[0][1], out[1][1], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(out[0][0]), jax.tree.leaves(out[1][0])):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)


def test_resume_equals_uninterrupted_run(tmp_path):
  cfg = tiny_config(steps=6)
  d = tiny_domain()
  full = generator.train(cfg, tmp_path / "full", domain=d)
  generator.train(cfg, tmp_path / "split", domain=d, stop_at=3)
  resumed = generator.train(cfg, tmp_path / "split", domain=d)
  assert int(resumed.step) == 6
  for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(resumed.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert generator.is_trained(tmp_path / "full", cfg)
  gen = generator.load_generator(tmp_path / "full")
  imgs = gen.render(np.full((3, 2), 0.5, np.float32), np.zeros((3, 4), np.float32))
  assert imgs.shape == (3, 16, 16, 3) and imgs.dtype == np.uint8
  rows = [r for r in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
  assert any('"split": "val"' in r for r in rows) and any('"grad_norm"' in r for r in rows)


def test_non_finite_loss_stops_with_step(tmp_path):
  cfg = tiny_config(steps=4)
  cfg.optim.lr = 1e30  # diverges at once
  with pytest.raises(FloatingPointError, match="non-finite training metric at step [12]"):
    generator.train(cfg, tmp_path, domain=tiny_domain())


def test_augmentation_keeps_range_and_shape():
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (5, 8, 8, 3)), jnp.float32)
  y = augment.augment(x, jax.random.PRNGKey(0))
  assert y.shape == x.shape and float(y.min()) >= -1 and float(y.max()) <= 1
  flat = jnp.zeros((2, 8, 8, 3)) + 0.3  # a flat image is unchanged by sharpening
  z = augment.augment(flat, jax.random.PRNGKey(1), flip=True, gain=0.0)
  np.testing.assert_allclose(z, flat, atol=1e-6)
