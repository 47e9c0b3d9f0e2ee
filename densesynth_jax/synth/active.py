"""Active verification: people verify only the most questionable synthetic pairs.

The paper's two variants are extremes: DSynth has every synthetic pair verified by 5 people,
DSynth-Auto none. Its conclusion proposes to "minimize the effort to only the most questionable
synthetic pairs, in order to augment the real pairs with a mix of automatically generated and
human generated comparisons". This module is that selection and that mix; the pools that use it
are `dsynth_active` and `dsynth_random` (experiments/methods.py), and the export for people is
`python -m densesynth_jax.synth.verify export --select=active` (synth/verify.py).

A candidate set of n synthetic pairs (in a run: exactly the n pairs DSynth-Auto draws) gets a
*questionable* score per pair; the top B (the human budget) are verified. A verified pair takes
its verified label (weighted by the crowd's agreement, as DSynth's pairs are); a pair people
reject (no clear majority, "can't tell", low agreement) is dropped; every other candidate keeps
its auto label (`mix`). B = 0 is DSynth-Auto's pool, B ≥ n is DSynth-Auto's pairs all verified.

Scorers. Each is −auto_label · margin, where the margin is independent evidence of s(a) − s(b):
a pair scores HIGH when the evidence orders it against its auto label (most confidently first),
then come the pairs the evidence barely separates (near 0), last those it confidently agrees
with. Ranking by this signed disagreement, not by |margin|, puts likely label flips before
likely "can't tell" pairs.

- `real_margin`: the margin of a global RankSVM (RelAttr, `rankers/ranksvm.py`, the run's
  `ranksvm` feature and C) trained on the replicate's REAL pairs only: where a ranker of the real
  supervision disagrees with the generator. It exists only inside a run (it needs the replicate's
  real pairs); the export for people refuses it.
- `measure`: measured(a) − measured(b) on the rendered images, by the independent measurement
  (`features/measure.py`: a linear model of the attribute fitted on REAL images), in units of its
  std over the synthetic images: the generator's own evidence of how much the rendered pair
  differs along the attribute. Its features are `active.measure_feature` ("" = the
  verification's `measure_feature`). CAUTION on sprites: the simulated crowd perceives the
  `verification.measure_feature` measurement plus noise (synth/pipeline.py), so a `measure`
  scorer on the SAME features sees what the simulated crowd sees; the `:active` demo measures
  with other features for that reason.

- `real_margin2`, two rounds: half the budget to the top by `real_margin`; then the RankSVM is
  retrained on that round's mixed pool (real pairs plus every candidate, the verified ones with
  their outcome), rescores the candidates not sent yet, and the other half goes to its top. Like
  `real_margin` it exists only inside a run.

Random, the baseline: B candidates drawn uniformly from a stream that does not depend on B, so
random(B1) ⊂ random(B2).

Ties: the top B by score, equal scores in candidate order (the earlier candidate first); a
non-finite score is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import ml_collections
import numpy as np

from densesynth_jax import io
from densesynth_jax.data.registry import load_domain, resize_domain
from densesynth_jax.features import extract, measure
from densesynth_jax.types import PairSet

SCORERS = ("real_margin", "measure", "real_margin2")
EXPORT_SCORERS = ("measure",)  # what `verify export --select=active` can score outside a run
SELECTIONS = ("all", "active", "random")  # what `verify export --select` offers


def check_budget(budget, where: str = "budget") -> int:
  """`budget` as an int ≥ 0 (pairs sent to verification), else a one-line ValueError."""
  if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 0:
    raise ValueError(f"{where} must be a non-negative integer (synthetic pairs sent to "
                     f"verification), got {budget!r}")
  return int(budget)


def check_scorer(scorer: str, valid=SCORERS, where: str = "scorer") -> str:
  if scorer not in valid:
    raise ValueError(f"unknown {where} {scorer!r}; valid: {list(valid)}")
  return scorer


def questionable(auto_label: np.ndarray, margin: np.ndarray) -> np.ndarray:
  """Scores (float64, higher = more questionable): −auto_label · margin."""
  label = np.asarray(auto_label, np.float64)
  margin = np.asarray(margin, np.float64)
  if label.shape != margin.shape:
    raise ValueError(f"{len(label)} auto labels but {len(margin)} margins")
  return -label * margin


def select_top(scores: np.ndarray, budget: int) -> np.ndarray:
  """Positions (sorted) of the `budget` highest scores; equal scores: the lower position first."""
  budget = check_budget(budget)
  scores = np.asarray(scores, np.float64)
  bad = np.flatnonzero(~np.isfinite(scores))
  if bad.size:
    raise ValueError(f"questionable score of candidate {int(bad[0])} is not finite")
  order = np.argsort(-scores, kind="stable")
  return np.sort(order[:budget])


def select_random(n: int, budget: int, rng: np.random.Generator) -> np.ndarray:
  """Positions (sorted) of `budget` of n candidates, uniformly: the first of one permutation, so
  the same rng gives nested selections for growing budgets."""
  return np.sort(rng.permutation(int(n))[:check_budget(budget)])


def measure_margins(measured: np.ndarray, pairs: PairSet) -> np.ndarray:
  """measured[a] − measured[b] of every pair, in units of the measurement's std (over all the
  images it was given)."""
  measured = np.asarray(measured, np.float64)
  spread = float(np.std(measured)) or 1.0
  return (measured[pairs.a] - measured[pairs.b]) / spread


def mix(candidates: PairSet, pair_ids: np.ndarray, selected: np.ndarray, verification,
        where: str = "") -> tuple[PairSet, dict]:
  """The candidates with the verification's outcome on the `selected` positions.

  Args:
    candidates: n synthetic pairs, auto-labelled.
    pair_ids: (n,) each candidate's pair id in the synthetic set that `verification` covers.
    selected: positions into the candidates that were sent to verification.
    verification: a `synth.verify.Verification` over the synthetic set (label, agreement,
      num_votes, keep per pair id).
  Returns the mixed pairs, in candidate order: a selected pair that people kept takes its
  verified label with the agreement as weight; a selected pair they rejected is dropped; every
  other pair is as it was. And facts for the pool's info: `verified` (selected), `flipped`,
  `dropped` and, where every candidate has votes (a simulated crowd), `changed_available`: how
  many candidates verification would change at all (flip or drop), the most any selection of
  that size or larger can find.
  """
  pair_ids = np.asarray(pair_ids, np.int64)
  selected = np.unique(np.asarray(selected, np.int64))
  if len(pair_ids) != len(candidates):
    raise ValueError(f"{len(pair_ids)} pair ids for {len(candidates)} candidates")
  if selected.size and (selected[0] < 0 or selected[-1] >= len(candidates)):
    raise IndexError(f"selected position out of range for {len(candidates)} candidates")
  label = candidates.label.copy()
  weight = candidates.weight.copy()
  keep = np.ones(len(candidates), bool)
  facts = dict(verified=int(selected.size), flipped=0, dropped=0)
  if selected.size:
    ids = pair_ids[selected]
    missing = ids[np.asarray(verification.num_votes)[ids] == 0]
    if missing.size:
      raise ValueError(f"{where}{missing.size} of the {ids.size} pairs selected for verification "
                       f"have no votes (first: pair {int(missing[0])}); export them with `verify "
                       f"export --select=...` and import the answers, or use "
                       f"verification.mode=simulated")
    kept = np.asarray(verification.keep)[ids]
    new = np.asarray(verification.label)[ids]
    facts["flipped"] = int(np.sum(kept & (new != label[selected])))
    facts["dropped"] = int(np.sum(~kept))
    label[selected] = np.where(kept, new, label[selected])
    weight[selected] = np.where(kept, np.asarray(verification.agreement)[ids], weight[selected])
    keep[selected] = kept
  votes = np.asarray(verification.num_votes)[pair_ids] if verification is not None else None
  if votes is not None and np.all(votes > 0):
    changed = ~np.asarray(verification.keep)[pair_ids] | (
        np.asarray(verification.label)[pair_ids] != candidates.label)
    facts["changed_available"] = int(changed.sum())
  out = PairSet(candidates.a, candidates.b, label.astype(np.int8), weight.astype(np.float32),
                candidates.source, candidates.attribute)
  return out.take(np.flatnonzero(keep)), facts


# ------------------------------------------------------------------------------------------------
# Outside a run: the measurement of a finished run, for `verify export --select=active`.

def read_run_config(run: str | Path) -> ml_collections.ConfigDict:
  """The config a run was made with (`<run>/config.json`); a clear error when there is none."""
  path = Path(run) / "config.json"
  if not path.is_file():
    raise FileNotFoundError(f"no config.json in run folder {run} (pass the run with --run=...)")
  return ml_collections.ConfigDict(io.read_json(path))


def measure_feature(config: ml_collections.ConfigDict) -> str:
  """The `measure` scorer's features: `active.measure_feature`, else the verification's."""
  active = config.get("active") or {}
  return active.get("measure_feature") or config.verification.measure_feature


def run_measurement(run: str | Path, attribute: str, images, feature: str | None = None
                    ) -> tuple[np.ndarray, dict]:
  """Measured strengths of `images` (an ImageSet: synthetic images of the run) by the run's
  independent measurement of `attribute` (fitted on the run's domain at its rankers'
  resolution), and the measurement's report."""
  run = Path(run)
  config = read_run_config(run)
  feature = feature or measure_feature(config)
  domain = load_domain(config.data)
  side = io.read_json(run / "images.json")["rank_image_size"] if (
      run / "images.json").exists() else images.image_shape[0]
  domain = resize_domain(domain, int(side))
  feats = extract.FeatureCache(config.features, domain.images, run / "cache" / "features")
  scorer = measure.fit_scorer(domain, attribute, feats.domain_features(feature),
                              feature_name=feature)
  return scorer.score_features(feats.of(feature, images)), scorer.report


