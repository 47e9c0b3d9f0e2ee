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


def test_demo_smoke_is_smaller():
  from configs import demo
  full, smoke = demo.get_config(), demo.get_config("smoke")
  assert smoke.data.num_train_identities < full.data.num_train_identities


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
  assert v["n"] == 2 and np.isclose(v["mean"], 85.0) and np.isclose(v["std"], 5.0)
  md = tables.markdown_tables(summary, ["r"], ["real", "dsynth"], ["smiling", "eyes_open"])
  lines = [l for l in md.splitlines() if l.startswith("| r |")]
  assert lines[0] == "| r | real | **85.00 ± 5.00** | – |"
  assert lines[1] == "| r | dsynth | 55.00 ± 5.00 | – |"
  csv = tables.csv_text(summary).splitlines()
  assert csv[0] == "test_set,ranker,method,attribute,mean,std,n" and len(csv) == 3


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
  assert "| ranksvm_local | real | **70.00 ± 10.00** |" in md and "over 2 runs × seeds" in md
  assert tables.main([str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 1
  assert "no results.json in run folder" in capsys.readouterr().err
  assert not (tmp_path / "x").exists()
