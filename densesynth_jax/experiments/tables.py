"""Results in the paper's layout: rows = ranker × method, columns = attributes, best in bold.

A *cell* is one trained and evaluated (ranker, method, attribute, seed); its record holds the
accuracy on every test set. `summarize` reduces cells to mean ± std over seeds; `markdown_tables`
writes one table per test set (the paper's Tables I and IV); `csv_rows` flattens the summary.

`combine_runs` pools the cells of several finished runs, e.g. the 10 splits of UT-Zap50K-1:

  python -m densesynth_jax.experiments.tables runs/zap50k_1/split* --out=runs/zap50k_1

writes `results.{json,md,csv}` with mean ± std over every (run, seed) of each row and column.
"""

from __future__ import annotations

import collections
import csv
import io
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np


def summarize(cells: Iterable[Mapping], test_sets: Sequence[str]) -> dict:
  """Cells -> {test_set: {ranker: {method: {attribute: {mean, std, n, seeds}}}}} (accuracy in %)."""
  groups: dict = collections.defaultdict(list)
  for c in cells:
    groups[(c["ranker"], c["method"], c["attribute"])].append(c)
  out: dict = {t: {} for t in test_sets}
  for (ranker, method, attribute), cs in groups.items():
    cs = sorted(cs, key=lambda c: c["seed"])
    for t in test_sets:
      acc = np.asarray([100.0 * c["accuracy"][t] for c in cs], np.float64)
      out[t].setdefault(ranker, {}).setdefault(method, {})[attribute] = dict(
          mean=float(acc.mean()), std=float(acc.std()), n=len(acc),
          seeds=[int(c["seed"]) for c in cs])
  return out


def _row_order(summary_t: Mapping, rankers: Sequence[str], methods: Sequence[str]):
  for r in rankers:
    for m in methods:
      if m in summary_t.get(r, {}):
        yield r, m


def markdown_table(summary_t: Mapping, rankers: Sequence[str], methods: Sequence[str],
                   attributes: Sequence[str]) -> str:
  """One table; the best mean of each column (ties included) in bold."""
  rows = list(_row_order(summary_t, rankers, methods))
  best = {}
  for a in attributes:
    means = [summary_t[r][m][a]["mean"] for r, m in rows if a in summary_t[r][m]]
    best[a] = max(means) if means else None
  lines = ["| ranker | method | " + " | ".join(attributes) + " |",
           "|---|---|" + "---|" * len(attributes)]
  for r, m in rows:
    vals = []
    for a in attributes:
      v = summary_t[r][m].get(a)
      if v is None:
        vals.append("–")
        continue
      s = f"{v['mean']:.2f}" + (f" ± {v['std']:.2f}" if v["n"] > 1 else "")
      vals.append(f"**{s}**" if np.isclose(v["mean"], best[a]) else s)
    lines.append(f"| {r} | {m} | " + " | ".join(vals) + " |")
  return "\n".join(lines)


def markdown_tables(summary: Mapping, rankers: Sequence[str], methods: Sequence[str],
                    attributes: Sequence[str], title: str = "", notes: str = "",
                    over: str = "seed(s)") -> str:
  parts = [f"# {title}" if title else "# Results", ""]
  if notes:
    parts += [notes, ""]
  for t, summary_t in summary.items():
    n_seeds = max((v["n"] for r in summary_t.values() for m in r.values() for v in m.values()),
                  default=0)
    parts += [f"## Test set `{t}`: pairwise accuracy (%) on ordered pairs, mean ± std over "
              f"{n_seeds} {over}", "",
              markdown_table(summary_t, rankers, methods, attributes), ""]
  return "\n".join(parts)


def csv_text(summary: Mapping) -> str:
  buf = io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(["test_set", "ranker", "method", "attribute", "mean", "std", "n"])
  for t, by_r in summary.items():
    for r, by_m in by_r.items():
      for m, by_a in by_m.items():
        for a, v in by_a.items():
          w.writerow([t, r, m, a, f"{v['mean']:.4f}", f"{v['std']:.4f}", v["n"]])
  return buf.getvalue()


def combine_runs(run_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike) -> dict:
  """Pools the cells of finished runs (their results.json) into one summary written to out_dir.

  Every run must have the same test sets; a (ranker, method, attribute) row's mean ± std is
  over all the runs' seeds (e.g. the protocol's splits). Raises naming a run without results.
  """
  from densesynth_jax import io as io_lib
  runs = [Path(d) for d in run_dirs]
  if not runs:
    raise ValueError("combine_runs needs at least one run folder")
  cells, test_sets = [], None
  for d in runs:
    path = d / "results.json"
    if not path.exists():
      raise FileNotFoundError(f"no results.json in run folder {d} (is the run finished?)")
    res = io_lib.read_json(path)
    if test_sets is None:
      test_sets = list(res["test_sets"])
    elif list(res["test_sets"]) != test_sets:
      raise ValueError(f"run {d} has test sets {res['test_sets']}, the first run {test_sets}")
    cells += [dict(c, run=str(d)) for c in res["cells"]]
  summary = summarize(cells, test_sets)
  order = lambda key: list(dict.fromkeys(c[key] for c in cells))
  rankers = [r for r in order("ranker") if r != "classifier"] + ["classifier"]
  md = markdown_tables(summary, rankers, order("method"), order("attribute"),
                       title=f"Results over {len(runs)} runs",
                       notes="Runs: " + ", ".join(f"`{d}`" for d in runs),
                       over="runs × seeds")
  out = Path(out_dir)
  io_lib.write_json(out / "results.json", dict(runs=[str(d) for d in runs], test_sets=test_sets,
                                               summary=summary, cells=cells))
  io_lib.write_text(out / "results.md", md + "\n")
  io_lib.write_text(out / "results.csv", csv_text(summary))
  return summary


def main(argv: Sequence[str] | None = None) -> int:
  import argparse
  import sys
  parser = argparse.ArgumentParser(description="Pool the cells of finished runs into one table.")
  parser.add_argument("runs", nargs="+", help="run folders holding results.json")
  parser.add_argument("--out", required=True, help="folder for results.{json,md,csv}")
  args = parser.parse_args(argv)
  try:
    combine_runs(args.runs, args.out)
  except (OSError, ValueError, KeyError) as e:
    print(f"tables: error: {type(e).__name__}: {e}", file=sys.stderr)
    return 1
  print((Path(args.out) / "results.md").read_text())
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
