"""Results in the paper's layout: rows = ranker × method, columns = attributes, best in bold.

A *cell* is one trained and evaluated (ranker, method, attribute, seed); its record holds the
accuracy on every test set. The seed is a *replicate*: it redraws the sparse real training pairs
and every random choice of training, while the test sets stay fixed. So methods are compared
*paired*: a method's accuracy minus the reference method's (`real`) of the same ranker, attribute
and replicate, which removes the replicate-to-replicate variation both share.

`summarize` reduces cells to, per test set / ranker / method / attribute:
  * `mean`, `std` (SAMPLE std, ddof=1; 0.0 for one replicate), `n`, `seeds` over replicates;
  * `diff` (every row but the reference's own): the mean paired difference to the reference
    (`paired_interval`) with a two-sided 95% t-interval, its `n` (the replicates both have) and
    `sign` ("+" / "-" if the interval lies above / below 0, else "0"). The `classifier` ranker,
    which has no `real` of its own, is compared to the `real` of a reference ranker (by default
    the first ranker with a `real`). Undefined bounds (one common replicate) are None, so the
    summary is plain JSON.
`markdown_tables` writes one table per test set (the paper's Tables I and IV), each cell
`mean ± std (Δ +d [lo, hi])`, `*` after an interval excluding 0; `csv_text` flattens the summary.

`combine_runs` pools the cells of several finished runs, e.g. the 10 splits of UT-Zap50K-1:

  python -m densesynth_jax.experiments.tables runs/zap50k_1/split* --out=runs/zap50k_1

writes `results.{json,md,csv}` with mean ± std over every (run, seed) of each row and column,
the differences paired by (run, seed).
"""

from __future__ import annotations

import argparse
import collections
import csv
import io
import math
import os
import sys
from pathlib import Path
from typing import Callable, Hashable, Iterable, Mapping, Sequence

import numpy as np
from scipy import stats

from densesynth_jax import io as io_lib

REFERENCE = "real"  # the default reference method of the paired differences
CLASSIFIER = "classifier"  # the ranker (and method) with no `real` of its own


def paired_interval(x: Sequence[float], y: Sequence[float], confidence: float = 0.95) -> dict:
  """Mean of the paired differences x - y with a two-sided t-interval.

  Returns {mean, lo, hi, n, sign}: lo/hi = mean ∓ t.ppf((1 + confidence) / 2, n - 1) · sd / √n
  (sd with ddof=1); with n == 1 the interval is undefined: lo = -inf, hi = +inf. sign is "+" if
  lo > 0, "-" if hi < 0, else "0" (the interval contains 0).
  """
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if x.ndim != 1 or x.shape != y.shape or not len(x):
    raise ValueError(f"paired_interval needs two equally long non-empty 1-d sequences, got "
                     f"shapes {x.shape} and {y.shape}")
  if not 0.0 < confidence < 1.0:
    raise ValueError(f"confidence must be in (0, 1), got {confidence}")
  d = x - y
  n, mean = len(d), float(d.mean())
  if n > 1:
    half = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1) * d.std(ddof=1) / math.sqrt(n))
    lo, hi = mean - half, mean + half
  else:
    lo, hi = -math.inf, math.inf
  sign = "+" if lo > 0 else "-" if hi < 0 else "0"
  return dict(mean=mean, lo=lo, hi=hi, n=n, sign=sign)


def replicate_key(cell: Mapping) -> Hashable:
  """The default pairing key: (run, seed) for pooled cells (they carry `run`), else the seed."""
  return (str(cell["run"]), int(cell["seed"])) if "run" in cell else int(cell["seed"])


def _json_float(v: float) -> float | None:
  return float(v) if math.isfinite(v) else None


def _by_key(cs: Sequence[Mapping], key: Callable[[Mapping], Hashable]) -> dict:
  out: dict = {}
  for c in cs:
    k = key(c)
    if k in out:
      raise ValueError(f"two cells of ranker={c['ranker']} method={c['method']} "
                       f"attribute={c['attribute']} share the replicate {k!r}: cannot pair them")
    out[k] = c
  return out


