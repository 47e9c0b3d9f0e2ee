"""UT-Zap50K and LFW-10 label packs: official counts, protocols, and mapping paths to images."""

import numpy as np
import pytest
from PIL import Image

from densesynth_jax.data import labelpacks as lp


def _stand_in(path, colour):
  """A tiny PNG saved under the label pack's (.jpg) name; Pillow reads it by content."""
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.new("RGB", (12, 9), colour).save(path, format="PNG")


def test_path_candidates_apply_the_readme_fixes():
  c = lp.zap50k_path_candidates("Shoes/Heels/T.U.K./7346085.144.jpg")
  assert c == ["Shoes/Heels/T.U.K./7346085.144.jpg", "Shoes/Heels/T.U.K/7346085.144.jpg",
               "Shoes/Heels/T.U.K%2E/7346085.144.jpg", "Shoes/Heels/T%2EU%2EK%2E/7346085.144.jpg"]
  assert lp.zap50k_path_candidates("Shoes/Oxfords/Bostonian/1.72.jpg") == [
      "Shoes/Oxfords/Bostonian/1.72.jpg"]  # dots in the FILE name are never touched


def test_plurality_vote_with_ties_as_equal():
  votes = np.array([[1, 1, 1, -1, 0], [1, 1, -1, -1, 0], [0, 0, 0, 1, -1], [-1, -1, 0, 0, 1],
                    [-1, -1, -1, -1, -1]])
  label, agreement = lp.plurality(votes)
  np.testing.assert_array_equal(label, [1, 0, 0, 0, -1])
  np.testing.assert_allclose(agreement, [0.6, 0.4, 0.6, 0.4, 1.0])


@pytest.mark.real_data
def test_zap50k_official_counts(data_dir):
  labels = lp.load_zap50k_labels(data_dir)
  assert len(labels.image_paths) == 50_025
  assert labels.image_paths[0] == "Shoes/Oxfords/Bostonian/100627.72.jpg"
  assert labels.attributes == ("open", "pointy", "sporty", "comfort")
  assert sum(len(p) for p in labels.ordered.values()) == 6751
  assert sum(len(p) for p in labels.equal.values()) == 4612
  assert sum(len(p) for p in labels.fine_grained.values()) == 4334
  assert len(lp.zap50k_labelled_images(labels)) == 5551
  assert labels.info["equal_in_order"] == {a: 0 for a in labels.attributes}
  for attr in labels.attributes:
    o, e, h = labels.ordered[attr], labels.equal[attr], labels.fine_grained[attr]
    assert set(np.unique(o.label)) == {-1, 1} and (e.label == 0).all()
    assert set(np.unique(h.label)) == {-1, 1}
    assert labels.info["checks"][attr]["fine_grained_in_equal"] == len(h)  # all in mturkEqual
    assert len(labels.test_splits[attr]) == len(labels.train_splits[attr]) == 10
    for tr, te in zip(labels.train_splits[attr], labels.test_splits[attr]):
      assert len(te) == 300 and len(tr) + len(te) == len(o)
      assert np.intersect1d(tr, te).size == 0


@pytest.mark.real_data
def test_zap50k_protocols_index_an_image_table(data_dir):
  labels = lp.load_zap50k_labels(data_dir)
  train, test, paths = lp.zap50k_protocol_1(labels, "open", 3)
  assert len(test) == 300 and len(train) == len(labels.ordered["open"]) - 300
  assert set(np.unique(test.label)) <= {-1, 1} and test.attribute == "open"
  train.validate(len(paths)), test.validate(len(paths))
  row = labels.test_splits["open"][3][0]
  o = labels.ordered["open"]
  assert paths[test.a[0]] == labels.image_paths[o.a[row]]
  assert paths[test.b[0]] == labels.image_paths[o.b[row]]
  assert test.label[0] == o.label[row]
  assert len(set(paths)) == len(paths)

  train2, test2, paths2 = lp.zap50k_protocol_2(labels, "comfort")
  assert len(train2) == len(labels.ordered["comfort"]) and len(test2) == 979
  tr_eq, te_eq, _ = lp.zap50k_protocol_2(labels, "comfort", include_equal=True)
  # Every fine-grained pair is an equal pair, so they are held out of the equal training pairs.
  assert int(np.sum(tr_eq.label == 0)) == len(labels.equal["comfort"]) - 979
  with pytest.raises(IndexError, match="split 10 out of range"):
    lp.zap50k_protocol_1(labels, "open", 10)
  with pytest.raises(KeyError, match="unknown UT-Zap50K attribute 'heel'"):
    lp.zap50k_protocol_2(labels, "heel")


