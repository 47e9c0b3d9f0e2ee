"""The spatial transformer (sampler, boundary gradient rule), the DeepSTN module, pretrained-weight
loading, and the sharded update step (2 CPU devices == 1 device)."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy import ndimage

from densesynth_jax.models import pooling, sampler
from densesynth_jax.models import stn_ranker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _scipy_sample(image, grid):
  """Reference: map_coordinates(order=1) with zero padding, the sampler's pixel convention."""
  h, w = image.shape[:2]
  u = ((grid[..., 0] + 1) * w - 1) / 2
  v = ((grid[..., 1] + 1) * h - 1) / 2
  return np.stack([ndimage.map_coordinates(image[..., c], [v, u], order=1, mode="grid-constant",
                                           cval=0.0) for c in range(image.shape[-1])], axis=-1)


def test_grid_convention():
  # align_corners=False: output pixel centres at (2j+1)/w - 1; x is the column axis.
  g = np.asarray(sampler.affine_grid(np.array([[1., 0, 0], [0, 1, 0]]), 2, 4))
  np.testing.assert_allclose(g[0, :, 0], [-0.75, -0.25, 0.25, 0.75])
  np.testing.assert_allclose(g[:, 0, 1], [-0.5, 0.5])
  # θ = [[s, 0, s·t_x], [0, s, s·t_y]]
  np.testing.assert_allclose(sampler.stn_theta(jnp.array([0.5, 0.4, -1.0])),
                             [[0.5, 0, 0.2], [0, 0.5, -0.5]])


_sample = jax.jit(sampler.affine_sample, static_argnums=(2, 3))
_grid = jax.jit(sampler.affine_grid, static_argnums=(1, 2))


def test_sampler_matches_scipy():
  rng = np.random.default_rng(0)
  for (h, w), (oh, ow) in (((9, 13), (7, 5)), ((11, 6), (10, 10))):
    for _ in range(4):
      image = rng.normal(size=(h, w, 2)).astype(np.float32)
      theta = (np.array([[1, 0, 0], [0, 1, 0]]) + rng.normal(0, 0.6, (2, 3))).astype(np.float32)
      grid = np.asarray(_grid(theta, oh, ow))
      out = np.asarray(_sample(image, theta, oh, ow))
      np.testing.assert_allclose(out, _scipy_sample(image, grid), atol=1e-5)
  # Far outside the image: zeros.
  far = _sample(image, np.array([[1., 0, 5], [0, 1, 0]], np.float32), 10, 10)
  assert np.all(np.asarray(far) == 0)


def test_identity_returns_image():
  rng = np.random.default_rng(1)
  image = rng.normal(size=(12, 12, 3)).astype(np.float32)
  patch = jax.jit(sampler.stn_patch, static_argnums=2)
  np.testing.assert_allclose(patch(image, jnp.array([1.0, 0.0, 0.0]), 12), image, atol=1e-5)
  rect = rng.normal(size=(7, 10, 1)).astype(np.float32)
  np.testing.assert_allclose(_sample(rect, np.array([[1., 0, 0], [0, 1, 0]], np.float32), 7, 10),
                             rect, atol=1e-5)
  # A half-scale patch of a 2x-upsampled image is that image's centre: pixel boxes agree.
  box = np.asarray(sampler.patch_box(jnp.array([0.5, 0.4, -0.2]), 20, 40))
  np.testing.assert_allclose(box, [(0.2 - 0.5 + 1) * 20, (-0.1 - 0.5 + 1) * 10,
                                   (0.2 + 0.5 + 1) * 20, (-0.1 + 0.5 + 1) * 10], rtol=1e-6)


def _away_from_pixel_centres(image_hw, params, size, margin=0.02):
  grid = np.asarray(sampler.affine_grid(sampler.stn_theta(jnp.asarray(params)), size, size))
  h, w = image_hw
  u = ((grid[..., 0] + 1) * w - 1) / 2
  v = ((grid[..., 1] + 1) * h - 1) / 2
  frac = np.concatenate([u.ravel(), v.ravel()]) % 1.0
  return np.all((frac > margin) & (frac < 1 - margin))


def test_sampler_gradients_numerically():
  rng = np.random.default_rng(2)
  image = jnp.asarray(rng.normal(size=(9, 9, 2)), jnp.float32)
  weights = jnp.asarray(rng.normal(size=(5, 5, 2)), jnp.float32)
  f = jax.jit(lambda p, im: jnp.sum(weights * sampler.stn_patch(im, p, 5)))
  checked = 0
  while checked < 3:
    params = np.array([rng.uniform(0.4, 0.9), rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6)],
                      np.float32)
    if not _away_from_pixel_centres((9, 9), params, 5):
      continue  # bilinear interpolation has kinks at pixel centres
    check_grads(f, (jnp.asarray(params), image), order=1, modes=["rev"], eps=1e-3, atol=2e-2,
                rtol=2e-2)
    checked += 1


