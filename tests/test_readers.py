"""Readers of the real data (CelebA, UT-Zap50K shoes, JAFFE) and the shared image helpers.

Tests marked real_data read $DENSESYNTH_DATA_DIR (CI: ../shared/data) and read only what they need;
the others build tiny stand-in layouts from generated images in tmp_path.
"""


import numpy as np
import pytest
from PIL import Image

from densesynth_jax.data import celeba, imageio, jaffe, shoes


# ---------------------------------------------------------------------------------------------
# Stand-in layouts made of tiny generated images.

def _write_jpeg(path, size, seed):
  rng = np.random.default_rng(seed)
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def _truncate(path):
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 3])


def _fake_celeba(root, n=6):
  names = ["Male", "Smiling"] + [f"Attr{i}" for i in range(38)]
  rows = [str(n), " ".join(names)]
  for i in range(1, n + 1):
    _write_jpeg(root / "celeba" / "img_align_celeba" / f"{i:06d}.jpg", (89, 109), i)
    values = [1 if (i + j) % 2 else -1 for j in range(40)]
    rows.append(f"{i:06d}.jpg " + " ".join(f"{v:2d}" for v in values))
  (root / "celeba" / "list_attr_celeba.txt").write_bytes(("\r\n".join(rows) + "\r\n").encode())


def _celeba_cfg(data_dir, cache_dir, **kw):
  cfg = celeba.default_config()
  cfg.data_dir = str(data_dir)
  cfg.cache_dir = str(cache_dir)
  cfg.strengths = "true"
  for k, v in kw.items():
    cfg[k] = v
  return cfg


def test_crop_and_pad_helpers():
  img = np.zeros((109, 89, 3), np.uint8)
  img[32:96, 12:77] = 200
  out = imageio.center_crop_resize(img, 16, (0.5, 0.587), 0.72)
  assert out.shape == (16, 16, 3) and out.dtype == np.uint8
  assert out[2:-2, 2:-2].min() > 150  # the box lies inside the bright region
  with pytest.raises(ValueError, match="does not fit inside a 89×109 image"):
    imageio.center_crop_resize(img, 16, (0.5, 0.5), 1.5)
  shoe = np.zeros((102, 136, 3), np.uint8)
  sq = imageio.pad_to_square_resize(shoe, 68)
  assert sq.shape == (68, 68, 3)
  # White bands (17 of 136 rows, 8.5 of 68 after resizing) above and below.
  assert (sq[:7] == 255).all() and (sq[-7:] == 255).all()
  assert sq[10:58].max() == 0


def test_corrupt_celeba_image_is_named_or_skipped_with_a_warning(tmp_path):
  _fake_celeba(tmp_path)
  bad = tmp_path / "celeba" / "img_align_celeba" / "000004.jpg"
  _truncate(bad)
  cfg = _celeba_cfg(tmp_path, tmp_path / "cache", train_last=4, val_last=5)
  with pytest.raises(imageio.CorruptImageError, match="000004.jpg"):
    celeba.build_domain(cfg)
  cfg.allow_corrupt = True
  with pytest.warns(imageio.CorruptImagesSkipped, match="skipped 1 corrupt.*000004.jpg"):
    d = celeba.build_domain(cfg)
  assert list(d.images.ids) == [1, 2, 3, 5, 6]
  assert d.info["corrupt_skipped"] == [str(bad)]
  assert {k: len(v) for k, v in d.splits.items()} == dict(train=3, val=1, test=1)
  # The cached run reports the same skip, and still refuses without allow_corrupt.
  with pytest.warns(imageio.CorruptImagesSkipped):
    d2 = celeba.build_domain(cfg)
  assert d2.info["cache_hit"] and d2.info["corrupt_skipped"] == [str(bad)]
  cfg.allow_corrupt = False
  with pytest.raises(imageio.CorruptImageError, match="000004.jpg"):
    celeba.build_domain(cfg)


