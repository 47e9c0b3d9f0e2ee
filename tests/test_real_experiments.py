"""The real-data experiments: CelebA -> JAFFE smiles and category-ordered shoes."""

import numpy as np
import pytest

from densesynth_jax.data import shoes_open


def test_category_order_pairs_join_two_categories_and_order_them():
  rank = np.repeat([0, 1, 2], 20)  # Boot, Shoe, Sandal
  index = np.arange(5, 60)
  p = shoes_open.category_order_pairs(rank, index, 200, np.random.default_rng(0), "open")
  assert len(p) == 200 and np.isin(p.a, index).all() and np.isin(p.b, index).all()
  assert (rank[p.a] != rank[p.b]).all()
  np.testing.assert_array_equal(p.label, np.sign(rank[p.a] - rank[p.b]))
  assert len({(min(a, b), max(a, b)) for a, b in zip(p.a, p.b)}) == 200  # distinct pairs
  assert {-1, 1} <= set(p.label.tolist())
  with pytest.raises(ValueError, match="two categories"):
    shoes_open.category_order_pairs(rank, np.arange(20), 5, np.random.default_rng(0), "open")


def _check_replicate(cfg, d, name):
  """A replicate redraws the train pairs (same budget, same split) and keeps every other set."""
  from densesynth_jax.data import registry
  r = registry.replicate_domain(cfg, d, 1)
  t0, t1 = d.pairs[name]["train"], r.pairs[name]["train"]
  assert len(t1) == len(t0) and np.isin(t1.a, d.splits["train"]).all()
  assert not np.array_equal(t0.a, t1.a)
  assert all(r.pairs[name][s] is p for s, p in d.pairs[name].items() if s != "train")
  return r


@pytest.mark.real_data
def test_official_open_labels_agree_with_the_category_order(data_dir):
  """The docstring's claim: UT-Zap50K's crowd orders 98.7% of cross-category pairs this way."""
  from densesynth_jax.data import labelpacks
  labels = labelpacks.load_zap50k_labels(data_dir / "ut-zap50k-labels")
  top = np.asarray([p.split("/")[0] for p in labels.image_paths])
  rank = {"Boots": 0, "Shoes": 1, "Sandals": 2}
  r = np.asarray([rank.get(t, -1) for t in top])
  p = labels.ordered["open"]
  both = (r[p.a] >= 0) & (r[p.b] >= 0) & (r[p.a] != r[p.b])
  agree = np.mean(np.sign(r[p.a] - r[p.b])[both] == p.label[both])
  assert both.sum() == 623 and round(float(agree), 3) == 0.987


@pytest.mark.real_data
def test_shoes_open_domain(data_dir):
  from configs import shoes_open as cfg_module
  cfg = cfg_module.get_config("smoke").data
  cfg.data_dir = str(data_dir)
  d = shoes_open.build_domain(cfg)
  pairs = d.pairs["open"]
  assert {k: len(v) for k, v in pairs.items()} == dict(train=120, val=60, test=150)
  for split, p in pairs.items():
    assert np.isin(p.a, d.splits[split]).all() and np.isin(p.b, d.splits[split]).all()
  sandal = d.binary["open"].astype(bool)
  assert sandal.sum() == 200  # the first 200 sandals
  _check_replicate(cfg, d, "open")
  t = pairs["test"]
  # A sandal always wins; a boot always loses.
  assert (t.label[sandal[t.a]] == 1).all() and (t.label[sandal[t.b]] == -1).all()


@pytest.mark.real_data
def test_celeba_jaffe_domain(data_dir):
  from configs import celeba_smile
  cfg = celeba_smile.get_config("smoke").data
  cfg.data_dir = str(data_dir)
  from densesynth_jax.data import celeba_jaffe
  d = celeba_jaffe.build_domain(cfg)
  n = 600
  assert len(d.images) == n + 213 and d.images.image_shape == (64, 64, 3)
  pairs = d.pairs["smiling"]
  assert {k: len(v) for k, v in pairs.items()} == dict(  # JAFFE at margins 2.0 and 3.0
      train=120, val=60, test_celeba=60, test=474, test_strong=225)
  np.testing.assert_array_equal(d.splits["test"], np.arange(n, n + 213))
  for t in ("test", "test_strong"):
    assert (pairs[t].a >= n).all() and (pairs[t].b >= n).all()
  strong = {(a, b) for a, b in zip(pairs["test_strong"].a, pairs["test_strong"].b)}
  assert strong <= {(a, b) for a, b in zip(pairs["test"].a, pairs["test"].b)}
  smile = d.binary["smiling"]
  for split in ("train", "val", "test_celeba"):
    p = pairs[split]
    split_name = "test_celeba" if split == "test_celeba" else split
    assert np.isin(p.a, d.splits[split_name]).all()
    # Category pairs: the smiling image wins.
    np.testing.assert_array_equal(p.label, np.where(smile[p.a] == 1, 1, -1))
    assert (smile[p.a] != smile[p.b]).all()
  # JAFFE images are grey (repeated channels).
  jaffe = d.images.images[n:]
  assert (jaffe[..., 0] == jaffe[..., 1]).all()
  r = _check_replicate(cfg, d, "smiling")
  p = r.pairs["smiling"]["train"]
  np.testing.assert_array_equal(p.label, np.where(smile[p.a] == 1, 1, -1))


@pytest.mark.slow
@pytest.mark.real_data
def test_celeba_smile_smoke_run(data_dir, tmp_path, monkeypatch):
  """The real-face experiment end to end (tiny): generator, synthesis, verification, rankers."""
  monkeypatch.setenv("DENSESYNTH_DATA_DIR", str(data_dir))
  from configs import celeba_smile
  from densesynth_jax.experiments import runner
  config = celeba_smile.get_config("smoke")
  config.methods = ("real", "dsynth_auto")
  results = runner.train_and_evaluate(config, tmp_path)
  cells = {c["method"]: c for c in results["cells"]}
  assert set(cells) == {"real", "dsynth_auto"}
  for c in cells.values():
    assert c["num_test_pairs"] == {"test": 474, "test_strong": 225, "test_celeba": 60}
    right = c["accuracy"]["test"] * 474
    assert abs(right - round(right)) < 1e-6  # a count of ordered test pairs over 474
  assert cells["dsynth_auto"]["pool"]["pairs_by_source"] == {"real": 120, "synth": 120}
  assert (tmp_path / "generator" / "generator_eval.json").exists()
  # One table per test set, one row per method.
  assert (tmp_path / "results.md").read_text().count("| ranksvm_local |") == 2 * len(
      config.test_sets)
