"""The experiment runner behind `train_ranker.py`.

For every (ranker, method, attribute, seed) cell the config asks for: build the method's training
pool, train the ranker, and measure pairwise accuracy on every test set.

- **Replicates.** A seed is a replicate: the domain's sparse real TRAIN pairs are redrawn for it
  (`data/registry.replicate_domain`, where the domain has a rule for that) and every random
  choice of training (pools, DeepSTN's initialisation and batches) follows it; images, val and
  test pairs stay fixed. Tables give mean ± std over replicates and each method's paired
  difference to Real (same ranker, same replicate) with a 95% interval (experiments/tables.py).
- **Pair-file test sets.** `config.extra_test_sets` adds a user's own test sets, each a pairs
  CSV and an image folder (`data/pairfiles.py`): their images are appended to the domain's
  before the resize, and each set is one more test set of its attribute's cells, so it gets its
  own table, CSV lines and figure (columns: the attributes it was given for).
- **Resolution.** The paper's rule, "We downsize real images to match the resolution of the
  synthetic ones": the rankers see every image, real and synthetic, at `rank_image_size`, by
  default the smaller of the domain's side and the generator's (`rank_image_size`).

Each finished cell is
written to `rankers/<ranker>/<method>/<attribute>/seed<k>.json` together with a fingerprint of the
config that produced it, so an interrupted run resumes where it stopped and a changed config
recomputes. A trained ranker that can score new images (one with `save`) is kept beside it in
`seed<k>_model/`, and `images.json` records how new images are preprocessed
(`densesynth_jax/predict.py`). At the end: `results.json`, `results.md` (the paper's table
layout), `results.csv`.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable, Mapping

import ml_collections
import numpy as np


from densesynth_jax import io
from densesynth_jax.data import pairfiles
from densesynth_jax.data.registry import (load_domain, redraws_train_pairs, replicate_domain,
                                          resize_domain)
from densesynth_jax.experiments import methods as methods_lib
from densesynth_jax.experiments import tables
from densesynth_jax.experiments.assets import RunAssets
from densesynth_jax.experiments.figures import (save_accuracy_figures, save_budget_figures,
                                                save_domain_figures)
from densesynth_jax.features import extract
from densesynth_jax.metrics import margin_accuracy
from densesynth_jax.rankers.base import FORMAT_VERSION, FitContext, margins_for
from densesynth_jax.rankers.registry import CONFIG_BLOCKS, RANKERS, VALIDATORS
from densesynth_jax.types import Domain, Pool



CLASSIFIER = "classifier"  # the method that is its own ranker: one row, whatever the rankers
IMAGES_FILE = "images.json"  # the run's rule for new images: preprocessing, rank image size


# The config blocks every cell depends on; each ranker and method adds its own
# (rankers/registry.CONFIG_BLOCKS, methods.METHOD_BLOCKS). Selection fields and figures never
# change a result. The pair-file test sets change the domain's images, which every cell sees.
_COMMON_BLOCKS = ("data", "rank_image_size", "test_sets", "extra_test_sets", "features", "pools")


def cell_fingerprint(config: ml_collections.ConfigDict, ranker: str, method: str,
                     attribute: str, seed: int, inputs=None) -> str:
  """sha256 (16 hex digits) of the config fields the cell depends on, and the cell itself.

  Changing e.g. `deepstn.*` leaves every RankSVM cell's fingerprint, hence its cached record,
  as it was. `inputs`: JSON-able content the config only names (`extra_inputs`: the digests
  of the pair-file test sets, so an edited pairs CSV or image recomputes); ignored when empty.
  """
  blocks = sorted(set(_COMMON_BLOCKS) | set(CONFIG_BLOCKS.get(ranker, ()))
                  | set(methods_lib.method_blocks(method)))
  full = config.to_dict()
  d = {k: full.get(k) for k in blocks}
  if not d.get("extra_test_sets"):  # a run without pair files keeps its cached cells
    d.pop("extra_test_sets", None)
  blob = dict(config=d, cell=dict(ranker=ranker, method=method, attribute=attribute, seed=seed))
  if inputs:
    blob["inputs"] = inputs
  return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def extra_test_sets(config: ml_collections.ConfigDict) -> list[pairfiles.PairFileSpec]:
  """The config's pair-file test sets, parsed and checked against its attributes and test sets
  (one-line ValueError naming the entry)."""
  return pairfiles.parse_specs(config.get("extra_test_sets", ()), tuple(config.attributes),
                               tuple(config.test_sets))


def cell_test_sets(config: ml_collections.ConfigDict, attribute: str) -> list[str]:
  """The test sets a cell of `attribute` is measured on: config.test_sets, then its pair files."""
  return list(config.test_sets) + [s.name for s in extra_test_sets(config)
                                   if s.attribute == attribute]


def run_test_sets(config: ml_collections.ConfigDict) -> list[str]:
  """Every test set of the run: config.test_sets, then the pair files' names (once each)."""
  return list(dict.fromkeys(list(config.test_sets) + [s.name for s in extra_test_sets(config)]))