def summarize(cells: Iterable[Mapping], test_sets: Sequence[str], reference: str = REFERENCE, *,
              reference_ranker: str | None = None,
              shared_reference_rankers: Sequence[str] = (CLASSIFIER,),
              pair_key: Callable[[Mapping], Hashable] = replicate_key) -> dict:
  """Cells -> {test_set: {ranker: {method: {attribute: {mean, std, n, seeds[, diff]}}}}} (in %).

  std is the sample std (ddof=1) over the replicates, 0.0 for one. diff = {ref, ref_ranker, mean,
  lo, hi, n, sign}: `paired_interval` of the row against the `reference` method's row of the same
  ranker and attribute, matched by `pair_key` (default `replicate_key`; only replicates in both
  count), 95% t-interval, None for undefined (n == 1) bounds. The reference row has no diff, nor
  has a row without a reference row or without common replicates. A ranker of
  `shared_reference_rankers` with no reference row of its own (the classifier) is compared to
  that of `reference_ranker` (default: the first ranker, in the order the cells come, that has a
  `reference` cell). A test set that no cell of a (ranker, method, attribute) was measured on
  (e.g. a pair-file test set of another attribute, data/pairfiles.py) has no entry there.
  """
  cells = list(cells)
  groups: dict = collections.defaultdict(list)
  for c in cells:
    groups[(c["ranker"], c["method"], c["attribute"])].append(c)
  with_ref = list(dict.fromkeys(c["ranker"] for c in cells if c["method"] == reference))
  if reference_ranker is None:
    reference_ranker = with_ref[0] if with_ref else None
  elif reference_ranker not in with_ref:
    raise ValueError(f"reference_ranker {reference_ranker!r} has no {reference!r} cells; rankers "
                     f"with one: {with_ref}")
  out: dict = {t: {} for t in test_sets}
  for (ranker, method, attribute), cs in groups.items():
    cs = sorted(cs, key=lambda c: c["seed"])
    for t in test_sets:
      has = [c for c in cs if t in c["accuracy"]]  # a test set of some attributes only
      if not has:
        continue
      acc = np.asarray([100.0 * c["accuracy"][t] for c in has], np.float64)
      out[t].setdefault(ranker, {}).setdefault(method, {})[attribute] = dict(
          mean=float(acc.mean()), std=float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
          n=len(acc), seeds=[int(c["seed"]) for c in has])
    if method == reference:
      continue
    ref_ranker = ranker
    if (ranker, reference, attribute) not in groups and ranker in shared_reference_rankers:
      ref_ranker = reference_ranker
    ref_cs = groups.get((ref_ranker, reference, attribute))
    if not ref_cs:
      continue
    for t, d in _paired_by_test_set(cs, ref_cs, test_sets, pair_key).items():
      out[t][ranker][method][attribute]["diff"] = dict(ref=reference, ref_ranker=ref_ranker, **d)
  return out


def _paired_by_test_set(cs: Sequence[Mapping], ref_cs: Sequence[Mapping],
                        test_sets: Sequence[str], pair_key: Callable[[Mapping], Hashable]
                        ) -> dict[str, dict]:
  """{test set: `paired_interval` (in %, JSON-safe)} of cells cs against ref_cs on the
  replicates both have with that test set (a test set without any is left out)."""
  own, ref = _by_key(cs, pair_key), _by_key(ref_cs, pair_key)
  out = {}
  for t in test_sets:
    common = [k for k in own if k in ref and t in own[k]["accuracy"] and t in ref[k]["accuracy"]]
    if not common:
      continue
    d = paired_interval([100.0 * own[k]["accuracy"][t] for k in common],
                        [100.0 * ref[k]["accuracy"][t] for k in common])
    out[t] = dict(mean=_json_float(d["mean"]), lo=_json_float(d["lo"]), hi=_json_float(d["hi"]),
                  n=d["n"], sign=d["sign"])
  return out


def method_gaps(cells: Iterable[Mapping], test_sets: Sequence[str],
                pairs: Sequence[tuple[str, str]],
                pair_key: Callable[[Mapping], Hashable] = replicate_key) -> list[dict]:
  """Paired differences between two methods of the same ranker and attribute, e.g. the learned
  generator's DSynth-Auto against the oracle's: one dict per (test set, ranker, attribute, pair)
  with the `paired_interval` fields (in %), `method`, `versus`."""
  cells = list(cells)
  groups: dict = collections.defaultdict(list)
  for c in cells:
    groups[(c["ranker"], c["method"], c["attribute"])].append(c)
  out = []
  for (ranker, method, attribute), cs in groups.items():
    for m, versus in pairs:
      if method != m or (ranker, versus, attribute) not in groups:
        continue
      by_t = _paired_by_test_set(cs, groups[ranker, versus, attribute], test_sets, pair_key)
      out += [dict(test_set=t, ranker=ranker, attribute=attribute, method=m, versus=versus, **d)
              for t, d in by_t.items()]
  return out


def gaps_markdown(gaps: Sequence[Mapping]) -> str:
  """Lines `- test_fine, ranksvm_local, smiling: dsynth_auto − dsynth_auto_oracle Δ ...`."""
  return "\n".join(f"- `{g['test_set']}`, {g['ranker']}, {g['attribute']}: {g['method']} − "
                   f"{g['versus']}{diff_text(g)}" for g in gaps)


def _row_order(summary_t: Mapping, rankers: Sequence[str], methods: Sequence[str]):
  for r in rankers:
    for m in methods:
      if m in summary_t.get(r, {}):
        yield r, m


def _signed(x: float) -> str:
  s = f"{x:+.2f}"
  return "+0.00" if s == "-0.00" else s.replace("-", "\u2212")


def diff_text(diff: Mapping | None) -> str:
  """A cell's difference: ` (Δ +1.23 [−0.50, +2.96])` (U+2212 minus), `*` before `)` if the
  interval excludes 0; ` (Δ +1.23)` without an interval (one common replicate); "" without."""
  if not diff or diff.get("mean") is None:
    return ""
  if diff.get("lo") is None or diff.get("hi") is None:
    return f" (Δ {_signed(diff['mean'])})"
  star = "*" if diff["sign"] != "0" else ""
  return f" (Δ {_signed(diff['mean'])} [{_signed(diff['lo'])}, {_signed(diff['hi'])}]{star})"


