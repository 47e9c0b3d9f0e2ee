"""FG-LP local learning (Yu & Grauman, CVPR 2014): one small RankSVM per test pair, all at once.

For a test pair (x_m, x_n), a training pair (x_i, x_j) is ANALOGOUS when both members are close:
its analogy score is the product of member-wise distances, with both member orderings considered
(FG-LP's ordering is unconfirmed; the better pairing is the sensible default):

    s = min(d(x_m, x_i) · d(x_n, x_j),  d(x_m, x_j) · d(x_n, x_i)).

The K training pairs with the smallest s train a linear RankSVM (pair-space form, `ranksvm`), and
its margin wᵀ(x_m − x_n) predicts the test pair (> 0: m shows more). Neighbours are ranked with
SQUARED distances: squaring is monotone on [0, ∞), so products and the min over orderings rank the
pairs identically and no square root is needed. Distances are Euclidean, or Mahalanobis
d(x, y) = ‖Lᵀ(x − y)‖ for a learned map L (D, r) (`metric.py`); the metric only chooses the
neighbours, the RankSVM always sees the raw (standardised) features.

Everything is vectorised: test pairs are processed in chunks of `chunk_size` (padded to a fixed
shape, so there is one compilation), each chunk is vmapped and jitted, and with a multi-device mesh
a chunk's test pairs are split over the mesh's data axis with `shard_map` (training data
replicated). Memory per chunk is O(chunk · (N + P + K²)) plus, on the gather path, O(chunk · K · D);
a (T, P, D) array is never formed. The K×K Gram matrices come either from a precomputed pair Gram
matrix D Dᵀ (P, P) (the "gram" path, used when P ≤ `gram_max_pairs`: one O(P²D) product shared by
all test pairs) or from gathering each test pair's K difference vectors (the "gather" path,
O(K²D) per test pair, for very large pools). Both give the same result up to rounding.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, PartitionSpec

from densesynth_jax import mesh as mesh_lib
from densesynth_jax.metrics import margin_accuracy
from densesynth_jax.plotting import save_neighbour_figure
from densesynth_jax.rankers import metric as metric_lib
from densesynth_jax.rankers import ranksvm
from densesynth_jax.rankers import base
from densesynth_jax.rankers.base import FitContext
from densesynth_jax.types import SOURCE_CODE, PairSet

_HI = lax.Precision.HIGHEST
GRAM_MAX_PAIRS = 8192   # pair Gram matrix of at most 8192² float32 = 256 MiB


@dataclasses.dataclass(frozen=True)
class LocalResult:
  """Predictions of local RankSVMs for T test pairs.

  Attributes:
    margin: float32 (T,) wᵀ(x_m − x_n) of each test pair's local model; > 0 predicts that m shows
      more of the attribute, < 0 that n does.
    neighbours: int32 (T, K) indices into the training PairSet of the K most analogous training
      pairs, most analogous first (K = min(k, number of training pairs)).
  """
  margin: np.ndarray
  neighbours: np.ndarray

  @property
  def prediction(self) -> np.ndarray:
    """int8 (T,) +1 (m more), −1 (n more), 0 (a tie in the margin)."""
    return np.sign(self.margin).astype(np.int8)


# --------------------------------------------------------------------------------------------
# Input checks


def _features(x, name: str) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 2 or x.shape[0] == 0:
    raise ValueError(f"{name} must be a non-empty (N, D) array, got shape {x.shape}")
  if not np.isfinite(x).all():
    bad = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
    raise ValueError(f"{name} is not finite at row {bad}")
  return x.astype(np.float32) if not np.issubdtype(x.dtype, np.floating) else x


def _test_indices(test_a, test_b, num_images: int) -> tuple[np.ndarray, np.ndarray]:
  ta = np.asarray(test_a).reshape(-1)
  tb = np.asarray(test_b).reshape(-1)
  if ta.shape != tb.shape:
    raise ValueError(f"test_a has {ta.size} entries but test_b has {tb.size}")
  if ta.size == 0:
    raise ValueError("no test pairs given (test_a is empty)")
  for name, x in (("test_a", ta), ("test_b", tb)):
    if not np.issubdtype(x.dtype, np.integer):
      raise ValueError(f"{name} must hold integer image indices, got dtype {x.dtype}")
    bad = np.flatnonzero((x < 0) | (x >= num_images))
    if bad.size:
      raise IndexError(f"test pair {int(bad[0])}: {name}={int(x[bad[0]])} out of range for "
                       f"{num_images} test images")
  return ta.astype(np.int32), tb.astype(np.int32)


def _check_train(train_features, train_pairs: PairSet) -> np.ndarray:
  x = _features(train_features, "train_features")
  if len(train_pairs) == 0:
    raise ValueError(f"train_pairs[{train_pairs.attribute}] is empty: local RankSVM needs pairs")
  train_pairs.validate(len(x), where="local_ranksvm train_pairs")
  return x


def _check_metric(metric, dim: int):
  if metric is None:
    return None
  L = np.asarray(metric)
  if L.ndim != 2 or L.shape[0] != dim or L.shape[1] == 0:
    raise ValueError(f"metric must be a (D, r) = ({dim}, r) linear map, got shape {L.shape}")
  if not np.isfinite(L).all():
    raise ValueError("metric is not finite")
  return L.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Per-chunk kernels (written for the whole chunk; the solver itself is vmapped per test pair)


def _sq_dists(z, z_train, sq_train):
  """Squared Euclidean distances (c, N) from embedded points z (c, r) to z_train (N, r)."""
  cross = jnp.matmul(z, z_train.T, precision=_HI)
  return jnp.maximum(jnp.sum(z * z, axis=1, keepdims=True) + sq_train[None, :] - 2.0 * cross, 0.0)


def analogy_scores(zm, zn, z_train, a, b):
  """Squared analogy scores (c, P) of every training pair for each test pair.

  zm, zn: (c, r) embedded test members; z_train: (N, r) embedded training images; a, b: (P,)
  training pair indices. Returns min(d²(m,a)·d²(n,b), d²(m,b)·d²(n,a)); smaller = more analogous.
  """
  sq_train = jnp.sum(z_train * z_train, axis=1)
  dm = _sq_dists(zm, z_train, sq_train)
  dn = _sq_dists(zn, z_train, sq_train)
  return jnp.minimum(dm[:, a] * dn[:, b], dm[:, b] * dn[:, a])


def _neighbour_kernel(k: int):
  def kernel(ta, tb, z_test, z_train, a, b, usable):
    s = analogy_scores(z_test[ta], z_test[tb], z_train, a, b)
    s = jnp.where(usable[None, :], s, jnp.inf)   # zero-weight pairs only as a last resort
    _, idx = lax.top_k(-s, k)                    # ties: the lower pair index first
    return idx.astype(jnp.int32)
  return kernel


def _solve_kernel(max_iter: int, use_gram: bool):
  solve = jax.vmap(ranksvm.fit_pairspace_dual, in_axes=(0, 0, 0, None, None, None))

  def kernel(nbr, ta, tb, x_test, diffs, targets, weights, pair_gram, C, tol):
    xd = x_test[ta] - x_test[tb]                                         # (c, D)
    if use_gram:
      G = jax.vmap(lambda i: pair_gram[i][:, i])(nbr)                    # (c, K, K)
      proj = jnp.take_along_axis(jnp.matmul(xd, diffs.T, precision=_HI), nbr, axis=1)
    else:
      d = diffs[nbr]                                                     # (c, K, D)
      G = jnp.einsum("ckd,cjd->ckj", d, d, precision=_HI)
      proj = jnp.einsum("ckd,cd->ck", d, xd, precision=_HI)
    beta, _ = solve(G, targets[nbr], weights[nbr], C, max_iter, tol)
    return jnp.sum(beta * proj, axis=1)                                  # (c,) wᵀ(x_m − x_n)
  return kernel


@functools.lru_cache(maxsize=64)
def _compiled(kind: str, mesh: Mesh | None, num_sharded: int, num_replicated: int, **static):
  """The jitted chunk function, sharded with shard_map over the mesh's data axis if it has >1."""
  kernel = (_neighbour_kernel(static["k"]) if kind == "neighbours"
            else _solve_kernel(static["max_iter"], static["use_gram"]))
  if mesh is not None and mesh_lib.num_shards(mesh) > 1:
    spec = PartitionSpec(mesh_lib.DATA_AXIS)
    kernel = jax.shard_map(kernel, mesh=mesh,
                           in_specs=(spec,) * num_sharded + (PartitionSpec(),) * num_replicated,
                           out_specs=spec, check_vma=False)
  return jax.jit(kernel)


