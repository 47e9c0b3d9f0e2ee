"""The accuracy bar figure (experiments/figures.py) on a hand-made `tables.summarize` summary."""

import numpy as np
import pytest
from PIL import Image

from densesynth_jax.experiments import figures, tables


def _cells():
  cells = []
  for seed, bump in ((0, 0.0), (1, 0.02)):
    for ranker, method in (("ranksvm_global", "real"), ("ranksvm_global", "dsynth_auto"),
                           ("ranksvm_local", "real"), ("ranksvm_local", "dsynth_auto"),
                           ("classifier", "classifier")):
      for i, attribute in enumerate(("smiling", "mouth_open")):
        acc = 0.6 + 0.05 * i + bump + (0.03 if method == "dsynth_auto" else 0.0)
        cells.append(dict(ranker=ranker, method=method, attribute=attribute, seed=seed,
                          accuracy={"test_fine": acc, "test_coarse": min(1.0, acc + 0.3)}))
  # One attribute with a single seed: its error bar is 0.
  cells.append(dict(ranker="ranksvm_local", method="real", attribute="eyes_open", seed=0,
                    accuracy={"test_fine": 0.45, "test_coarse": 0.9}))
  return cells


def _check_png(path):
  assert path.is_file() and path.stat().st_size > 1000
  with Image.open(path) as im:
    im.verify()
  with Image.open(path) as im:
    assert im.format == "PNG"
    w, h = im.size
    assert w > 100 and h > 100
    assert np.asarray(im.convert("L")).std() > 0  # something was drawn


def test_accuracy_figures_one_png_per_test_set(tmp_path):
  summary = tables.summarize(_cells(), ["test_fine", "test_coarse"])
  assert summary["test_fine"]["ranksvm_local"]["real"]["smiling"]["n"] == 2
  paths = figures.save_accuracy_figures(
      summary, tmp_path / "figures", rankers=["ranksvm_global", "ranksvm_local", "classifier"],
      methods=["real", "dsynth_auto", "classifier"],
      attributes=["smiling", "mouth_open", "eyes_open"], title="hand-made")
  assert paths == [tmp_path / "figures" / "accuracy_test_fine.png",
                   tmp_path / "figures" / "accuracy_test_coarse.png"]
  for p in paths:
    _check_png(p)
  assert not list((tmp_path / "figures").glob(".*.tmp"))  # written atomically, nothing left over


def test_accuracy_bars_default_order_and_errors(tmp_path):
  summary = tables.summarize(_cells(), ["test_fine"])
  path = tmp_path / "bars.png"
  figures.save_accuracy_bars(path, summary["test_fine"])  # order of appearance
  _check_png(path)
  with pytest.raises(ValueError, match="nothing to plot"):
    figures.save_accuracy_bars(tmp_path / "none.png", summary["test_fine"], rankers=["deepstn"])
  assert not (tmp_path / "none.png").exists()
