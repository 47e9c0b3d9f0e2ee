"""Configs: variants, required choices, parse-time checks, locking, copies; result tables."""

import os
import re
import subprocess
import sys
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from configs import common, experiment
from densesynth_jax.experiments import tables

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ["demo", "test", "celeba_smile", "shoes_open", "lfw_smile", "zap50k_1", "zap50k_2"]
GENERATORS = ["generator_sprites", "generator_celeba", "generator_shoes"]
# Blocks that lock themselves: none (the entry point is the one place that locks).
_SELF_LOCKED: set[str] = set()


def test_parse_arg_variants_and_types():
  cfg = common.parse_arg("smoke,seeds=3,scale=0.5,name=x", smoke=False, seeds=1, scale=1.0,
                         name="")
  assert cfg.smoke is True and cfg.seeds == 3 and cfg.scale == 0.5 and cfg.name == "x"
  assert common.parse_arg(None, smoke=False).smoke is False
  with pytest.raises(ValueError, match="unknown config argument 'bogus'"):
    common.parse_arg("bogus", smoke=False)
  with pytest.raises(ValueError, match="needs a value"):
    common.parse_arg("seeds", seeds=1)


def _get_config(name, arg=None):
  return __import__(f"configs.{name}", fromlist=["get_config"]).get_config(arg)


def _locked_blocks(config, path=""):
  """Dotted paths of the locked ConfigDicts in `config` ("" = the root)."""
  found = [path] if config.is_locked else []
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      found += _locked_blocks(value, f"{path}.{key}" if path else key)
  return found


def _run(script, *args):
  env = dict(os.environ)
  env.pop("DENSESYNTH_DEBUG", None)
  env.pop("XLA_FLAGS", None)
  return subprocess.run([sys.executable, script, *args], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=300)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_configs_are_complete_unlocked_and_pass_their_check(name):
  for variant in (None, "smoke"):  # configs/test.py ignores its argument
    config = _get_config(name, variant)
    experiment.check_config(config)  # non-empty rankers, methods, attributes, test_sets, seeds
    for key in ("rank_image_size", "data", "features", "ranksvm", "deepstn", "generator", "synth"):
      assert key in config
    # One locking policy: config files return unlocked configs; the entry point locks.
    assert set(_locked_blocks(config)) <= _SELF_LOCKED


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_configs_are_unlocked(name):
  for variant in (None, "smoke"):
    assert _locked_blocks(_get_config(name, variant)) == []


def test_experiment_config_requires_attributes_and_test_sets():
  from configs import generator_sprites
  from densesynth_jax.data import sprites
  data, generator = sprites.default_config(), generator_sprites.get_config("smoke")
  with pytest.raises(TypeError, match="attributes"):
    experiment.experiment_config(data, generator, test_sets=("test_fine",))
  with pytest.raises(ValueError, match="^experiment_config: attributes is empty; name the "
                                       "attributes with real pairs in the domain$"):
    experiment.experiment_config(data, generator, attributes=(), test_sets=("test_fine",))
  with pytest.raises(ValueError, match="test_sets must be a tuple of str, got 'test_fine'"):
    experiment.experiment_config(data, generator, attributes=("smiling",), test_sets="test_fine")
  config = experiment.experiment_config(data, generator, attributes=("smiling",),
                                        test_sets=("test_fine",))
  assert config.attributes == ("smiling",) and config.test_sets == ("test_fine",)


