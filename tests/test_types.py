"""ImageSet / PairSet / Domain validation: violations raise and name the offending index."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from densesynth_jax.types import Domain, ImageSet, PairSet, concat_images, concat_pairs


def _images(n=5, attrs=("x",)):
  return ImageSet(np.zeros((n, 4, 4, 3), np.uint8), np.arange(n),
                  np.linspace(0, 1, n * len(attrs), dtype=np.float32).reshape(n, len(attrs)),
                  np.arange(n) // 2, attrs)


def test_pairset_create_and_views():
  p = PairSet.create([0, 1, 2], [1, 2, 3], [1, 0, -1], attribute="x", weight=[1, .5, 1])
  assert p.label.dtype == np.int8 and p.a.dtype == np.int32
  assert len(p.ordered()) == 2
  assert p.offset(10).a.tolist() == [10, 11, 12]
  assert p.source_counts()["real"] == 3


@pytest.mark.parametrize("kwargs, match", [
    (dict(a=[0, 1], b=[1, 2], label=[1, 2]), "pair 1: label 2"),
    (dict(a=[0, -3], b=[1, 2], label=[1, 1]), "pair 1: image index a=-3"),
    (dict(a=[0, 1], b=[1, 2], label=[1, 1], weight=[1, np.nan]), "pair 1: weight"),
    (dict(a=[0, 1], b=[1, 2], label=[1, 1], source="bogus"), "unknown pair source"),
])
def test_pairset_rejects_bad_values(kwargs, match):
  with pytest.raises((ValueError, IndexError), match=match):
    PairSet.create(attribute="x", **kwargs)


def test_pairset_length_mismatch_and_range():
  with pytest.raises(ValueError, match="label has shape"):
    PairSet(np.zeros(3, np.int32), np.zeros(3, np.int32), np.zeros(2, np.int8),
            np.ones(3, np.float32), np.zeros(3, np.int8), "x")
  p = PairSet.create([0, 1, 7], [1, 2, 3], [1, 1, 1], attribute="x")
  with pytest.raises(IndexError, match="pair 2: image index a=7 out of range for 5 images"):
    p.validate(5)


def test_imageset_validation():
  with pytest.raises(ValueError, match="uint8"):
    ImageSet(np.zeros((2, 4, 4, 3), np.float32), np.arange(2))
  with pytest.raises(ValueError, match="ids has shape"):
    ImageSet(np.zeros((2, 4, 4, 3), np.uint8), np.arange(3))
  with pytest.raises(ValueError, match="strengths has shape"):
    ImageSet(np.zeros((2, 4, 4, 3), np.uint8), np.arange(2), np.zeros((2, 2), np.float32),
             attribute_names=("x",))
  s = np.zeros((2, 1), np.float32)
  s[1, 0] = np.inf
  with pytest.raises(ValueError, match="not finite at image index 1"):
    ImageSet(np.zeros((2, 4, 4, 3), np.uint8), np.arange(2), s, attribute_names=("x",))
  # A row of NaN is "unknown" (e.g. a pair file's test image); a partly NaN row is an error.
  s = np.zeros((3, 2), np.float32)
  s[1] = np.nan
  ImageSet(np.zeros((3, 4, 4, 3), np.uint8), np.arange(3), s, attribute_names=("x", "y"))
  s[2, 0] = np.nan
  with pytest.raises(ValueError, match="not finite at image index 2"):
    ImageSet(np.zeros((3, 4, 4, 3), np.uint8), np.arange(3), s, attribute_names=("x", "y"))
  with pytest.raises(IndexError, match="image index 9"):
    _images().take([0, 9])
  with pytest.raises(KeyError, match="unknown attribute 'y'"):
    _images().strength("y")


def test_pytrees_go_through_jit():
  p = PairSet.create([0, 1], [1, 2], [1, -1], attribute="x")
  out = jax.jit(lambda p: jax.tree.map(lambda v: v * 2, p))(p)
  assert out.attribute == "x" and out.a.tolist() == [0, 2]
  s = _images()
  assert jax.jit(lambda s: jnp.sum(s.strengths))(s).shape == ()


def test_concat_and_domain():
  s, offsets = concat_images([_images(5), _images(3)])
  assert len(s) == 8 and offsets == [0, 5] and s.strengths.shape == (8, 1)
  p = concat_pairs([PairSet.create([0], [1], [1], attribute="x"),
                    PairSet.create([0], [1], [1], attribute="x", source="synth").offset(5)])
  assert p.a.tolist() == [0, 5] and p.source_counts()["synth"] == 1
  with pytest.raises(ValueError, match="different attributes"):
    concat_pairs([PairSet.create([0], [1], [1], attribute="x"),
                  PairSet.create([0], [1], [1], attribute="y")])
  Domain("d", s, {"train": np.arange(8)}, {"x": {"train": p}})
  with pytest.raises(IndexError, match="split 'train' position 1 has image index 8"):
    Domain("d", s, {"train": np.array([0, 8])}, {"x": {"train": p}})
  with pytest.raises(IndexError, match="train pairs"):
    Domain("d", _images(3), {}, {"x": {"train": p}})
