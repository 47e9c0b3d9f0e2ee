"""Speed of FG-LP local learning: the vectorised JAX solver against a per-test-pair scikit-learn loop.

  python benchmarks/bench_local_ranksvm.py                      # the paper-sized default problem
  python benchmarks/bench_local_ranksvm.py --test_pairs=200 --sklearn_pairs=100 --no_write

The problem (synthetic but rankable): ~1,500 training images and 500 test images with 990-d
features (a low-rank correlated part plus noise, standardised with the training statistics), a
hidden linear attribute, 2,000 noisy-labelled ordered training pairs, 1,000 test pairs, K = 100,
C = 0.1. Only ordered pairs are used because LinearSVC has no loss for "equal" pairs.

Both solvers get the SAME neighbours (found once with `local.analogous_pairs`; its time is
reported separately) and minimise the same objective:
  (a) `local.solve_local`: all test pairs vmapped in chunks, pair-space Newton RankSVM, jitted;
      timed after a warm-up call (the compile time is reported separately);
  (b) the classic way: a Python loop over test pairs, each fitting scikit-learn's
      LinearSVC(loss="squared_hinge", fit_intercept=False) on its K symmetrised pair differences
      (each d_i with y = +1 and −d_i with y = −1). LinearSVC minimises ½‖w‖² + C' Σ max(0, 1 − y wᵀx)²
      over the 2K samples, each pair's loss appears twice, so C' = C / 2 is the same objective.
Prints test pairs / second for each, the ratio, both accuracies and their prediction agreement, the
machine, and writes the `## Local RankSVM` section of `benchmarks/RESULTS.md` (replacing an older
one; other sections are kept).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
import warnings

import jax
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from densesynth_jax.metrics import margin_accuracy, rank_accuracy
from densesynth_jax.rankers import local, ranksvm
from densesynth_jax.types import PairSet

from _common import RESULTS, cpu_description, write_section

SECTION = "## Local RankSVM"


def make_problem(num_train_images: int, num_test_images: int, dim: int, train_pairs: int,
                 test_pairs: int, label_noise: float, seed: int):
  """Standardised features and PairSets of a hidden linear attribute (numpy, seeded)."""
  rng = np.random.default_rng(seed)
  n = num_train_images + num_test_images
  latent = rng.normal(size=(n, 32))
  x = latent @ rng.normal(size=(32, dim)) / np.sqrt(32) + rng.normal(size=(n, dim))
  strength = x @ rng.normal(size=dim) / np.sqrt(dim)
  train_x, test_x = x[:num_train_images], x[num_train_images:]
  mu, sd = train_x.mean(0), train_x.std(0)
  train_x = ((train_x - mu) / sd).astype(np.float32)
  test_x = ((test_x - mu) / sd).astype(np.float32)

  def pairs(count, lo, hi, noise):
    a = rng.integers(lo, hi, 2 * count)
    b = rng.integers(lo, hi, 2 * count)
    noisy = strength + noise * strength.std() * rng.normal(size=n)
    keep = np.flatnonzero((a != b) & (noisy[a] != noisy[b]))[:count]
    a, b = a[keep], b[keep]
    return PairSet.create(a - lo, b - lo, np.sign(noisy[a] - noisy[b]), attribute="synthetic")

  return (train_x, pairs(train_pairs, 0, num_train_images, label_noise), test_x,
          pairs(test_pairs, num_train_images, n, 0.0))


def sklearn_loop(diffs, test_diff, neighbours, C):
  """Margins (T,) from one LinearSVC per test pair on its K symmetrised differences, and the
  number of fits that stopped at liblinear's iteration limit (default settings otherwise)."""
  margins = np.empty(len(neighbours), np.float64)
  unconverged = 0
  for i, nbr in enumerate(neighbours):
    d = diffs[nbr]
    svc = LinearSVC(loss="squared_hinge", fit_intercept=False, C=C / 2)
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always", ConvergenceWarning)
      svc.fit(np.concatenate([d, -d]), np.concatenate([np.ones(len(d)), -np.ones(len(d))]))
    unconverged += any(issubclass(w.category, ConvergenceWarning) for w in caught)
    margins[i] = svc.coef_.ravel() @ test_diff[i]
  return margins, unconverged


