"""The Attribute2Image CVAE (models/cvae.py) and its augmentations (train/augment.py), tiny sizes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from densesynth_jax.models import cvae
from densesynth_jax.train import augment


def tiny_model(image_size=16, z_dim=4):
  m = cvae.default_config()
  m.update(dict(image_size=image_size, z_dim=z_dim, enc_widths=(4, 8, 8), enc_top=8, enc_fc=16,
                y_enc=8, y_dec=8, dec_fc=8, dec_base=8, dec_widths=(8, 8, 4)))
  return m


@pytest.fixture(scope="module")
def tiny():
  model = cvae.CVAE(tiny_model())
  variables = jax.jit(lambda k: cvae.init_variables(model, k, 3))(jax.random.PRNGKey(0))
  return model, variables


def test_paper_geometry_at_64_and_smaller_sizes():
  """Shapes only (no compilation): the encoder reaches 1×1 and the decoder S×S at every size."""
  full = cvae.CVAE(cvae.default_config())
  v = jax.eval_shape(lambda k: cvae.init_variables(full, k, 40), jax.random.PRNGKey(0))
  p = v["params"]
  enc, dec = p["image_encoder"], p["decoder"]
  assert enc["conv0"]["kernel"].shape == (5, 5, 3, 64)
  assert enc["conv1"]["kernel"].shape == (5, 5, 64, 128)
  assert enc["conv2"]["kernel"].shape == (3, 3, 128, 256)
  assert enc["conv_top"]["kernel"].shape == (3, 3, 256, 256)
  assert enc["conv_fc"]["kernel"].shape == (4, 4, 256, 1024)
  assert enc["fc"]["kernel"].shape == (1024, 1024)
  assert p["posterior"]["mu"]["kernel"].shape == (1024 + 256, 256)  # μ from [h_x; h_y]
  assert p["posterior"]["logvar"]["kernel"].shape == (1024, 256)  # log σ² from h_x only
  assert dec["y_dec"]["kernel"].shape == (40, 512)
  assert dec["fc0"]["kernel"].shape == (256 + 512, 256)
  assert dec["fc1"]["kernel"].shape == (256, 256 * 8 * 8)
  assert [dec[f"up{i}"]["kernel"].shape[-1] for i in range(3)] == [256, 128, 64]
  assert dec["mean"]["kernel"].shape == dec["logvar"]["kernel"].shape == (5, 5, 64, 3)
  assert "bias" not in enc["conv1"] and "bias" not in dec["up0"]  # BN follows: no bias
  for size, stages in ((16, 1), (32, 2), (64, 3)):
    m = cvae.CVAE(tiny_model(size))
    x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
    y = jax.ShapeDtypeStruct((2, 3), jnp.float32)
    v = jax.eval_shape(lambda k: cvae.init_variables(m, k, 3), jax.random.PRNGKey(0))
    mu, logvar = jax.eval_shape(functools.partial(cvae.encode, m), v, x, y)
    assert mu.shape == logvar.shape == (2, 4)
    mean, lv = jax.eval_shape(functools.partial(cvae.decode, m), v, mu, y)
    assert mean.shape == lv.shape == (2, size, size, 3)
    dec = v["params"]["decoder"]
    assert len([k for k in dec if k.startswith("up") and "bn" not in k]) == stages
    # The finest decoder stage keeps the paper's finest width (the LAST configured one).
    assert dec[f"up{stages - 1}"]["kernel"].shape[-1] == 4


def test_bad_sizes_and_widths():
  with pytest.raises(ValueError, match="8 · 2\\^k"):
    cvae.num_stages(24)
  with pytest.raises(ValueError, match="8 · 2\\^k"):
    cvae.num_stages(4)
  assert cvae.stage_widths((64, 128, 256), 2, "first") == [64, 128]
  assert cvae.stage_widths((256, 128, 64), 2, "last") == [128, 64]
  assert cvae.stage_widths((256, 128, 64), 4, "last") == [256, 256, 128, 64]
  assert cvae.stage_widths((64, 128), 3, "first") == [64, 128, 128]


@pytest.mark.slow
def test_encode_decode_sample(tiny):
  model, v = tiny
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.uniform(-1, 1, (5, 16, 16, 3)), jnp.float32)
  y = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
  z = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)

  @jax.jit
  def run(v, x, y, z):
    return cvae.encode(model, v, x, y), cvae.decode(model, v, z, y), cvae.sample(model, v, y, z)

  (mu, logvar), (mean, lv), s = run(v, x, y, z)
  assert mu.shape == (5, 4) and logvar.shape == (5, 4)
  # log σ² = Linear(h_x) with zero kernel AND bias: σ = 1 at the start, for any input.
  np.testing.assert_array_equal(logvar, 0.0)
  assert mean.shape == lv.shape == s.shape == (5, 16, 16, 3)
  np.testing.assert_array_equal(s, mean)  # sampling returns the decoder MEAN
  assert float(jnp.abs(s).max()) <= 1.0
  # The decoder depends on y and z, the posterior mean on x and y.
  (mu2, _), (mean2, _), _ = run(v, -x, y + 1.0, z + 1.0)
  assert not np.allclose(mu, mu2) and not np.allclose(mean, mean2)


def test_elbo_train_and_eval_modes(tiny):
  model, v = tiny
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.uniform(-1, 1, (4, 16, 16, 3)), jnp.float32)
  y = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)

  @functools.partial(jax.jit, static_argnums=3)
  def run(v, x, key, train):
    return cvae.elbo(model, v, x, y, key, train=train)

  key = jax.random.PRNGKey(3)
  (terms, stats_eval), (terms2, _) = run(v, x, key, False), run(v, x, key, False)
  assert terms.neg_elbo.shape == terms.nll.shape == terms.kl.shape == (4,)
  np.testing.assert_allclose(terms.neg_elbo, terms.nll + terms.kl, rtol=1e-6)
  np.testing.assert_array_equal(terms.neg_elbo, terms2.neg_elbo)  # same key, same number
  assert np.all(np.asarray(terms.kl) >= 0)
  jax.tree.map(np.testing.assert_array_equal, stats_eval, v["batch_stats"])  # untouched
  train_terms, stats_train = run(v, x, key, True)
  assert np.all(np.isfinite(train_terms.neg_elbo))
  moved = jax.tree.leaves(jax.tree.map(lambda a, b: not np.allclose(a, b), stats_train,
                                       v["batch_stats"]))
  assert any(moved)  # training mode updates the running averages


def test_kl_zero_for_the_prior_and_closed_form():
  assert np.allclose(cvae.kl_standard_normal(jnp.zeros((2, 5)), jnp.zeros((2, 5))), 0.0)
  mu, logvar = np.array([[0.5, -1.0, 0.0]]), np.array([[0.3, -0.2, 0.0]])
  var = np.exp(logvar)
  closed = np.sum(-0.5 * logvar + 0.5 * (var + mu ** 2) - 0.5)
  np.testing.assert_allclose(cvae.kl_standard_normal(jnp.asarray(mu), jnp.asarray(logvar))[0],
                             closed, rtol=1e-6)
  # And by numerical integration of q·log(q/p) for one dimension.
  q = stats.norm(0.5, np.exp(0.15))
  numeric = integrate.quad(lambda t: q.pdf(t) * (q.logpdf(t) - stats.norm.logpdf(t)), -12, 12)[0]
  np.testing.assert_allclose(
      cvae.kl_standard_normal(jnp.array([[0.5]]), jnp.array([[0.3]]))[0], numeric, rtol=1e-5)


def test_gaussian_likelihood_matches_scipy():
  rng = np.random.default_rng(0)
  x, m, lv = (rng.normal(size=(2, 4, 4, 3)).astype(np.float32) for _ in range(3))
  direct = -stats.norm.logpdf(x, m, np.exp(0.5 * lv)).reshape(2, -1).sum(1)
  np.testing.assert_allclose(cvae.gaussian_nll(x, m, lv), direct, rtol=1e-5)


def test_upsample_is_nearest_neighbour():
  x = jnp.arange(2 * 3 * 4 * 5, dtype=jnp.float32).reshape(2, 3, 4, 5)
  up = cvae.upsample2(x)
  assert up.shape == (2, 6, 8, 5)
  np.testing.assert_array_equal(up, jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2))


@pytest.mark.parametrize("k,patch_bytes", [(3, 64 << 20), (5, 1)])
def test_conv_same_gradients_match_xla(k, patch_bytes, monkeypatch):
  """The CPU weight gradient by im2col + matmul equals XLA's; chunked (patch_bytes=1) too."""
  monkeypatch.setattr(cvae, "_PATCH_BYTES", patch_bytes)
  monkeypatch.setattr(cvae, "_fast_weight_gradient_pays", lambda *_: True)  # tiny shapes too
  rng = np.random.default_rng(k)
  x = jnp.asarray(rng.normal(size=(3, 6, 5, 4)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(k, k, 4, 2)), jnp.float32)
  t = jnp.asarray(rng.normal(size=(3, 6, 5, 2)), jnp.float32)
  plain = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(cvae.conv_same(x, w), plain(x, w), rtol=1e-5, atol=1e-5)
  g_fast = jax.jit(jax.grad(lambda x, w: jnp.sum(cvae.conv_same(x, w) * t), (0, 1)))(x, w)
  g_ref = jax.jit(jax.grad(lambda x, w: jnp.sum(plain(x, w) * t), (0, 1)))(x, w)
  for a, b in zip(g_fast, g_ref):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("k", [3, 5])
