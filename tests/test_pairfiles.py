"""Pair files as test sets (data/pairfiles.py): the CSV parser's errors, the config strings,
appending images and pairs to a domain, and a run whose tables include a user's pair file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from configs import test as test_config
from densesynth_jax.data import labelpack_domains as lpd
from densesynth_jax.data import pairfiles, sprites
from densesynth_jax.experiments import runner
from densesynth_jax.types import Domain, ImageSet, PairSet

ROOT = Path(__file__).resolve().parents[1]
SMILES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # the known smiling strength of each sprite file


def _sprite_files(folder: Path, size: int = 32, shape=None) -> list[str]:
  """Renders one identity at SMILES, saves `s<k>.png` (resized to `shape` (w, h) if given)."""
  params = sprites.demo_params(num=len(SMILES), seed=3, images_per_identity=len(SMILES))
  params["smiling"] = np.asarray(SMILES, np.float32)
  images = sprites.render(params, size)
  folder.mkdir(parents=True, exist_ok=True)
  names = []
  for k, x in enumerate(images):
    im = Image.fromarray(x)
    if shape is not None:
      im = im.resize(shape)
    im.save(folder / f"s{k}.png")
    names.append(f"s{k}.png")
  return names


def _pairs_csv(path: Path, names, extra_lines=()) -> Path:
  """Every pair of `names` ordered by SMILES (+1 when image_a smiles more), one equal pair."""
  lines = ["# my smiles", "image_a,image_b,label"]
  for i in range(len(names)):
    for j in range(i + 1, len(names)):
      a, b = (i, j) if (i + j) % 2 else (j, i)  # both label signs
      lines.append(f"{names[a]},{names[b]},{'+1' if SMILES[a] > SMILES[b] else -1}")
  lines += [f"{names[0]},{names[1]},0", *extra_lines]
  path.write_text("\n".join(lines) + "\n")
  return path


def _one_line(e: pytest.ExceptionInfo) -> str:
  msg = str(e.value.args[0] if e.value.args else e.value)
  assert "\n" not in msg, msg
  return msg


# ---------------------------------------------------------------------------------------------
# The CSV and the config strings.

def test_read_pairs_csv_and_its_errors(tmp_path):
  path = tmp_path / "pairs.csv"
  path.write_text("image_a,image_b,label\n# c\na.png, b.png ,+1\n\nb.png,c.png,-1\nc.png,a.png,0\n")
  rows = pairfiles.read_pairs_csv(path)
  assert rows.image_a == ("a.png", "b.png", "c.png") and rows.label.tolist() == [1, -1, 0]
  assert rows.line.tolist() == [3, 5, 6] and len(rows) == 3
  cases = [("a,b,label\n", "pairs file: line 1 must be the header image_a,image_b,label"),
           ("image_a,image_b,label\nx,y,2\n", "pairs file: line 2 has label '2', expected +1, "
                                              "-1 or 0"),
           ("image_a,image_b,label\nx,y,-2\n", "line 2 has label '-2'"),
           ("image_a,image_b,label\nx,y\n", "line 2 needs 3 fields"),
           ("image_a,image_b,label\nx,x,1\n", "line 2 compares x with itself"),
           ("image_a,image_b,label\n", "pairs file has no pairs"),
           ("", "pairs file has no pairs")]
  for text, message in cases:
    path.write_text(text)
    with pytest.raises(ValueError) as e:
      pairfiles.read_pairs_csv(path)
    msg = _one_line(e)
    assert message in msg and msg.endswith(str(path)), (text, msg)
  path.write_bytes(b"image_a,image_b,label\n\xff\xfe,x,1\n")
  with pytest.raises(ValueError, match="not UTF-8") as e:
    pairfiles.read_pairs_csv(path)
  _one_line(e)
  with pytest.raises(FileNotFoundError) as e:
    pairfiles.read_pairs_csv(tmp_path / "nope.csv", what="my pairs")
  assert _one_line(e) == f"missing my pairs: {tmp_path / 'nope.csv'}"


def test_pfsmile_reader_is_the_shared_parser(tmp_path):
  path = tmp_path / "pairs.csv"
  path.write_text("image_a,image_b,label\nx/1.jpg,x/2.jpg,-1\n")
  a, b, label = lpd.read_pfsmile_pairs(path)
  assert a == ["x/1.jpg"] and b == ["x/2.jpg"] and label.tolist() == [-1]
  path.write_text("image_a,image_b,label\nx,y,5\n")
  with pytest.raises(ValueError, match="^PFSmile pairs file: line 2 has label '5'"):
    lpd.read_pfsmile_pairs(path)


def test_parse_specs():
  spec = pairfiles.parse_spec("mine:smiling:/d/p.csv:/d/img:pad")
  assert spec == pairfiles.PairFileSpec("mine", "smiling", "/d/p.csv", "/d/img", "pad")
  assert pairfiles.parse_spec("m:smiling:p.csv:img").preprocess is None
  specs = pairfiles.parse_specs(("a:smiling:p.csv:i", "a:mouth_open:p.csv:i"),
                                ("smiling", "mouth_open"), ("test_fine",))
  assert [s.attribute for s in specs] == ["smiling", "mouth_open"]  # one name, two attributes
  for texts, message in [
      (("mine:smiling:p.csv",), "config.extra_test_sets[0]: expected NAME:ATTRIBUTE:PAIRS_CSV:"
                                "IMAGES_DIR[:crop|pad]"),
      (("ok:smiling:p:i", "m:smiling:p.csv:i:zoom"), "config.extra_test_sets[1]: preprocessing "
                                                     "'zoom' is not one of ['crop', 'pad']"),
      (("a b:smiling:p:i",), "name 'a b' may use letters"),
      (("m::p:i",), "4 or 5 non-empty fields"),
      ((1,), "config.extra_test_sets[0]: expected a string"),
      (("m:eyes_open:p:i",), "attribute 'eyes_open' is not one of the run's attributes"),
      (("test_fine:smiling:p:i",), "name 'test_fine' is already one of config.test_sets"),
      (("m:smiling:p:i", "m:smiling:q:j"), "a second extra test set 'm' for attribute"),
      ("m:smiling:p:i", "must be a tuple of str")]:
    with pytest.raises(ValueError) as e:
      pairfiles.parse_specs(texts, ("smiling", "mouth_open"), ("test_fine",))
    assert message in _one_line(e), (texts, str(e.value))


# ---------------------------------------------------------------------------------------------
# Adding pair files to a domain.

def _hand_domain(n=10, side=32, grey=False, pad=False) -> Domain:
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
  if grey:
    images[..., 1] = images[..., 2] = images[..., 0]
  strengths = rng.uniform(size=(n, 2)).astype(np.float32)
  imgs = ImageSet(images, np.arange(100, 100 + n), strengths, np.arange(n) // 2,
                  ("smiling", "size"))
  test = PairSet.create([0, 2], [1, 3], [1, -1], attribute="smiling")
  info = dict(preprocessing=dict(op="pad", size=side, fill=[250, 250, 250])) if pad else {}
  return Domain("hand", imgs, {"train": np.arange(n)},
                {"smiling": {"train": test, "test": test}}, info,
                binary={"smiling": (np.arange(n) % 2).astype(np.int8)})


def test_add_pair_file_test_sets_appends_images_and_pairs(tmp_path):
  names = _sprite_files(tmp_path / "img" / "p0", shape=(40, 32))  # wider than tall: cropped
  names = [f"p0/{n}" for n in names]
  csv_path = _pairs_csv(tmp_path / "pairs.csv", names)
  domain = _hand_domain()
  out = pairfiles.add_pair_file_test_sets(
      domain, [f"mine:smiling:{csv_path}:{tmp_path / 'img'}"], cache_dir="none")
  n, k = len(domain.images), len(names)
  assert len(out.images) == n + k and out.images.image_shape == (32, 32, 3)
  np.testing.assert_array_equal(out.images.images[:n], domain.images.images)
  assert out.images.ids[n:].tolist() == list(range(110, 110 + k))  # after the largest id
  assert out.images.groups[n:].tolist() == list(range(5, 5 + k))  # one new group per image
  assert np.isnan(out.images.strengths[n:]).all() and np.isfinite(out.images.strengths[:n]).all()
  assert out.binary["smiling"][n:].tolist() == [0] * k
  p = out.pairs["smiling"]["mine"]
  rows = pairfiles.read_pairs_csv(csv_path)
  assert len(p) == len(rows) == 16 and p.source_counts()["real"] == 16
  assert p.label.tolist() == rows.label.tolist()
  # Indices point at the appended images, in order of first mention: the pair's files' pixels.
  first = {}
  for name in (x for pair in zip(rows.image_a, rows.image_b) for x in pair):
    first.setdefault(name, n + len(first))
  assert p.a.tolist() == [first[x] for x in rows.image_a]
  assert p.b.tolist() == [first[x] for x in rows.image_b]
  # The labels follow the known smile: +1 exactly when image_a's strength is larger.
  smile = {name: SMILES[int(name[-5])] for name in names}
  assert all((s > 0) == (smile[a] > smile[b]) for a, b, s in
             zip(rows.image_a, rows.image_b, rows.label) if s != 0)
  assert out.pairs["smiling"]["train"] is domain.pairs["smiling"]["train"]
  (record,) = out.info["extra_test_sets"]
  assert record["name"] == "mine" and record["num_images"] == k and record["num_pairs"] == 16
  assert record["num_ordered_pairs"] == 15 and record["first_image_index"] == n
  assert record["preprocessing"]["op"] == "crop" and record["preprocessing"]["gray"] is False
  assert pairfiles.own_image_count(out) == n
  # A second set: the same name for another attribute is fine; ids go on after the first set.
  again = pairfiles.add_pair_file_test_sets(
      out, [pairfiles.PairFileSpec("more", "smiling", str(csv_path), str(tmp_path / "img"))],
      cache_dir="none")
  assert again.pairs["smiling"]["more"].a.min() >= n + k
  assert again.images.ids[n + k:].min() == 110 + k and pairfiles.own_image_count(again) == n
  # The digest follows the content: same files, same digest; one label changed, another.
  copy = pairfiles.add_pair_file_test_sets(
      domain, [f"mine:smiling:{csv_path}:{tmp_path / 'img'}"], cache_dir="none")
  assert copy.info["extra_test_sets"][0]["digest"] == record["digest"]
  csv_path.write_text(csv_path.read_text().replace(",0\n", ",1\n"))
  edited = pairfiles.add_pair_file_test_sets(
      domain, [f"mine:smiling:{csv_path}:{tmp_path / 'img'}"], cache_dir="none")
  assert edited.info["extra_test_sets"][0]["digest"] != record["digest"]


def test_domain_rule_follows_grey_and_padding():
  assert pairfiles.domain_rule(_hand_domain())["op"] == "crop"
  assert pairfiles.domain_rule(_hand_domain(grey=True))["gray"] is True
  pad = pairfiles.domain_rule(_hand_domain(pad=True))
  assert pad["op"] == "pad" and pad["fill"] == [250, 250, 250] and pad["gray"] is False
  assert pairfiles.domain_rule(_hand_domain(pad=True), "crop")["op"] == "crop"
  assert pairfiles.domain_rule(_hand_domain(), "pad")["fill"] == [255, 255, 255]


def test_grey_domain_gets_grey_images(tmp_path):
  names = _sprite_files(tmp_path / "img")
  csv_path = _pairs_csv(tmp_path / "pairs.csv", names)
  out = pairfiles.add_pair_file_test_sets(
      _hand_domain(grey=True), [f"g:smiling:{csv_path}:{tmp_path / 'img'}:pad"],
      cache_dir="none")
  new = out.images.images[10:]
  assert (new[..., 0] == new[..., 1]).all() and (new[..., 0] == new[..., 2]).all()


def test_add_pair_file_errors_are_one_line(tmp_path):
  names = _sprite_files(tmp_path / "img")
  csv_path = _pairs_csv(tmp_path / "pairs.csv", names, extra_lines=["s0.png,gone.png,1"])
  line = len(csv_path.read_text().splitlines())
  domain, img = _hand_domain(), tmp_path / "img"
  add = lambda *specs: pairfiles.add_pair_file_test_sets(domain, specs, cache_dir="none")
  with pytest.raises(FileNotFoundError) as e:
    add(f"m:smiling:{csv_path}:{img}")
  assert _one_line(e) == (f"{csv_path}: line {line} names image_b 'gone.png', which does not "
                          f"exist: {img / 'gone.png'}")
  _pairs_csv(csv_path, names)
  (img / "s3.png").write_bytes(b"not a png")
  with pytest.raises(ValueError) as e:
    add(f"m:smiling:{csv_path}:{img}")
  assert _one_line(e).startswith("corrupt image file") and _one_line(e).endswith("s3.png")
  _sprite_files(img)
  for specs, kind, message in [
      ((f"test:smiling:{csv_path}:{img}",), ValueError, "already has pair sets named 'test'"),
      ((f"m:size:{csv_path}:{img}",), KeyError, "has no pairs for attribute 'size'"),
      ((f"m:smiling:{csv_path}:{img}", f"m:smiling:{csv_path}:{img}"), ValueError,
       "attribute 'smiling' already has a test set named 'm'"),
      ((f"m:smiling:{tmp_path / 'no.csv'}:{img}",), FileNotFoundError,
       f"missing pairs file of extra test set 'm': {tmp_path / 'no.csv'}"),
      ((f"m:smiling:{csv_path}:{tmp_path / 'none'}",), FileNotFoundError,
       f"image folder does not exist: {tmp_path / 'none'}")]:
    with pytest.raises(kind) as e:
      add(*specs)
    assert message in _one_line(e), str(e.value)
  csv_path.write_text("image_a,image_b,label\n")
  with pytest.raises(ValueError, match="has no pairs") as e:
    add(f"m:smiling:{csv_path}:{img}")
  csv_path.write_text("image_a,image_b,label\ns0.png,s1.png,0\n")
  with pytest.raises(ValueError, match="every pair is labelled 0") as e:
    add(f"m:smiling:{csv_path}:{img}")
  _one_line(e)


# ---------------------------------------------------------------------------------------------
# In a run.

def test_cell_fingerprint_follows_the_extra_sets():
  config = test_config.get_config()
  fp = lambda c, inputs=None: runner.cell_fingerprint(c, "ranksvm_global", "real", "smiling", 0,
                                                      inputs)
  base = fp(config)
  without = test_config.get_config()
  del without["extra_test_sets"]
  assert fp(without) == base  # runs without pair files keep their cached cells
  config.extra_test_sets = ("mine:smiling:a.csv:img",)
  assert fp(config) != base
  other = test_config.get_config()
  other.extra_test_sets = ("mine:smiling:b.csv:img",)
  assert fp(other) != fp(config)
  assert fp(config, [["mine", "smiling", "0123"]]) != fp(config, [["mine", "smiling", "4567"]])
  assert runner.cell_test_sets(config, "smiling") == ["test_fine", "test_coarse", "mine"]
  assert runner.cell_test_sets(config, "mouth_open") == ["test_fine", "test_coarse"]
  assert runner.run_test_sets(config) == ["test_fine", "test_coarse", "mine"]


@pytest.mark.slow
def test_run_with_a_pair_file_test_set(tmp_path, monkeypatch):
  """configs/test.py with one pair file on smiling: its rows in every table, its own figure;
  redrawn replicates keep it; an edited pairs CSV recomputes the cells."""
  monkeypatch.setenv("DENSESYNTH_CACHE", str(tmp_path / "cache"))
  names = _sprite_files(tmp_path / "mine" / "images")
  csv_path = _pairs_csv(tmp_path / "mine" / "pairs.csv", names)
  config = test_config.get_config()
  config.rankers = ("ranksvm_global",)
  config.seeds = (0, 1)  # replicate 1 redraws the train pairs of a domain with extra images
  config.figures.domain = False
  config.extra_test_sets = (f"mine:smiling:{csv_path}:{tmp_path / 'mine' / 'images'}",)
  workdir = tmp_path / "run"
  results = runner.train_and_evaluate(config, workdir)
  assert results["test_sets"] == ["test_fine", "test_coarse", "mine"]
  cells = results["cells"]
  assert len(cells) == 4
  for c in cells:
    if c["attribute"] == "smiling":
      assert set(c["accuracy"]) == {"test_fine", "test_coarse", "mine"}
      assert c["num_test_pairs"]["mine"] == 15  # the ordered pairs
      right = c["accuracy"]["mine"] * 15
      assert abs(right - round(right)) < 1e-6
    else:
      assert "mine" not in c["accuracy"]
  md = (workdir / "results.md").read_text()
  assert "## Test set `mine`" in md and "`mine` (smiling): 15 ordered of 16 pairs" in md
  mine = md[md.index("## Test set `mine`"):]
  assert "| ranker | method | smiling |\n" in mine and "| ranksvm_global | real |" in mine
  csv_lines = (workdir / "results.csv").read_text().splitlines()
  assert any(l.startswith("mine,ranksvm_global,real,smiling,") for l in csv_lines)
  assert not any(l.startswith("mine,") and ",mouth_open," in l for l in csv_lines)
  assert (workdir / "figures" / "accuracy_mine.png").is_file()
  info = json.loads((workdir / "results.json").read_text())["domain_info"]
  assert info["extra_test_sets"][0]["num_images"] == len(names)
  # The same config resumes; an edited pairs file recomputes every cell (the images changed).
  again = runner.train_and_evaluate(config, workdir)
  assert again["summary"] == results["summary"]
  csv_path.write_text(csv_path.read_text().replace(",0\n", ",1\n"))
  edited = runner.train_and_evaluate(config, workdir)
  assert {c["attribute"]: c["num_test_pairs"].get("mine") for c in edited["cells"]} == \
      {"smiling": 16, "mouth_open": None}


@pytest.mark.slow
def test_train_ranker_with_a_missing_pair_file_is_one_line(tmp_path):
  """The CLI takes a tuple of strings for the empty default; a missing CSV is one line, exit 1."""
  env = dict(os.environ)
  env.pop("DENSESYNTH_DEBUG", None)
  env.pop("XLA_FLAGS", None)
  missing = tmp_path / "no.csv"
  r = subprocess.run([sys.executable, "train_ranker.py", "--config=configs/test.py",
                      f"--workdir={tmp_path / 'w'}",
                      f"--config.extra_test_sets=('mine:smiling:{missing}:{tmp_path}',)"],
                     cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 1
  assert r.stderr.strip().splitlines() == [
      f"train_ranker: error: FileNotFoundError: missing pairs file of extra test set 'mine': "
      f"{missing}"], r.stderr[-2000:]
  assert not (tmp_path / "w" / "results.json").exists()