def _run_chunked(kind: str, sharded: Sequence[np.ndarray], replicated: Sequence, chunk_size: int,
                 mesh: Mesh | None, **static) -> np.ndarray:
  """Applies a chunk kernel to all T test pairs, chunk by chunk; returns the (T, ...) result."""
  if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
    raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
  T = len(sharded[0])
  shards = mesh_lib.num_shards(mesh) if mesh is not None else 1
  chunk = -(-min(int(chunk_size), T) // shards) * shards   # a multiple of the device count
  fn = _compiled(kind, mesh if shards > 1 else None, len(sharded), len(replicated), **static)
  if shards > 1:
    replicated = mesh_lib.replicate(tuple(replicated), mesh)
  else:
    replicated = tuple(jnp.asarray(x) for x in replicated)
  outs = []
  for start in range(0, T, chunk):
    parts = [mesh_lib.pad_to_multiple(x[start:start + chunk], chunk)[0] for x in sharded]
    if shards > 1:
      parts = mesh_lib.shard_batch(parts, mesh)
    outs.append((fn(*parts, *replicated), min(chunk, T - start)))   # dispatch all, then collect
  return np.concatenate([np.asarray(o)[:n] for o, n in outs])


# --------------------------------------------------------------------------------------------
# Public API


def analogous_pairs(train_features, train_pairs: PairSet, test_features, test_a, test_b, *,
                    k: int = 100, metric=None, chunk_size: int = 256,
                    mesh: Mesh | None = None) -> np.ndarray:
  """The K most analogous training pairs of every test pair.

  Args:
    train_features: (N, D) features of the images `train_pairs` index.
    train_pairs: PairSet over the N training images (zero-weight pairs are picked only when fewer
      than K pairs have a positive weight).
    test_features: (M, D) features of the images test_a / test_b index.
    test_a, test_b: (T,) int test pair members m and n.
    k: neighbours per test pair; min(k, P) are returned.
    metric: optional (D, r) map L; distances are ‖Lᵀ(x − y)‖ (Euclidean if None).
    chunk_size: test pairs per compiled chunk (memory O(chunk · (N + P))).
    mesh: optional device mesh; each chunk's test pairs are split over its data axis.
  Returns:
    int32 (T, K) indices into train_pairs, most analogous first.
  """
  x = _check_train(train_features, train_pairs)
  xt = _features(test_features, "test_features")
  if xt.shape[1] != x.shape[1]:
    raise ValueError(f"test_features have {xt.shape[1]} dims, train_features {x.shape[1]}")
  ta, tb = _test_indices(test_a, test_b, len(xt))
  if not isinstance(k, (int, np.integer)) or k < 1:
    raise ValueError(f"k must be a positive int, got {k!r}")
  L = _check_metric(metric, x.shape[1])
  # Centring does not change distances but avoids cancellation in ‖z‖² + ‖y‖² − 2zᵀy.
  mu = x.mean(axis=0)
  z_train, z_test = x - mu, xt - mu
  if L is not None:
    z_train, z_test = z_train @ L, z_test @ L
  usable = np.asarray(train_pairs.weight) > 0
  return _run_chunked(
      "neighbours", (ta, tb),
      (z_test.astype(np.float32), z_train.astype(np.float32), np.asarray(train_pairs.a, np.int32),
       np.asarray(train_pairs.b, np.int32), usable),
      chunk_size, mesh, k=int(min(k, len(train_pairs))))


def solve_local(train_features, train_pairs: PairSet, test_features, test_a, test_b, neighbours,
                *, C: float = 0.1, max_iter: int = 10, tol: float = 1e-7, chunk_size: int = 256,
                mesh: Mesh | None = None, gram_max_pairs: int = GRAM_MAX_PAIRS) -> np.ndarray:
  """Margins (T,) of a RankSVM trained on each test pair's given neighbours (T, K).

  Same arguments as `local_ranksvm`; `neighbours` are indices into train_pairs (e.g. from
  `analogous_pairs`). The pair Gram matrix is precomputed when P ≤ gram_max_pairs.
  """
  x = _check_train(train_features, train_pairs)
  xt = _features(test_features, "test_features")
  if xt.shape[1] != x.shape[1]:
    raise ValueError(f"test_features have {xt.shape[1]} dims, train_features {x.shape[1]}")
  ta, tb = _test_indices(test_a, test_b, len(xt))
  nbr = np.asarray(neighbours)
  if nbr.ndim != 2 or nbr.shape[0] != len(ta) or nbr.shape[1] == 0:
    raise ValueError(f"neighbours must be (T, K) with T = {len(ta)}, got shape {nbr.shape}")
  bad = np.flatnonzero(((nbr < 0) | (nbr >= len(train_pairs))).any(axis=1))
  if bad.size:
    raise IndexError(f"neighbours of test pair {int(bad[0])} index outside the "
                     f"{len(train_pairs)} training pairs")
  if not C > 0:
    raise ValueError(f"C must be positive, got {C}")
  if not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
    raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
  diffs, targets, weights = ranksvm.pair_differences(x, train_pairs)
  use_gram = len(train_pairs) <= gram_max_pairs
  pair_gram = ranksvm.gram(diffs) if use_gram else jnp.zeros((1, 1), diffs.dtype)
  dtype = diffs.dtype
  # Training pairs and test images padded to a few fixed sizes: an experiment fits many pools of
  # slightly different sizes, and every new shape would compile the solver again (about a second
  # per K on a CPU). Neighbour indices never reach the padding rows.
  p, m = len(train_pairs), len(xt)
  pad = lambda a, n: jnp.pad(jnp.asarray(a), [(0, n - a.shape[0])] + [(0, 0)] * (a.ndim - 1))
  diffs, targets, weights = (pad(a, _bucket(p)) for a in (diffs, targets, weights))
  if use_gram:
    pair_gram = jnp.pad(pair_gram, [(0, _bucket(p) - p)] * 2)
  return _run_chunked(
      "solve", (nbr.astype(np.int32), ta, tb),
      (pad(xt.astype(dtype), _bucket(m)), diffs, targets, weights, pair_gram,
       np.asarray(C, dtype), np.asarray(tol, dtype)),
      chunk_size, mesh, max_iter=int(max_iter), use_gram=use_gram)


def _bucket(n: int) -> int:
  """The smallest of 2^k and 3·2^(k−1) (k ≥ 6) that holds n rows: at most a third more."""
  size = 64
  while size < n:
    size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
  return size


def local_ranksvm(train_features, train_pairs: PairSet, test_features, test_a, test_b, *,
                  k: int = 100, C: float = 0.1, max_iter: int = 10, metric=None,
                  chunk_size: int = 256, mesh: Mesh | None = None) -> LocalResult:
  """FG-LP: a RankSVM on the K most analogous training pairs of every test pair.

  Args:
    train_features: (N, D) standardised features of the training images.
    train_pairs: PairSet into the N training images (labels +1/−1/0, weights).
    test_features: (M, D) features (same standardisation) of the test images.
    test_a, test_b: (T,) int indices into the M test images: the test pairs (m, n).
    k: neighbours per test pair (all training pairs if k exceeds their number).
    C, max_iter: RankSVM trade-off and Newton step limit.
    metric: optional (D, r) Mahalanobis map L for the neighbour distances.
    chunk_size: test pairs solved together per compiled chunk (bounds memory).
    mesh: optional device mesh; each chunk's test pairs are split over its data axis.
  Returns:
    LocalResult(margin (T,), neighbours (T, K)).
  """
  nbr = analogous_pairs(train_features, train_pairs, test_features, test_a, test_b, k=k,
                        metric=metric, chunk_size=chunk_size, mesh=mesh)
  margin = solve_local(train_features, train_pairs, test_features, test_a, test_b, nbr, C=C,
                       max_iter=max_iter, chunk_size=chunk_size, mesh=mesh)
  return LocalResult(margin=margin.astype(np.float32), neighbours=nbr)


def select_k(train_features, train_pairs: PairSet, val_features, val_pairs: PairSet,
             grid: Sequence[int] = (25, 50, 100, 200), *, C: float = 0.1, max_iter: int = 10,
             metric=None, chunk_size: int = 256, mesh: Mesh | None = None
             ) -> tuple[int, Mapping[int, float]]:
  """Chooses K by accuracy on the ORDERED validation pairs.

  Neighbours are found once for the largest K (the top-k list is sorted, so every smaller K is
  its prefix). Ties in accuracy go to the smaller K. `val_pairs` index into `val_features`.
  Returns (best K, {K: validation accuracy in [0, 1]}).
  """
  grid = [int(k) for k in grid]
  if not grid or min(grid) < 1:
    raise ValueError(f"the K grid must be non-empty positive ints, got {grid}")
  val = val_pairs.ordered()
  if len(val) == 0:
    raise ValueError(f"val_pairs[{val_pairs.attribute}] has no ordered pairs to choose K on")
  nbr = analogous_pairs(train_features, train_pairs, val_features, val.a, val.b, k=max(grid),
                        metric=metric, chunk_size=chunk_size, mesh=mesh)
  by_k: dict[int, float] = {}
  done: dict[int, float] = {}
  for k in grid:
    kk = min(k, nbr.shape[1])
    if kk not in done:
      margin = solve_local(train_features, train_pairs, val_features, val.a, val.b, nbr[:, :kk],
                           C=C, max_iter=max_iter, chunk_size=chunk_size, mesh=mesh)
      done[kk] = margin_accuracy(margin, val)
    by_k[k] = done[kk]
  best = max(sorted(by_k), key=lambda k: (by_k[k], -k))
  return best, by_k


class LocalRanker:
  """FG-LP as a trained ranker: a lazy learner that solves a RankSVM per queried pair.

  `compare(a, b, tag)` records, under `tag`, the share of each pair source among the neighbours
  (`ctx.info`) and the neighbours themselves (`ctx.artifacts`); for the run's first test set of
  the first seed it draws the paper's Figure 4 (test pairs and their nearest training pairs).
  """

  def __init__(self, ctx: FitContext, x: np.ndarray, k: int, common: Mapping,
               standardization: tuple = (None, None)):
    self.ctx, self.x, self.k, self.common = ctx, x, int(k), dict(common)
    self.mu, self.sd = standardization

  def save(self, folder) -> None:
    """The lazy learner's whole training set: the pool's standardised features and pairs, K,
    the neighbour metric, the solver settings and the standardisation of new images' features."""
    cfg, pairs = self.ctx.config.ranksvm, self.ctx.pool.pairs
    arrays = dict(x=self.x, a=pairs.a, b=pairs.b, label=pairs.label, weight=pairs.weight)
    if self.common.get("metric") is not None:
      arrays["metric"] = self.common["metric"]
    if self.mu is not None:
      arrays.update(mean=self.mu, std=self.sd)
    meta = dict(feature=cfg.feature, features=self.ctx.config.features.to_dict(), k=self.k,
                C=float(self.common["C"]), max_iter=int(self.common["max_iter"]),
                chunk_size=int(self.common["chunk_size"]), attribute=self.ctx.attribute)
    base.write_model(folder, NAME, meta, arrays)

  def compare(self, a: np.ndarray, b: np.ndarray, tag: str = "") -> np.ndarray:
    ctx, pairs = self.ctx, self.ctx.pool.pairs
    res = local_ranksvm(self.x, pairs, self.x, np.asarray(a), np.asarray(b), k=self.k,
                        **self.common)
    if tag:
      src = pairs.source[res.neighbours]
      ctx.info[f"neighbour_sources_{tag}"] = {
          name: float(np.mean(src == code)) for name, code in SOURCE_CODE.items()
          if np.any(src == code)}
      ctx.artifacts[f"neighbours_{tag}"] = res.neighbours
      if (ctx.figures_dir is not None and ctx.config.figures.neighbours
          and tag == ctx.config.test_sets[0]):
        self._figure(np.asarray(a), np.asarray(b), tag, res.neighbours)
    return res.margin

  def _figure(self, a: np.ndarray, b: np.ndarray, tag: str, neighbours: np.ndarray) -> None:
    ctx = self.ctx
    test = ctx.domain.pairs[ctx.attribute][tag].ordered()
    show = np.sort(np.random.default_rng(ctx.seed).permutation(len(a))[:4])
    save_neighbour_figure(
        ctx.figures_dir / f"neighbours_{ctx.attribute}_{ctx.method}.png", ctx.pool.images.images,
        a[show], b[show], test.label[show], ctx.pool.pairs, neighbours[show],
        title=f"{ctx.attribute}: {tag} pairs and their nearest training pairs "
              f"({ctx.method}, K={self.k})")


def fit(ctx: FitContext) -> LocalRanker:
  """FG-LP on the pool (`ranksvm` block): K chosen on the domain's val pairs from `k_grid` (or
  fixed by `k` > 0); the neighbour metric is Euclidean or KISSME (`metric`)."""
  cfg = ctx.config.ranksvm
  x, mu, sd = base.pool_standardization(ctx)
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
    val = ctx.val_pairs()
    if val is None or not len(val.ordered()):
      raise KeyError(f"choosing K needs ordered 'val' pairs for {ctx.attribute!r}; set "
                     f"ranksvm.k > 0 to fix K instead")
    k, by_k = select_k(x, pairs, x, val, grid=tuple(cfg.k_grid), **common)
    ctx.info["val_accuracy_by_k"] = {str(kk): v for kk, v in by_k.items()}
  ctx.info["k"] = k
  return LocalRanker(ctx, x, k, common, (mu, sd))


NAME = "ranksvm_local"


@dataclasses.dataclass
class LoadedLocal:
  """A saved FG-LP ranker: `compare` solves a RankSVM per pair on its K nearest pool pairs. It
  has no per-image score (a lazy learner's model depends on the pair)."""
  meta: dict
  arrays: dict

  def compare_features(self, xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """Margins of pairs given by their raw (unstandardised) features (P, D) each."""
    m, arr = self.meta, self.arrays
    if len(xa) != len(xb):
      raise ValueError(f"compare needs as many images a as b, got {len(xa)} and {len(xb)}")
    test = base.apply_standardization(np.concatenate([xa, xb]), arr.get("mean"), arr.get("std"))
    pairs = PairSet.create(arr["a"], arr["b"], arr["label"], attribute=m["attribute"],
                           weight=arr["weight"])
    idx = np.arange(len(xa))
    res = local_ranksvm(arr["x"], pairs, test, idx, idx + len(xa), k=int(m["k"]), C=m["C"],
                        max_iter=int(m["max_iter"]), metric=arr.get("metric"),
                        chunk_size=int(m["chunk_size"]))
    return res.margin

  def compare(self, images_a: np.ndarray, images_b: np.ndarray) -> np.ndarray:
    x = base.image_features(self.meta, np.concatenate([np.asarray(images_a),
                                                       np.asarray(images_b)]))
    return self.compare_features(x[:len(images_a)], x[len(images_a):])


def load(folder) -> LoadedLocal:
  meta, arrays = base.read_model(folder, NAME)
  return LoadedLocal(meta, arrays)