def extra_inputs(domain: Domain) -> list:
  """[name, attribute, content digest] of each pair-file test set the domain holds."""
  return [[e["name"], e["attribute"], e["digest"]]
          for e in domain.info.get(pairfiles.INFO_KEY, ())]


class FeatureCache(extract.FeatureCache):
  """Features of the domain's images computed once per run, of added images once per pool."""

  def __init__(self, config: ml_collections.ConfigDict, domain: Domain, cache_dir: Path):
    super().__init__(config.features, domain.images, cache_dir)
    self.config, self.domain = config, domain

  def for_pool(self, pool: Pool) -> Callable[[str], np.ndarray]:
    def get(name: str) -> np.ndarray:
      x = self.domain_features(name)
      if len(pool.images) > pool.num_domain_images:
        added = pool.images.take(np.arange(pool.num_domain_images, len(pool.images)))
        x = np.concatenate([x, self.of(name, added)])
      return x
    return get


def _reproducible(info):
  """A JSON tree without what changes from run to run (wall times, cache hits)."""
  if isinstance(info, Mapping):
    return {k: _reproducible(v) for k, v in info.items()
            if not (str(k).endswith("seconds") or k == "cache_hit")}
  if isinstance(info, (list, tuple)):
    return [_reproducible(v) for v in info]
  return info


def rank_image_size(config: ml_collections.ConfigDict, domain_side: int) -> int:
  """The side at which rankers see every image: `config.rank_image_size`, or when it is 0 the
  paper's rule, min(domain side, the learned generator's side). The oracle renders at any side."""
  size = int(config.get("rank_image_size", 0))
  if size < 0:
    raise ValueError(f"rank_image_size must be >= 0 (0: the paper's rule), got {size}")
  if size:
    return size
  if config.synth.generator == "oracle":
    return int(domain_side)
  return min(int(domain_side), int(config.generator.model.image_size))


def cell_list(config: ml_collections.ConfigDict) -> list[tuple[str, str, str, int]]:
  """(ranker, method, attribute, seed) for every requested cell; Classifier once per (a, s)."""
  cells = [(r, m, a, s) for r in config.rankers for m in config.methods if m != CLASSIFIER
           for a in config.attributes for s in config.seeds]
  if CLASSIFIER in config.methods:
    cells += [(CLASSIFIER, CLASSIFIER, a, s) for a in config.attributes for s in config.seeds]
  return cells


