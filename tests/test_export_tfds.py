"""Synthetic sets as TFDS datasets: round trip through tfds.builder_from_directory, bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from densesynth_jax.synth import export_tfds, jitter, prior as prior_lib, store, verify
from densesynth_jax.synth.verify import Vote

ROOT = Path(__file__).resolve().parent.parent


def _synth_set(folder):
  """8 identities, 10 pairs of 6×5 images whose pixels all differ (no generator needed)."""
  rng = np.random.default_rng(0)
  p = prior_lib.fit_prior(rng.normal(size=(100, 3)), ("smiling", "x", "y"), z_dim=2)

  def render(y, z):
    noise = np.random.default_rng(int(1000 * abs(y[0, 0]))).integers(0, 256, (len(y), 6, 5, 3))
    noise[..., 0] = np.clip(128 + 60 * y[:, 0], 0, 255)[:, None, None]
    return noise.astype(np.uint8)

  cfg = jitter.default_config()
  cfg.update(dict(num_identities=8, num_pairs=10, chunk_identities=3))
  s = jitter.synthesize(render, p, "smiling", cfg)
  store.save(folder, s, "fp0123", generator="7-0123456789abcdef@6")
  return s


def _verification(s):
  """Votes: kept, flipped, tie, can't tell and no votes all occur."""
  rows = [("w1", 0, 1), ("w2", 0, 1), ("w3", 0, 1),
          ("w1", 1, -1), ("w2", 1, -1), ("w3", 1, 1),
          ("w1", 2, 1), ("w2", 2, -1),
          ("w1", 3, 0), ("w2", 3, 0),
          ("w1", 4, -1), ("w2", 4, -1), ("w3", 4, 1), ("w4", 4, 1), ("w5", 4, -1)]
  return verify.aggregate([Vote(*r) for r in rows], s.pairs.label, min_agreement=0.6)


def _read_back(out):
  """Every record of both splits, straight from tfds (not through export_tfds.load)."""
  builder = tfds.builder_from_directory(str(out))
  src = builder.as_data_source()
  return builder, {k: [src[k][i] for i in range(len(src[k]))] for k in ("images", "pairs")}


def test_round_trip_keeps_every_array(tmp_path):
  folder = tmp_path / "synth" / "smiling"
  s = _synth_set(folder)
  v = _verification(s)
  verify.save_verification(folder, v)
  out = export_tfds.export(folder, tmp_path / "tfds")
  assert out == tmp_path / "tfds"
  assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left

  col = s.images.attribute_index("smiling")
  n, p = len(s.images), len(s.pairs)
  verified = np.where(v.num_votes > 0, v.label, -2)
  assert (verified == -2).any() and (verified == 0).any() and v.keep.any()  # all cases occur
  expect = dict(
      image=s.images.images, identity=s.images.groups, strengths=s.images.strengths,
      a=s.pairs.a, b=s.pairs.b, auto_label=s.pairs.label, kind=s.kind,
      strength_a=s.images.strengths[s.pairs.a, col], strength_b=s.images.strengths[s.pairs.b, col],
      verified_label=verified, verified_kept=v.keep, agreement=v.agreement,
      num_votes=v.num_votes)

  # Straight through tfds: records are stored in index order (record i is image / pair i).
  builder, recs = _read_back(out)
  assert {k: builder.info.splits[k].num_examples for k in recs} == dict(images=n, pairs=p)
  assert [[r["index"] for r in recs[k]] for k in ("images", "pairs")] == [list(range(n)),
                                                                          list(range(p))]
  for split, fields in (("images", export_tfds.IMAGE_FIELDS), ("pairs", export_tfds.PAIR_FIELDS)):
    for k in fields:
      got = np.stack([np.asarray(r[k]) for r in recs[split]])
      np.testing.assert_array_equal(got, expect[k], err_msg=f"{split}/{k}")
      want_dtype = builder.info.features[k].np_dtype
      np.testing.assert_array_equal(got.astype(want_dtype), expect[k].astype(want_dtype))
    other = export_tfds.PAIR_FIELDS if split == "images" else export_tfds.IMAGE_FIELDS
    assert all(r[k] is None for r in recs[split] for k in other)

  # The reader helper: exact arrays and dtypes.
  got = export_tfds.load(out)
  assert got["image"].dtype == np.uint8 and got["image"].shape == (n, 6, 5, 3)
  for k, want in expect.items():
    assert got[k].dtype == builder.info.features[k].np_dtype, k
    np.testing.assert_array_equal(got[k], want, err_msg=k)
  assert got["attribute_names"].tolist() == ["smiling", "x", "y"]

  # Metadata and the card.
  meta = builder.info.metadata
  assert meta["fingerprint"] == "fp0123" and meta["attribute"] == "smiling"
  assert meta["attribute_names"] == ["smiling", "x", "y"]
  assert meta["info"] == json.loads(json.dumps(s.info))
  assert meta["verification"] == json.loads(json.dumps(v.report))
  np.testing.assert_allclose(meta["prior"]["mean"], s.prior.mean, rtol=1e-6)
  assert meta["kind_codes"] == {"0": "intra", "1": "inter"} and meta["no_verification"] == -2
  card = (out / "README.md").read_text()
  assert card.strip() == builder.info.description.strip()
  for text in ("smiling", "δ: 2.0", "identities: 8", "fp0123", "intra-identity",
               "export_tfds.export("):
    assert text in card, text


