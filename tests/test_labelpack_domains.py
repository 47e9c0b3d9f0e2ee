"""Label-pack domains (UT-Zap50K-1/-2, LFW-10 -> PFSmile) on the REAL label packs.

The official images are not in the data folder, so the tests write tiny solid-colour stand-ins
under the exact relative paths the packs name (a colour per imagepath row / LFW-10 number), which
lets them check that every pair points at the right image.
"""

import os
import subprocess
import sys
from pathlib import Path

import ml_collections
import numpy as np
import pytest
from PIL import Image

from densesynth_jax.data import labelpack_domains as lpd
from densesynth_jax.data import labelpacks as lp
from densesynth_jax.data import shoes
from densesynth_jax.data.registry import load_domain
from densesynth_jax.types import PairSet

ROOT = Path(__file__).resolve().parents[1]


def _colour(k: int) -> tuple[int, int, int]:
  return (k % 251, (k // 251) % 251, 7)


def _stand_in(path: Path, colour) -> None:
  """An 8×8 PNG under the pack's (.jpg) name; Pillow reads it by content."""
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.new("RGB", (8, 8), colour).save(path, format="PNG")


def _config(make, **fields) -> ml_collections.ConfigDict:
  cfg = make()
  cfg.update(dict(image_size=8, cache_dir="none") | fields)
  return cfg


@pytest.fixture(scope="module")
def zap(data_dir, tmp_path_factory):
  """(label pack, image root holding a stand-in for each of the 5,551 labelled images)."""
  labels = lp.load_zap50k_labels(data_dir)
  root = tmp_path_factory.mktemp("zap") / "ut-zap50k-images"
  for row in lp.zap50k_labelled_images(labels):
    _stand_in(root / labels.image_paths[row], _colour(row))
  return labels, root


@pytest.fixture(scope="module")
def lfw(data_dir, tmp_path_factory):
  """(LFW10 folder with images/N.jpg stand-ins, PFSmile folder: 2 people × 4 images, 13 pairs)."""
  base = tmp_path_factory.mktemp("faces")
  _, _, names = lp.lfw10_pairs(data_dir, "smile")
  for name in names:
    _stand_in(base / "LFW10" / "images" / name, _colour(int(name.split(".")[0])))
  lines = ["# PFSmile stand-in", "image_a,image_b,label"]
  for person in (0, 1):
    for k in range(4):
      _stand_in(base / "pfsmile" / "images" / f"p{person}" / f"{k}.png", (200, 10 * k, person))
    lines += [f"p{person}/{i}.png,p{person}/{j}.png,{-1 if i < j else 1}"
              for i in range(4) for j in range(i + 1, 4)]
  lines.append("p0/0.png,p1/0.png,0")
  (base / "pfsmile" / "pairs.csv").write_text("\n".join(lines) + "\n")
  return base


def _pixel(domain, index) -> tuple:
  return tuple(int(v) for v in domain.images.images[index, 4, 4])


# ---------------------------------------------------------------------------------------------
# Without data.

def test_holdout_val_is_seeded_and_disjoint():
  pairs = PairSet.create(np.arange(40), np.arange(40) + 1, np.ones(40), attribute="open")
  train, val = lpd.holdout_val(pairs, 0.1, [0, 0])
  assert len(val) == 4 and len(train) == 36
  assert not set(val.a.tolist()) & set(train.a.tolist())
  again, val2 = lpd.holdout_val(pairs, 0.1, [0, 0])
  np.testing.assert_array_equal(val.a, val2.a)
  assert not np.array_equal(lpd.holdout_val(pairs, 0.1, [1, 0])[1].a, val.a)
  assert len(lpd.holdout_val(pairs, 0.0, 0)[1]) == 0
  with pytest.raises(ValueError, match="val_fraction"):
    lpd.holdout_val(pairs, 1.0, 0)


def test_pfsmile_pairs_format(tmp_path):
  path = tmp_path / "pairs.csv"
  path.write_text("# comment\nimage_a,image_b,label\nx/1.jpg, x/2.jpg ,+1\n\nx/2.jpg,y.jpg,0\n")
  pairs, names = lpd.pfsmile_pairs(path)
  assert names == ("x/1.jpg", "x/2.jpg", "y.jpg") and pairs.attribute == "smile"
  assert pairs.a.tolist() == [0, 1] and pairs.b.tolist() == [1, 2]
  assert pairs.label.tolist() == [1, 0]
  for text, message in (("a,b,label\n", "line 1 must be the header image_a,image_b,label"),
                        ("image_a,image_b,label\nx,y,2\n", "line 2 has label '2'"),
                        ("image_a,image_b,label\nx,y\n", "line 2 needs 3 fields"),
                        ("image_a,image_b,label\n", "has no pairs")):
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
      lpd.read_pfsmile_pairs(path)


# ---------------------------------------------------------------------------------------------
# UT-Zap50K.

@pytest.mark.real_data
def test_zap50k_protocol_1_counts_on_every_split(data_dir):
  labels = lp.load_zap50k_labels(data_dir)
  cfg = _config(lpd.zap50k_config, protocol=1)
  for split in range(10):
    cfg.split = split
    pairs, table = lpd.zap50k_pairs(labels, cfg)
    for attr in lp.ZAP50K_ATTRIBUTES:
      p = pairs[attr]
      assert len(p["test"]) == 300 and (p["test"].label != 0).all()
      assert len(p["train"]) + len(p["val"]) + 300 == len(labels.ordered[attr])
      assert len(p["val"]) == round(0.1 * (len(labels.ordered[attr]) - 300))
      for s in p.values():
        s.validate(len(table))
  # The first test pair of split 9 joins the right images.
  p = pairs["open"]["test"]
  row = labels.test_splits["open"][9][0]
  assert (table[p.a[0]], table[p.b[0]]) == (labels.image_paths[labels.ordered["open"].a[row]],
                                            labels.image_paths[labels.ordered["open"].b[row]])


@pytest.mark.slow
@pytest.mark.real_data
def test_zap50k_domains_on_stand_in_images(zap, data_dir):
  labels, root = zap
  d2 = load_domain(_config(lpd.zap50k_config, data_dir=str(data_dir), image_root=str(root),
                           protocol=2, include_equal=True))
  assert d2.name == "zap50k" and len(d2.images) == 5551 and d2.images.strengths is None
  by = d2.pairs
  assert sum(len(by[a]["test"]) for a in lp.ZAP50K_ATTRIBUTES) == 4334
  train_val = [by[a][s] for a in lp.ZAP50K_ATTRIBUTES for s in ("train", "val")]
  assert sum(int(np.sum(p.label != 0)) for p in train_val) == 6751
  # Every fine-grained pair is also a coarse "equal" pair, so it is held out of training.
  assert sum(int(np.sum(p.label == 0)) for p in train_val) + 4334 == 4612
  assert d2.info["label_pack_totals"] == dict(ordered=6751, equal=4612, fine_grained=4334)
  # Pairs point at the right pixels: the stand-in colour encodes the imagepath row (= the id).
  assert all(_pixel(d2, i) == _colour(int(r)) for i, r in enumerate(d2.images.ids[:50]))
  hard = labels.fine_grained["sporty"]
  test = by["sporty"]["test"]
  assert d2.images.ids[test.a[0]] == hard.a[0] and d2.images.ids[test.b[0]] == hard.b[0]
  assert _pixel(d2, test.a[0]) == _colour(int(hard.a[0]))

  d1 = load_domain(_config(lpd.zap50k_config, data_dir=str(data_dir), image_root=str(root),
                           protocol=1, split=4))
  for attr in lp.ZAP50K_ATTRIBUTES:
    assert len(d1.pairs[attr]["test"]) == 300
    assert d1.info["pairs"][attr]["val"]["pairs"] == len(d1.pairs[attr]["val"]) > 0
  assert set(d1.splits) == {"train", "val", "test"}
  assert len(d1.images) == len(np.unique(np.concatenate(
      [np.concatenate([p.a, p.b]) for p in labels.ordered.values()])))


@pytest.mark.real_data
def test_zap50k_missing_items_are_listed_in_one_line(zap, data_dir, tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(FileNotFoundError) as err:
    load_domain(_config(lpd.zap50k_config, data_dir=str(empty)))
  msg = str(err.value)
  assert "zap50k domain: 5 required item(s) missing" in msg and "\n" not in msg
  for name in lpd.ZAP50K_LABEL_FILES:
    assert str(empty / "ut-zap50k-labels" / name) in msg
  assert str(empty / "ut-zap50k-images") in msg

  # Labels present, an image folder lacking some of the images the pairs use.
  labels, root = zap
  partial = tmp_path / "partial"
  cfg = _config(lpd.zap50k_config, data_dir=str(data_dir), image_root=str(partial), limit=3,
                attributes=("open",))
  _, table = lpd.zap50k_pairs(labels, cfg)
  for rel in table[1:]:
    _stand_in(partial / rel, (0, 0, 0))
  with pytest.raises(FileNotFoundError) as err:
    load_domain(cfg)
  msg = str(err.value)
  assert f"missing 1 of {len(table)} UT-Zap50K image file(s) under {partial}: {table[0]}" in msg
  assert "1 required item(s) missing" in msg and "\n" not in msg


@pytest.mark.real_data
def test_zap50k_allow_corrupt_drops_the_pairs_of_a_bad_image(zap, data_dir, tmp_path):
  labels, _ = zap
  root = tmp_path / "images"
  cfg = _config(lpd.zap50k_config, data_dir=str(data_dir), image_root=str(root), limit=5,
                attributes=("pointy",), val_fraction=0.0)
  pairs, table = lpd.zap50k_pairs(labels, cfg)
  for rel in table:
    _stand_in(root / rel, (5, 5, 5))
  (root / table[0]).write_bytes(b"not an image")
  with pytest.raises(ValueError, match=f"corrupt image file .*{table[0]}"):
    load_domain(cfg)
  cfg.allow_corrupt = True
  with pytest.warns(UserWarning, match="skipped 1 corrupt image"):
    d = load_domain(cfg)
  touching = sum(int(np.sum((p.a == 0) | (p.b == 0))) for p in pairs["pointy"].values())
  assert touching > 0 and d.info["pairs_dropped_corrupt"] == touching
  assert len(d.images) == len(table) - 1
  assert sum(len(p) for p in d.pairs["pointy"].values()) == 10 - touching


@pytest.mark.slow
@pytest.mark.real_data
def test_runner_smoke_on_zap50k(zap, data_dir, tmp_path):
  """configs/zap50k_2.py:smoke wired through the runner: global RankSVM, Real, 16×16 pixels."""
  from configs import zap50k_2
  from densesynth_jax.experiments.runner import train_and_evaluate
  _, root = zap
  config = zap50k_2.get_config("smoke")
  config.data.update(dict(data_dir=str(data_dir), image_root=str(root), cache_dir="none",
                          image_size=16))
  config.rankers = ("ranksvm_global",)
  config.methods = ("real",)
  config.ranksvm.feature = "pixels"
  config.features.pixels_size = 8
  results = train_and_evaluate(config, tmp_path / "run")
  (cell,) = results["cells"]
  assert (cell["ranker"], cell["method"], cell["attribute"]) == ("ranksvm_global", "real", "open")
  assert cell["num_test_pairs"] == {"test": 100}
  assert abs(cell["accuracy"]["test"] * 100 - round(cell["accuracy"]["test"] * 100)) < 1e-6
  assert cell["pool"]["num_pairs"] == 90  # the first 100 train pairs less the 10% val hold-out
  assert results["domain"] == "zap50k" and (tmp_path / "run" / "results.md").is_file()


def test_zap50k_configs_choose_methods_that_apply():
  from configs import zap50k_1, zap50k_2
  for module in (zap50k_1, zap50k_2):
    config = module.get_config()
    assert config.methods == ("real", "jitter") and config.data.protocol in (1, 2)
    assert config.rankers == ("ranksvm_local", "deepstn")
  proxy = zap50k_1.get_config("open_sandal,split=7")
  assert proxy.data.split == 7 and proxy.attributes == ("open",)
  assert "dsynth_auto" in proxy.methods
  assert proxy.synth.attribute_map.open in shoes.ATTRIBUTES
  assert proxy.synth.attribute_map.open in proxy.generator.data.prelabel.attributes


# ---------------------------------------------------------------------------------------------
# LFW-10 -> PFSmile.

@pytest.mark.real_data
def test_lfw10_domain_on_stand_in_images(lfw, data_dir):
  d = load_domain(_config(lpd.lfw10_config, data_dir=str(data_dir), image_root=str(lfw / "LFW10"),
                          pfsmile_dir=str(lfw / "pfsmile")))
  p = d.pairs["smile"]
  assert set(p) == {"train", "val", "test", "lfw10_test"}
  assert len(p["train"]) + len(p["val"]) == 500 and len(p["val"]) == 50
  assert len(p["lfw10_test"]) == 500 and len(p["test"]) == 13
  n_lfw = d.info["num_lfw10_images"]
  assert n_lfw == 1281 and len(d.images) == n_lfw + 8
  np.testing.assert_array_equal(d.splits["test"], n_lfw + np.arange(8))
  assert (p["test"].a >= n_lfw).all() and (p["test"].b >= n_lfw).all()
  assert (p["train"].a < n_lfw).all() and (p["lfw10_test"].b < n_lfw).all()
  assert all(_pixel(d, i) == _colour(int(k)) for i, k in enumerate(d.images.ids[:n_lfw]))
  # PFSmile pair 0 is p0/0.png vs p0/1.png, label -1 (the second smiles more).
  assert (_pixel(d, p["test"].a[0]), _pixel(d, p["test"].b[0])) == ((200, 0, 0), (200, 10, 0))
  assert p["test"].label[0] == -1 and d.images.ids[n_lfw] == lpd.PFSMILE_ID_OFFSET


@pytest.mark.real_data
def test_lfw10_missing_items_are_listed_in_one_line(lfw, data_dir, tmp_path):
  cfg = _config(lpd.lfw10_config, data_dir=str(data_dir))
  with pytest.raises(FileNotFoundError) as err:
    load_domain(cfg)
  msg = str(err.value)
  assert "lfw10 domain: 3 required item(s) missing" in msg and "\n" not in msg
  for path in (data_dir / "lfw10-images", data_dir / "pfsmile" / "pairs.csv",
               data_dir / "pfsmile" / "images"):
    assert f"at {path}" in msg

  # Folders present, some images missing from each: every missing file is listed, by name.
  faces = tmp_path / "LFW10"
  _, _, names = lp.lfw10_pairs(data_dir, "smile")
  for name in names[2:]:
    _stand_in(faces / name, (1, 1, 1))
  pf = tmp_path / "pfsmile"
  (pf / "images").mkdir(parents=True)
  (pf / "pairs.csv").write_text("image_a,image_b,label\nq/1.jpg,q/2.jpg,1\n")
  cfg.update(dict(image_root=str(faces), pfsmile_dir=str(pf)))
  with pytest.raises(FileNotFoundError) as err:
    load_domain(cfg)
  msg = str(err.value)
  assert "2 required item(s) missing" in msg and "\n" not in msg
  assert f"missing 2 of {len(names)} LFW-10 image file(s) under {faces}: 1.jpg, 2.jpg" in msg
  assert f"missing 2 of 2 PFSmile image file(s) under {pf / 'images'}: q/1.jpg, q/2.jpg" in msg


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.parametrize("config", ["lfw_smile.py", "zap50k_2.py"])  # zap50k_1: same builder
def test_train_ranker_without_images_exits_with_one_line(config, data_dir, tmp_path):
  env = dict(os.environ, DENSESYNTH_DATA_DIR=str(data_dir))
  env.pop("XLA_FLAGS", None)
  env.pop("DENSESYNTH_DEBUG", None)
  # zap50k_2 also names its image folder on the command line (path fields are overridable).
  images = tmp_path / "my-images" if config == "zap50k_2.py" else data_dir / "ut-zap50k-images"
  override = [f"--config.data.image_root={images}"] if config == "zap50k_2.py" else []
  r = subprocess.run([sys.executable, "train_ranker.py", f"--config=configs/{config}",
                      f"--workdir={tmp_path / 'w'}", *override], cwd=ROOT, env=env,
                     capture_output=True, text=True, timeout=300)
  assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
  last = r.stderr.strip().splitlines()[-1]
  assert last.startswith("train_ranker: error: FileNotFoundError: ")
  if config == "lfw_smile.py":
    assert "lfw10 domain: 3 required item(s) missing" in last
    assert str(data_dir / "pfsmile" / "pairs.csv") in last
    assert str(data_dir / "lfw10-images") in last
  else:
    assert "zap50k domain: 1 required item(s) missing" in last
    assert last.endswith(f"at {images}")
  assert not (tmp_path / "w" / "results.json").exists()