def test_subpixel_upsample_conv_is_upsample_then_conv(k):
  """UpsampleConv is exactly nearest ×2 upsampling + a k×k SAME conv, gradients included."""
  rng = np.random.default_rng(k)
  x = jnp.asarray(rng.normal(size=(2, 5, 6, 3)), jnp.float32)
  layer = cvae.UpsampleConv(4, k)
  v = layer.init(jax.random.PRNGKey(0), x)
  w = v["params"]["kernel"]
  assert w.shape == (k, k, 3, 4)

  def reference(w, x):
    return jax.lax.conv_general_dilated(cvae.upsample2(x), w, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

  def fast(w, x):
    return layer.apply({"params": {"kernel": w}}, x)

  np.testing.assert_allclose(jax.jit(fast)(w, x), jax.jit(reference)(w, x), rtol=1e-5, atol=1e-5)
  t = jnp.asarray(rng.normal(size=(2, 10, 12, 4)), jnp.float32)
  g_fast = jax.jit(jax.grad(lambda w, x: jnp.sum(fast(w, x) * t), argnums=(0, 1)))(w, x)
  g_ref = jax.jit(jax.grad(lambda w, x: jnp.sum(reference(w, x) * t), argnums=(0, 1)))(w, x)
  for a, b in zip(g_fast, g_ref):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_augmentation_keeps_range_and_shape():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.uniform(-0.9, 0.9, (6, 8, 8, 3)), jnp.float32)  # gains stay unclipped
  key = jax.random.PRNGKey(0)
  y = augment.augment(x, key)
  assert y.shape == x.shape and y.dtype == x.dtype
  assert float(y.min()) >= -1 and float(y.max()) <= 1
  np.testing.assert_array_equal(y, augment.augment(x, key))  # same key, same batch
  assert not np.allclose(y, augment.augment(x, jax.random.PRNGKey(1)))
  # A flat image is unchanged by sharpening (x − blur(x) = 0).
  flat = jnp.zeros((2, 8, 8, 3)) + 0.3
  np.testing.assert_allclose(augment.augment(flat, key, gain=0.0), flat, atol=1e-6)
  # Flip only: every image is itself or its mirror.
  f = np.asarray(augment.augment(x, key, flip=True, gain=0.0, sharpen=0.0))
  xs = np.asarray(x)
  assert all(np.array_equal(f[i], xs[i]) or np.array_equal(f[i], xs[i, :, ::-1]) for i in range(6))
  # Gain only: one factor per image and channel, within [0.97, 1.03].
  g = np.asarray(augment.augment(x, key, flip=False, gain=0.03, sharpen=0.0)) / xs
  assert np.all((g > 0.97 - 1e-5) & (g < 1.03 + 1e-5))
  np.testing.assert_allclose(g, g[:, :1, :1, :] * np.ones_like(g), rtol=1e-4)
  # The 5×5 box blur with edge replication.
  img = rng.uniform(size=(1, 7, 7, 1)).astype(np.float32)
  pad = np.pad(img[0, :, :, 0], 2, mode="edge")
  ref = np.array([[pad[i:i + 5, j:j + 5].mean() for j in range(7)] for i in range(7)])
  np.testing.assert_allclose(augment.blur5(jnp.asarray(img))[0, :, :, 0], ref, rtol=1e-5)
