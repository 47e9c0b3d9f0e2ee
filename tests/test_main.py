"""End to end: train_ranker.py on configs/test.py in a temp workdir; CLI errors are one line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, cwd=ROOT):
  env = dict(os.environ)
  env.pop("DENSESYNTH_DEBUG", None)
  # One host device: virtual CPU devices add no speed, and XLA:CPU's shared thread pool was
  # seen to wedge on the local solver's while-loops under them. The sharded paths have their
  # own in-process tests.
  env.pop("XLA_FLAGS", None)
  return subprocess.run([sys.executable, "train_ranker.py", *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_train_ranker_end_to_end_and_resume(tmp_path):
  workdir = tmp_path / "run"
  r = _run("--config=configs/test.py", f"--workdir={workdir}")
  assert r.returncode == 0, r.stderr[-2000:]
  for name in ("config.json", "results.json", "results.md", "results.csv",
               "figures/sprites_contact_sheet.png", "figures/strength_histograms.png"):
    assert (workdir / name).is_file(), name
  results = json.loads((workdir / "results.json").read_text())
  cells = results["cells"]
  assert {c["attribute"] for c in cells} == {"smiling", "mouth_open"}
  for c in cells:
    for t in ("test_fine", "test_coarse"):
      # An accuracy is a count of correctly ordered pairs over the ordered test pairs.
      right = c["accuracy"][t] * c["num_test_pairs"][t]
      assert abs(right - round(right)) < 1e-6 and c["num_test_pairs"][t] > 0
  # Mouth opening is a large, localised pixel change: even a global pixel ranker beats chance.
  mouth = next(c for c in cells if c["attribute"] == "mouth_open")
  assert mouth["accuracy"]["test_coarse"] > 0.7
  md = (workdir / "results.md").read_text()
  assert "| ranker | method | smiling | mouth_open |" in md and "| ranksvm_global | real |" in md
  assert "| ranksvm_global | real |" in r.stdout  # the table is printed at the end
  config = json.loads((workdir / "config.json").read_text())
  assert config["data"]["image_size"] == 32
  # A rerun with the same workdir reuses the finished cells.
  again = _run("--config=configs/test.py", f"--workdir={workdir}")
  assert again.returncode == 0 and again.stdout.count("cached:") == len(cells)
  assert json.loads((workdir / "results.json").read_text())["summary"] == results["summary"]
  # A change to a block these cells do not read (DeepSTN's, the figures') keeps them cached ...
  other = _run("--config=configs/test.py", f"--workdir={workdir}", "--config.deepstn.lr=0.5",
               "--config.figures.neighbours=False")
  assert other.returncode == 0 and other.stdout.count("cached:") == len(cells), other.stderr[-2000:]
  # ... and a change to one they read recomputes.
  changed = _run("--config=configs/test.py", f"--workdir={workdir}", "--config.ranksvm.C=1.0")
  assert changed.returncode == 0 and "cached:" not in changed.stdout


@pytest.mark.parametrize("args, message", [
    (["--config=configs/test.py", "--config.ranksvm.nope=1"],
     "bad config override --config.ranksvm.nope=1: unknown key 'nope'"),
    (["--config=configs/test.py", "--config.methods=('bogus',)"], "unknown methods ['bogus']"),
    (["--config=configs/test.py", "--config.attributes=('hair',)"], "attributes ['hair']"),
    (["--config=configs/missing.py"], "missing.py"),
    (["--config=configs/demo.py:bogus"], "unknown config argument 'bogus'"),
])
@pytest.mark.slow
def test_bad_input_is_one_line_and_nonzero(tmp_path, args, message):
  r = _run(*args, f"--workdir={tmp_path / 'w'}")
  assert r.returncode != 0
  err = r.stderr.strip().splitlines()
  assert err and message in err[-1] and "Traceback" not in r.stderr, r.stderr[-2000:]
  assert not (tmp_path / "w" / "results.json").exists()