def test_boundary_rule_outside_uses_penalty_gradient():
  rng = np.random.default_rng(3)
  image = jnp.asarray(rng.normal(size=(8, 8, 3)), jnp.float32)
  weights = jnp.asarray(rng.normal(size=(4, 4, 3)), jnp.float32)
  loss = jax.jit(lambda p, scale=1.0: jnp.sum(weights * sampler.stn_patch(image, p, 4, scale)))
  for params in ([0.5, 2.5, 0.1], [0.4, -0.3, -3.0], [1.2, 0.9, 0.95]):  # |s·t| > 1 somewhere
    p = jnp.asarray(params, jnp.float32)
    assert bool(sampler.centre_outside(p))
    got = jax.grad(loss)(p)
    s, tx, ty = params
    want = [s * (tx ** 2 + ty ** 2), s ** 2 * tx, s ** 2 * ty]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(got, jax.grad(sampler.boundary_penalty)(p), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(loss)(p, 0.0), 0.0)  # padding images: no pull
  # A step along the replacement gradient moves the centre back towards the image.
  p = jnp.array([0.5, 2.5, 0.1])
  moved = p - 0.05 * jax.grad(loss)(p)
  assert abs(moved[0] * moved[1]) < abs(p[0] * p[1])


def test_boundary_rule_inside_is_plain_gradient():
  rng = np.random.default_rng(4)
  image = jnp.asarray(rng.normal(size=(8, 8, 3)), jnp.float32)
  weights = jnp.asarray(rng.normal(size=(4, 4, 3)), jnp.float32)
  custom_grad = jax.jit(jax.grad(lambda q: jnp.sum(weights * sampler.stn_patch(image, q, 4))))
  plain_grad = jax.jit(jax.grad(lambda q: jnp.sum(weights * sampler.bilinear_sample(
      image, sampler._plain_stn_grid(q, 4, 4)))))
  for params in ([0.5, 1.9, 0.1], [0.33, 0.2, -0.5], [0.9, -1.05, 0.0]):  # |s·t| <= 1
    p = jnp.asarray(params, jnp.float32)
    assert not bool(sampler.centre_outside(p))
    custom = custom_grad(p)
    plain = plain_grad(p)
    np.testing.assert_allclose(custom, plain, rtol=1e-6)
    assert np.any(np.asarray(custom) != 0)


def _tiny_model(mode="combined"):
  return stn_ranker.DeepSTN(mode=mode, backbone_kwargs=(("channels", (4, 8)),), patch_size=8,
                            scale_init=0.4, loc_conv_channels=4, loc_hidden=8)


_INITS = {}


def _init(model, seed, x):
  """Jitted init, compiled once per model (eager Flax init compiles op by op: slow on CPU)."""
  if model.mode not in _INITS:
    _INITS[model.mode] = jax.jit(lambda k, x: model.init(k, x, train=False))
  return jax.tree.map(np.asarray, _INITS[model.mode](jax.random.key(seed), x))


@pytest.mark.slow
def test_model_starts_centred_and_shares_one_backbone():
  model = _tiny_model("combined")
  x = jnp.asarray(np.random.default_rng(5).uniform(-1, 1, (3, 16, 16, 3)), jnp.float32)
  variables = _init(model, 0, x)
  apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
  scores, stn = apply(variables, x)
  assert scores.shape == (3,)
  np.testing.assert_allclose(stn, np.tile([0.4, 0.0, 0.0], (3, 1)), atol=1e-7)
  params = variables["params"]
  assert set(params) == {"loc", "backbone", "head"}  # ONE ranker backbone for both streams
  assert params["head"]["kernel"].shape == (2 * 8, 1)  # patch features ++ global features
  assert "backbone" in params["loc"]  # the localisation net's own conv layers
  # Siamese: one apply; a pair's two scores come from the same function of each image.
  swapped, _ = apply(variables, x[::-1])
  np.testing.assert_allclose(swapped, scores[::-1], rtol=1e-6)
  only = _tiny_model("stn_only")
  v2 = jax.eval_shape(lambda: only.init(jax.random.key(0), x, train=False))
  assert v2["params"]["head"]["kernel"].shape == (8, 1)