def test_missing_files_are_named(tmp_path):
  _fake_celeba(tmp_path)
  (tmp_path / "celeba" / "img_align_celeba" / "000002.jpg").unlink()
  cfg = _celeba_cfg(tmp_path, tmp_path / "cache")
  with pytest.raises(FileNotFoundError, match="missing image file: .*000002.jpg"):
    celeba.build_domain(cfg)
  (tmp_path / "celeba" / "list_attr_celeba.txt").unlink()
  with pytest.raises(FileNotFoundError, match="list_attr_celeba.txt"):
    celeba.build_domain(cfg)


def test_malformed_attribute_file_is_named(tmp_path):
  path = tmp_path / "list_attr_celeba.txt"
  path.write_text("3\nA B\n000001.jpg 1 -1\n")
  with pytest.raises(ValueError, match="line 2 has 2 attribute names.*list_attr_celeba.txt"):
    celeba.read_attributes(path)


def test_cache_reuses_decoded_images_and_tracks_changes(tmp_path):
  _fake_celeba(tmp_path)
  cfg = _celeba_cfg(tmp_path, tmp_path / "cache", image_size=16)
  first = celeba.build_domain(cfg)
  second = celeba.build_domain(cfg)
  assert not first.info["cache_hit"] and second.info["cache_hit"]
  np.testing.assert_array_equal(first.images.images, second.images.images)
  _write_jpeg(tmp_path / "celeba" / "img_align_celeba" / "000003.jpg", (89, 109), 99)
  third = celeba.build_domain(cfg)  # a changed file gives a new key
  assert not third.info["cache_hit"]
  assert not np.array_equal(third.images.images[2], first.images.images[2])


def test_corrupt_shoe_image_is_named_or_skipped(tmp_path):
  root = tmp_path / "ut-zap50k-shoes"
  for k, (cat, stem) in enumerate((("Boot", "boot"), ("Sandal", "Sandal"), ("Shoe", "Shoe"))):
    for n in range(1, 4):
      _write_jpeg(root / cat / f"{stem} ({n}).jpg", (136, 102), 10 * k + n)
  (root / "Boot" / "boot (3).jpg").write_bytes((root / "Boot" / "boot (1).jpg").read_bytes())
  _truncate(root / "Sandal" / "Sandal (2).jpg")
  cfg = shoes.default_config()
  cfg.update(dict(data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"), strengths="true",
                  train_last=2, val_last=2, image_size=16))
  with pytest.raises(imageio.CorruptImageError, match=r"Sandal \(2\).jpg"):
    shoes.build_domain(cfg)
  cfg.allow_corrupt = True
  with pytest.warns(imageio.CorruptImagesSkipped, match=r"Sandal \(2\).jpg"):
    d = shoes.build_domain(cfg)
  assert d.info["duplicates"] == [["Boot/boot (1).jpg", "Boot/boot (3).jpg"]]
  assert d.info["duplicates_dropped"] == ["Boot/boot (3).jpg"]
  assert len(d.images) == 7 and d.images.images.shape == (7, 16, 16, 3)
  assert d.info["per_category"] == dict(Boot=2, Sandal=2, Shoe=3)


# ---------------------------------------------------------------------------------------------
# The real data.

@pytest.mark.real_data
def test_celeba_attribute_file(data_dir):
  files, names, labels = celeba.read_attributes(data_dir / "celeba" / "list_attr_celeba.txt")
  assert len(files) == 10_000 and files[0] == "000001.jpg" and files[-1] == "010000.jpg"
  assert len(names) == 40 and names[0] == "5_o_Clock_Shadow" and names[-1] == "Young"
  assert labels.shape == (10_000, 40) and set(np.unique(labels)) == {-1, 1}
  assert int(np.sum(labels[:, names.index("Smiling")] == 1)) == 4822


