"""Result tables (experiments/tables.py): paired differences to `real` with 95% t-intervals."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from densesynth_jax.experiments import tables

T975_2 = 4.302652729911275  # scipy.stats.t.ppf(0.975, 2)


def _cell(ranker, method, seed, acc, attribute="smiling", **extra):
  return dict(ranker=ranker, method=method, attribute=attribute, seed=seed,
              accuracy={"t": acc}, **extra)


def test_paired_interval_by_hand():
  d = tables.paired_interval([11.0, 12.0, 13.0], [10.0, 10.0, 10.0])  # diffs 1, 2, 3: sd 1
  half = T975_2 * 1.0 / math.sqrt(3.0)
  assert np.isclose(half, 2.484, atol=1e-3)
  assert d["n"] == 3 and np.isclose(d["mean"], 2.0)
  assert np.isclose(d["lo"], 2.0 - half) and np.isclose(d["hi"], 2.0 + half)
  assert d["sign"] == "0"  # [-0.48, 4.48] contains 0
  d90 = tables.paired_interval([11.0, 12.0, 13.0], [10.0] * 3, confidence=0.90)
  assert np.isclose(d90["hi"] - 2.0, stats.t.ppf(0.95, 2) / math.sqrt(3.0))
  with pytest.raises(ValueError):
    tables.paired_interval([1.0, 2.0], [1.0])
  with pytest.raises(ValueError):
    tables.paired_interval([], [])


def test_paired_interval_sign_rule():
  assert tables.paired_interval([5.0, 6.0, 7.0], [0.0] * 3)["sign"] == "+"  # lo > 0
  assert tables.paired_interval([0.0] * 3, [5.0, 6.0, 7.0])["sign"] == "-"  # hi < 0
  assert tables.paired_interval([1.0, -1.0, 0.5], [0.0] * 3)["sign"] == "0"
  assert tables.paired_interval([2.0, 2.0], [1.0, 1.0])["sign"] == "+"  # sd 0: a point
  one = tables.paired_interval([3.0], [1.0])  # n == 1: no interval
  assert one == dict(mean=2.0, lo=-math.inf, hi=math.inf, n=1, sign="0")


def test_summary_std_and_pairing_on_common_seeds():
  cells = [_cell("r", "real", s, a) for s, a in ((0, 0.60), (1, 0.70), (2, 0.80), (3, 0.90))]
  cells += [_cell("r", "dsynth", s, a) for s, a in ((1, 0.72), (2, 0.83), (3, 0.94), (7, 0.10))]
  summary = tables.summarize(cells, ["t"])
  real, ds = summary["t"]["r"]["real"]["smiling"], summary["t"]["r"]["dsynth"]["smiling"]
  assert real["n"] == 4 and np.isclose(real["std"], np.std([60, 70, 80, 90], ddof=1))
  assert "diff" not in real
  assert ds["n"] == 4 and ds["seeds"] == [1, 2, 3, 7]  # the row itself keeps every seed
  d = ds["diff"]  # seeds 1, 2, 3 only: diffs 2, 3, 4
  assert d["ref"] == "real" and d["ref_ranker"] == "r" and d["n"] == 3
  assert np.isclose(d["mean"], 3.0) and np.isclose(d["hi"] - 3.0, T975_2 / math.sqrt(3.0))
  assert d["sign"] == "+"
  # A reference name other than "real"; a method with no common seed has no diff.
  summary = tables.summarize(cells + [_cell("r", "lone", 9, 0.5)], ["t"], reference="dsynth")
  assert summary["t"]["r"]["real"]["smiling"]["diff"]["ref"] == "dsynth"
  assert "diff" not in summary["t"]["r"]["dsynth"]["smiling"]
  assert "diff" not in summary["t"]["r"]["lone"]["smiling"]


def test_single_replicate_is_json_without_interval():
  cells = [_cell("r", "real", 0, 0.7), _cell("r", "dsynth", 0, 0.8)]
  summary = tables.summarize(cells, ["t"])
  v = summary["t"]["r"]["dsynth"]["smiling"]
  assert v["std"] == 0.0 and v["n"] == 1
  assert v["diff"]["lo"] is None and v["diff"]["hi"] is None and v["diff"]["sign"] == "0"
  assert np.isclose(v["diff"]["mean"], 10.0)
  assert json.loads(json.dumps(summary, allow_nan=False)) == summary
  md = tables.markdown_tables(summary, ["r"], ["real", "dsynth"], ["smiling"])
  assert "| r | dsynth | **80.00** (Δ +10.00) |" in md
  row = tables.csv_text(summary).splitlines()[2]
  assert row == "t,r,dsynth,smiling,80.0000,0.0000,1,10.0000,,,1"


def _classifier_cells():
  cells = []
  for s, bump in ((0, 0.0), (1, 0.02), (2, 0.05)):
    cells += [_cell("ranksvm_global", "real", s, 0.60 + bump),
              _cell("ranksvm_local", "real", s, 0.80 + bump),
              _cell("ranksvm_local", "dsynth", s, 0.81 + bump + 0.01 * s),
              _cell("classifier", "classifier", s, 0.65 + bump)]
  return cells


def test_classifier_rows_use_the_first_rankers_real():
  summary = tables.summarize(_classifier_cells(), ["t"])
  d = summary["t"]["classifier"]["classifier"]["smiling"]["diff"]
  assert d["ref_ranker"] == "ranksvm_global" and d["n"] == 3 and np.isclose(d["mean"], 5.0)
  assert d["sign"] == "+" and np.isclose(d["lo"], 5.0)  # constant difference: a point
  local = tables.summarize(_classifier_cells(), ["t"], reference_ranker="ranksvm_local")
  d = local["t"]["classifier"]["classifier"]["smiling"]["diff"]
  assert d["ref_ranker"] == "ranksvm_local" and np.isclose(d["mean"], -15.0) and d["sign"] == "-"
  # Other rankers keep their own real.
  assert summary["t"]["ranksvm_local"]["dsynth"]["smiling"]["diff"]["ref_ranker"] == "ranksvm_local"
  with pytest.raises(ValueError, match="no 'real' cells"):
    tables.summarize(_classifier_cells(), ["t"], reference_ranker="classifier")


def test_markdown_marks_intervals_excluding_zero():
  cells = []
  for s in range(3):
    cells += [_cell("r", "real", s, 0.60 + 0.1 * s),
              _cell("r", "gain", s, 0.63 + 0.1 * s + 0.001 * s),      # diffs 3.0, 3.1, 3.2
              _cell("r", "noisy", s, 0.60 + 0.1 * s + (0.01, -0.01, 0.02)[s]),
              _cell("r", "dsynth_auto_oracle", s, 0.95)]
  summary = tables.summarize(cells, ["t"])
  md = tables.markdown_tables(summary, ["r"], ["real", "gain", "noisy", "dsynth_auto_oracle"],
                              ["smiling"], title="x", reference_rows=["dsynth_auto_oracle"])
  rows = {l.split(" | ")[1]: l for l in md.splitlines() if l.startswith("| r |")}
  half = T975_2 * 0.1 / math.sqrt(3.0)
  assert rows["real"] == "| r | real | 70.00 ± 10.00 |"
  assert rows["gain"] == (f"| r | gain | **73.10 ± 10.10** (Δ +3.10 [+{3.1 - half:.2f}, "
                          f"+{3.1 + half:.2f}]*) |")
  d = summary["t"]["r"]["noisy"]["smiling"]["diff"]
  assert d["sign"] == "0"
  assert rows["noisy"].endswith(f"(Δ +0.67 [\u2212{-d['lo']:.2f}, +{d['hi']:.2f}]) |")
  # The oracle row is named a reference and not bolded although its mean is the best.
  assert rows["dsynth_auto_oracle (reference)"] == (
      "| r | dsynth_auto_oracle (reference) | 95.00 ± 0.00 (Δ +25.00 [+0.16, +49.84]*) |")
  assert md.count("*)") == 2  # gain and the oracle: their intervals exclude 0; noisy's does not
  assert ("mean ± std over 3 replicate(s); Δ = paired difference to `real` (same ranker, same "
          "replicate) with a 95% t-interval; * = interval excludes 0") in md


def test_markdown_names_the_classifiers_reference():
  summary = tables.summarize(_classifier_cells(), ["t"])
  md = tables.markdown_tables(summary, ["ranksvm_global", "ranksvm_local", "classifier"],
                              ["real", "dsynth", "classifier"], ["smiling"])
  assert "`classifier` rows: Δ to `real` of `ranksvm_global`" in md
  assert "| classifier | classifier | 67.33 ± 2.52 (Δ +5.00 [+5.00, +5.00]*) |" in md


def test_csv_has_diff_columns():
  summary = tables.summarize(_classifier_cells(), ["t"])
  lines = tables.csv_text(summary).splitlines()
  assert lines[0].endswith(",n,diff_mean,diff_lo,diff_hi,diff_n")
  rows = {tuple(l.split(",")[1:3]): l.split(",") for l in lines[1:]}
  assert rows[("ranksvm_local", "real")][7:] == ["", "", "", ""]
  assert rows[("classifier", "classifier")][7:] == ["5.0000", "5.0000", "5.0000", "3"]


def test_combine_runs_pairs_on_run_and_seed(tmp_path):
  """Both runs use seed 0; pairing on the seed alone would mix the runs."""
  from densesynth_jax import io
  for k, (real, ds) in enumerate(((0.60, 0.62), (0.90, 0.93))):  # diffs +2, +3
    cells = [_cell("r", "real", 0, real, attribute="open"),
             _cell("r", "dsynth", 0, ds, attribute="open")]
    io.write_json(tmp_path / f"split{k}" / "results.json", dict(test_sets=["t"], cells=cells))
  runs = [tmp_path / "split0", tmp_path / "split1"]
  summary = tables.combine_runs(runs, tmp_path / "all")
  d = summary["t"]["r"]["dsynth"]["open"]["diff"]
  assert d["n"] == 2 and np.isclose(d["mean"], 2.5)
  assert np.isclose(d["hi"] - 2.5, stats.t.ppf(0.975, 1) * np.std([2, 3], ddof=1) / math.sqrt(2))
  written = json.loads((tmp_path / "all" / "results.json").read_text())
  assert written["summary"] == summary and all("run" in c for c in written["cells"])
  md = (tmp_path / "all" / "results.md").read_text()
  assert "| r | dsynth | **77.50 ± 21.92** (Δ +2.50 [\u22123.85, +8.85]) |" in md
  assert "over 2 runs × seeds; Δ" in md
  # The same run twice: (run, seed) repeats, so pairing is refused.
  with pytest.raises(ValueError, match="cannot pair"):
    tables.combine_runs([runs[0], runs[0]], tmp_path / "dup")
  # Without a run key cells pair on the seed: a custom key can pair otherwise.
  cells = [dict(c, run="a") for c in io.read_json(runs[0] / "results.json")["cells"]]
  assert tables.replicate_key(cells[0]) == ("a", 0)
  assert tables.replicate_key(_cell("r", "real", 4, 0.5)) == 4
  by_seed = tables.summarize(cells, ["t"], pair_key=lambda c: c["seed"])
  assert by_seed["t"]["r"]["dsynth"]["open"]["diff"]["n"] == 1


def test_method_gaps_pair_learned_against_reference():
  cells = []
  for seed, (learned, oracle) in enumerate([(0.70, 0.75), (0.72, 0.78), (0.71, 0.76)]):
    for method, acc in (("dsynth_auto", learned), ("dsynth_auto_oracle", oracle)):
      cells.append(dict(ranker="r", method=method, attribute="smiling", seed=seed,
                        accuracy={"t": acc}))
  (gap,) = tables.method_gaps(cells, ["t"], [("dsynth_auto", "dsynth_auto_oracle")])
  assert gap["n"] == 3 and gap["sign"] == "-"
  np.testing.assert_allclose(gap["mean"], -5.333333, atol=1e-4)
  line = tables.gaps_markdown([gap])
  assert line.startswith("- `t`, r, smiling: dsynth_auto − dsynth_auto_oracle (Δ −5.33 [")
  assert line.endswith("]*)")


def test_a_test_set_of_some_attributes_only():
  """A pair-file test set (data/pairfiles.py) measured on smiling only: no entry, diff or CSV
  line for the other attribute, and its table has the smiling column only."""
  cells = []
  for s, bump in ((0, 0.0), (1, 0.1)):
    for method, acc in (("real", 0.6), ("dsynth", 0.7)):
      cells.append(dict(ranker="r", method=method, attribute="smiling", seed=s,
                        accuracy={"t": acc + bump, "mine": acc + bump / 2}))
      cells.append(dict(ranker="r", method=method, attribute="eyes_open", seed=s,
                        accuracy={"t": acc}))
  summary = tables.summarize(cells, ["t", "mine"])
  assert set(summary["mine"]["r"]["dsynth"]) == {"smiling"}
  assert set(summary["t"]["r"]["dsynth"]) == {"smiling", "eyes_open"}
  d = summary["mine"]["r"]["dsynth"]["smiling"]["diff"]
  assert d["n"] == 2 and np.isclose(d["mean"], 10.0)
  gaps = tables.method_gaps(cells, ["t", "mine"], [("dsynth", "real")])
  assert sorted((g["test_set"], g["attribute"]) for g in gaps) == [
      ("mine", "smiling"), ("t", "eyes_open"), ("t", "smiling")]
  md = tables.markdown_tables(summary, ["r"], ["real", "dsynth"], ["smiling", "eyes_open"],
                              columns={"mine": ["smiling"]})
  mine = md[md.index("## Test set `mine`"):]
  assert "| ranker | method | smiling |\n" in mine and "eyes_open" not in mine
  assert "| ranker | method | smiling | eyes_open |" in md[:md.index("## Test set `mine`")]
  rows = [l for l in tables.csv_text(summary).splitlines() if l.startswith("mine,")]
  assert len(rows) == 2 and all(",smiling," in l for l in rows)
  # A cell missing a test set its other replicates have: the row is over the replicates with it.
  cells.append(dict(ranker="r", method="real", attribute="smiling", seed=2, accuracy={"t": 0.9}))
  again = tables.summarize(cells, ["t", "mine"])
  assert again["mine"]["r"]["real"]["smiling"]["seeds"] == [0, 1]
  assert again["t"]["r"]["real"]["smiling"]["seeds"] == [0, 1, 2]