def markdown_table(summary_t: Mapping, rankers: Sequence[str], methods: Sequence[str],
                   attributes: Sequence[str], reference_rows: Sequence[str] = ()) -> str:
  """One table; cells `mean ± std` (std only for n > 1) + `diff_text`.

  The best mean of each column (ties included) is in bold; the methods of `reference_rows` (e.g.
  an oracle generator) are named `<method> (reference)` and not candidates for the bold.
  """
  rows = list(_row_order(summary_t, rankers, methods))
  best = {}
  for a in attributes:
    means = [summary_t[r][m][a]["mean"] for r, m in rows
             if a in summary_t[r][m] and m not in reference_rows]
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
      if best[a] is not None and m not in reference_rows and np.isclose(v["mean"], best[a]):
        s = f"**{s}**"
      vals.append(s + diff_text(v.get("diff")))
    name = f"{m} (reference)" if m in reference_rows else m
    lines.append(f"| {r} | {name} | " + " | ".join(vals) + " |")
  return "\n".join(lines)


def _heading(summary_t: Mapping, over: str) -> str:
  entries = [(r, v) for r, by_m in summary_t.items() for by_a in by_m.values()
             for v in by_a.values()]
  ns = sorted({int(v["n"]) for _, v in entries}) or [0]
  n = str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"
  text = f"mean ± std over {n} {over}"
  diffs = [(r, v["diff"]) for r, v in entries if v.get("diff")]
  if diffs:
    refs = ", ".join(f"`{x}`" for x in dict.fromkeys(d["ref"] for _, d in diffs))
    text += (f"; Δ = paired difference to {refs} (same ranker, same replicate) with a 95% "
             f"t-interval; * = interval excludes 0")
    borrowed = dict.fromkeys((r, d["ref"], d["ref_ranker"]) for r, d in diffs
                             if d.get("ref_ranker", r) != r)
    for r, ref, ref_r in borrowed:
      text += f"; `{r}` rows: Δ to `{ref}` of `{ref_r}`"
  return text


def markdown_tables(summary: Mapping, rankers: Sequence[str], methods: Sequence[str],
                    attributes: Sequence[str], title: str = "", notes: str = "",
                    over: str = "replicate(s)", reference_rows: Sequence[str] = (),
                    columns: Mapping[str, Sequence[str]] | None = None) -> str:
  """One `markdown_table` per test set under a heading naming the statistics.

  `columns`: test set -> its attribute columns, for a test set of some attributes only (a pair
  file's); the others get `attributes`.
  """
  parts = [f"# {title}" if title else "# Results", ""]
  if notes:
    parts += [notes, ""]
  for t, summary_t in summary.items():
    cols = (columns or {}).get(t, attributes)
    parts += [f"## Test set `{t}`: pairwise accuracy (%) on ordered pairs, "
              f"{_heading(summary_t, over)}", "",
              markdown_table(summary_t, rankers, methods, cols, reference_rows), ""]
  return "\n".join(parts)


def csv_text(summary: Mapping) -> str:
  """One line per (test set, ranker, method, attribute); diff_* empty without a diff / bound."""
  num = lambda x: "" if x is None else f"{x:.4f}"
  buf = io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(["test_set", "ranker", "method", "attribute", "mean", "std", "n",
              "diff_mean", "diff_lo", "diff_hi", "diff_n"])
  for t, by_r in summary.items():
    for r, by_m in by_r.items():
      for m, by_a in by_m.items():
        for a, v in by_a.items():
          d = v.get("diff") or {}
          w.writerow([t, r, m, a, f"{v['mean']:.4f}", f"{v['std']:.4f}", v["n"],
                      num(d.get("mean")), num(d.get("lo")), num(d.get("hi")), d.get("n", "")])
  return buf.getvalue()


def combine_runs(run_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                 reference_rows: Sequence[str] = ()) -> dict:
  """Pools the cells of finished runs (their results.json) into one summary written to out_dir.

  Every run must have the same test sets; a (ranker, method, attribute) row's mean ± std is
  over all the runs' seeds (e.g. the protocol's splits), its diff paired by (run, seed): each
  cell gets its run folder as `run`. `reference_rows` as in `markdown_table`. Raises naming a run
  without results.
  """
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
  rankers = [r for r in order("ranker") if r != CLASSIFIER] + [CLASSIFIER]
  md = markdown_tables(summary, rankers, order("method"), order("attribute"),
                       title=f"Results over {len(runs)} runs",
                       notes="Runs: " + ", ".join(f"`{d}`" for d in runs),
                       over="runs × seeds", reference_rows=reference_rows)
  out = Path(out_dir)
  io_lib.write_json(out / "results.json", dict(runs=[str(d) for d in runs], test_sets=test_sets,
                                               summary=summary, cells=cells))
  io_lib.write_text(out / "results.md", md + "\n")
  io_lib.write_text(out / "results.csv", csv_text(summary))
  return summary


def main(argv: Sequence[str] | None = None) -> int:
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
