"""The experiment runner behind `train_ranker.py`.

For every (ranker, method, attribute, seed) cell the config asks for: build the method's training
pool, train the ranker, and measure pairwise accuracy on every test set.

- **Replicates.** A seed is a replicate: the domain's sparse real TRAIN pairs are redrawn for it
  (`data/registry.replicate_domain`, where the domain has a rule for that) and every random
  choice of training (pools, DeepSTN's initialisation and batches) follows it; images, val and
  test pairs stay fixed. Tables give mean ± std over replicates and each method's paired
  difference to Real (same ranker, same replicate) with a 95% interval (experiments/tables.py).
- **Resolution.** The paper's rule, "We downsize real images to match the resolution of the
  synthetic ones": the rankers see every image, real and synthetic, at `rank_image_size`, by
  default the smaller of the domain's side and the generator's (`rank_image_size`).

Each finished cell is
written to `rankers/<ranker>/<method>/<attribute>/seed<k>.json` together with a fingerprint of the
config that produced it, so an interrupted run resumes where it stopped and a changed config
recomputes. At the end: `results.json`, `results.md` (the paper's table layout), `results.csv`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Callable, Mapping

import ml_collections
import numpy as np

import jax

from densesynth_jax import io
from densesynth_jax.data.registry import (load_domain, redraws_train_pairs, replicate_domain,
                                          resize_domain)
from densesynth_jax.experiments import methods as methods_lib
from densesynth_jax.experiments import tables
from densesynth_jax.experiments.evaluate import margin_accuracy
from densesynth_jax.types import SOURCE_CODE, Domain, PairSet

# Top-level config fields that choose WHICH cells run, not HOW a cell is computed.
_SELECTION_FIELDS = ("rankers", "methods", "attributes", "seeds")


@dataclasses.dataclass
class CellContext:
  """Everything a ranker needs for one cell."""
  config: ml_collections.ConfigDict
  domain: Domain
  pool: methods_lib.Pool
  attribute: str
  seed: int
  workdir: Path
  features: Callable[[str], np.ndarray]  # feature name -> (len(pool.images), D) float32
  eval_pairs: Mapping[str, PairSet]      # test / val set name -> ordered pairs into pool.images
  assets: methods_lib.Assets             # pre-label strengths, synthetic sets (lazy)
  pool_method: str = ""                  # the method that built the pool
  run_dir: Path = Path(".")              # the run's workdir (figures go to run_dir/figures)
  info: dict = dataclasses.field(default_factory=dict)       # JSON facts for the cell record
  artifacts: dict = dataclasses.field(default_factory=dict)  # arrays kept in the run (figures)


def _pool_features(ctx: CellContext) -> np.ndarray:
  """The RankSVM feature of every pool image, z-scored with the training pairs' images."""
  from densesynth_jax.features import extract
  cfg = ctx.config.ranksvm
  x = ctx.features(cfg.feature)
  if not cfg.standardize:
    return x
  train_rows = np.unique(np.concatenate([ctx.pool.pairs.a, ctx.pool.pairs.b]))
  _, standardized = extract.standardize(x[train_rows], x)
  return standardized.astype(np.float32)


def ranksvm_global(ctx: CellContext) -> dict[str, np.ndarray]:
  """RelAttr: one linear RankSVM on all pool pairs; margins s(a) - s(b) on every eval set."""
  from densesynth_jax.rankers import ranksvm
  cfg = ctx.config.ranksvm
  x = _pool_features(ctx)
  diffs, targets, weights = ranksvm.pair_differences(x, ctx.pool.pairs)
  w = np.asarray(ranksvm.fit_ranksvm(diffs, targets, weights, C=cfg.C, max_iter=cfg.max_iter))
  s = x @ w
  return {name: s[p.a] - s[p.b] for name, p in ctx.eval_pairs.items()}


