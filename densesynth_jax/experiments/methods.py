"""Methods -> training pools. Every method starts from the SAME real labelled pairs.

A `Pool` is the ImageSet a ranker trains on plus the PairSet indexing into it. The pool's images
always begin with ALL of the domain's images, in order, so that the domain's val / test PairSets
index the pool too; whatever a method adds (synthetic or jittered images) is appended after them.
Pools refer to images by index: a method never copies the real images per pair.

Budgeted methods (active verification, synth/active.py) carry their human budget B (synthetic
pairs sent to verification) and scorer in their name, so that every budget is a method of its own
row, cell and cache:
- `dsynth_active[_SCORER][@B]`: DSynth-Auto's pool whose B most questionable synthetic pairs
  (by SCORER: `real_margin`, `measure`, or `real_margin2`, two rounds) take their verified
  outcome;
- `dsynth_random[@B]`: the same with B pairs verified at random (the equal-budget baseline).
Without `@B` the budget is `active.budget`, without a scorer `active.scorer` (the `active` block,
`active_config`). `dsynth_active@0` is DSynth-Auto's pool exactly; at B ≥ n (the n synthetic
pairs DSynth-Auto draws) every one of them is verified.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import jax
import ml_collections
import numpy as np

from densesynth_jax.data import lowjitter
from densesynth_jax.rankers import ranksvm
from densesynth_jax.rankers.base import FitContext
from densesynth_jax.synth import active
from densesynth_jax.types import (SOURCE_CODE, Domain, ImageSet, PairSet, Pool, concat_images,
                                  concat_pairs)


class Assets:
  """What methods beyond Real need, computed lazily by the runner (experiments/assets.py).

  prelabel(attribute) -> (N_domain,) classifier strengths of the domain's images;
  synth(attribute) -> SynthSet; verified(attribute) -> verified PairSet into the synth images.
  """

  def prelabel(self, attribute: str) -> np.ndarray:
    raise NotImplementedError("this run has no pre-label classifier")

  def synth(self, attribute: str):
    raise NotImplementedError("this run has no generator / synthetic pairs")

  def verified(self, attribute: str) -> PairSet:
    raise NotImplementedError("this run has no verified synthetic pairs")

  def synth_oracle(self, attribute: str):
    raise NotImplementedError("this run has no oracle generator (sprites only)")

  def verification(self, attribute: str):
    """The vote (synth.verify.Verification) on every pair of `synth(attribute)`."""
    raise NotImplementedError("this run has no verification of its synthetic pairs")

  def measurement(self, attribute: str, feature: str) -> np.ndarray:
    """The independent measurement (features/measure.py on `feature`) of the synthetic images."""
    raise NotImplementedError("this run has no measurement of its synthetic images")

  def pool_features(self, pool: Pool) -> Callable[[str], np.ndarray]:
    """feature name -> features of every image of `pool`."""
    raise NotImplementedError("this run has no features")


def _pool(domain: Domain, pairs: PairSet, extra: ImageSet | None = None, **info) -> Pool:
  images = domain.images
  if extra is not None and len(extra):
    images, _ = concat_images([domain.images, extra])
  counts = pairs.source_counts()
  return Pool(images, pairs, len(domain.images),
              dict(num_pairs=len(pairs), pairs_by_source={k: v for k, v in counts.items() if v},
                   num_added_images=len(images) - len(domain.images), **info))


def real_pairs(domain: Domain, attribute: str) -> PairSet:
  """The real labelled training pairs of `attribute`; a clear error when there are none."""
  if attribute not in domain.pairs:
    raise KeyError(f"domain {domain.name} has no pairs for attribute {attribute!r}; it has "
                   f"{sorted(domain.pairs)}")
  if "train" not in domain.pairs[attribute]:
    raise KeyError(f"domain {domain.name} has no train pairs for {attribute!r}")
  pairs = domain.pairs[attribute]["train"]
  if len(pairs) == 0:
    raise ValueError(f"domain {domain.name}: the train pair set of {attribute!r} is empty")
  return pairs


def pool_real(domain: Domain, attribute: str, cfg: ml_collections.ConfigDict,
              rng: np.random.Generator, assets: "Assets") -> Pool:
  """Real: the real labelled pairs only."""
  del cfg, rng, assets
  return _pool(domain, real_pairs(domain, attribute))


def pool_real_plus(domain, attribute, cfg, rng, assets) -> Pool:
  """Real+: Real plus as many pseudo pairs, ordered by the pre-label strengths of real images.

  Pseudo pairs join random pairs of the domain's TRAIN images (the generator's training images),
  labelled by the order of their classifier strengths; exact ties are skipped.
  """
  real = real_pairs(domain, attribute)
  strength = assets.prelabel(attribute)
  train = np.asarray(domain.splits["train"])
  n = len(real)
  a = train[rng.integers(0, len(train), 3 * n)]
  b = train[rng.integers(0, len(train), 3 * n)]
  label = np.sign(strength[a] - strength[b]).astype(np.int8)
  keep = np.flatnonzero((a != b) & (label != 0))[:n]
  pseudo = PairSet.create(a[keep], b[keep], label[keep], attribute=attribute, source="pseudo")
  return _pool(domain, concat_pairs([real, pseudo]))


def pool_jitter(domain, attribute, cfg, rng, assets) -> Pool:
  """Jitter: Real plus low-level jittered copies of every real pair (labels inherited)."""
  del assets
  real = real_pairs(domain, attribute)
  jcfg = cfg.pools.jitter
  members = np.unique(np.concatenate([real.a, real.b]))
  extra, pairs = [], [real]
  for copy in range(jcfg.copies):
    key = jax.random.PRNGKey(int(rng.integers(2**31)))
    images = lowjitter.jitter_images(domain.images.images[members], key, jcfg)
    # Image members[i] of the domain has its copy at len(domain) + copy * len(members) + i.
    where = np.full(len(domain.images), -1, np.int64)
    where[members] = len(domain.images) + copy * len(members) + np.arange(len(members))
    pairs.append(PairSet(where[real.a].astype(np.int32), where[real.b].astype(np.int32),
                         real.label, real.weight, np.full(len(real), SOURCE_CODE["jitter"], np.int8),
                         attribute))
    extra.append(domain.images.take(members).replace_images(images))
  added, _ = concat_images(extra)
  return _pool(domain, concat_pairs(pairs), added)


def _draw(pairs: PairSet, n: int, rng, what: str) -> np.ndarray:
  """Ids (sorted) of n random pairs of a synthetic PairSet."""
  if len(pairs) == 0:
    raise ValueError(f"no {what} for {pairs.attribute!r}")
  return np.sort(rng.permutation(len(pairs))[:n])


def _synth_pairs(pairs: PairSet, offset: int, n: int, rng, what: str) -> PairSet:
  """n random pairs of a synthetic PairSet (kept in order), indices shifted by `offset`."""
  return pairs.take(_draw(pairs, n, rng, what)).offset(offset)


def pool_dsynth(domain, attribute, cfg, rng, assets) -> Pool:
  """DSynth: a random half of Real's pairs; the other half replaced by verified synthetic pairs."""
  real = real_pairs(domain, attribute)
  n_keep = int(round(len(real) * cfg.pools.dsynth_real_fraction))
  kept = real.take(np.sort(rng.permutation(len(real))[:n_keep]))
  synth = _synth_pairs(assets.verified(attribute), len(domain.images), len(real) - n_keep, rng,
                       "verified synthetic pairs")
  return _pool(domain, concat_pairs([kept, synth]), assets.synth(attribute).images,
               synth_available=len(assets.verified(attribute)))


