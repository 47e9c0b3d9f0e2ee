"""Results in the paper's layout: rows = ranker × method, columns = attributes, best in bold.

A *cell* is one trained and evaluated (ranker, method, attribute, seed); its record holds the
accuracy on every test set. `summarize` reduces cells to mean ± std over seeds; `markdown_tables`
writes one table per test set (the paper's Tables I and IV); `csv_rows` flattens the summary.
"""

from __future__ import annotations

import collections
import csv
import io
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
                    attributes: Sequence[str], title: str = "", notes: str = "") -> str:
  parts = [f"# {title}" if title else "# Results", ""]
  if notes:
    parts += [notes, ""]
  for t, summary_t in summary.items():
    n_seeds = max((v["n"] for r in summary_t.values() for m in r.values() for v in m.values()),
                  default=0)
    parts += [f"## Test set `{t}`: pairwise accuracy (%) on ordered pairs, mean ± std over "
              f"{n_seeds} seed(s)", "",
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
