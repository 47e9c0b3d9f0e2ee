"""Saved rankers and `densesynth_jax.predict`: load a run's rankers, score and compare new images,
evaluate on a pairs file, and the one-line errors of bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from configs import test as test_config
from densesynth_jax import io, predict
from densesynth_jax.data.registry import load_domain, resize_domain
from densesynth_jax.experiments import runner
from densesynth_jax.metrics import margin_accuracy

ATTRIBUTE = "smiling"
TEST_SET = "test_fine"


def _domain(config, results):
  return resize_domain(load_domain(config.data), int(results["rank_image_size"]))


def _cell(results, ranker, method, seed=0):
  return next(c for c in results["cells"] if (c["ranker"], c["method"], c["attribute"],
                                              c["seed"]) == (ranker, method, ATTRIBUTE, seed))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """A tiny run: global and local RankSVM on Real, and the Classifier baseline; one replicate."""
  config = test_config.get_config()
  config.attributes = (ATTRIBUTE,)
  config.methods = ("real", "classifier")
  config.seeds = (0,)
  config.figures.domain = False
  config.figures.neighbours = False
  workdir = tmp_path_factory.mktemp("run")
  results = runner.train_and_evaluate(config, workdir)
  domain = _domain(config, results)
  return workdir, config, results, domain


def _accuracy(margins, domain):
  return margin_accuracy(margins, domain.pairs[ATTRIBUTE][TEST_SET].ordered())


def test_every_cell_keeps_its_model(run):
  workdir, _, results, _ = run
  for c in results["cells"]:
    folder = (workdir / "rankers" / c["ranker"] / c["method"] / c["attribute"]
              / f"seed{c['seed']}_model")
    meta = io.read_json(folder / "model.json")
    assert meta["format_version"] == predict.FORMAT_VERSION and meta["ranker"] == c["ranker"]
  assert "model" not in (workdir / "results.json").read_text()  # results.json is unchanged


@pytest.mark.parametrize("ranker,method", [("ranksvm_global", "real"),
                                           ("classifier", "classifier")])
def test_loaded_scores_reproduce_the_run(run, ranker, method):
  workdir, _, results, domain = run
  p = predict.load_ranker(workdir, ranker, method, ATTRIBUTE)
  images = domain.images.images
  s = p.score(images)
  test = domain.pairs[ATTRIBUTE][TEST_SET].ordered()
  assert _accuracy(s[test.a] - s[test.b], domain) == _cell(results, ranker, method)["accuracy"][
      TEST_SET]
  # A few images in another order: the same scores up to float rounding (features are computed
  # in chunks whose size follows the number of images, which can change the last bit).
  order = np.arange(len(images))[::-1][:7]
  np.testing.assert_allclose(p.score(images[order]), s[order], rtol=1e-5, atol=1e-6)
  # compare agrees with the sign of the score difference (and is that difference).
  m = p.compare(images[test.a[:20]], images[test.b[:20]])
  np.testing.assert_allclose(m, s[test.a[:20]] - s[test.b[:20]], rtol=1e-5, atol=1e-6)
  assert np.array_equal(np.sign(m), np.sign(s[test.a[:20]] - s[test.b[:20]]))


def test_global_ranksvm_scores_are_exact(run):
  """Loaded = in-run: the pool's standardised features times w, bit for bit."""
  workdir, config, _, domain = run
  from densesynth_jax.features import extract
  from densesynth_jax.rankers import base
  folder = workdir / "rankers" / "ranksvm_global" / "real" / ATTRIBUTE / "seed0_model"
  meta, arrays = base.read_model(folder, "ranksvm_global")
  x = extract.cached_features(config.ranksvm.feature, domain.images, config.features,
                              workdir / "cache" / "features")
  in_run = base.apply_standardization(x, arrays["mean"], arrays["std"]) @ arrays["w"]
  loaded = predict.load_ranker(workdir, "ranksvm_global", "real", ATTRIBUTE)
  np.testing.assert_array_equal(loaded.score(domain.images.images), in_run)


def test_classifier_scores_are_the_runs_strengths(run):
  """Loaded classifier = the pre-label strengths the run ranked by (float rounding only)."""
  workdir, _, _, domain = run
  cached = [p for p in (workdir / "cache").glob(f"prelabel_{ATTRIBUTE}_*.npz")
            if not p.stem.endswith("_model")]
  assert len(cached) == 1
  strengths = io.load_npz(cached[0])["strengths"]
  loaded = predict.load_ranker(workdir, "classifier", "classifier", ATTRIBUTE)
  np.testing.assert_allclose(loaded.score(domain.images.images), strengths, rtol=1e-5, atol=1e-5)


def test_local_ranksvm_compares_but_has_no_score(run):
  workdir, _, results, domain = run
  p = predict.load_ranker(workdir, "ranksvm_local", "real", ATTRIBUTE)
  test = domain.pairs[ATTRIBUTE][TEST_SET].ordered()
  images = domain.images.images
  m = p.compare(images[test.a], images[test.b])
  assert _accuracy(m, domain) == pytest.approx(
      _cell(results, "ranksvm_local", "real")["accuracy"][TEST_SET], abs=1.5 / len(test))
  with pytest.raises(ValueError, match="no per-image score"):
    p.score(images[:2])


