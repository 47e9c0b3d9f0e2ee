"""Sprites domain: rendering follows the attributes (measured on pixels), crowd simulation,
pair construction, determinism, and the domain figures. Tiny sizes: seconds on a CPU."""

import numpy as np
import pytest
from PIL import Image

from densesynth_jax.data import crowd, sprites
from densesynth_jax.experiments import figures

SIZE = 64  # monotonicity is measured at the default size, on a handful of images
LEVELS = np.linspace(0.0, 1.0, 6)


def _fixed(n, **overrides):
  """n images of one light-skinned identity, nuisance centred and unlit, neutral expression."""
  p = dict(smiling=0.35, mouth_open=0.0, eyes_open=0.7, face_width=0.5, skin_tone=0.15,
           hair_darkness=0.8, hair_length=0.5, dx=0.0, dy=0.0, scale=1.0, rotation=0.0,
           gain=1.0, light_angle=0.0, light_strength=0.0)
  p.update(overrides)
  out = {k: np.full(n, v, np.float32) for k, v in p.items()}
  out["background"] = np.tile(np.float32([0.3, 0.6, 0.9]), (n, 1))
  out["shirt"] = np.tile(np.float32([0.2, 0.7, 0.3]), (n, 1))
  return out


def _window(x0, x1, y0, y1, size=SIZE, scale=1.0):
  """Pixel slices of a face-unit box (nuisance centred: canvas = face units × scale)."""
  to_px = lambda t: int(round((t * scale + 1.0) / 2.0 * size))
  return slice(to_px(y0), to_px(y1)), slice(to_px(x0), to_px(x1))


MOUTH = _window(-0.32, 0.32, 0.2, 0.66)
EYE = _window(0.2 - 0.17, 0.2 + 0.17, -0.19, 0.09)  # the right-hand eye (face_width 0.5)


@pytest.fixture(scope="module")
def sweeps():
  """One render call: a sweep over each expression, others fixed; plus a changed-appearance one."""
  n = len(LEVELS)
  p = _fixed(3 * n + 1)
  p["smiling"][:n] = LEVELS
  p["mouth_open"][n:2 * n] = LEVELS
  p["eyes_open"][2 * n:3 * n] = LEVELS
  p["hair_length"][-1] = 0.9
  images = sprites.render(p, SIZE)
  return images[:n], images[n:2 * n], images[2 * n:3 * n], images[-1]


def _dark(img):
  return img[..., 1].astype(np.float64) < 60  # ink and the mouth's interior; skin green > 150


@pytest.mark.slow
def test_render_shape_dtype_and_chunking():
  p = sprites.demo_params(7, seed=3)
  a = sprites.render(p, 32, chunk=7)
  b = sprites.render(p, 32, chunk=3)  # last chunk padded; results must not depend on it
  assert a.shape == (7, 32, 32, 3) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, b)
  assert a.std() > 20  # not a blank canvas


def test_smiling_bends_the_mouth(sweeps):
  smile = sweeps[0]
  rows = np.arange(SIZE, dtype=np.float64)[MOUTH[0]]
  cols = np.arange(SIZE)[MOUTH[1]]
  centre_cols = np.abs(cols - (SIZE / 2 - 0.5)) < 0.06 * SIZE / 2
  corner_cols = (np.abs(cols - (SIZE / 2 - 0.5)) > 0.14 * SIZE / 2) & \
      (np.abs(cols - (SIZE / 2 - 0.5)) < 0.2 * SIZE / 2)
  bend = []
  for img in smile:
    dark = _dark(img[MOUTH]).astype(np.float64)
    mean_row = lambda sel: (dark[:, sel] * rows[:, None]).sum() / dark[:, sel].sum()
    bend.append(mean_row(centre_cols) - mean_row(corner_cols))  # > 0: corners up (a smile)
  bend = np.array(bend)
  assert np.all(np.diff(bend) > 0), bend
  assert bend[0] < -1.0 and bend[-1] > 2.0, bend  # a frown at 0, a clear smile at 1
  neutral = np.interp(sprites.NEUTRAL_SMILE, LEVELS, bend)
  assert abs(neutral) < 0.7, bend  # flat mouth near 0.35