def _num_synth(cfg, real: PairSet) -> int:
  """DSynth-Auto's number of synthetic pairs: `pools.num_synth_pairs`, or `synth_ratio` × real."""
  p = cfg.pools
  return p.num_synth_pairs if p.num_synth_pairs > 0 else int(round(p.synth_ratio * len(real)))


def _auto_pool(domain, attribute, cfg, rng, s) -> Pool:
  """All real pairs plus `pools.num_synth_pairs` (or `synth_ratio` × real) pairs of SynthSet s."""
  real = real_pairs(domain, attribute)
  synth = _synth_pairs(s.pairs, len(domain.images), _num_synth(cfg, real), rng,
                       "synthetic pairs")
  return _pool(domain, concat_pairs([real, synth]), s.images, synth_available=len(s.pairs))


def pool_dsynth_auto(domain, attribute, cfg, rng, assets) -> Pool:
  """DSynth-Auto: all real pairs plus auto-labelled synthetic pairs.

  The number of synthetic pairs is `pools.num_synth_pairs` when positive, else
  `pools.synth_ratio` × the number of real pairs (capped by what was synthesised).
  """
  return _auto_pool(domain, attribute, cfg, rng, assets.synth(attribute))


def pool_dsynth_auto_oracle(domain, attribute, cfg, rng, assets) -> Pool:
  """DSynth-Auto with the sprites ORACLE generator (synth/oracle.py): the perfect-generator
  reference for the learned generator's DSynth-Auto row (same prior, δ, pairs and pool size)."""
  return _auto_pool(domain, attribute, cfg, rng, assets.synth_oracle(attribute))