def _check_selection(config: ml_collections.ConfigDict, domain: Domain) -> None:
  if CLASSIFIER in config.rankers:
    raise ValueError(f"{CLASSIFIER!r} is a method, not a ranker: list it in config.methods")
  unknown = [x for x in config.rankers if x not in RANKERS]
  if unknown:
    raise ValueError(f"unknown rankers {unknown}; valid: {sorted(RANKERS)}")
  methods_lib.check_methods(config.methods, config)  # names, budgets, scorers
  missing = [a for a in config.attributes if a not in domain.pairs]
  if missing:
    raise KeyError(f"attributes {missing} have no pairs in domain {domain.name}; it has "
                   f"{sorted(domain.pairs)}")
  for a in config.attributes:
    for t in config.test_sets:
      if t not in domain.pairs[a]:
        raise KeyError(f"domain {domain.name} has no {t!r} pairs for {a!r}")
  if not len(config.seeds):
    raise ValueError("config.seeds is empty: nothing to run")
  if "dsynth_auto_oracle" in config.methods and domain.name != "sprites":
    raise ValueError(f"method 'dsynth_auto_oracle' needs the sprites renderer; domain "
                     f"{domain.name!r} has none")
  for r in config.rankers:  # a bad setting fails now, not after hours of other cells
    if r in VALIDATORS:
      VALIDATORS[r](config)


def run_cell(config, domain, features: FeatureCache, assets: RunAssets, ranker: str,
             method: str, attribute: str, seed: int, workdir: Path) -> dict:
  """Trains and evaluates one cell, or returns its cached record when the config is unchanged.

  `domain` is the replicate's (its train pairs drawn for `seed`).
  """
  cell_dir = workdir / "rankers" / ranker / method / attribute
  path = cell_dir / f"seed{seed}.json"
  fp = cell_fingerprint(config, ranker, method, attribute, seed, extra_inputs(domain))
  if path.exists():
    record = io.read_json(path)
    if record.get("fingerprint") == fp:
      return record | {"cached": True}
  t0 = time.perf_counter()
  pool = methods_lib.build_pool(method, domain, attribute, config, seed, assets)
  test_sets = cell_test_sets(config, attribute)
  eval_pairs = {t: domain.pairs[attribute][t].ordered() for t in test_sets}
  first_seed = seed == config.seeds[0]
  ctx = FitContext(config, domain, pool, attribute, seed, method, cell_dir,
                   features.for_pool(pool), assets.prelabel,
                   figures_dir=workdir / "figures" if first_seed else None,
                   headline=method == config.methods[0], prelabel_model=assets.prelabel_model)
  trained = RANKERS[ranker](ctx)
  margins = margins_for(trained, eval_pairs)
  if hasattr(trained, "save"):  # what scores new images (densesynth_jax/predict.py)
    trained.save(cell_dir / f"seed{seed}_model")
  accuracy = {t: margin_accuracy(margins[t], eval_pairs[t]) for t in test_sets}
  record = dict(ranker=ranker, method=method, attribute=attribute, seed=seed,
                accuracy=accuracy, num_test_pairs={t: len(p) for t, p in eval_pairs.items()},
                pool=pool.info, ranker_info=ctx.info,
                seconds=round(time.perf_counter() - t0, 3), fingerprint=fp)
  if ctx.artifacts:
    io.save_npz(cell_dir / f"seed{seed}_artifacts.npz", **ctx.artifacts)
  io.write_json(path, record)
  return record


def budget_comparisons(config: ml_collections.ConfigDict) -> list[tuple[str, str]]:
  """(method, versus) pairs of the run's budgeted methods (active verification): each active
  method against random verification at the same budget, then every budgeted method against
  DSynth-Auto (budget 0), where the run has them."""
  budgeted = {m: methods_lib.resolve_budget(m, config) for m in config.methods
              if methods_lib.is_budgeted(m)}
  random_at = {b: m for m, (b, scorer) in budgeted.items() if scorer is None}
  pairs = [(m, random_at[b]) for m, (b, scorer) in budgeted.items()
           if scorer is not None and b in random_at]
  if "dsynth_auto" in config.methods:
    pairs += [(m, "dsynth_auto") for m in budgeted]
  return pairs