def ranksvm_local(ctx: CellContext) -> dict[str, np.ndarray]:
  """FG-LP: a RankSVM per test pair on its K most analogous pool pairs, all solved together.

  K is chosen on the domain's val pairs from `ranksvm.k_grid` (or fixed by `ranksvm.k` > 0);
  the neighbour metric is Euclidean or KISSME (`ranksvm.metric`). The selected K, the share of
  synthetic pairs among the neighbours, and the neighbours themselves (for the Figure-4-style
  plot) are kept in `ctx.info`.
  """
  from densesynth_jax.rankers import local, metric as metric_lib
  from densesynth_jax.train import mesh as mesh_lib
  cfg = ctx.config.ranksvm
  x = _pool_features(ctx)
  pairs = ctx.pool.pairs
  # Shard over accelerators only: host "devices" made by XLA_FLAGS share the same cores (no
  # speed-up), and the sharded solver was seen to stall there under load. The sharded path
  # itself is tested in tests/test_local.py.
  mesh = (mesh_lib.make_mesh() if jax.device_count() > 1 and jax.default_backend() != "cpu"
          else None)
  learned = None
  if cfg.metric == "kissme":
    learned = metric_lib.kissme(x, pairs, rank=cfg.metric_rank)
  elif cfg.metric != "euclidean":
    raise ValueError(f"unknown ranksvm.metric {cfg.metric!r}; valid: ['euclidean', 'kissme']")
  common = dict(C=cfg.C, max_iter=cfg.max_iter, metric=learned, chunk_size=cfg.chunk_size,
                mesh=mesh)
  k = int(cfg.k)
  if k <= 0:
    val = ctx.domain.pairs[ctx.attribute].get("val")
    if val is None or not len(val.ordered()):
      raise KeyError(f"choosing K needs ordered 'val' pairs for {ctx.attribute!r}; set "
                     f"ranksvm.k > 0 to fix K instead")
    k, by_k = local.select_k(x, pairs, x, val, grid=tuple(cfg.k_grid), **common)
    ctx.info["val_accuracy_by_k"] = {str(kk): v for kk, v in by_k.items()}
  ctx.info["k"] = k
  out = {}
  for name, p in ctx.eval_pairs.items():
    res = local.local_ranksvm(x, pairs, x, p.a, p.b, k=k, **common)
    out[name] = res.margin
    src = pairs.source[res.neighbours]
    ctx.info[f"neighbour_sources_{name}"] = {
        code_name: float(np.mean(src == code)) for code_name, code in SOURCE_CODE.items()
        if np.any(src == code)}
    ctx.artifacts[f"neighbours_{name}"] = res.neighbours
  return out