@pytest.mark.real_data
def test_celeba_domain_first_200(data_dir, tmp_path):
  cfg = _celeba_cfg(data_dir, tmp_path / "cache", limit=200, train_last=150, val_last=175)
  d = celeba.build_domain(cfg)
  assert d.name == "celeba" and d.pairs == {}
  assert d.images.images.shape == (200, 64, 64, 3) and d.images.images.dtype == np.uint8
  assert 0 < d.images.images.mean() < 255 and d.images.images.std() > 20
  np.testing.assert_array_equal(d.images.ids, np.arange(1, 201))
  assert {k: len(v) for k, v in d.splits.items()} == dict(train=150, val=25, test=25)
  labels, names = celeba.celeba_binary_labels(d)
  assert names == d.images.attribute_names
  np.testing.assert_array_equal(d.images.strengths, labels.astype(np.float32))

  rng = lambda: np.random.default_rng(3)
  pairs = celeba.category_pairs(d, "Smiling", "train", 60, rng())
  assert len(pairs) == 60 and pairs.attribute == "Smiling"
  smile = labels[:, names.index("Smiling")]
  assert (smile[pairs.a] == pairs.label).all() and (smile[pairs.b] == -pairs.label).all()
  assert set(pairs.label.tolist()) == {-1, 1}
  assert np.isin(np.concatenate([pairs.a, pairs.b]), d.splits["train"]).all()
  assert len(set(zip(pairs.a.tolist(), pairs.b.tolist()))) == 60
  again = celeba.category_pairs(d, "Smiling", "train", 60, rng())
  np.testing.assert_array_equal(pairs.a, again.a)
  with pytest.raises(KeyError, match="unknown CelebA attribute 'Smile'"):
    celeba.category_pairs(d, "Smile", "train", 5, rng())


@pytest.mark.real_data
def test_celeba_prelabel_strengths(data_dir, tmp_path):
  cfg = _celeba_cfg(data_dir, tmp_path / "cache", limit=300, train_last=200, val_last=250)
  cfg.strengths = "prelabel"
  cfg.prelabel.attributes = ("Smiling", "Male")
  d = celeba.build_domain(cfg)
  rep = d.info["prelabel"]
  assert rep["fit_count"] == 200 and rep["attributes"] == ["Smiling", "Male"]
  for name in ("Smiling", "Male"):
    assert rep["per_attribute"][name]["heldout_count"] == 100
    assert rep["per_attribute"][name]["heldout_accuracy"] > 0.65
  labels, names = celeba.celeba_binary_labels(d)
  j = names.index("Smiling")
  s = d.images.strength("Smiling")
  assert s.dtype == np.float32 and len(np.unique(s)) > 100  # real-valued now
  # Decision values separate the labels on the held-out images.
  test = np.arange(200, 300)
  assert s[test][labels[test, j] > 0].mean() > s[test][labels[test, j] < 0].mean()
  # Columns not listed stay the ±1 labels.
  np.testing.assert_array_equal(d.images.strength("Young"), labels[:, names.index("Young")])


@pytest.mark.real_data
def test_jaffe_domain(data_dir, tmp_path):
  cfg = jaffe.default_config()
  cfg.data_dir, cfg.cache_dir = str(data_dir), str(tmp_path / "cache")
  d = jaffe.build_domain(cfg)
  im = d.images
  assert im.images.shape == (213, 64, 64, 3) and im.images.dtype == np.uint8
  assert (im.images[..., 0] == im.images[..., 1]).all()  # grey, repeated over 3 channels
  assert im.attribute_names == jaffe.RATINGS
  assert im.strengths.min() >= 1 and im.strengths.max() <= 5
  assert len(d.info["posers"]) == 10 and len(np.unique(im.groups)) == 10
  assert d.info["key_fixes"] == ["YN-HA2->YM-HA2"]
  assert d.info["ratings_without_image"] == ["KM-DI2", "KM-HA5", "KM-SA4", "KR-HA3", "NM-DI2",
                                             "TM-HA4"]
  assert d.info["images_without_rating"] == []
  ym_ha2 = d.info["keys"].index("YM-HA2")  # the typo row joined its image
  assert im.strengths[ym_ha2, 0] == pytest.approx(4.84)
  assert im.groups[ym_ha2] == d.info["posers"].index("YM")
  pairs = d.pairs["smiling"]["test"]
  assert len(pairs) == d.info["test_pairs"]["count"] == 1272
  hap = im.strength("HAP")
  assert (im.groups[pairs.a] == im.groups[pairs.b]).all()
  assert (np.abs(hap[pairs.a] - hap[pairs.b]) >= 0.5 - 1e-6).all()
  assert (np.sign(hap[pairs.a] - hap[pairs.b]) == pairs.label).all()
  assert pairs.attribute == "smiling" and pairs.source_counts()["real"] == 1272
  assert len(jaffe.jaffe_test_pairs(im, margin=1.0)) < 1272