def test_pretrained_backbone_npz_roundtrip(tmp_path):
  model = _tiny_model("combined")
  x = jnp.zeros((1, 16, 16, 3))
  source, target = _init(model, 1, x), _init(model, 2, x)
  path = tmp_path / "backbone.npz"
  stn_ranker.export_backbone_npz(path, source)
  keys = set(np.load(path).files)
  assert {"conv1/kernel", "bn1/scale", "batch_stats/bn1/mean"} <= keys
  loaded = stn_ranker.load_backbone_npz(target, path)
  # The ranker's backbone becomes the file's; the localisation net's copy takes its conv layers.
  want = source["params"]["backbone"]
  for got in (loaded["params"]["backbone"], loaded["params"]["loc"]["backbone"]):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(loaded["batch_stats"]["loc"]["backbone"]["bn1"]["mean"],
                                source["batch_stats"]["backbone"]["bn1"]["mean"])
  # The rest of the model keeps its own initialisation.
  np.testing.assert_array_equal(loaded["params"]["head"]["kernel"],
                                target["params"]["head"]["kernel"])
  np.testing.assert_array_equal(loaded["params"]["loc"]["fc1"]["kernel"],
                                target["params"]["loc"]["fc1"]["kernel"])
  # Bad files: unknown key, wrong shape, missing file.
  np.savez(tmp_path / "bad_key.npz", **{"conv9/kernel": np.zeros((3, 3, 3, 4), np.float32)})
  with pytest.raises(KeyError, match="conv9/kernel"):
    stn_ranker.load_backbone_npz(target, tmp_path / "bad_key.npz")
  np.savez(tmp_path / "bad_shape.npz", **{"conv1/kernel": np.zeros((5, 5, 3, 4), np.float32)})
  with pytest.raises(ValueError, match="shape"):
    stn_ranker.load_backbone_npz(target, tmp_path / "bad_shape.npz")
  with pytest.raises(FileNotFoundError, match="missing"):
    stn_ranker.load_backbone_npz(target, tmp_path / "nope.npz")


def test_alexnet_shapes():
  model = stn_ranker.DeepSTN(mode="combined", backbone_name="alexnet", patch_size=128,
                             backbone_kwargs=(("fc_dim", 64),))
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((2, 128, 128, 3)),
                                             train=False))
  p = shapes["params"]
  assert p["backbone"]["conv2"]["kernel"].shape == (5, 5, 48, 256)  # Caffe's 2 groups
  assert p["backbone"]["fc6"]["kernel"].shape == (2 * 2 * 256, 64)
  assert "fc6" not in p["loc"]["backbone"]
  out = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((2, 128, 128, 3))), shapes)
  assert out[0].shape == (2,) and out[1].shape == (2, 3)


# ----------------------------------------------------------------- sharded step (2 devices == 1)

def sharded_step_check():
  """Two STN-only update steps on 2 devices (3 pairs padded to 4) equal those on 1 device (3
  pairs): data parallelism, padding and the batch-norm mask together."""
  from densesynth_jax import mesh as mesh_lib
  from densesynth_jax.rankers import deepstn as ranker
  from densesynth_jax.types import PairSet
  assert len(jax.devices()) >= 2, "needs XLA_FLAGS=--xla_force_host_platform_device_count=2"
  cfg = ranker.default_config()
  cfg.cnn_channels = (4, 8)
  cfg.image_size, cfg.patch_size = 16, 8
  cfg.loc_conv_channels, cfg.loc_hidden = 4, 8
  cfg.lr, cfg.loc_lr_mult = 0.05, 1.0
  cfg.xla_fast_compile = True
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
  pairs = PairSet.create([0, 2, 4], [1, 3, 5], [1, -1, 0], attribute="t", weight=[1., .5, 2.])
  results = []
  for n_dev, size in ((1, 3), (2, 4)):
    mesh = mesh_lib.make_mesh(n_dev)
    state = ranker.init_state(cfg, "stn_only", jax.random.key(0), mesh)
    update = ranker.make_update_fn(cfg, "stn_only", mesh)
    batch = ranker.make_batch(images, pairs, np.arange(3), size)
    for _ in range(2):
      state, metrics = update(state, mesh_lib.shard_batch(batch, mesh), jax.random.key(7))
    results.append((jax.device_get(state.params), jax.device_get(state.batch_stats),
                    {k: float(v) for k, v in metrics.items()}))
  (p1, b1, m1), (p2, b2, m2) = results
  for a, b in zip(jax.tree.leaves((p1, b1)), jax.tree.leaves((p2, b2))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  for k in ("loss", "grad_norm", "update_norm", "scale", "centre_x", "centre_y"):
    np.testing.assert_allclose(m1[k], m2[k], rtol=1e-4, atol=1e-6, err_msg=k)
  assert np.any(np.asarray(jax.tree.leaves(p1)[0]) != 0)


@pytest.mark.slow
def test_sharded_step_equals_single_device():
  if len(jax.devices()) >= 2:
    sharded_step_check()
    return
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
             JAX_PLATFORMS="cpu")
  code = "import tests.test_stn as t; t.sharded_step_check(); print('OK')"
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]