def _ranker_margins(domain, attribute, cfg, assets, s, train: PairSet, pairs: PairSet
                    ) -> np.ndarray:
  """Margins on synthetic `pairs` (indices into s's images) of a global RankSVM (the `ranksvm`
  block) trained on `train` (pairs into the domain's images followed by s's)."""
  pool = _pool(domain, train, s.images)
  # The global RankSVM reads only the config, the pool and its features.
  ctx = FitContext(cfg, domain, pool, attribute, 0, "real", Path("."),
                   assets.pool_features(pool), assets.prelabel)
  return ranksvm.fit(ctx).compare(pairs.a + len(domain.images), pairs.b + len(domain.images))


def real_margin_scores(domain, attribute, cfg, assets, s, candidates: PairSet) -> np.ndarray:
  """`real_margin` (synth/active.py): a global RankSVM (the `ranksvm` block) trained on the
  replicate's real pairs, its margin on each candidate against the candidate's auto label."""
  margin = _ranker_margins(domain, attribute, cfg, assets, s, real_pairs(domain, attribute),
                           candidates)
  return active.questionable(candidates.label, margin)


def real_margin_two_rounds(domain, attribute, cfg, assets, s, candidates: PairSet,
                           ids: np.ndarray, budget: int) -> np.ndarray:
  """`real_margin2` (synth/active.py): half the budget (rounded up) to the top by `real_margin`;
  then the RankSVM retrained on that round's mixed pool (the real pairs and every candidate,
  the verified ones with their outcome) rescores the candidates not sent yet, and the rest of
  the budget goes to its top. Positions into the candidates."""
  first = active.select_top(real_margin_scores(domain, attribute, cfg, assets, s, candidates),
                            (budget + 1) // 2)
  rest = np.setdiff1d(np.arange(len(candidates)), first)
  if not len(rest) or budget == len(first):
    return first
  mixed, _ = active.mix(candidates, ids, first, assets.verification(attribute))
  train = concat_pairs([real_pairs(domain, attribute), mixed.offset(len(domain.images))])
  left = candidates.take(rest)
  margin = _ranker_margins(domain, attribute, cfg, assets, s, train, left)
  second = rest[active.select_top(active.questionable(left.label, margin), budget - len(first))]
  return np.sort(np.concatenate([first, second]))


def measure_scores(domain, attribute, cfg, assets, s, candidates: PairSet) -> np.ndarray:
  """`measure` (synth/active.py): the independent measurement of the rendered pair against its
  auto label (`active.measure_feature`)."""
  del domain
  measured = assets.measurement(attribute, active.measure_feature(cfg))
  return active.questionable(candidates.label, active.measure_margins(measured, candidates))


SCORE_FNS = {"real_margin": real_margin_scores, "measure": measure_scores}


def pool_dsynth_verified(domain, attribute, cfg, rng, assets, budget: int,
                         scorer: str | None) -> Pool:
  """`dsynth_active` / `dsynth_random`: DSynth-Auto's pool (same draw) with `budget` of its
  synthetic pairs verified by people: the top by `scorer`, or uniformly at random when `scorer`
  is None (a stream of its own, the same for every budget). See synth/active.py."""
  s = assets.synth(attribute)
  real = real_pairs(domain, attribute)
  ids = _draw(s.pairs, _num_synth(cfg, real), rng, "synthetic pairs")  # DSynth-Auto's draw
  candidates = s.pairs.take(ids)
  pick_rng = np.random.default_rng(rng.integers(2**62))
  if budget == 0:
    chosen = np.zeros(0, np.int64)
  elif scorer is None:
    chosen = active.select_random(len(ids), budget, pick_rng)
  elif scorer == "real_margin2":
    chosen = real_margin_two_rounds(domain, attribute, cfg, assets, s, candidates, ids, budget)
  else:
    chosen = active.select_top(SCORE_FNS[scorer](domain, attribute, cfg, assets, s, candidates),
                               budget)
  v = assets.verification(attribute) if len(chosen) else None
  mixed, facts = active.mix(candidates, ids, chosen, v, where=f"{attribute}: ")
  return _pool(domain, concat_pairs([real, mixed.offset(len(domain.images))]), s.images,
               synth_available=len(s.pairs), candidates=len(ids), budget=int(budget),
               scorer=scorer or "random", **facts)


# name -> builder(domain, attribute, cfg, rng, assets) -> Pool.
METHODS: dict[str, Callable[..., Pool]] = {
    "real": pool_real,
    "real_plus": pool_real_plus,
    "jitter": pool_jitter,
    "dsynth": pool_dsynth,
    "dsynth_auto": pool_dsynth_auto,
    "dsynth_auto_oracle": pool_dsynth_auto_oracle,
    # Budgeted (`parse_method`): dsynth_active_SCORER@B, dsynth_random@B; build_pool passes
    # the budget and scorer (None: random).
    "dsynth_active": pool_dsynth_verified,
    "dsynth_random": pool_dsynth_verified,
    # Classifier: scores come from the pre-label classifier trained on the generator's images;
    # its "pool" is the real pairs only for bookkeeping (runner.classifier ignores it).
    "classifier": pool_real,
}
NEEDS_SYNTH = ("dsynth", "dsynth_auto", "dsynth_auto_oracle")
# Rows shown as references, not contenders: reference method -> the method it is the ceiling of.
REFERENCE_METHODS = {"dsynth_auto_oracle": "dsynth_auto"}

# The config blocks each method's pool depends on beyond the common ones (the runner's cell
# fingerprint covers them): the generator and semantic jitter, and DSynth's verification (the
# pre-label classifier of Real+ and Classifier follows the domain's block, common to all).
_SYNTH = ("generator", "synth")
METHOD_BLOCKS = {"real": (), "real_plus": (), "jitter": (),
                 "dsynth": (*_SYNTH, "verification"), "dsynth_auto": _SYNTH,
                 "dsynth_auto_oracle": _SYNTH, "classifier": (),
                 # Active verification: the outcome, its defaults, and real_margin's RankSVM.
                 "dsynth_active": (*_SYNTH, "verification", "active", "ranksvm"),
                 "dsynth_random": (*_SYNTH, "verification", "active")}
BUDGETED = ("dsynth_active", "dsynth_random")  # methods with a human budget (`parse_method`)
# Budgeted pools draw their candidates with DSynth-Auto's rng, so budget 0 is its pool.
_CANDIDATES_OF = "dsynth_auto"


@dataclasses.dataclass(frozen=True)
class MethodSpec:
  """A method name, parsed: its builder in METHODS (`base`), and for budgeted methods the budget
  and scorer its name gives (None: the `active` block's)."""
  name: str
  base: str
  budget: int | None = None
  scorer: str | None = None


def _method_help() -> str:
  return (f"valid: {sorted(METHODS)}, or dsynth_active_SCORER@B / dsynth_random@B (SCORER in "
          f"{list(active.SCORERS)}, B >= 0 synthetic pairs sent to verification)")


def _budgeted_base(name: str) -> str | None:
  """The budgeted method a name starts like (`dsynth_active_x@y` -> dsynth_active), else None."""
  head = str(name).partition("@")[0]
  return next((b for b in BUDGETED if head == b or head.startswith(b + "_")), None)


def parse_method(name: str) -> MethodSpec:
  """`dsynth_active_measure@100` -> MethodSpec(base="dsynth_active", budget=100,
  scorer="measure"); a one-line ValueError for an unknown or malformed name."""
  if name in METHODS:
    return MethodSpec(name, name)
  head, at, budget = str(name).partition("@")
  base = _budgeted_base(name)
  if base is None:
    raise ValueError(f"unknown method {name!r}; {_method_help()}")
  scorer = head[len(base) + 1:] or None
  if scorer is not None:
    if base != "dsynth_active":
      raise ValueError(f"method {name!r}: {base} draws at random and takes no scorer; "
                       f"{_method_help()}")
    if scorer not in active.SCORERS:
      raise ValueError(f"method {name!r}: unknown scorer {scorer!r}; valid: "
                       f"{list(active.SCORERS)}")
  if at and not (budget.isascii() and budget.isdigit()):
    raise ValueError(f"method {name!r}: the budget after '@' must be a non-negative integer "
                     f"(synthetic pairs sent to verification), got {budget!r}")
  return MethodSpec(name, base, int(budget) if at else None, scorer)


def method_blocks(method: str) -> tuple[str, ...]:
  """The config blocks a method's pool depends on beyond the common ones (its base's)."""
  return METHOD_BLOCKS.get(parse_method(method).base, ())


def check_methods(methods, cfg: ml_collections.ConfigDict) -> None:
  """Every name parses, and where a budgeted method takes a default from the `active` block,
  that block is valid: one-line ValueErrors, before any cell runs."""
  unknown = [m for m in methods if m not in METHODS and _budgeted_base(m) is None]
  if unknown:
    raise ValueError(f"unknown methods {unknown}; {_method_help()}")
  specs = [parse_method(m) for m in methods]
  if any(s.base in BUDGETED for s in specs):
    if "active" not in cfg:
      raise ValueError("budgeted methods need the config's `active` block "
                       "(methods.active_config())")
    active.check_budget(cfg.active.budget, "active.budget")
    active.check_scorer(cfg.active.scorer, where="active.scorer")


def is_budgeted(method: str) -> bool:
  return parse_method(method).base in BUDGETED


def resolve_budget(method: str, cfg: ml_collections.ConfigDict) -> tuple[int, str | None]:
  """(budget, scorer) of a budgeted method, defaults from the `active` block; scorer None for
  random verification."""
  spec = parse_method(method)
  if spec.base not in BUDGETED:
    raise ValueError(f"method {method!r} has no human budget")
  budget = cfg.active.budget if spec.budget is None else spec.budget
  if spec.base == "dsynth_random":
    return budget, None
  return budget, cfg.active.scorer if spec.scorer is None else spec.scorer


def build_pool(method: str, domain: Domain, attribute: str, cfg: ml_collections.ConfigDict,
               seed: int, assets: "Assets") -> Pool:
  spec = parse_method(method)
  rng_name = _CANDIDATES_OF if spec.base in BUDGETED else method
  rng = np.random.default_rng([seed, sum(map(ord, rng_name)), sum(map(ord, attribute))])
  if spec.base not in BUDGETED:
    return METHODS[method](domain, attribute, cfg, rng, assets)
  budget, scorer = resolve_budget(method, cfg)
  return METHODS[spec.base](domain, attribute, cfg, rng, assets, budget=budget, scorer=scorer)


def default_config() -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict()
  cfg.synth_ratio = 1.0  # DSynth-Auto: synthetic pairs per real pair (when num_synth_pairs <= 0)
  cfg.num_synth_pairs = 0  # DSynth-Auto: absolute number of synthetic pairs (0: use the ratio)
  cfg.dsynth_real_fraction = 0.5  # DSynth: share of Real's pairs kept (the rest replaced)
  cfg.jitter = lowjitter.default_config()  # Jitter: low-level alterations (data/lowjitter.py)
  return cfg


def active_config() -> ml_collections.ConfigDict:
  """The `active` block: defaults of active verification (synth/active.py)."""
  cfg = ml_collections.ConfigDict()
  cfg.budget = 100  # synthetic pairs sent to verification by `dsynth_active` / `dsynth_random`
  #                   (a method name's `@B` overrides it)
  cfg.scorer = "real_margin"  # `dsynth_active`'s scorer: "real_margin", "measure" or
  #                             "real_margin2" (two rounds); a name's `_SCORER` overrides it
  cfg.measure_feature = ""  # features of the `measure` scorer's measurement ("" = the
  #                           verification's `measure_feature`, what the simulated crowd sees)
  return cfg