def _machine() -> str:
  return (f"{cpu_description()}; jax {jax.__version__}, backend `{jax.default_backend()}`, "
          f"devices {[d.device_kind for d in jax.devices()]}")


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--train_images", type=int, default=1500)
  p.add_argument("--test_images", type=int, default=500)
  p.add_argument("--dim", type=int, default=990)
  p.add_argument("--train_pairs", type=int, default=2000)
  p.add_argument("--test_pairs", type=int, default=1000)
  p.add_argument("--k", type=int, default=100)
  p.add_argument("--C", type=float, default=0.1)
  p.add_argument("--max_iter", type=int, default=10)
  p.add_argument("--chunk_size", type=int, default=256)
  p.add_argument("--label_noise", type=float, default=0.3,
                 help="std of the noise added to strengths before labelling training pairs")
  p.add_argument("--repeats", type=int, default=3, help="timed runs of the JAX solver")
  p.add_argument("--sklearn_pairs", type=int, default=0,
                 help="test pairs for the scikit-learn loop (0 = all); its rate is per pair")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--no_write", action="store_true", help="do not touch benchmarks/RESULTS.md")
  args = p.parse_args()

  print(f"[machine] {_machine()}", flush=True)
  train_x, train_pairs, test_x, test_pairs = make_problem(
      args.train_images, args.test_images, args.dim, args.train_pairs, args.test_pairs,
      args.label_noise, args.seed)
  T = len(test_pairs)
  print(f"[problem] {len(train_x)} training images, {len(train_pairs)} training pairs, "
        f"{len(test_x)} test images, {T} test pairs, D = {args.dim}, K = {args.k}, C = {args.C}",
        flush=True)

  t0 = time.perf_counter()
  nbr = local.analogous_pairs(train_x, train_pairs, test_x, test_pairs.a, test_pairs.b, k=args.k,
                              chunk_size=args.chunk_size)
  t_nbr_first = time.perf_counter() - t0
  t0 = time.perf_counter()
  nbr = local.analogous_pairs(train_x, train_pairs, test_x, test_pairs.a, test_pairs.b, k=args.k,
                              chunk_size=args.chunk_size)
  t_nbr = time.perf_counter() - t0
  print(f"[neighbours] {t_nbr:.2f} s ({T / t_nbr:.0f} test pairs/s; first call incl. compile "
        f"{t_nbr_first:.2f} s)", flush=True)

  solve = lambda: local.solve_local(train_x, train_pairs, test_x, test_pairs.a, test_pairs.b, nbr,
                                    C=args.C, max_iter=args.max_iter, chunk_size=args.chunk_size)
  t0 = time.perf_counter()
  margin_jax = solve()
  t_first = time.perf_counter() - t0
  times = []
  for _ in range(args.repeats):
    t0 = time.perf_counter()
    margin_jax = solve()
    times.append(time.perf_counter() - t0)
  t_jax = min(times)
  compile_s = max(t_first - statistics.median(times), 0.0)
  rate_jax = T / t_jax
  print(f"[jax] {t_jax:.3f} s best of {args.repeats} (median {statistics.median(times):.3f} s): "
        f"{rate_jax:.0f} test pairs/s; compile ≈ {compile_s:.1f} s", flush=True)

  n_sk = T if args.sklearn_pairs <= 0 else min(args.sklearn_pairs, T)
  diffs = np.asarray(ranksvm.pair_differences(train_x, train_pairs)[0], np.float64)
  test_diff = (test_x[test_pairs.a] - test_x[test_pairs.b]).astype(np.float64)
  t0 = time.perf_counter()
  margin_sk, unconverged = sklearn_loop(diffs, test_diff[:n_sk], nbr[:n_sk], args.C)
  t_sk = time.perf_counter() - t0
  rate_sk = n_sk / t_sk
  print(f"[sklearn] {t_sk:.2f} s for {n_sk} test pairs: {rate_sk:.1f} test pairs/s "
        f"({unconverged} fits hit liblinear's 1000-iteration limit)", flush=True)

  # Context: one global RankSVM on all training pairs (RelAttr), same C.
  w = ranksvm.fit_ranksvm(*ranksvm.pair_differences(train_x, train_pairs), C=args.C,
                          max_iter=args.max_iter)
  acc_global = rank_accuracy(np.asarray(ranksvm.scores(w, test_x)), test_pairs)

  sub = test_pairs.take(np.arange(n_sk))
  acc_jax_all = margin_accuracy(margin_jax, test_pairs)
  acc_jax = margin_accuracy(margin_jax[:n_sk], sub)
  acc_sk = margin_accuracy(margin_sk, sub)
  agree = float(np.mean(np.sign(margin_jax[:n_sk]) == np.sign(margin_sk)))
  ratio = rate_jax / rate_sk
  print(f"[accuracy] jax {100 * acc_jax:.2f}%  sklearn {100 * acc_sk:.2f}%  (on the same {n_sk} "
        f"pairs; jax on all {T}: {100 * acc_jax_all:.2f}%); predictions agree on "
        f"{100 * agree:.2f}%; global RankSVM on all {T}: {100 * acc_global:.2f}%", flush=True)
  print(f"[speed] jax / sklearn = {ratio:.1f}x", flush=True)
  if abs(acc_jax - acc_sk) > 0.005:
    print("[warning] accuracies differ by more than 0.5 points", flush=True)

  cmd = "python benchmarks/bench_local_ranksvm.py" + "".join(
      f" --{k}={v}" for k, v in vars(args).items()
      if v != p.get_default(k) and k != "no_write")
  section = f"""{SECTION}

`{cmd}` ({datetime.date.today().isoformat()}). {len(train_x)} training images, {len(train_pairs)}
ordered training pairs, {T} test pairs, {args.dim}-d standardised synthetic features (hidden linear
attribute), K = {args.k}, C = {args.C}, ≤ {args.max_iter} Newton steps, chunk {args.chunk_size}.
Machine: {_machine()}.
The machine is shared with other jobs, so rates vary by roughly ±20%.
Both solvers get the same neighbours; scikit-learn's LinearSVC (squared hinge, no intercept,
C' = C/2 on symmetrised differences, default tol 1e-4, single-threaded liblinear) is fitted once per
test pair in a Python loop; the JAX solver uses every core.

| solver | test pairs/s | accuracy (%) | notes |
|---|---:|---:|---|
| JAX `local.solve_local` (vmapped pair-space Newton) | {rate_jax:.0f} | {100 * acc_jax:.2f} | best of {args.repeats}; compile ≈ {compile_s:.1f} s |
| scikit-learn LinearSVC loop | {rate_sk:.1f} | {100 * acc_sk:.2f} | {n_sk} test pairs; {unconverged} fits hit the iteration limit |
| **ratio** | **{ratio:.1f}×** | | predictions agree on {100 * agree:.2f}% |

Accuracies are on the same {n_sk} test pairs (JAX on all {T}: {100 * acc_jax_all:.2f}%; one global
RankSVM on all training pairs: {100 * acc_global:.2f}%: on this synthetic, globally linear attribute
local learning has nothing to gain, the point here is speed at equal answers).
Neighbour search (`local.analogous_pairs`, shared by both, not in the rates above):
{T / t_nbr:.0f} test pairs/s ({t_nbr:.2f} s; first call incl. compile {t_nbr_first:.2f} s).
"""
  if not args.no_write:
    write_section(section)
    print(f"[written] {RESULTS} ({SECTION})", flush=True)


if __name__ == "__main__":
  main()