def test_without_verification_every_pair_is_unverified(tmp_path):
  folder = tmp_path / "smiling"
  s = _synth_set(folder)
  assert export_tfds.main([f"--synth={folder}", f"--out={tmp_path / 'out'}"]) == 0
  got = export_tfds.load(tmp_path / "out")
  assert (got["verified_label"] == -2).all() and not got["verified_kept"].any()
  assert (got["num_votes"] == 0).all()
  np.testing.assert_array_equal(got["auto_label"], s.pairs.label)
  meta = tfds.builder_from_directory(str(tmp_path / "out")).info.metadata
  assert meta["verification"] is None
  # The rendering generator's fingerprint travels with the set (meta.json -> metadata, card).
  assert meta["generator_fingerprint"] == "7-0123456789abcdef@6"
  assert "7-0123456789abcdef@6" in (tmp_path / "out" / "README.md").read_text()
  assert meta["command"] == (f"python -m densesynth_jax.synth.export_tfds --synth={folder} "
                             f"--out={tmp_path / 'out'}")


def test_missing_synth_folder_fails_in_one_line_and_writes_nothing(tmp_path):
  out = tmp_path / "out"
  r = subprocess.run([sys.executable, "-m", "densesynth_jax.synth.export_tfds",
                      f"--synth={tmp_path / 'nope'}", f"--out={out}"],
                     capture_output=True, text=True, timeout=120, cwd=ROOT)
  assert r.returncode == 1
  lines = r.stderr.strip().splitlines()
  assert lines == [f"export_tfds: error: missing synthetic set folder: {tmp_path / 'nope'}"]
  assert not out.exists() and list(tmp_path.iterdir()) == []


def test_corrupt_file_and_existing_output_are_refused(tmp_path, capsys):
  folder = tmp_path / "smiling"
  _synth_set(folder)
  out = tmp_path / "out"
  out.mkdir()
  (out / "keep.txt").write_text("mine")
  assert export_tfds.main([f"--synth={folder}", f"--out={out}"]) == 1
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "export_tfds: error:" in err and f"{out}" in err
  assert "--overwrite" in err and (out / "keep.txt").read_text() == "mine"

  assert export_tfds.main([f"--synth={folder}", f"--out={out}", "--overwrite"]) == 0
  assert not (out / "keep.txt").exists() and (out / "dataset_info.json").is_file()
  capsys.readouterr()

  (folder / "synth.npz").write_bytes(b"not an npz")
  assert export_tfds.main([f"--synth={folder}", f"--out={tmp_path / 'out2'}"]) == 1
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and f"{folder / 'synth.npz'}" in err
  assert not (tmp_path / "out2").exists()
  assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "smiling"]

  with pytest.raises(ValueError, match="would replace the synthetic set"):
    export_tfds.export(folder, tmp_path, overwrite=True)


def test_load_restores_index_order_from_any_record_order(tmp_path, monkeypatch):
  """Records stored in reverse order (keys n-1..0) still load in index order."""
  s = _synth_set(tmp_path / "smiling")
  records = export_tfds._Builder._records

  def reversed_keys(self, n, fields, absent):
    for key, rec in records(self, n, fields, absent):
      yield n - 1 - key, rec

  monkeypatch.setattr(export_tfds._Builder, "_records", reversed_keys)
  out = export_tfds.export(tmp_path / "smiling", tmp_path / "out")
  src = tfds.builder_from_directory(str(out)).as_data_source()
  assert [r["index"] for r in src["images"]] == list(range(len(s.images)))[::-1]
  got = export_tfds.load(out)
  np.testing.assert_array_equal(got["image"], s.images.images)
  np.testing.assert_array_equal(got["a"], s.pairs.a)
  np.testing.assert_array_equal(got["strength_b"], s.images.strengths[s.pairs.b, 0])