def budget_series(config: ml_collections.ConfigDict, records
                  ) -> tuple[dict[str, list], dict[float, str]]:
  """The budget figure's lines: label -> [(pairs verified, method)], one line per active scorer
  and one for random verification. Every line starts at DSynth-Auto (0 verified) and ends at the
  run's fully verified pool (a budgeted method that verified all its candidates) when it has
  them. x is the mean over the method's cells of the pairs actually verified. Also the notes
  under those two ticks."""
  spent: dict[str, list] = {}
  full: dict[str, bool] = {}
  for r in records:
    if methods_lib.is_budgeted(r["method"]):
      spent.setdefault(r["method"], []).append(r["pool"]["verified"])
      full[r["method"]] = full.get(r["method"], True) and (
          r["pool"]["verified"] == r["pool"]["candidates"])
  series: dict[str, list] = {}
  for m in config.methods:
    if m in spent:
      scorer = methods_lib.resolve_budget(m, config)[1]
      label = f"active: {scorer}" if scorer else "random"
      series.setdefault(label, []).append((float(np.mean(spent[m])), m))
  ends = [(float(np.mean(spent[m])), m) for m in spent if full[m]]
  for label, pts in series.items():
    have = {x for x, _ in pts}
    if "dsynth_auto" in config.methods and 0.0 not in have:
      pts.append((0.0, "dsynth_auto"))
    pts += [e for e in ends if e[0] not in have]
    pts.sort()
  notes = {x: "all verified" for x, _ in ends}
  if "dsynth_auto" in config.methods:
    notes[0.0] = "DSynth-Auto"
  return series, notes


def _budget_gaps_markdown(gaps) -> str:
  """Active − random first (the equal-budget comparison), then each budgeted method − DSynth-Auto."""
  head = [g for g in gaps if g["versus"] != "dsynth_auto"]
  tail = [g for g in gaps if g["versus"] == "dsynth_auto"]
  parts = []
  if head:
    parts += ["Active − random verification, same budget:", "", tables.gaps_markdown(head), ""]
  if tail:
    parts += ["Each budgeted method − DSynth-Auto (no pair verified):", "",
              tables.gaps_markdown(tail), ""]
  return "\n".join(parts)


