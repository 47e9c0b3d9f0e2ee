"""Image features: GIST against an independent port of LEAR's C code, its filters, its geometry;
the Lab histogram; pixels; chunked extraction and the feature cache."""

import numpy as np
import pytest
import scipy.ndimage as ndi

from densesynth_jax.features import color, extract, gist, pixels
from densesynth_jax.types import ImageSet

SIZE = 32  # GIST image side in these tests: small and fast


def _cfg(**overrides):
  cfg = extract.default_config()
  cfg.gist_image_size = SIZE
  cfg.pixels_size = 8
  for k, v in overrides.items():
    cfg[k] = v
  return cfg


def _smooth_image(seed, size=SIZE):
  """A random image with little energy near Nyquist (so rotation by 90° is exact up to float)."""
  x = ndi.gaussian_filter(np.random.default_rng(seed).standard_normal((size, size, 3)),
                          (1.5, 1.5, 0))
  return np.clip(128 + 60 * x / x.std(), 0, 255).astype(np.uint8)


def _lear_color_gist(img, orientations=(8, 8, 4), w=4, fc=4):
  """A literal float64 NumPy transcription of LEAR gist.c (color_gist_scaletab), loops and all.

  Independent of the package: LEAR's own grids (i - n/2, then fftshift), wrap, down_N and output
  indexing res[c·F·w² + k·w² + x_block·w + y_block].
  """
  h, wd, _ = img.shape
  # color_prefilt
  x = np.log(img.astype(np.float64) + 1.0)
  pad = np.pad(x, ((5, 5), (5, 5), (0, 0)), mode="symmetric")
  n = pad.shape[0]
  s1 = fc / np.sqrt(np.log(2))
  fx, fy = np.meshgrid(np.arange(n) - n / 2, np.arange(n) - n / 2)
  gfc = np.fft.fftshift(np.exp(-(fx ** 2 + fy ** 2) / s1 ** 2))
  for c in range(3):
    pad[..., c] -= np.real(np.fft.ifft2(np.fft.fft2(pad[..., c]) * gfc))
  mean = pad.mean(axis=-1)
  val = np.sqrt(np.abs(np.fft.ifft2(np.fft.fft2(mean * mean) * gfc)))
  pad = pad / (0.2 + val[..., None])
  out = pad[5:5 + h, 5:5 + wd]
  # create_gabor
  params = []
  for i in range(1, len(orientations) + 1):
    o = orientations[i - 1]
    for j in range(1, o + 1):
      params.append((0.35, 0.3 / 1.85 ** (i - 1), 16 * o ** 2 / 32 ** 2, np.pi / o * (j - 1)))
  fx, fy = np.meshgrid(np.arange(wd) - wd / 2, np.arange(h) - h / 2)
  fr = np.fft.fftshift(np.sqrt(fx ** 2 + fy ** 2))
  t = np.fft.fftshift(np.arctan2(fy, fx))
  bank = []
  for p in params:
    g = np.zeros((h, wd))
    for jj in range(h):
      for ii in range(wd):
        tmp = t[jj, ii] + p[3]
        if tmp < -np.pi:
          tmp += 2 * np.pi
        elif tmp > np.pi:
          tmp -= 2 * np.pi
        g[jj, ii] = np.exp(-10 * p[0] * (fr[jj, ii] / h / p[1] - 1) * (fr[jj, ii] / wd / p[1] - 1)
                           - 2 * p[2] * np.pi * tmp * tmp)
    bank.append(g)
  # color_gist_gabor + color_down_N
  nf = len(bank)
  res = np.zeros(3 * nf * w * w)
  nx = [i * wd // w for i in range(w + 1)]
  ny = [i * h // w for i in range(w + 1)]
  for k in range(nf):
    for c in range(3):
      ig = np.abs(np.fft.ifft2(np.fft.fft2(out[..., c]) * bank[k]))
      for l in range(w):
        for kk in range(w):
          res[c * nf * w * w + k * w * w + kk * w + l] = ig[ny[l]:ny[l + 1], nx[kk]:nx[kk + 1]].mean()
  return res


def test_gist_matches_lear_reference_port():
  imgs = np.stack([_smooth_image(0), np.random.default_rng(1).integers(0, 256, (SIZE, SIZE, 3),
                                                                        dtype=np.uint8)])
  ours = np.asarray(gist.gist_features(imgs, image_size=SIZE))
  for got, img in zip(ours, imgs):
    ref = _lear_color_gist(img)
    np.testing.assert_allclose(got, ref, rtol=2e-4, atol=2e-5)


@pytest.mark.slow
def test_gist_shapes_finite_and_grey_variant():
  rng = np.random.default_rng(0)
  imgs = rng.integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
  g = np.asarray(gist.gist_features(imgs, image_size=SIZE))
  gg = np.asarray(gist.gist_features(imgs, image_size=SIZE, gray=True))
  assert g.shape == (3, 960) and gg.shape == (3, 320)
  assert np.isfinite(g).all() and np.isfinite(gg).all() and (g > 0).all()
  # The grey variant is the colour GIST of the channel mean.
  mean_img = np.repeat(imgs.astype(np.float64).mean(-1, keepdims=True), 3, -1)
  # (R+G+B)/3 is not an integer, so compare through the float pipeline directly.
  ref = np.asarray(gist._gist_batch(mean_img.astype(np.float32), gist._device_bank(SIZE, (8, 8, 4)),
                                    gist._device_blocks(SIZE, 4), image_size=SIZE, fc=4.0,
                                    boundary=0, gray=False, batch_size=3))
  np.testing.assert_allclose(gg, ref[:, :320], rtol=1e-4, atol=1e-6)
  # Other sizes are resized (a non-square one is centre-cropped) to the fixed side.
  odd = rng.integers(0, 256, (2, 40, 48, 1), dtype=np.uint8)
  assert np.asarray(gist.gist_features(odd, image_size=SIZE)).shape == (2, 960)
  assert gist.gist_dim() == 960 and gist.gist_dim(gray=True) == 320


def test_constant_image_is_zero_after_prefilter():
  # The whitening high-pass has DC gain 1 - 1 = 0, so a flat image is 0 and so is its GIST.
  flat = np.full((3, SIZE, SIZE), np.float32(137.0))
  np.testing.assert_allclose(np.asarray(gist.prefilter(flat)), 0.0, atol=1e-5)
  g = np.asarray(gist.gist_features(np.full((1, SIZE, SIZE, 3), 200, np.uint8), image_size=SIZE))
  np.testing.assert_allclose(g, 0.0, atol=1e-5)


def test_gabor_transfer_function_by_hand():
  n = 32
  bank = gist.gabor_bank(n, (8, 8, 4))
  assert bank.shape == (20, n, n)

  def by_hand(f0, p, theta, fx, fy):
    fr = np.hypot(fx, fy)
    tr = np.arctan2(fy, fx) + theta
    tr = tr - 2 * np.pi if tr > np.pi else tr
    return np.exp(-3.5 * (fr / n / f0 - 1) ** 2 - 2 * p * np.pi * tr ** 2)

  # filter 0: scale 1 (f0 = 0.3), θ = 0, p = 16·64/1024 = 1; entry [row = fy, col = fx].
  assert bank[0, 0, 10] == pytest.approx(np.exp(-3.5 * (10 / 32 / 0.3 - 1) ** 2), rel=1e-5)
  assert bank[0, 3, 10] == pytest.approx(by_hand(0.3, 1.0, 0.0, 10, 3), rel=1e-5)
  # filter 12: scale 2 (f0 = 0.3/1.85), θ = π/2 peaks at fy = -f0·n (row index n - 5).
  assert bank[12, n - 5, 0] == pytest.approx(np.exp(-3.5 * (5 / 32 / (0.3 / 1.85) - 1) ** 2),
                                             rel=1e-5)
  # filter 17: scale 3 (f0 = 0.3/1.85², p = 0.25), θ = π/4, at (fx, fy) = (-2, 2): tr = π.
  assert bank[17, 2, n - 2] == pytest.approx(
      by_hand(0.3 / 1.85 ** 2, 0.25, np.pi / 4, -2, 2), rel=1e-5)
  assert bank[4, 0, 10] < 1e-6  # θ = π/2 ignores a purely horizontal frequency


def test_gabor_peaks_at_expected_orientation_and_radius():
  n = 64
  bank = gist.gabor_bank(n, (8, 8, 4))
  f = np.fft.fftfreq(n) * n
  params = gist.gabor_parameters((8, 8, 4))
  for l, (_, f0, _, theta) in enumerate(params):
    v, u = np.unravel_index(np.argmax(bank[l]), bank[l].shape)
    fx, fy = f[u], f[v]
    assert abs(np.hypot(fx, fy) - f0 * n) <= 1.0, l
    angle_err = np.angle(np.exp(1j * (np.arctan2(fy, fx) + theta)))
    assert abs(angle_err) <= 0.2, (l, fx, fy)


def _orientation_energy(g, scale_slice):
  return g.reshape(3, 20, 16)[:, scale_slice].sum(axis=(0, 2))


def test_gratings_excite_the_expected_orientations():
  yy, xx = np.mgrid[:SIZE, :SIZE]
  k = 5  # cycles per image, the radial peak of scale 2 (0.3 / 1.85 · 32 = 5.2)
  vertical = 128 + 100 * np.sin(2 * np.pi * k * xx / SIZE)  # changes along x
  horizontal = 128 + 100 * np.sin(2 * np.pi * k * yy / SIZE)  # changes along y
  imgs = np.stack([vertical, horizontal])[..., None].repeat(3, -1).astype(np.uint8)
  g = np.asarray(gist.gist_features(imgs, image_size=SIZE))
  e_v = _orientation_energy(g[0], slice(8, 16))
  e_h = _orientation_energy(g[1], slice(8, 16))
  assert np.argmax(e_v) == 0  # θ = 0
  assert np.argmax(e_h) == 4  # θ = π/2
  assert e_v[0] > 5 * e_v[4] and e_h[4] > 5 * e_h[0]


def test_rotating_by_90_degrees_permutes_orientations_and_blocks():
  img = _smooth_image(3)
  g = np.asarray(gist.gist_features(np.stack([img, np.rot90(img).copy()]), image_size=SIZE))
  # LEAR order [c, l, bx, by] -> spatial [c, l, by, bx].
  sp = np.swapaxes(g.reshape(2, 3, 20, 4, 4), -1, -2)
  # A quarter turn shifts θ by π/2: or/2 steps within each scale (the sign does not matter:
  # a filter and its mirror through the origin give the same magnitude on a real image).
  perm = [off + (j + o // 2) % o for off, o in ((0, 8), (8, 8), (16, 4)) for j in range(o)]
  pred = np.rot90(sp[0][:, perm], k=1, axes=(2, 3))
  rel = np.abs(pred - sp[1]).mean() / sp[1].mean()
  assert rel < 0.005
  assert np.abs(pred - sp[1]).max() < 0.03 * sp[1].max()
  unpermuted = np.rot90(sp[0], k=1, axes=(2, 3))
  assert np.abs(unpermuted - sp[1]).mean() / sp[1].mean() > 0.2


def test_lab_conversion_known_values():
  lab = np.asarray(color.rgb_to_lab(np.array([[1.0, 1, 1], [1, 0, 0], [0, 0, 0], [0, 1, 0]])))
  np.testing.assert_allclose(lab[0], [100, 0, 0], atol=1e-3)
  np.testing.assert_allclose(lab[1], [53.24, 80.09, 67.20], atol=0.01)
  np.testing.assert_allclose(lab[2], [0, 0, 0], atol=1e-3)
  np.testing.assert_allclose(lab[3], [87.73, -86.18, 83.18], atol=0.01)


def test_lab_histogram_sums_to_one_and_bins_white():
  rng = np.random.default_rng(0)
  imgs = rng.integers(0, 256, (4, 12, 10, 3), dtype=np.uint8)
  imgs[0] = 255
  h = np.asarray(color.lab_histogram_batch(imgs))
  assert h.shape == (4, 30)
  np.testing.assert_allclose(h.reshape(4, 3, 10).sum(-1), 1.0, atol=1e-6)
  # White: L = 100 -> last L bin; a = b = 0 -> the bins holding 0 on the gamut ranges.
  a_bin = int((0 - color.A_RANGE[0]) / (color.A_RANGE[1] - color.A_RANGE[0]) * 10)
  b_bin = int((0 - color.B_RANGE[0]) / (color.B_RANGE[1] - color.B_RANGE[0]) * 10)
  assert h[0, 9] == 1.0 and h[0, 10 + a_bin] == 1.0 and h[0, 20 + b_bin] == 1.0
  # Against numpy.histogram of the float Lab values (edge values clipped into the edge bins).
  lab = np.asarray(color.rgb_to_lab(imgs[1] / 255.0)).reshape(-1, 3)
  ref = []
  for ch, (lo, hi) in enumerate(((0.0, 100.0), color.A_RANGE, color.B_RANGE)):
    counts, _ = np.histogram(np.clip(lab[:, ch], lo, hi - 1e-4), bins=10, range=(lo, hi))
    ref.append(counts / len(lab))
  np.testing.assert_allclose(h[1], np.concatenate(ref), atol=1e-6)
  np.testing.assert_allclose(np.asarray(color.lab_histogram(imgs[1])), h[1], atol=1e-7)


def test_pixels_feature():
  rng = np.random.default_rng(0)
  small = rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
  big = small.repeat(2, axis=1).repeat(2, axis=2)  # 8x8 of constant 2x2 blocks
  p = np.asarray(pixels.pixel_features(big, size=4))
  assert p.shape == (2, 48)
  np.testing.assert_allclose(p, small.reshape(2, -1) / 255.0, atol=1e-6)
  pg = np.asarray(pixels.pixel_features(big, size=4, gray=True))
  np.testing.assert_allclose(pg, small.mean(-1).reshape(2, -1) / 255.0, atol=1e-6)
  a = pixels.area_matrix(35, 16)  # a non-integer ratio
  np.testing.assert_allclose(a.sum(1), 1.0, atol=1e-6)
  assert np.all(a >= 0) and np.allclose(a.sum(0), 16 / 35, atol=1e-5)  # every pixel counts equally


def test_registry_dims_and_unknown_name():
  cfg = _cfg()
  assert extract.feature_dim("gist_lab", cfg) == 990
  assert extract.feature_dim("gist_gray", cfg) == 320
  assert extract.feature_dim("lab", cfg) == 30
  assert extract.feature_dim("pixels", cfg) == 8 * 8 * 3
  with pytest.raises(KeyError, match="valid: .*gist_lab"):
    extract.extract_features("hog", np.zeros((1, 8, 8, 3), np.uint8), cfg)
  with pytest.raises(ValueError, match="C in"):
    extract.extract_features("lab", np.zeros((1, 8, 8, 4), np.uint8), cfg)
  with pytest.raises(ValueError, match="empty"):
    extract.extract_features("lab", np.zeros((0, 8, 8, 3), np.uint8), cfg)


def test_chunked_extraction_equals_one_shot():
  rng = np.random.default_rng(0)
  imgs = rng.integers(0, 256, (7, SIZE, SIZE, 3), dtype=np.uint8)
  cfg = _cfg()
  one = extract.extract_features("gist_lab", imgs, cfg, chunk_size=8)
  chunked = extract.extract_features("gist_lab", imgs, cfg, chunk_size=3)  # 3 + 3 + 1 (padded)
  assert one.shape == (7, 990) and one.dtype == np.float32
  np.testing.assert_allclose(chunked, one, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(
      one[:, :960], np.asarray(gist.gist_features(imgs, image_size=SIZE)), rtol=1e-5, atol=1e-6)


def test_cache_is_reused_and_keyed_by_config(tmp_path, monkeypatch):
  rng = np.random.default_rng(0)
  images = ImageSet(rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8), np.arange(5))
  cfg = _cfg()
  first = extract.cached_features("gist", images, cfg, tmp_path)
  assert len(list(tmp_path.glob("gist-*.npz"))) == 1

  def boom(*a, **k):
    raise AssertionError("recomputed although cached")
  real_extract = extract.extract_features
  monkeypatch.setattr(extract, "extract_features", boom)
  np.testing.assert_array_equal(extract.cached_features("gist", images, cfg, tmp_path), first)
  # A field GIST does not read leaves its cache alone; one it reads does not hit it.
  np.testing.assert_array_equal(
      extract.cached_features("gist", images, _cfg(pixels_size=4), tmp_path), first)
  with pytest.raises(AssertionError, match="recomputed"):
    extract.cached_features("gist", images, _cfg(gist_fc=2.0), tmp_path)
  changed = images.images.copy()
  changed[0, 0, 0, 0] ^= 1
  with pytest.raises(AssertionError, match="recomputed"):
    extract.cached_features("gist", ImageSet(changed, images.ids), cfg, tmp_path)
  monkeypatch.setattr(extract, "extract_features", real_extract)
  other = extract.cached_features("gist", images, _cfg(gist_fc=2.0), tmp_path)
  assert len(list(tmp_path.glob("gist-*.npz"))) == 2
  assert not np.allclose(other, first)


def test_standardize_uses_training_statistics():
  rng = np.random.default_rng(0)
  train = np.c_[rng.normal(3, 2, (50, 2)), np.full(50, 7.0)]
  test = rng.normal(3, 2, (10, 3))
  zt, zs = extract.standardize(train, test)
  np.testing.assert_allclose(zt[:, :2].mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(zt[:, :2].std(0), 1, atol=1e-5)
  np.testing.assert_allclose(zt[:, 2], 0)  # constant column: centred, not divided by ~0
  mu, sd = train[:, :2].mean(0), train[:, :2].std(0)
  np.testing.assert_allclose(zs[:, :2], (test[:, :2] - mu) / sd, rtol=1e-5)
  with pytest.raises(ValueError, match="shape"):
    extract.standardize(train, test[:, :2])
