"""FG-LP local learning (neighbours, vectorised solve, chunking, sharding, K selection) and KISSME."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from densesynth_jax.metrics import margin_accuracy
from densesynth_jax.rankers import local, metric, ranksvm
from densesynth_jax.types import PairSet

ROOT = Path(__file__).resolve().parents[1]


def _problem(seed=0, N=60, D=12, P=80, M=30, T=17):
  """A hidden linear attribute; a few equal pairs and varied weights among the training pairs."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(N, D)).astype(np.float32)
  u = rng.normal(size=D)
  s = x @ u
  a = rng.integers(0, N, P)
  b = (a + 1 + rng.integers(0, N - 1, P)) % N
  label = np.sign(s[a] - s[b]).astype(int)
  label[:6] = 0
  weight = rng.uniform(0.5, 1.5, P)
  weight[6:8] = 0.0
  train = PairSet.create(a, b, label, attribute="open", weight=weight)
  xt = rng.normal(size=(M, D)).astype(np.float32)
  ta = rng.integers(0, M, T)
  tb = (ta + 1 + rng.integers(0, M - 1, T)) % M
  test = PairSet.create(ta, tb, np.sign(xt[ta] @ u - xt[tb] @ u), attribute="open")
  return x, train, xt, test


def _hand_made():
  """Training images and pairs around a test pair m = (0, .2), n = (10, .2)."""
  x = np.array([[0, 0], [10, 0], [0, 1], [10, 1.5], [5, 5], [10, 0.1], [0, 0.1]], np.float32)
  #          p0: A-B   p1: F-G (swapped: F is near n)   p2: C-D   p3: A-E (one member far)
  pairs = PairSet.create([0, 5, 2, 0], [1, 6, 3, 4], [1, 1, -1, 1], attribute="open")
  test = np.array([[0, 0.2], [10, 0.2]], np.float32)
  return x, pairs, test


def test_neighbours_on_a_hand_made_example():
  x, pairs, test = _hand_made()
  nbr = local.analogous_pairs(x, pairs, test, [0], [1], k=4)
  # p1 is the best only because its members are matched in swapped order; p3 has a perfect first
  # member but a far second one, and the product of distances puts it last.
  assert nbr.tolist() == [[1, 0, 2, 3]]
  # The reversed test pair (n, m) has the same neighbours (both orderings are considered).
  assert local.analogous_pairs(x, pairs, test, [1], [0], k=4).tolist() == [[1, 0, 2, 3]]
  # A Mahalanobis map that stretches the 2nd dimension 100× makes p3's far member cheaper than
  # p2's two moderate misses.
  L = np.diag([1.0, 100.0]).astype(np.float32)
  assert local.analogous_pairs(x, pairs, test, [0], [1], k=4, metric=L).tolist() == [[1, 0, 3, 2]]
  assert local.analogous_pairs(x, pairs, test, [0], [1], k=2, metric=np.eye(2)).tolist() == [[1, 0]]


@pytest.mark.slow
def test_local_equals_a_loop_of_single_fits():
  x, train, xt, test = _problem()
  k = 10
  res = local.local_ranksvm(x, train, xt, test.a, test.b, k=k, chunk_size=8)
  assert res.margin.shape == (len(test),) and res.neighbours.shape == (len(test), k)
  d, t, c = (np.asarray(v) for v in ranksvm.pair_differences(x, train))
  a, b = np.asarray(train.a), np.asarray(train.b)
  usable = np.asarray(train.weight) > 0
  for i, (m, n) in enumerate(zip(test.a, test.b)):
    dm, dn = ((x - xt[m]) ** 2).sum(1), ((x - xt[n]) ** 2).sum(1)
    score = np.where(usable, np.minimum(dm[a] * dn[b], dm[b] * dn[a]), np.inf)
    expected = np.argsort(score, kind="stable")[:k]
    assert sorted(res.neighbours[i]) == sorted(expected), i
    w = np.asarray(ranksvm.fit_pairspace(d[expected], t[expected], c[expected]))
    assert res.margin[i] == pytest.approx(w @ (xt[m] - xt[n]), rel=1e-4, abs=1e-5)
  assert set(np.unique(res.prediction)) <= {-1, 1}


@pytest.mark.slow
def test_chunking_and_gram_paths_agree():
  x, train, xt, test = _problem(seed=1)
  one = local.local_ranksvm(x, train, xt, test.a, test.b, k=10, chunk_size=64)
  many = local.local_ranksvm(x, train, xt, test.a, test.b, k=10, chunk_size=8)
  np.testing.assert_array_equal(one.neighbours, many.neighbours)
  np.testing.assert_allclose(one.margin, many.margin, rtol=1e-5, atol=1e-6)
  gathered = local.solve_local(x, train, xt, test.a, test.b, many.neighbours, chunk_size=8,
                               gram_max_pairs=0)
  np.testing.assert_allclose(gathered, many.margin, rtol=1e-4, atol=1e-5)