# ------------------------------------------- fast CPU ops == the plain Flax ops they replace

def _tied_maps(shape, seed):
  """Activations with exact ties in pooling windows: ReLU zeros and flat (padding-like) areas."""
  x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
  x[:, : shape[1] // 3] = 0.7  # a flat band: positive ties in every window there
  return jnp.asarray(np.maximum(x, 0.0))


@pytest.mark.parametrize("shape", [(3, 8, 8, 4), (2, 7, 9, 3)])
def test_max_pool_2x2_equals_flax_values_and_gradient(shape):
  import flax.linen as nn
  x = _tied_maps(shape, 0)
  g = jnp.asarray(np.random.default_rng(1).normal(size=(shape[0], shape[1] // 2, shape[2] // 2,
                                                         shape[3])), jnp.float32)
  ref = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))
  y, vjp = jax.vjp(jax.jit(pooling.max_pool_2x2), x)
  y_ref, vjp_ref = jax.vjp(jax.jit(ref), x)
  np.testing.assert_array_equal(y, y_ref)
  # The first maximal tap of each window takes the gradient, exactly as select-and-scatter.
  np.testing.assert_array_equal(vjp(g)[0], vjp_ref(g)[0])


def _flax_batch_norm(momentum=0.9, relu_pool=False, name=None):
  """`nn.BatchNorm` (then `nn.relu` and `nn.max_pool` with `relu_pool`) behind MaskedBatchNorm's
  call signature: the reference it replaces."""
  import flax.linen as nn

  class FlaxBN(nn.BatchNorm):
    def __call__(self, x, *, train, mask=None):
      m = None if mask is None or not train else jnp.reshape(mask, (-1, 1, 1, 1))
      y = super().__call__(x, use_running_average=not train, mask=m)
      return nn.max_pool(nn.relu(y), (2, 2), strides=(2, 2)) if relu_pool else y

  return FlaxBN(momentum=momentum, name=name)


@pytest.mark.parametrize("relu_pool,size,chunks", [(False, 6, 1), (True, 6, 1), (True, 7, 1),
                                                     (True, 6, 2)])
def test_masked_batch_norm_equals_flax(relu_pool, size, chunks):
  """MaskedBatchNorm, alone and with ReLU + 2×2 max pooling (the fused `pooling.bn_relu_pool` in
  training, on the whole batch or on batch chunks; odd sizes take the unfused path), equals
  flax's ops, compiled: values, batch statistics, gradients with respect to parameters and input,
  and the evaluation-mode output."""
  x = np.random.default_rng(2).normal(1.0, 2.0, (5, size, size, 3)).astype(np.float32)
  x[:, :2] = 0.5  # a flat band: exact ties inside pooling windows
  x = jnp.asarray(x)
  mask = jnp.asarray([True, True, False, True, False])
  ours = stn_ranker.MaskedBatchNorm(momentum=0.8, relu_pool=relu_pool)
  ref = _flax_batch_norm(momentum=0.8, relu_pool=relu_pool)
  v = ours.init(jax.random.key(0), x, train=True, mask=mask)
  v_ref = ref.init(jax.random.key(0), x, train=True, mask=mask)
  jax.tree.map(np.testing.assert_array_equal, v, v_ref)  # same names, shapes and initial values
  params = {"scale": jnp.asarray([1.0, -0.5, 2.0]), "bias": jnp.asarray([0.0, 0.3, -1.0])}
  split = (lambda a: tuple(jnp.array_split(a, chunks))) if chunks > 1 else (lambda a: a)
  join = (lambda a: jnp.concatenate(a)) if chunks > 1 else (lambda a: a)

  def run(module, split, join):
    def f(p, x):
      y, new = module.apply({"params": p, "batch_stats": v["batch_stats"]}, split(x), train=True,
                            mask=split(mask), mutable=["batch_stats"])
      return jnp.sum(jnp.sin(join(y)) * (1 + jnp.arange(3))), new
    (loss, new), grads = jax.jit(jax.value_and_grad(f, argnums=(0, 1), has_aux=True))(params, x)
    evaluated = jax.jit(lambda v, x: module.apply(v, x, train=False))({"params": params, **new}, x)
    return loss, new, grads, evaluated

  got, want = run(ours, split, join), run(ref, lambda a: a, lambda a: a)
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("chunk_images,size", [(0, 16), (3, 16), (3, 10)])
def test_small_cnn_gradients_equal_flax_compiled(chunk_images, size, monkeypatch):
  """Stacked fused stages under jit (an earlier form of the fused backward miscompiled only
  there, when one stage's input gradient fed the next): the small CNN's gradients, whole-batch
  and in unequal chunks (8 images in slices of 3), equal those of flax's BatchNorm / relu /
  max_pool. Size 10 puts an odd map (5×5, the unfused path) between fused stages."""
  rng = np.random.default_rng(3)
  x = rng.normal(size=(8, size, size, 3)).astype(np.float32)
  x[:, :4] = -1.0
  x, mask = jnp.asarray(x), jnp.asarray([1, 1, 1, 0, 1, 1, 1, 0], bool)

  def grads(chunk_images):
    m = stn_ranker.SmallCNN(channels=(4, 8, 8), chunk_images=chunk_images)
    v = m.init(jax.random.key(0), x, train=True, mask=mask)

    def f(p, x):
      y, _ = m.apply({"params": p, "batch_stats": v["batch_stats"]}, jnp.tanh(x), train=True,
                     mask=mask, mutable=["batch_stats"])
      return jnp.sum(jnp.sin(3.0 * y))
    return jax.jit(jax.grad(f, argnums=(0, 1)))(v["params"], x)

  got = grads(chunk_images)
  monkeypatch.setattr(stn_ranker, "MaskedBatchNorm", _flax_batch_norm)
  want = grads(0)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):  # float rounding of the leaf's scale
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6 * np.abs(b).max())