def deepstn(ctx: CellContext) -> dict[str, np.ndarray]:
  """DeepSTN: the Siamese RankNet with a spatial transformer, trained on the pool's pixels.

  Trained into the cell's folder (resumable), early-stopped on the domain's val pairs (which
  index the pool's leading domain images). Test scores sum `deepstn.test_crops` views. The
  learned patch's mean centre on the test images is recorded, and the first seed of each
  attribute draws `figures/stn_patches_<attribute>_<method>.png` (and, for the config's first
  method, `figures/stn_patches_<attribute>.png`).
  """
  from densesynth_jax.train import ranker as deepstn_lib
  cfg = ctx.config.deepstn
  val = ctx.domain.pairs[ctx.attribute].get("val")
  model = deepstn_lib.train_deepstn(cfg, ctx.pool.images, ctx.pool.pairs,
                                    ctx.pool.images if val is not None else None, val,
                                    ctx.workdir / f"deepstn_seed{ctx.seed}", seed=ctx.seed)
  n = ctx.pool.num_domain_images
  used = np.unique(np.concatenate([np.concatenate([p.a, p.b]) for p in ctx.eval_pairs.values()]))
  scores = np.zeros(n, np.float32)  # only the images of evaluated pairs are scored
  scores[used] = deepstn_lib.score_images(model, ctx.pool.images.images[used])
  ctx.info["stages"] = model.stages
  test = np.asarray(ctx.domain.splits.get("test", np.arange(n)))
  boxes = deepstn_lib.patch_boxes(model, ctx.pool.images.images[test])
  size = ctx.pool.images.image_shape[0]
  ctx.info["patch_centre_xy"] = [float(((boxes[:, 0] + boxes[:, 2]) / 2).mean() / size),
                                 float(((boxes[:, 1] + boxes[:, 3]) / 2).mean() / size)]
  ctx.info["patch_side"] = float((boxes[:, 2] - boxes[:, 0]).mean() / size)
  if ctx.seed == ctx.config.seeds[0]:
    show = test[:: max(1, len(test) // 12)][:12]
    figures = ctx.run_dir / "figures"
    paths = [figures / f"stn_patches_{ctx.attribute}_{ctx.pool_method}.png"]
    if ctx.pool_method == ctx.config.methods[0]:  # the run's headline figure (e.g. Real's)
      paths.append(figures / f"stn_patches_{ctx.attribute}.png")
    for path in paths:
      deepstn_lib.save_patch_figure(path, model, ctx.pool.images.images[show])
  return {name: scores[p.a] - scores[p.b] for name, p in ctx.eval_pairs.items()}


def classifier(ctx: CellContext) -> dict[str, np.ndarray]:
  """The Classifier baseline: score = the binary attribute classifier's output on each image.

  The classifier is the pre-label one, trained on the generator's training images; ranking by
  its posterior p(A|x) equals ranking by its decision value (a monotone map), which is used.
  """
  s = ctx.assets.prelabel(ctx.attribute)
  return {name: s[p.a] - s[p.b] for name, p in ctx.eval_pairs.items()}


# name -> fn(ctx) -> {eval set: margins}
RANKERS: dict[str, Callable[[CellContext], dict[str, np.ndarray]]] = {
    "ranksvm_global": ranksvm_global,
    "ranksvm_local": ranksvm_local,
    "deepstn": deepstn,
    "classifier": classifier,
}
CLASSIFIER = "classifier"  # the method that is its own ranker: one row, whatever the rankers


def _fingerprint(config: ml_collections.ConfigDict, **cell) -> str:
  d = {k: v for k, v in config.to_dict().items() if k not in _SELECTION_FIELDS}
  blob = json.dumps(dict(config=d, cell=cell), sort_keys=True, default=str)
  return hashlib.sha256(blob.encode()).hexdigest()[:16]


class FeatureCache:
  """Features of the domain's images computed once per run, of added images once per pool."""

  def __init__(self, config: ml_collections.ConfigDict, domain: Domain, cache_dir: Path):
    self.config, self.domain, self.cache_dir = config, domain, cache_dir
    self._domain_feats: dict[str, np.ndarray] = {}

  def domain_features(self, name: str) -> np.ndarray:
    from densesynth_jax.features import extract
    if name not in self._domain_feats:
      self._domain_feats[name] = extract.cached_features(
          name, self.domain.images, self.config.features, self.cache_dir)
    return self._domain_feats[name]

  def of(self, name: str, images) -> np.ndarray:
    """Features of any other ImageSet (e.g. synthetic images), cached by content."""
    from densesynth_jax.features import extract
    return extract.cached_features(name, images, self.config.features, self.cache_dir)

  def for_pool(self, pool: methods_lib.Pool) -> Callable[[str], np.ndarray]:
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
  for name, registry in (("rankers", RANKERS), ("methods", methods_lib.METHODS)):
    unknown = [x for x in config[name] if x not in registry]
    if unknown:
      raise ValueError(f"unknown {name} {unknown}; valid: {sorted(registry)}")
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
  if "deepstn" in config.rankers:  # a bad setting fails now, not after hours of other cells
    from densesynth_jax.train import ranker as deepstn_lib
    deepstn_lib.validate_config(config.deepstn)


def _neighbour_figure(ctx: CellContext) -> None:
  """Figure 4 of the paper for local rankers: test pairs and their nearest training pairs."""
  if not ctx.config.figures.neighbours or ctx.seed != ctx.config.seeds[0]:
    return
  test_set = ctx.config.test_sets[0]
  nbr = ctx.artifacts.get(f"neighbours_{test_set}")
  if nbr is None:
    return
  from densesynth_jax.experiments.figures import save_neighbour_figure
  p = ctx.eval_pairs[test_set]
  rng = np.random.default_rng(ctx.seed)
  show = np.sort(rng.permutation(len(p))[:4])
  save_neighbour_figure(
      ctx.run_dir / "figures" / f"neighbours_{ctx.attribute}_{ctx.pool_method}.png",
      ctx.pool.images.images, p.a[show], p.b[show], p.label[show], ctx.pool.pairs, nbr[show],
      title=f"{ctx.attribute}: {test_set} pairs and their nearest training pairs "
            f"({ctx.pool_method}, K={ctx.info.get('k')})")


def run_cell(config, domain, features: FeatureCache, assets: methods_lib.Assets, ranker: str,
             method: str, attribute: str, seed: int, workdir: Path) -> dict:
  """Trains and evaluates one cell, or returns its cached record when the config is unchanged.

  `domain` is the replicate's (its train pairs drawn for `seed`).
  """
  cell_dir = workdir / "rankers" / ranker / method / attribute
  path = cell_dir / f"seed{seed}.json"
  fp = _fingerprint(config, ranker=ranker, method=method, attribute=attribute, seed=seed)
  if path.exists():
    record = io.read_json(path)
    if record.get("fingerprint") == fp:
      return record | {"cached": True}
  t0 = time.perf_counter()
  pool = methods_lib.build_pool(method, domain, attribute, config, seed, assets)
  eval_pairs = {t: domain.pairs[attribute][t].ordered() for t in config.test_sets}
  ctx = CellContext(config, domain, pool, attribute, seed, cell_dir, features.for_pool(pool),
                    eval_pairs, assets, method, workdir)
  margins = RANKERS[ranker](ctx)
  accuracy = {t: margin_accuracy(margins[t], eval_pairs[t]) for t in config.test_sets}
  record = dict(ranker=ranker, method=method, attribute=attribute, seed=seed,
                accuracy=accuracy, num_test_pairs={t: len(p) for t, p in eval_pairs.items()},
                pool=pool.info, ranker_info=ctx.info,
                seconds=round(time.perf_counter() - t0, 3), fingerprint=fp)
  if ctx.artifacts:
    io.save_npz(cell_dir / f"seed{seed}_artifacts.npz", **ctx.artifacts)
  _neighbour_figure(ctx)
  io.write_json(path, record)
  return record


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
  """Runs every requested cell (resuming finished ones) and writes the result tables."""
  workdir = Path(workdir)
  t_start = time.perf_counter()
  domain = load_domain(config.data)
  _check_selection(config, domain)
  side = rank_image_size(config, domain.images.image_shape[0])
  domain = resize_domain(domain, side)
  print(f"[data] domain {domain.name}: {len(domain.images)} images at {side}×{side}, "
        + ", ".join(f"{a}: {len(domain.pairs[a]['train'])} train pairs" for a in config.attributes),
        flush=True)
  if not redraws_train_pairs(config.data.name) and len(config.seeds) > 1:
    print(f"[data] domain {domain.name} keeps its train pairs fixed: replicates redraw only the "
          f"random choices of training", flush=True)
  if config.figures.domain:
    from densesynth_jax.experiments.figures import save_domain_figures
    save_domain_figures(domain, workdir / "figures")

  features = FeatureCache(config, domain, workdir / "cache" / "features")
  from densesynth_jax.experiments.assets import RunAssets
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

  summary = tables.summarize(records, config.test_sets)
  # Each reference row against the method it is the reference of (learned vs oracle generator).
  gaps = tables.method_gaps(records, config.test_sets,
                            [(m, r) for r, m in methods_lib.REFERENCE_METHODS.items()])
  # Wall time is kept out of results.json so that the same config and seeds give the same bytes.
  results = dict(domain=domain.name, domain_info=_reproducible(dict(domain.info)),
                 test_sets=list(config.test_sets),
                 rank_image_size=side, replicates=[int(s) for s in config.seeds],
                 train_pairs_redrawn=redraws_train_pairs(config.data.name),
                 summary=summary, reference_gaps=gaps,
                 cells=[_reproducible({k: v for k, v in r.items() if k != "cached"})
                        for r in records])
  io.write_json(workdir / "results.json", results)
  wall = round(time.perf_counter() - t_start, 1)
  io.write_json(workdir / "timing.json", dict(wall_seconds=wall, cells={
      f"{r['ranker']}/{r['method']}/{r['attribute']}/seed{r['seed']}": r.get("seconds")
      for r in records}))
  reference_rows = [m for m in config.methods if m in methods_lib.REFERENCE_METHODS]
  md = tables.markdown_tables(summary, list(config.rankers) + [CLASSIFIER], config.methods,
                              config.attributes, reference_rows=reference_rows,
                              title=f"Results: domain {domain.name}")
  if gaps:
    md += ("\n## Learned generator vs its reference (paired, same replicate; 95% t-interval)\n\n"
           + tables.gaps_markdown(gaps) + "\n")
  io.write_text(workdir / "results.md", md + "\n")
  io.write_text(workdir / "results.csv", tables.csv_text(summary))
  from densesynth_jax.experiments.figures import save_accuracy_figures
  save_accuracy_figures(summary, workdir / "figures", list(config.rankers) + [CLASSIFIER],
                        config.methods, config.attributes, title=f"domain {domain.name}")
  print(md, flush=True)
  print(f"[done] {len(cells)} cells in {wall} s; results in {workdir}", flush=True)
  return results