@pytest.mark.parametrize("field, value, message", [
    ("seeds", (), "config: seeds is empty"),
    ("seeds", ("abc",), "config: seeds must be a tuple of int, got ('abc',)"),
    ("seeds", (True,), "config: seeds must be a tuple of int"),
    ("methods", ("real", 1), "config: methods must be a tuple of str"),
    # Pair-file test sets (data/pairfiles.py): the empty default gives the CLI no element type.
    ("extra_test_sets", (1,), "config.extra_test_sets[0]: expected a string NAME:ATTRIBUTE:"),
    ("extra_test_sets", ("mine:smiling:p.csv",), "expected NAME:ATTRIBUTE:PAIRS_CSV:IMAGES_DIR"),
    ("extra_test_sets", ("mine:eyes_open:p.csv:img",), "attribute 'eyes_open' is not one of"),
    ("extra_test_sets", ("test_fine:smiling:p.csv:img",), "is already one of config.test_sets"),
])
def test_check_config_rejects_bad_selection(field, value, message):
  config = _get_config("test")
  config[field] = value
  with pytest.raises(ValueError, match=re.escape(message)):
    experiment.check_config(config)


@pytest.mark.parametrize("script, args, message", [
    # ml_collections' tuple parser keeps `abc` as ('abc',); cli checks it against (0,).
    ("train_ranker.py", ["--config=configs/test.py", "--config.seeds=abc"],
     "train_ranker: error: ValueError: bad config override --config.seeds=('abc',): expected a "
     "tuple of int, like the config file's (0,)"),
    ("train_ranker.py", ["--config=configs/test.py", "--config.seeds=()"],
     "train_ranker: error: ValueError: config: seeds is empty"),
    ("train_ranker.py", ["--config=configs/test.py", "--config.extra_test_sets=(1,)"],
     "train_ranker: error: ValueError: config.extra_test_sets[0]: expected a string"),
    ("train_generator.py", ["--config=configs/generator_sprites.py:smoke",
                            "--config.model.enc_widths=8,x,8"],
     "expected a tuple of int"),
    # The parsed config is locked: an override may change a field, not add one.
    ("train_ranker.py", ["--config=configs/test.py", "--config.not_a_field=1"],
     "train_ranker: error: AttributeError: bad config override --config.not_a_field=1: unknown "
     "key 'not_a_field'"),
])
@pytest.mark.slow
def test_bad_override_fails_at_parse_time(tmp_path, script, args, message):
  """One stderr line, exit 1, and nothing written: the check runs before any work."""
  r = _run(script, *args, f"--workdir={tmp_path / 'w'}")
  assert r.returncode == 1, r.stderr[-2000:]
  assert r.stderr.strip().splitlines() == [r.stderr.strip()] and message in r.stderr, r.stderr
  assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("arg", [None, "smoke"])
def test_generator_data_block_is_a_copy(arg):
  from configs import demo
  config = demo.get_config(arg)
  assert config.generator.data is not config.data
  before = config.generator.data.to_dict()
  config.data.num_train_identities += 1
  config.data.image_size = 8
  assert config.generator.data.to_dict() == before
  if arg == "smoke":  # the smoke generator trains on the smoke domain's settings
    assert before == demo.get_config("smoke").data.to_dict()


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


def test_demo_active_variant_sweeps_budgets_against_random():
  from configs import demo
  from densesynth_jax.experiments import methods, runner
  config = demo.get_config("active")
  methods.check_methods(config.methods, config)
  budgets = {m: methods.resolve_budget(m, config) for m in config.methods
             if methods.is_budgeted(m)}
  n = config.data.train_pairs  # DSynth-Auto's synthetic pairs at synth_ratio 1
  assert {b for b, _ in budgets.values()} == {30, 100, n}
  pairs = runner.budget_comparisons(config)
  for b in (30, 100):  # every active scorer has its random baseline at the same budget
    assert (f"dsynth_active_measure@{b}", f"dsynth_random@{b}") in pairs
    assert (f"dsynth_active_real_margin@{b}", f"dsynth_random@{b}") in pairs
  assert {"real", "dsynth_auto", "dsynth"} <= set(config.methods)
  assert config.rankers == ("ranksvm_local", "deepstn") and len(config.seeds) == 3
  # The measure scorer does not measure on the features the simulated crowd perceives.
  assert config.active.measure_feature != config.verification.measure_feature
  # The default demo runs no budgeted method.
  assert not any(methods.is_budgeted(m) for m in demo.get_config().methods)


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
