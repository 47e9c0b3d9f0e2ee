"""Configs: variants, overrides, locked dicts, unknown keys; result tables' format."""

import ml_collections
import numpy as np
import pytest

from configs import common
from densesynth_jax.experiments import tables


def test_parse_arg_variants_and_types():
  cfg = common.parse_arg("smoke,seeds=3,scale=0.5,name=x", smoke=False, seeds=1, scale=1.0,
                         name="")
  assert cfg.smoke is True and cfg.seeds == 3 and cfg.scale == 0.5 and cfg.name == "x"
  assert common.parse_arg(None, smoke=False).smoke is False
  with pytest.raises(ValueError, match="unknown config argument 'bogus'"):
    common.parse_arg("bogus", smoke=False)
  with pytest.raises(ValueError, match="needs a value"):
    common.parse_arg("seeds", seeds=1)


@pytest.mark.parametrize("name", ["demo", "test", "celeba_smile", "shoes_open"])
def test_configs_are_locked_and_complete(name):
  module = __import__(f"configs.{name}", fromlist=["get_config"])
  config = module.get_config()
  config.lock()
  with pytest.raises(AttributeError):
    config.not_a_field = 1
  with pytest.raises(AttributeError):
    _ = config.data.not_a_field
  for key in ("rankers", "methods", "attributes", "seeds", "test_sets", "data", "features"):
    assert key in config


def test_demo_variants():
  from configs import demo
  default, smoke, full = demo.get_config(), demo.get_config("smoke"), demo.get_config("full")
  assert smoke.data.num_train_identities < default.data.num_train_identities
  assert len(default.seeds) >= 3 and len(full.seeds) >= 5  # replicates (issue #10)
  assert set(full.attributes) == {"smiling", "mouth_open", "eyes_open"}
  assert "dsynth_auto_oracle" in default.methods and default.rank_image_size == 0
  # The generator trains on its own pool of new identities, never the run's (test) identities.
  assert default.generator.data.seed != default.data.seed
  with pytest.raises(ValueError, match="choose one"):
    demo.get_config("smoke,full")


def _cells():
  cells = []
  for seed, (a, b) in enumerate([(0.8, 0.6), (0.9, 0.5)]):
    cells.append(dict(ranker="r", method="real", attribute="smiling", seed=seed,
                      accuracy={"t": a}))
    cells.append(dict(ranker="r", method="dsynth", attribute="smiling", seed=seed,
                      accuracy={"t": b}))
  return cells


def test_summary_and_markdown_table():
  summary = tables.summarize(_cells(), ["t"])
  v = summary["t"]["r"]["real"]["smiling"]
  assert v["n"] == 2 and np.isclose(v["mean"], 85.0) and np.isclose(v["std"], np.sqrt(50.0))
  assert "diff" not in v  # the reference row
  d = summary["t"]["r"]["dsynth"]["smiling"]["diff"]  # diffs -20, -40: t(.975, 1) · 14.14 / √2
  assert d["ref"] == "real" and d["n"] == 2 and d["sign"] == "0" and np.isclose(d["mean"], -30.0)
  assert np.isclose(d["hi"] - d["mean"], 12.7062 * 10.0, atol=1e-3)
  md = tables.markdown_tables(summary, ["r"], ["real", "dsynth"], ["smiling", "eyes_open"])
  lines = [l for l in md.splitlines() if l.startswith("| r |")]
  assert lines[0] == "| r | real | **85.00 ± 7.07** | – |"
  assert lines[1] == "| r | dsynth | 55.00 ± 7.07 (Δ −30.00 [−157.06, +97.06]) | – |"
  csv = tables.csv_text(summary).splitlines()
  assert csv[0] == ("test_set,ranker,method,attribute,mean,std,n,"
                    "diff_mean,diff_lo,diff_hi,diff_n") and len(csv) == 3


def test_combine_runs_pools_splits(tmp_path, capsys):
  """Two runs (e.g. two protocol splits) -> one table of mean ± std over both."""
  from densesynth_jax import io
  for k, acc in enumerate((0.8, 0.6)):
    cell = dict(ranker="ranksvm_local", method="real", attribute="open", seed=0,
                accuracy={"test": acc})
    io.write_json(tmp_path / f"split{k}" / "results.json", dict(test_sets=["test"], cells=[cell]))
  assert tables.main([str(tmp_path / "split0"), str(tmp_path / "split1"),
                      "--out", str(tmp_path / "all")]) == 0
  md = (tmp_path / "all" / "results.md").read_text()
  assert "| ranksvm_local | real | **70.00 ± 14.14** |" in md and "over 2 runs × seeds" in md
  assert tables.main([str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 1
  assert "no results.json in run folder" in capsys.readouterr().err
  assert not (tmp_path / "x").exists()