def _extra_notes(domain: Domain) -> str:
  """One line per pair-file test set for the head of results.md ("" without any)."""
  lines = [f"- `{e['name']}` ({e['attribute']}): {e['num_ordered_pairs']} ordered of "
           f"{e['num_pairs']} pairs over {e['num_images']} images, from `{e['pairs_file']}`"
           for e in domain.info.get(pairfiles.INFO_KEY, ())]
  return "Pair-file test sets:\n" + "\n".join(lines) if lines else ""


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
  """Runs every requested cell (resuming finished ones) and writes the result tables."""
  workdir = Path(workdir)
  t_start = time.perf_counter()
  extras = extra_test_sets(config)  # a malformed entry or a missing file fails before any work
  pairfiles.check_files(extras)
  domain = load_domain(config.data)
  _check_selection(config, domain)
  if extras:  # at the domain's own side, before the resize (data/pairfiles.py)
    domain = pairfiles.add_pair_file_test_sets(domain, extras,
                                               cache_dir=config.data.get("cache_dir"))
  side = rank_image_size(config, domain.images.image_shape[0])
  # How new images meet the saved rankers (densesynth_jax/predict.py): the pair files' rule.
  io.write_json(workdir / IMAGES_FILE, dict(format_version=FORMAT_VERSION, domain=domain.name,
                                            preprocessing=pairfiles.domain_rule(domain),
                                            rank_image_size=side))
  domain = resize_domain(domain, side)
  print(f"[data] domain {domain.name}: {len(domain.images)} images at {side}×{side}, "
        + ", ".join(f"{a}: {len(domain.pairs[a]['train'])} train pairs" for a in config.attributes),
        flush=True)
  if not redraws_train_pairs(config.data.name) and len(config.seeds) > 1:
    print(f"[data] domain {domain.name} keeps its train pairs fixed: replicates redraw only the "
          f"random choices of training", flush=True)
  if config.figures.domain:
    save_domain_figures(domain, workdir / "figures")

  features = FeatureCache(config, domain, workdir / "cache" / "features")
  assets = RunAssets(config, domain, workdir, features)
  cells = cell_list(config)
  replicates: dict[int, Domain] = {}
  records = []
  for i, (r, m, a, s) in enumerate(cells, 1):
    print(f"[cell {i}/{len(cells)}] ranker={r} method={m} attribute={a} seed={s}", flush=True)
    if s not in replicates:
      replicates[s] = replicate_domain(config.data, domain, s)
    rec = run_cell(config, replicates[s], features, assets, r, m, a, s, workdir)
    records.append(rec)
    accs = ", ".join(f"{t} {100 * v:.2f}%" for t, v in rec["accuracy"].items())
    print(f"[cell {i}/{len(cells)}] {'cached' if rec.get('cached') else 'done'}: {accs}",
          flush=True)

  test_sets = run_test_sets(config)
  summary = tables.summarize(records, test_sets)
  # Each reference row against the method it is the reference of (learned vs oracle generator).
  gaps = tables.method_gaps(records, test_sets,
                            [(m, r) for r, m in methods_lib.REFERENCE_METHODS.items()])
  # Active verification: each active method against random verification at the same budget,
  # and every budgeted method against DSynth-Auto (only in runs that have budgeted methods).
  budget_pairs = budget_comparisons(config)
  budget_gaps = tables.method_gaps(records, test_sets, budget_pairs) if budget_pairs else []
  # Wall time is kept out of results.json so that the same config and seeds give the same bytes.
  results = dict(domain=domain.name, domain_info=_reproducible(dict(domain.info)),
                 test_sets=test_sets,
                 rank_image_size=side, replicates=[int(s) for s in config.seeds],
                 train_pairs_redrawn=redraws_train_pairs(config.data.name),
                 summary=summary, reference_gaps=gaps,
                 cells=[_reproducible({k: v for k, v in r.items() if k != "cached"})
                        for r in records])
  if budget_pairs:
    results["budget_gaps"] = budget_gaps
  io.write_json(workdir / "results.json", results)
  wall = round(time.perf_counter() - t_start, 1)
  io.write_json(workdir / "timing.json", dict(wall_seconds=wall, cells={
      f"{r['ranker']}/{r['method']}/{r['attribute']}/seed{r['seed']}": r.get("seconds")
      for r in records}))
  reference_rows = [m for m in config.methods if m in methods_lib.REFERENCE_METHODS]
  # A pair file's table (and figure) has the columns of the attributes it was given for.
  columns = {s.name: [a for a in config.attributes if s.name in cell_test_sets(config, a)]
             for s in extras}
  md = tables.markdown_tables(summary, list(config.rankers) + [CLASSIFIER], config.methods,
                              config.attributes, reference_rows=reference_rows,
                              title=f"Results: domain {domain.name}", notes=_extra_notes(domain),
                              columns=columns)
  if gaps:
    md += ("\n## Learned generator vs its reference (paired, same replicate; 95% t-interval)\n\n"
           + tables.gaps_markdown(gaps) + "\n")
  if budget_pairs:
    md += ("\n## Active verification at equal human budget (paired, same replicate; 95% "
           "t-interval)\n\n" + _budget_gaps_markdown(budget_gaps) + "\n")
  io.write_text(workdir / "results.md", md + "\n")
  io.write_text(workdir / "results.csv", tables.csv_text(summary))
  save_accuracy_figures(summary, workdir / "figures", list(config.rankers) + [CLASSIFIER],
                        config.methods, config.attributes, title=f"domain {domain.name}",
                        columns=columns)
  if budget_pairs:
    lines = {k: m for k, m in (("real", "real"), ("dsynth (paper: half the real pairs replaced)",
                                                  "dsynth")) if m in config.methods}
    series, notes = budget_series(config, records)
    save_budget_figures(summary, workdir / "figures", list(config.rankers), config.attributes,
                        series, lines, notes, title=f"domain {domain.name}")
  print(md, flush=True)
  print(f"[done] {len(cells)} cells in {wall} s; results in {workdir}", flush=True)
  return results