def test_mouth_open_grows_the_dark_interior(sweeps):
  dark = np.array([_dark(img[MOUTH]).sum() for img in sweeps[1]])
  assert np.all(np.diff(dark) > 0), dark
  # The interior's own colour (dark red, unlike the ink line) appears only when the mouth opens.
  red = lambda img: (img[..., 0] > 80) & (img[..., 0] < 140) & (img[..., 1] < 40)
  inside = np.array([red(img[MOUTH]).sum() for img in sweeps[1]])
  assert np.all(np.diff(inside) > 0) and inside[0] <= 2 and inside[-1] > 40, inside


def test_eyes_open_grows_the_eye(sweeps):
  skin = sweeps[2][0][SIZE // 2 + 2, SIZE // 2 - 8].astype(np.float64)  # a cheek pixel
  area = np.array([(np.abs(img[EYE].astype(np.float64) - skin).sum(-1) > 60).sum()
                   for img in sweeps[2]])
  assert np.all(np.diff(area) > 0), area
  assert area[-1] > 3 * area[0], area


def test_expressions_leave_appearance_pixels_alone(sweeps):
  smile, mouth, eyes, long_hair = sweeps
  allowed = np.zeros((SIZE, SIZE), bool)
  allowed[MOUTH] = True
  allowed[EYE] = True
  allowed[_window(-0.2 - 0.17, -0.2 + 0.17, -0.19, 0.09)] = True  # the other eye
  stack = np.concatenate([smile, mouth, eyes])
  changed = (stack != stack[:1]).any(axis=(0, 3))
  assert changed.any()
  assert not (changed & ~allowed).any(), np.argwhere(changed & ~allowed)[:5]
  # ... while an appearance attribute does change pixels outside those windows.
  hair_changed = (long_hair != smile[0]).any(-1)
  assert (hair_changed & ~allowed).sum() > 20


def test_render_rejects_bad_params():
  p = sprites.demo_params(3)
  del p["smiling"]
  with pytest.raises(KeyError, match="smiling"):
    sprites.render(p, 16)
  p = sprites.demo_params(3)
  p["mouth_open"] = p["mouth_open"].copy()
  p["mouth_open"][2] = 1.5
  with pytest.raises(ValueError, match="'mouth_open' is outside \\[0, 1\\] at image 2"):
    sprites.render(p, 16)
  p = sprites.demo_params(3)
  p["gain"] = np.array([1.0, np.nan, 1.0], np.float32)
  with pytest.raises(ValueError, match="'gain' is not finite at image 1"):
    sprites.render(p, 16)
  p = sprites.demo_params(3)
  p["background"] = p["background"][:, :2]
  with pytest.raises(ValueError, match="'background' has shape"):
    sprites.render(p, 16)


# --- crowd ---------------------------------------------------------------------------------

def test_crowd_without_noise_matches_the_truth():
  rng = np.random.default_rng(0)
  a, b = rng.uniform(size=500), rng.uniform(size=500)
  out = crowd.simulate_crowd(rng, a, b, workers=5, noise=0.0, equal_margin=0.05)
  d = a - b
  expected = np.where(np.abs(d) < 0.05, 0, np.sign(d))
  np.testing.assert_array_equal(out["label"], expected)
  np.testing.assert_array_equal(out["agreement"], 1.0)
  assert out["votes"].shape == (500, 5) and out["label"].dtype == np.int8
  assert crowd.prune(out["agreement"]).all()


def test_crowd_noise_lowers_agreement_and_prune_removes_it():
  rng = np.random.default_rng(1)
  a, b = rng.uniform(size=2000), rng.uniform(size=2000)
  low = crowd.simulate_crowd(rng, a, b, noise=0.02)
  high = crowd.simulate_crowd(rng, a, b, noise=0.5)
  assert high["agreement"].mean() < low["agreement"].mean() - 0.2
  keep = crowd.prune(high["agreement"], 0.8)
  assert 0 < keep.sum() < len(keep)
  assert np.all(high["agreement"][keep] >= 0.8 - 1e-6)
  assert np.all(high["agreement"][~keep] < 0.8)
  # Majority rule: the label's vote count is the largest; a tie for the largest gives 0.
  for out, workers in ((high, 5), (crowd.simulate_crowd(rng, a, b, workers=4, noise=0.5), 4)):
    counts = np.stack([(out["votes"] == v).sum(1) for v in (-1, 0, 1)], 1)
    tied = (counts == counts.max(1, keepdims=True)).sum(1) > 1
    assert np.all(out["label"][tied] == 0)
    assert np.all(counts[~tied].argmax(1) - 1 == out["label"][~tied])
    np.testing.assert_allclose(out["agreement"],
                               counts[np.arange(len(a)), out["label"] + 1] / workers)
  assert tied.any()  # 4 workers tie often under heavy noise
  stats = crowd.crowd_summary(high, keep)
  assert stats["asked"] == 2000 and stats["kept"] + stats["pruned"] == 2000


def test_crowd_rejects_bad_input():
  rng = np.random.default_rng(0)
  with pytest.raises(ValueError, match="not finite at pair 1"):
    crowd.simulate_crowd(rng, np.array([0.1, np.nan]), np.array([0.2, 0.3]))
  with pytest.raises(ValueError, match="2 pairs but strength_b has 3"):
    crowd.simulate_crowd(rng, np.zeros(2), np.zeros(3))


# --- domain --------------------------------------------------------------------------------

def _tiny(seed=0):
  cfg = sprites.default_config()
  cfg.seed = seed
  cfg.image_size = 32
  cfg.num_train_identities = 16
  cfg.num_val_identities = 4
  cfg.num_test_identities = 8
  cfg.images_per_identity = 6
  cfg.train_pairs = 60
  cfg.val_pairs = 30
  cfg.test_fine_pairs = 60
  cfg.test_coarse_pairs = 40
  return cfg


@pytest.fixture(scope="module")
def domain():
  return sprites.build_domain(_tiny())


def test_domain_is_deterministic(domain):
  again = sprites.build_domain(_tiny())
  np.testing.assert_array_equal(domain.images.images, again.images.images)
  np.testing.assert_array_equal(domain.images.strengths, again.images.strengths)
  for attr, by_split in domain.pairs.items():
    for split, ps in by_split.items():
      other = again.pairs[attr][split]
      for f in ("a", "b", "label", "weight"):
        np.testing.assert_array_equal(getattr(ps, f), getattr(other, f))
  different = sprites.build_domain(_tiny(seed=1))
  assert not np.array_equal(domain.images.images, different.images.images)
  assert not np.array_equal(domain.pairs["smiling"]["train"].a,
                            different.pairs["smiling"]["train"].a)


def test_domain_layout(domain):
  imgs = domain.images
  assert domain.name == "sprites"
  assert imgs.images.shape == ((16 + 4 + 8) * 6, 32, 32, 3)
  assert imgs.attribute_names == sprites.ATTRIBUTES
  np.testing.assert_array_equal(imgs.ids, np.arange(len(imgs)))
  assert np.all((imgs.strengths >= 0) & (imgs.strengths <= 1))
  ident = {s: set(imgs.groups[idx].tolist()) for s, idx in domain.splits.items()}
  assert [len(ident[s]) for s in ("train", "val", "test")] == [16, 4, 8]
  assert not (ident["train"] & ident["val"] or ident["train"] & ident["test"]
              or ident["val"] & ident["test"])
  # Appearance is constant within an identity; expressions are not.
  for col, name in enumerate(sprites.ATTRIBUTES):
    spread = max(np.ptp(imgs.strengths[imgs.groups == g, col]) for g in range(28))
    if name in sprites.APPEARANCE:
      assert spread == 0, name
    else:
      assert spread > 0.3, name
  assert set(domain.pairs) == set(sprites.EXPRESSIONS)
  assert domain.info["crowd"]["smiling"]["train"]["kept"] == 60


def test_train_strengths_are_clustered(domain):
  s = domain.images.strength("smiling")
  in_gap = lambda idx: np.mean((s[idx] > 0.45) & (s[idx] < 0.75))
  assert in_gap(domain.splits["train"]) < 0.1
  assert in_gap(domain.splits["test"]) > 0.2


def test_pairs_follow_their_protocols(domain):
  imgs, cfg = domain.images, _tiny()
  for attr in sprites.EXPRESSIONS:
    s = imgs.strength(attr)
    by_split = domain.pairs[attr]
    for split, members in (("train", "train"), ("val", "val"), ("test_fine", "test"),
                           ("test_coarse", "test")):
      ps = by_split[split]
      inside = set(domain.splits[members].tolist())
      assert set(ps.a.tolist()) <= inside and set(ps.b.tolist()) <= inside, (attr, split)
      assert np.all(ps.a != ps.b)
      keys = set(zip(np.minimum(ps.a, ps.b).tolist(), np.maximum(ps.a, ps.b).tolist()))
      assert len(keys) == len(ps), (attr, split)  # no repeated pair
    d = s[by_split["test_fine"].a] - s[by_split["test_fine"].b]
    assert np.all((np.abs(d) >= cfg.fine_min_diff) & (np.abs(d) <= cfg.fine_max_diff))
    np.testing.assert_array_equal(by_split["test_fine"].label, np.sign(d))
    d = s[by_split["test_coarse"].a] - s[by_split["test_coarse"].b]
    assert np.all(np.abs(d) >= cfg.coarse_min_diff)
    np.testing.assert_array_equal(by_split["test_coarse"].label, np.sign(d))
    for split in ("test_fine", "test_coarse"):
      ps = by_split[split]
      assert len(ps) == cfg[f"{split}_pairs"] and np.all(ps.label != 0)
      same = imgs.groups[ps.a] == imgs.groups[ps.b]
      assert same.any() and (~same).any(), (attr, split)  # within and across identities
    # Crowd-labelled real pairs: agreement >= 0.8, mostly dissimilar, mostly the true order.
    for split in ("train", "val"):
      ps = by_split[split]
      assert np.all(ps.weight >= 0.8 - 1e-6)
      d = s[ps.a] - s[ps.b]
      assert np.mean(np.abs(d) >= cfg.dissimilar_min_diff) > 0.6
      ordered = ps.label != 0
      assert np.mean(np.sign(d[ordered]) == ps.label[ordered]) > 0.95


def test_build_domain_rejects_appearance_pairs():
  cfg = _tiny()
  cfg.attributes = ("smiling", "hair_length")
  with pytest.raises(ValueError, match="hair_length"):
    sprites.build_domain(cfg)


def test_domain_figures_are_pngs(domain, tmp_path):
  paths = figures.save_domain_figures(domain, tmp_path)
  assert [p.name for p in paths] == ["sprites_contact_sheet.png", "strength_histograms.png"]
  for p in paths:
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(p) as im:
      im.verify()
  with Image.open(paths[0]) as im:
    assert im.size[0] > 5 * 32 and im.size[1] > 3 * 32  # 5 identities × 6 images, upscaled
  out = tmp_path / "hist.png"
  figures.save_strength_histograms(out, domain.images.strengths, sprites.ATTRIBUTES, bins=10)
  assert out.read_bytes()[:4] == b"\x89PNG"
  with pytest.raises(ValueError, match="titles"):
    figures.save_contact_sheet(tmp_path / "x.png", domain.images.images[:3], titles=["a"])