def test_pools_of_nearby_sizes_share_one_compiled_solver(monkeypatch):
  """Training pairs and test images are padded to fixed sizes: pools of 80 and 90 pairs (and 30
  and 40 test images) reuse one compiled solver, and the margins equal the unpadded solve's."""
  local._compiled.cache_clear()
  margins = []
  for seed, P, M in ((2, 80, 30), (3, 90, 40)):
    x, train, xt, test = _problem(seed=seed, P=P, M=M)
    nbr = local.analogous_pairs(x, train, xt, test.a, test.b, k=10, chunk_size=8)
    margins.append(local.solve_local(x, train, xt, test.a, test.b, nbr, chunk_size=8))
    with monkeypatch.context() as m:
      m.setattr(local, "_bucket", lambda n: n)
      unpadded = local.solve_local(x, train, xt, test.a, test.b, nbr, chunk_size=8)
    np.testing.assert_allclose(margins[-1], unpadded, rtol=1e-5, atol=1e-6)
  solver = local._compiled("solve", None, 3, 7, max_iter=10, use_gram=True)
  assert solver._cache_size() == 1 + 2  # the two padded pools share one; unpadded: one each


@pytest.mark.slow
def test_k_above_the_number_of_pairs_is_the_global_ranksvm():
  x, train, xt, test = _problem(seed=2, P=30)
  res = local.local_ranksvm(x, train, xt, test.a, test.b, k=500, chunk_size=8)
  assert res.neighbours.shape == (len(test), 30)
  assert all(sorted(row) == list(range(30)) for row in res.neighbours.tolist())
  w = np.asarray(ranksvm.fit_ranksvm(*ranksvm.pair_differences(x, train)))
  np.testing.assert_allclose(res.margin, (xt[test.a] - xt[test.b]) @ w, rtol=1e-4, atol=1e-5)


_SHARD_CHECK = """
import numpy as np
from densesynth_jax.rankers import local
from densesynth_jax import mesh as mesh_lib
from tests.test_local import _problem
x, train, xt, test = _problem(seed=3)
one = local.local_ranksvm(x, train, xt, test.a, test.b, k=10, chunk_size=8)
two = local.local_ranksvm(x, train, xt, test.a, test.b, k=10, chunk_size=8,
                          mesh=mesh_lib.make_mesh(2))
np.testing.assert_array_equal(one.neighbours, two.neighbours)
np.testing.assert_allclose(one.margin, two.margin, rtol=1e-5, atol=1e-6)
print("SHARDED_OK")
"""


def test_two_device_sharding_equals_one_device():
  if jax.device_count() >= 2:
    exec(compile(textwrap.dedent(_SHARD_CHECK), "shard_check", "exec"), {})
    return
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
             JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
  out = subprocess.run([sys.executable, "-c", _SHARD_CHECK], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
  assert "SHARDED_OK" in out.stdout, out.stderr[-2000:]


@pytest.mark.slow
def test_select_k_picks_the_best_validated_k():
  x, train, xt, val = _problem(seed=4)
  best, by_k = local.select_k(x, train, xt, val, grid=(5, 10, 500), chunk_size=8)
  assert list(by_k) == [5, 10, 500] and best in by_k
  assert by_k[best] == max(by_k.values())
  res = local.local_ranksvm(x, train, xt, val.a, val.b, k=best, chunk_size=8)
  assert margin_accuracy(res.margin, val) == pytest.approx(by_k[best])
  with pytest.raises(ValueError, match=r"val_pairs\[open\] has no ordered pairs"):
    local.select_k(x, train, xt, PairSet.create([0], [1], [0], attribute="open"))


def test_bad_inputs_name_the_cause():
  x, train, xt, test = _problem()
  with pytest.raises(IndexError, match="test pair 2: test_b=30 out of range for 30 test images"):
    local.local_ranksvm(x, train, xt, [0, 1, 2], [1, 2, 30])
  with pytest.raises(ValueError, match="is empty"):
    local.local_ranksvm(x, train.take(np.zeros(0, int)), xt, [0], [1])
  with pytest.raises(ValueError, match=r"metric must be a \(D, r\)"):
    local.local_ranksvm(x, train, xt, [0], [1], metric=np.eye(3))
  bad = xt.copy()
  bad[4, 1] = np.inf
  with pytest.raises(ValueError, match="test_features is not finite at row 4"):
    local.local_ranksvm(x, train, bad, [0], [1])


def _attribute_in_few_dims(seed=0, N=400, D=30, informative=(0, 1, 2)):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(N, D))
  strength = x[:, list(informative)].sum(1)
  a, b = rng.integers(0, N, 3000), rng.integers(0, N, 3000)
  gap = strength[a] - strength[b]
  label = np.where(np.abs(gap) < 0.3, 0, np.sign(gap)).astype(int)
  keep = a != b
  return x, PairSet.create(a[keep], b[keep], label[keep], attribute="smile"), strength


def test_kissme_is_psd_and_weights_the_attribute_dimensions():
  x, pairs, _ = _attribute_in_few_dims()
  L = metric.kissme(x, pairs, rank=30)   # PCA keeps every dimension: a pure rotation
  assert L.shape[0] == 30 and 1 <= L.shape[1] <= 30 and L.dtype == np.float32
  M = L.astype(np.float64) @ L.T
  assert np.linalg.eigvalsh(M).min() > -1e-6 * np.abs(M).max()
  diag = np.diag(M)
  assert diag[:3].min() > 5 * diag[3:].mean()


def test_kissme_tops_up_similar_pairs_from_strength_gaps():
  x, pairs, strength = _attribute_in_few_dims(seed=1)
  ordered = pairs.ordered()
  with pytest.raises(ValueError, match=r"kissme\[smile\]: only 0 similar"):
    metric.kissme(x, ordered, rank=20)
  L = metric.kissme(x, ordered, rank=30, strengths=strength, min_similar=300)
  diag = np.diag(L.astype(np.float64) @ L.T)
  assert diag[:3].min() > 5 * diag[3:].mean()