def _write_pngs(folder: Path, images: np.ndarray) -> list[str]:
  folder.mkdir(parents=True, exist_ok=True)
  names = [f"img{i:03d}.png" for i in range(len(images))]
  for n, x in zip(names, images):
    Image.fromarray(x).save(folder / n)
  return names


def _test_pairs_csv(tmp_path, config) -> tuple[Path, Path]:
  """The run's test pairs as a pairs CSV over PNGs of its images as the domain makes them (at
  the domain's side: predict brings them to the rankers' side as the run did)."""
  domain = load_domain(config.data)
  test = domain.pairs[ATTRIBUTE][TEST_SET]
  used = np.unique(np.concatenate([test.a, test.b]))
  names = dict(zip(used.tolist(), _write_pngs(tmp_path / "images", domain.images.images[used])))
  lines = ["image_a,image_b,label"] + [f"{names[int(a)]},{names[int(b)]},{int(l)}"
                                       for a, b, l in zip(test.a, test.b, test.label)]
  path = tmp_path / "pairs.csv"
  path.write_text("\n".join(lines) + "\n")
  return path, tmp_path / "images"


def test_evaluate_reproduces_the_table(run, tmp_path, capsys):
  workdir, config, results, _ = run
  pairs, images = _test_pairs_csv(tmp_path, config)
  summary, md = predict.evaluate(workdir, pairs, images)
  for r, m in (("ranksvm_global", "real"), ("ranksvm_local", "real"),
               ("classifier", "classifier")):
    want = results["summary"][TEST_SET][r][m][ATTRIBUTE]["mean"]
    assert summary["pairs"][r][m][ATTRIBUTE]["mean"] == pytest.approx(want, abs=1e-9), (r, m)
  out = tmp_path / "table.md"
  capsys.readouterr()
  assert predict.main(["evaluate", f"--run={workdir}", f"--pairs={pairs}", f"--images={images}",
                       f"--out={out}"]) == 0
  printed = capsys.readouterr().out
  assert "## Test set `pairs`" in printed and "ranksvm_local" in printed
  assert out.read_text().strip() == printed.strip()


def test_score_and_compare_commands(run, tmp_path, capsys):
  workdir, _, _, domain = run
  names = _write_pngs(tmp_path / "imgs", domain.images.images[:4])
  out = tmp_path / "scores.csv"
  common = [f"--run={workdir}", "--ranker=ranksvm_global", "--method=real",
            f"--attribute={ATTRIBUTE}"]
  assert predict.main(["score", *common, str(tmp_path / "imgs"), f"--out={out}"]) == 0
  rows = out.read_text().splitlines()
  assert rows[0] == "image,score" and len(rows) == 5
  scores = {Path(r.split(",")[0]).name: float(r.split(",")[1]) for r in rows[1:]}
  a, b = tmp_path / "imgs" / names[0], tmp_path / "imgs" / names[1]
  capsys.readouterr()
  assert predict.main(["compare", *common, str(a), str(b)]) == 0
  line = capsys.readouterr().out.strip()
  more = names[0] if scores[names[0]] > scores[names[1]] else names[1]
  assert line.startswith(str(tmp_path / "imgs" / more)) and "shows more smiling" in line
  local = [f"--run={workdir}", "--ranker=ranksvm_local", "--method=real",
           f"--attribute={ATTRIBUTE}"]
  assert predict.main(["compare", *local, str(a), str(b)]) == 0
  assert "shows more smiling" in capsys.readouterr().out