@pytest.mark.slow
def test_deepstn_step_equals_the_plain_flax_step(monkeypatch):
  """Numerics before/after the CPU speed-ups: three combined-mode update steps with the fast ops
  (MaskedBatchNorm with the fused `bn_relu_pool`, the batch in slices) equal the same steps with
  `nn.BatchNorm`, `nn.relu` and `nn.max_pool` on whole batches, with a padding pair (the
  batch-norm mask) and flat image areas (pooling ties)."""
  from densesynth_jax import mesh as mesh_lib
  from densesynth_jax.rankers import deepstn as ranker
  from densesynth_jax.types import PairSet

  cfg = ranker.default_config()
  cfg.cnn_channels = (4, 8, 8)
  cfg.image_size, cfg.patch_size = 24, 12
  cfg.loc_conv_channels, cfg.loc_hidden = 4, 8
  cfg.lr = 0.05
  cfg.xla_fast_compile = True
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (10, 24, 24, 3), dtype=np.uint8)
  images[:, :6] = 0  # flat rows: exact ties inside pooling windows
  pairs = PairSet.create(rng.integers(0, 10, 12), rng.integers(0, 10, 12),
                         rng.choice([-1, 1], 12), attribute="t")
  mesh = mesh_lib.make_mesh(1)

  def steps(chunk_images):
    cfg.cpu_chunk_images = chunk_images
    ranker._functions.cache_clear()
    state = ranker.init_state(cfg, "combined", jax.random.key(0), mesh)
    update = ranker.make_update_fn(cfg, "combined", mesh)
    for i in range(3):
      batch = ranker.make_batch(images, pairs, np.arange(3 * i, 3 * i + 3), 4)  # 1 padding pair
      state, metrics = update(state, mesh_lib.shard_batch(batch, mesh), jax.random.key(1))
    return jax.device_get((state.params, state.batch_stats, metrics))

  fast = steps(3)  # 8 images per step: slices of 3, 3 and 2
  with monkeypatch.context() as m:
    m.setattr(stn_ranker, "MaskedBatchNorm", _flax_batch_norm)
    plain = steps(0)
  ranker._functions.cache_clear()
  flat = lambda t: {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(t)}
  got, want = flat(fast[:2]), flat(plain[:2])
  assert set(got) == set(want)
  for k in got:
    # The head's bias has no gradient in a RankNet (it cancels in s1 − s2): only rounding moves it.
    atol = 1e-7 if k.endswith("['head']['bias']") else 1e-6
    np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=atol, err_msg=k)
  for k in ("loss", "grad_norm", "update_norm", "scale", "centre_x", "centre_y"):
    np.testing.assert_allclose(fast[2][k], plain[2][k], rtol=1e-4, atol=1e-6, err_msg=k)
  assert not np.allclose(flat(fast[0])["['backbone']['conv1']['kernel']"],
                         flat(ranker.init_state(cfg, "combined", jax.random.key(0),
                                                mesh).params)["['backbone']['conv1']['kernel']"])