@pytest.mark.real_data
def test_zap50k_stand_in_images_load_through_the_path_fixes(data_dir, tmp_path):
  labels = lp.load_zap50k_labels(data_dir)
  dotted = [p for p in labels.image_paths if p.split("/")[2].endswith(".")][:2]
  plain = [labels.image_paths[i] for i in (0, 1, 2)]
  wanted = plain + dotted
  root = tmp_path / "ut-zap50k-images"
  colours = [(10 * i, 200 - 10 * i, 7 * i) for i in range(len(wanted))]
  # The plain paths as given; the dotted ones spelled "%2E" (square zip) and "." stripped.
  spelled = [p for p in plain] + [lp.zap50k_path_candidates(dotted[0])[2],
                                  lp.zap50k_path_candidates(dotted[1])[1]]
  assert spelled[3].endswith(dotted[0].rsplit("/", 1)[1]) and "%2E/" in spelled[3]
  assert spelled[4] != dotted[1] and "./" not in spelled[4]
  for rel, colour in zip(spelled, colours):
    _stand_in(root / rel, colour)
  files = lp.resolve_zap50k_images(wanted, root)
  assert [f.relative_to(root).as_posix() for f in files] == spelled
  images = lp.zap50k_imageset(wanted, root, image_size=8, cache_dir="none")
  assert images.images.shape == (5, 8, 8, 3)
  np.testing.assert_array_equal(images.images[:, 4, 4], np.asarray(colours, np.uint8))

  (root / lp.zap50k_path_candidates(plain[1])[0]).unlink()
  with pytest.raises(FileNotFoundError) as err:
    lp.resolve_zap50k_images(wanted, root)
  msg = str(err.value)
  assert "missing 1 of 5 UT-Zap50K image file(s)" in msg and plain[1] in msg
  assert str(root) in msg and "\n" not in msg


@pytest.mark.real_data
def test_lfw10_labels(data_dir, tmp_path):
  votes = lp.load_lfw10_labels(data_dir)
  assert tuple(votes) == lp.LFW10_ATTRIBUTES
  for attr, v in votes.items():
    assert v.votes.shape == (500, 5) and len(v.test_label) == 500
  assert sum(int(v.votes.size) for v in votes.values()) == 25_000
  train, test, names = lp.lfw10_pairs(data_dir, "smile")
  assert len(train) == 500 and len(test) == 500 and train.attribute == "smile"
  train.validate(len(names)), test.validate(len(names))
  v = votes["smile"]
  assert (names[train.a[0]], names[train.b[0]]) == (v.train_a[0], v.train_b[0])
  np.testing.assert_array_equal(train.label, lp.plurality(v.votes)[0])
  assert set(np.unique(test.label)) == {-1, 0, 1}
  weighted, _, _ = lp.lfw10_pairs(data_dir, "smile", weight="agreement")
  assert weighted.weight.min() >= 0.2 and weighted.weight.max() == 1.0

  root = tmp_path / "LFW10"
  for k, name in enumerate(names[:4]):
    _stand_in(root / "images" / name, (k, k, k))
  got = lp.lfw10_imageset(names[:4], root, image_size=8, cache_dir="none")
  assert got.images.shape == (4, 8, 8, 3) and list(got.images[:, 0, 0, 0]) == [0, 1, 2, 3]
  with pytest.raises(FileNotFoundError, match=f"missing 1 of 5 LFW-10 .*{names[4]}"):
    lp.resolve_lfw10_images(names[:5], root)