def export_selection(s, select: str, budget: int | None, scorer: str, *, run: str | Path,
                     attribute: str, seed: int = 0, feature: str | None = None
                     ) -> tuple[np.ndarray | None, dict]:
  """Which pairs of the synthetic set `s` to export: (pair ids, or None for all; a record of the
  selection for `selection.json`). "active" scores every pair of the set with `scorer`, "random"
  draws uniformly (seed `seed`)."""
  if select not in SELECTIONS:
    raise ValueError(f"unknown --select {select!r}; valid: {list(SELECTIONS)}")
  if select == "all":
    if budget is not None:
      raise ValueError("--budget needs --select=active or --select=random")
    return None, dict(select="all")
  if budget is None:
    raise ValueError(f"--select={select} needs --budget=B (pairs to send to people)")
  budget = check_budget(budget, "--budget")
  if budget == 0:
    raise ValueError("--budget=0 exports nothing: every pair keeps its auto label")
  record = dict(select=select, budget=budget, num_pairs=len(s.pairs))
  if select == "random":
    ids = select_random(len(s.pairs), budget, np.random.default_rng([int(seed), 11]))
    return ids, dict(record, seed=int(seed))
  if scorer not in EXPORT_SCORERS:
    check_scorer(scorer, SCORERS, "--scorer")
    raise ValueError(f"--scorer={scorer} needs the replicate's real pairs, which exist only "
                     f"inside a run; use --scorer=measure")
  measured, report = run_measurement(run, attribute, s.images, feature)
  scores = questionable(s.pairs.label, measure_margins(measured, s.pairs))
  ids = select_top(scores, budget)
  return ids, dict(record, scorer=scorer, measurement=report,
                   scores={str(int(i)): float(scores[i]) for i in ids})


def selected_mask(selections: list[Mapping], num_pairs: int) -> np.ndarray:
  """bool (num_pairs,): the union of the `pair_ids` of export selection records."""
  mask = np.zeros(num_pairs, bool)
  for sel in selections:
    ids = np.asarray(sel.get("pair_ids", ()), np.int64)
    if sel.get("num_pairs") not in (None, num_pairs) or (ids.size and (ids.min() < 0
                                                                         or ids.max() >= num_pairs)):
      raise ValueError(f"a selection of {sel.get('num_pairs')} pairs does not fit this synthetic "
                       f"set of {num_pairs} pairs")
    mask[ids] = True
  return mask


def merged_pairs(s, verification) -> PairSet:
  """Every pair of the synthetic set `s` after a round of (active) verification: the pairs people
  judged (`verification.selected`, or all when None) take their verified label or are dropped;
  the others, and selected pairs nobody answered, keep their auto labels."""
  sent = (np.ones(len(s.pairs), bool) if verification.selected is None
          else np.asarray(verification.selected, bool))
  judged = np.flatnonzero(sent & (np.asarray(verification.num_votes) > 0))
  return mix(s.pairs, np.arange(len(s.pairs)), judged, verification)[0]
