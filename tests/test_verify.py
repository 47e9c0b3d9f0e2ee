"""Verification by people: voting rules, malformed answer files, and the page in a real browser."""

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from densesynth_jax.synth import jitter, prior as prior_lib, store, verify
from densesynth_jax.synth.verify import Vote


def _votes(rows):
  return [Vote(w, p, v) for w, p, v in rows]


def test_majority_ties_thresholds_and_flips():
  auto = np.array([1, 1, -1, 1, -1, 1], np.int8)
  rows = [  # pair 0: 3 of 3 agree with auto; pair 1: 2-1 flip; pair 2: tie; pair 3: can't tell
      ("w1", 0, 1), ("w2", 0, 1), ("w3", 0, 1),
      ("w1", 1, -1), ("w2", 1, -1), ("w3", 1, 1),
      ("w1", 2, 1), ("w2", 2, -1),
      ("w1", 3, 0), ("w2", 3, 0), ("w3", 3, 1),
      ("w1", 4, -1), ("w2", 4, -1), ("w3", 4, 1), ("w4", 4, 1), ("w5", 4, -1),  # 3/5 = 0.6
  ]  # pair 5: no votes
  v = verify.aggregate(_votes(rows), auto, min_agreement=0.6)
  assert v.label.tolist() == [1, -1, 0, 0, -1, 0]
  assert v.keep.tolist() == [True, True, False, False, True, False]
  np.testing.assert_allclose(v.agreement, [1, 2 / 3, 0.5, 2 / 3, 0.6, 0], rtol=1e-6)
  r = v.report
  assert (r["dropped_tie"], r["dropped_cant_tell"], r["dropped_no_votes"], r["flipped"]) == (1, 1, 1, 1)
  assert r["auto_label_agreement_decided"] == pytest.approx(2 / 3)
  strict = verify.aggregate(_votes(rows), auto, min_agreement=0.7)
  assert strict.keep.tolist() == [True, False, False, False, False, False]
  assert strict.report["dropped_low_agreement"] == 2
  # A worker who answers a pair twice counts once, with the last answer.
  again = verify.aggregate(_votes([("w1", 0, -1), ("w1", 0, 1)]), auto)
  assert again.num_votes[0] == 1 and again.label[0] == 1


@pytest.mark.parametrize("text, match", [
    ("who,pair,answer\n", ":1: expected header"),
    ("worker_id,pair_id,answer\nw1,0,maybe\n", ":2: answer 'maybe'"),
    ("worker_id,pair_id,answer\nw1,0,A\nw1,x,A\n", ":3: pair_id 'x'"),
    ("worker_id,pair_id,answer\nw1,99,A\n", ":2: pair_id 99 out of range"),
    ("worker_id,pair_id,answer\nw1,0\n", ":2: expected 3 fields"),
])
def test_malformed_answer_files_name_file_and_line(tmp_path, text, match):
  f = tmp_path / "answers.csv"
  f.write_text(text)
  with pytest.raises(ValueError, match=f"answers.csv{match}"):
    verify.read_answers([f], num_pairs=10)
  with pytest.raises(FileNotFoundError, match="missing answer file"):
    verify.read_answers([tmp_path / "nope.csv"], num_pairs=10)


def _synth_set(tmp_path):
  rng = np.random.default_rng(0)
  p = prior_lib.fit_prior(rng.normal(size=(100, 2)), ("smiling", "x"), z_dim=2)

  def render(y, z):
    img = np.zeros((len(y), 8, 8, 3), np.uint8)
    img[..., 0] = np.clip(128 + 60 * y[:, 0], 0, 255).astype(np.uint8)[:, None, None]
    return img

  cfg = jitter.default_config()
  cfg.update(dict(num_identities=6, num_pairs=6, chunk_identities=6))
  s = jitter.synthesize(render, p, "smiling", cfg)
  store.save(tmp_path / "synth" / "smiling", s, "fp")
  return s


def test_export_writes_csv_pngs_page_and_batch(tmp_path):
  s = _synth_set(tmp_path)
  page = verify.export(s, tmp_path / "out", base_url="https://example.org/v")
  rows = list(csv.DictReader((tmp_path / "out" / "pairs.csv").open()))
  assert [r["pair_id"] for r in rows] == [str(i) for i in range(6)]
  assert all((tmp_path / "out" / "images" / r["image_a"]).is_file() for r in rows)
  batch = list(csv.DictReader((tmp_path / "out" / "batch.csv").open()))
  assert batch[0]["image_a_url"] == "https://example.org/v/images/pair000000_a.png"
  html = page.read_text()
  assert "Which image shows more <b>smiling</b>?" in html and "data:image/png;base64," in html
  assert "http" not in html.replace("https://example.org", "")  # no network references
  with pytest.raises(IndexError, match="pair id 7 out of range"):
    verify.export(s, tmp_path / "bad", pair_ids=[7])


def _chromium():
  for name in ("chromium", "chromium-browser", "google-chrome"):
    path = shutil.which(name)
    if path:
      return path
  return None


@pytest.mark.skipif(_chromium() is None, reason="no chromium on this machine (.ci/run installs it)")
def test_page_in_headless_browser_round_trip(tmp_path):
  sync_api = pytest.importorskip("playwright.sync_api")
  s = _synth_set(tmp_path)
  page_path = verify.export(s, tmp_path / "out")
  args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync"]
  with sync_api.sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path=_chromium(), headless=True, args=args)
    page = browser.new_page(accept_downloads=True)
    page.goto(Path(page_path).as_uri())
    assert "Which image shows more" in page.inner_text("#question")
    assert page.eval_on_selector("#imgA", "el => el.naturalWidth") == 32  # 8 px upscaled 4x
    page.fill("#worker", "tester")
    page.click("#btnA")                     # pair 0: A
    page.keyboard.press("b")                # pair 1: B
    page.keyboard.press("c")                # pair 2: can't tell
    page.keyboard.press("ArrowLeft")        # pair 3: A
    page.keyboard.press("u")                # back to pair 3 ...
    page.keyboard.press("ArrowRight")       # ... and change it to B
    assert "Pair 5 of 6" in page.inner_text("#status")
    with page.expect_download() as dl:
      page.keyboard.press("d")
    out = tmp_path / "answers.csv"
    dl.value.save_as(out)
    browser.close()
  rows = list(csv.DictReader(out.open()))
  assert [(r["worker_id"], r["pair_id"], r["answer"]) for r in rows] == [
      ("tester", "0", "A"), ("tester", "1", "B"), ("tester", "2", "cant_tell"), ("tester", "3", "B")]
  votes = verify.read_answers([out], len(s.pairs))
  v = verify.aggregate(votes, s.pairs.label, min_agreement=0.6)
  assert v.keep.tolist() == [True, True, False, True, False, False]
  assert v.label[:4].tolist() == [1, -1, 0, -1]
  # The command line imports the same file into the synthetic set's folder.
  assert verify.main(["import", "--synth", str(tmp_path / "synth" / "smiling"),
                      "--answers", str(out)]) == 0
  loaded = verify.load_verification(tmp_path / "synth" / "smiling")
  np.testing.assert_array_equal(loaded.keep, v.keep)
  kept = verify.verified_pairs(s, loaded)
  assert len(kept) == 3 and kept.label.tolist() == [1, -1, -1]