@pytest.mark.real_data
def test_shoes_categories_and_duplicates(data_dir):
  root = data_dir / shoes.FOLDER
  paths, cats, nums = shoes.list_files(root)
  assert [int(np.sum(cats == k)) for k in range(3)] == [5000, 5000, 5000]
  assert (np.sort(nums[cats == 0]) == np.arange(1, 5001)).all()
  dups = imageio.duplicate_files([p for p, c in zip(paths, cats) if c == 0])
  names = sorted(sorted(p.rsplit("/", 1)[1] for p in g) for g in dups)
  assert names == [["boot (1493).jpg", "boot (383).jpg"], ["boot (1494).jpg", "boot (384).jpg"]]


@pytest.mark.real_data
def test_shoes_domain_small(data_dir, tmp_path):
  cfg = shoes.default_config()
  cfg.update(dict(data_dir=str(data_dir), cache_dir=str(tmp_path / "cache"), strengths="true",
                  limit=20, train_last=14, val_last=17))
  d = shoes.build_domain(cfg)
  im = d.images
  assert im.images.shape == (60, 64, 64, 3)
  assert (im.images[:, 0] > 240).all()  # white padding on top
  assert im.attribute_names == shoes.ATTRIBUTES
  np.testing.assert_array_equal(im.strengths[:, :3], np.eye(3)[im.groups])
  z = im.strengths[d.splits["train"], 3:]
  np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
  np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-4)
  assert {k: len(v) for k, v in d.splits.items()} == dict(train=42, val=9, test=9)
  assert d.info["empty_foreground"] == []
  # Boots are taller than sandals and shoes, on average.
  height = im.strength("height")
  assert height[im.groups == 0].mean() > height[im.groups != 0].mean()


def test_jaffe_join_fix_and_unrated_images(tmp_path):
  root = tmp_path / "jaffe"
  for n, name in enumerate(["KA.HA1.1.jpg", "KA.NE1.2.jpg", "KA.SA1.3.jpg", "YM.HA2.4.jpg",
                            "YM.NE1.5.jpg"]):
    _write_jpeg(root / name, (40, 40), n)
  (root / "jaffe_semantic_ratings.txt").write_text(
      "# HAP SAD SUR ANG DIS FEA PIC\n"
      "1 4.90 1.13 1.26 1.10 1.03 1.10 KA-HA1\n"
      "2 2.50 2.10 1.70 1.50 1.73 1.53 KA-NE1\n"
      "3 4.84 1.42 1.35 1.23 1.23 1.23 YN-HA2\n"
      "4 2.87 2.42 1.58 1.84 1.77 1.77 YM-NE1\n"
      "5 1.42 4.00 1.55 2.39 3.26 3.03 KM-SA1")
  cfg = jaffe.default_config()
  cfg.data_dir, cfg.cache_dir, cfg.image_size = str(tmp_path), str(tmp_path / "cache"), 16
  with pytest.warns(jaffe.UnratedImages, match="KA.SA1.3.jpg"):
    d = jaffe.build_domain(cfg)
  assert d.info["keys"] == ["KA-HA1", "KA-NE1", "YM-HA2", "YM-NE1"]
  assert d.info["images_without_rating"] == ["KA.SA1.3.jpg"]
  assert d.info["ratings_without_image"] == ["KM-SA1"]
  assert d.info["key_fixes"] == ["YN-HA2->YM-HA2"]
  np.testing.assert_array_equal(d.images.ids, [1, 2, 4, 5])
  np.testing.assert_array_equal(d.images.groups, [0, 0, 1, 1])
  pairs = d.pairs["smiling"]["test"]  # one pair per poser, the smile rated higher
  assert list(zip(pairs.a, pairs.b, pairs.label)) == [(0, 1, 1), (2, 3, 1)]
  (root / "jaffe_semantic_ratings.txt").write_text(
      "# HAP SAD SUR ANG DIS FEA PIC\n1 9 1 1 1 1 1 KA-HA1\n")
  with pytest.raises(ValueError, match="line 2 has a rating outside 1-5.*jaffe_semantic_ratings"):
    jaffe.build_domain(cfg)