@pytest.mark.slow  # two interpreters importing JAX: about 8 s
def test_the_module_runs_as_a_command(run, tmp_path):
  """`python -m densesynth_jax.predict compare` on two sprite PNGs (the issue's check)."""
  workdir, _, _, domain = run
  names = _write_pngs(tmp_path / "imgs", domain.images.images[:2])
  root = Path(__file__).resolve().parents[1]
  done = subprocess.run(
      [sys.executable, "-m", "densesynth_jax.predict", "compare", f"--run={workdir}",
       "--ranker=ranksvm_global", "--method=real", f"--attribute={ATTRIBUTE}",
       str(tmp_path / "imgs" / names[0]), str(tmp_path / "imgs" / names[1])],
      cwd=root, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  assert "shows more smiling than" in done.stdout and "margin" in done.stdout
  bad = subprocess.run([sys.executable, "-m", "densesynth_jax.predict", "compare",
                        f"--run={tmp_path / 'nope'}", "--ranker=ranksvm_global", "--method=real",
                        f"--attribute={ATTRIBUTE}", "a.png", "b.png"],
                       cwd=root, capture_output=True, text=True, timeout=300)
  assert bad.returncode == 1 and bad.stderr.count("\n") == 1, bad.stderr
  assert "missing run folder" in bad.stderr


def test_arrays_and_files_are_preprocessed_alike(run, tmp_path):
  """uint8 arrays at another size go through the run's rule, as image files do."""
  workdir, config, _, _ = run
  raw = load_domain(config.data).images.images[:5]  # the domain's side, before the resize
  names = _write_pngs(tmp_path / "raw", raw)
  p = predict.load_ranker(workdir, "ranksvm_global", "real", ATTRIBUTE)
  np.testing.assert_array_equal(p.score(raw), p.score([tmp_path / "raw" / n for n in names]))
  assert p.rule.prepare(raw).shape[1:3] == (p.rule.size, p.rule.size)


def _fails(capsys, argv, message, out=None):
  assert predict.main(argv) == 1
  err = capsys.readouterr().err.strip()
  assert "\n" not in err and err.startswith("predict: error: "), err
  assert message in err, err
  if out is not None:
    assert not Path(out).exists() and not list(Path(out).parent.glob(f".{Path(out).name}*"))


def test_bad_input_is_one_line_exit_1_and_no_output(run, tmp_path, capsys):
  workdir, _, _, domain = run
  _write_pngs(tmp_path / "imgs", domain.images.images[:2])
  out = tmp_path / "scores.csv"
  cell = ["--ranker=ranksvm_global", "--method=real", f"--attribute={ATTRIBUTE}"]
  img = str(tmp_path / "imgs")
  _fails(capsys, ["score", f"--run={tmp_path / 'nope'}", *cell, img, f"--out={out}"],
         "nope", out)
  _fails(capsys, ["score", f"--run={workdir}", "--ranker=deepstn", "--method=real",
                  f"--attribute={ATTRIBUTE}", img, f"--out={out}"], "no ranker 'deepstn'", out)
  _fails(capsys, ["score", f"--run={workdir}", "--ranker=ranksvm_global", "--method=dsynth",
                  f"--attribute={ATTRIBUTE}", img, f"--out={out}"], "no method 'dsynth'", out)
  _fails(capsys, ["score", f"--run={workdir}", "--ranker=ranksvm_global", "--method=real",
                  "--attribute=frowning", img, f"--out={out}"], "no attribute 'frowning'", out)
  _fails(capsys, ["score", f"--run={workdir}", "--ranker=ranksvm_local", "--method=real",
                  f"--attribute={ATTRIBUTE}", img, f"--out={out}"], "no per-image score", out)
  (tmp_path / "imgs" / "broken.png").write_bytes(b"not a png at all")
  _fails(capsys, ["score", f"--run={workdir}", *cell, img, f"--out={out}"],
         "corrupt image file", out)
  _fails(capsys, ["score", f"--run={workdir}", *cell, str(tmp_path / "imgs" / "none.png"),
                  f"--out={out}"], "missing image file", out)

  pairs = tmp_path / "pairs.csv"
  table = tmp_path / "table.md"
  ev = ["evaluate", f"--run={workdir}", f"--pairs={pairs}", f"--images={tmp_path / 'imgs'}",
        f"--out={table}"]
  pairs.write_text("image_a,image_b,label\nimg000.png,gone.png,1\n")
  _fails(capsys, ev, "line 2 names image_b 'gone.png', which does not exist", table)
  pairs.write_text("image_a,image_b,label\nimg000.png,img001.png,2\n")
  _fails(capsys, ev, "line 2 has label '2'", table)
  pairs.write_text("image_a,image_b,label\n")
  _fails(capsys, ev, "has no pairs", table)
  pairs.write_text("")
  _fails(capsys, ev, "has no pairs", table)


def test_a_saved_model_of_another_format_is_refused(run, tmp_path, capsys):
  workdir, _, _, domain = run
  folder = workdir / "rankers" / "ranksvm_global" / "real" / ATTRIBUTE / "seed0_model"
  text = (folder / "model.json").read_text()
  meta = json.loads(text)
  try:
    (folder / "model.json").write_text(json.dumps(dict(meta, format_version=0)))
    _write_pngs(tmp_path / "imgs", domain.images.images[:2])
    out = tmp_path / "scores.csv"
    _fails(capsys, ["score", f"--run={workdir}", "--ranker=ranksvm_global", "--method=real",
                    f"--attribute={ATTRIBUTE}", str(tmp_path / "imgs"), f"--out={out}"],
           "format version 0 does not match", out)
  finally:
    (folder / "model.json").write_text(text)


@pytest.mark.slow
def test_deepstn_saved_model_reproduces_the_run(tmp_path):
  config = test_config.tiny_deepstn(test_config.get_config())
  config.seeds = (0,)
  config.figures.domain = False
  results = runner.train_and_evaluate(config, tmp_path)
  domain = _domain(config, results)
  p = predict.load_ranker(tmp_path, "deepstn", "real", ATTRIBUTE)
  test = domain.pairs[ATTRIBUTE][TEST_SET].ordered()
  s = p.score(domain.images.images)
  assert _accuracy(s[test.a] - s[test.b], domain) == pytest.approx(
      _cell(results, "deepstn", "real")["accuracy"][TEST_SET], abs=1.5 / len(test))
  m = p.compare(domain.images.images[test.a[:10]], domain.images.images[test.b[:10]])
  np.testing.assert_allclose(m, s[test.a[:10]] - s[test.b[:10]], rtol=1e-4, atol=1e-4)
