"""Active verification (synth/active.py, methods dsynth_active / dsynth_random): selection, the
mix of verified and auto labels, the pools at budget 0 and at full budget, method names, and the
export of a selection for people through import."""

import csv

import ml_collections
import numpy as np
import pytest

from densesynth_jax import io
from densesynth_jax.experiments import methods
from densesynth_jax.features import extract
from densesynth_jax.synth import active, jitter, store, verify
from densesynth_jax.synth import prior as prior_lib
from tests.test_methods import _domain  # 40 8×8 images, ~23 real train pairs

def _synth_set(num_identities=30, num_pairs=60) -> jitter.SynthSet:
  p = prior_lib.fit_prior(np.random.default_rng(0).normal(size=(50, 1)), ("smiling",), 2)
  cfg = jitter.default_config()
  cfg.update(dict(num_identities=num_identities, num_pairs=num_pairs, chunk_identities=30))

  def render(y, z):  # brightness follows the strength, z adds texture
    base = 128 + 40 * np.tanh(np.asarray(y)[:, :1, None, None])
    tex = 20 * np.asarray(z)[:, :1, None, None] * np.linspace(-1, 1, 8)[None, None, :, None]
    return np.clip(np.broadcast_to(base + tex, (len(y), 8, 8, 3)), 0, 255).astype(np.uint8)
  return jitter.synthesize(render, p, "smiling", cfg)


def _crowd(s: jitter.SynthSet, seed=0) -> verify.Verification:
  """5 workers: the auto label, except a share of pairs flipped and a share undecided."""
  rng = np.random.default_rng(seed)
  kind = rng.choice(3, len(s.pairs), p=[0.6, 0.25, 0.15])  # agree, flip, can't tell
  votes = []
  for p in range(len(s.pairs)):
    answer = {0: int(s.pairs.label[p]), 1: -int(s.pairs.label[p]), 2: 0}[int(kind[p])]
    votes += [verify.Vote(f"w{w}", p, answer) for w in range(5)]
  return verify.aggregate(votes, s.pairs.label, 0.6)


class FakeAssets(methods.Assets):
  def __init__(self):
    self._s = _synth_set()
    self._v = _crowd(self._s)

  def synth(self, attribute):
    return self._s

  def verification(self, attribute):
    return self._v

  def verified(self, attribute):
    return verify.verified_pairs(self._s, self._v)

  def measurement(self, attribute, feature):
    assert feature == "pixels"
    return self._s.images.images.mean(axis=(1, 2, 3)).astype(np.float32)

  def pool_features(self, pool):
    flat = pool.images.images.reshape(len(pool.images), -1).astype(np.float32) / 255.0
    return lambda name: flat

  def prelabel(self, attribute):
    raise AssertionError("not used")


def _cfg():
  cfg = ml_collections.ConfigDict()
  cfg.pools = methods.default_config()
  cfg.active = methods.active_config()
  cfg.active.measure_feature = "pixels"
  cfg.ranksvm = ml_collections.ConfigDict(dict(feature="pixels", C=0.1, max_iter=10,
                                               standardize=True))
  cfg.features = extract.default_config()
  return cfg


def _build(method, seed=0, assets=None):
  d = _domain()
  assets = assets or FakeAssets()
  return d, assets, methods.build_pool(method, d, "smiling", _cfg(), seed, assets)


def _synth_part(pool):
  off = pool.num_domain_images
  keep = pool.pairs.a >= off
  return pool.pairs.take(np.flatnonzero(keep)).offset(-off)


# -- selection ------------------------------------------------------------------------------------

def test_select_top_picks_exactly_budget_top_scores_with_index_ties():
  scores = np.array([0.5, 2.0, 1.0, 2.0, 1.0, 1.0, -3.0])
  np.testing.assert_array_equal(active.select_top(scores, 3), [1, 2, 3])  # 2, 2, first 1.0
  np.testing.assert_array_equal(active.select_top(scores, 4), [1, 2, 3, 4])
  assert len(active.select_top(scores, 0)) == 0
  np.testing.assert_array_equal(active.select_top(scores, 99), np.arange(7))
  rng = np.random.default_rng(0)
  s = rng.normal(size=200)
  for b in (1, 17, 100):
    sel = active.select_top(s, b)
    assert len(sel) == b and s[sel].min() >= np.delete(s, sel).max()
  with pytest.raises(ValueError, match="non-negative integer"):
    active.select_top(scores, -1)
  with pytest.raises(ValueError, match="candidate 1 is not finite"):
    active.select_top(np.array([0.0, np.nan]), 1)


def test_random_selections_are_nested_and_scores_are_signed_disagreement():
  small = active.select_random(50, 5, np.random.default_rng(3))
  large = active.select_random(50, 20, np.random.default_rng(3))
  assert len(small) == 5 and set(small) <= set(large)
  np.testing.assert_array_equal(active.questionable([1, -1, 1], [2.0, 2.0, -0.5]), [-2.0, 2.0, 0.5])


def test_mix_overrides_auto_labels_only_on_selected_pairs():
  s = _synth_set()
  v = _crowd(s)
  ids = np.arange(0, len(s.pairs), 2)
  cand = s.pairs.take(ids)
  selected = np.arange(0, len(ids), 3)
  mixed, facts = active.mix(cand, ids, selected, v)
  sel_ids = ids[selected]
  rejected = sel_ids[~v.keep[sel_ids]]
  assert len(mixed) == len(cand) - len(rejected) and facts["dropped"] == len(rejected)
  assert facts["verified"] == len(selected)
  by_pair = {(int(a), int(b)): (int(l), float(w)) for a, b, l, w in
             zip(mixed.a, mixed.b, mixed.label, mixed.weight)}
  flips = 0
  for pos, pid in enumerate(ids):
    key = (int(s.pairs.a[pid]), int(s.pairs.b[pid]))
    if pos in selected and not v.keep[pid]:
      assert key not in by_pair
    elif pos in selected:
      assert by_pair[key] == (int(v.label[pid]), pytest.approx(float(v.agreement[pid])))
      flips += int(v.label[pid] != s.pairs.label[pid])
    else:
      assert by_pair[key] == (int(s.pairs.label[pid]), float(s.pairs.weight[pid]))
  assert facts["flipped"] == flips > 0
  changed = ~v.keep[ids] | (v.label[ids] != cand.label)
  assert facts["changed_available"] == int(changed.sum())


def test_mix_refuses_selected_pairs_without_votes():
  s = _synth_set()
  v = verify.aggregate([verify.Vote("w", 0, 1)], s.pairs.label)  # one pair judged
  with pytest.raises(ValueError, match=r"1 of the 2 pairs selected .* no votes \(first: pair 1\)"):
    active.mix(s.pairs, np.arange(len(s.pairs)), [0, 1], v)


# -- pools ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["dsynth_active@0", "dsynth_active_measure@0",
                                    "dsynth_random@0"])
def test_budget_zero_is_dsynth_auto_pool(method):
  d, assets, auto = _build("dsynth_auto")
  for seed in (0, 3):
    auto = methods.build_pool("dsynth_auto", d, "smiling", _cfg(), seed, assets)
    pool = methods.build_pool(method, d, "smiling", _cfg(), seed, assets)
    assert pool.images.images.shape == auto.images.images.shape
    np.testing.assert_array_equal(pool.images.images, auto.images.images)
    for field in ("a", "b", "label", "weight", "source"):
      np.testing.assert_array_equal(getattr(pool.pairs, field), getattr(auto.pairs, field))
    assert pool.info["verified"] == 0


@pytest.mark.parametrize("method", ["dsynth_active_real_margin@1000", "dsynth_active_measure@60",
                                    "dsynth_random@1000"])
def test_full_budget_gives_dsynths_verified_labels(method):
  d, assets, auto = _build("dsynth_auto")
  _, _, pool = _build(method, assets=assets)
  s, v = assets.synth("smiling"), assets.verification("smiling")
  auto_synth = _synth_part(auto)
  n = len(auto_synth)
  assert pool.info["candidates"] == n and pool.info["verified"] == n
  # Every candidate pair, with DSynth's verified label and agreement, rejected ones dropped.
  kept = [i for i in _ids_of(s, auto_synth) if v.keep[i]]
  expect = verify.verified_pairs(s, v)
  rows = {(int(a), int(b)): (int(l), float(w)) for a, b, l, w in
          zip(expect.a, expect.b, expect.label, expect.weight)}
  got = _synth_part(pool)
  assert len(got) == len(kept) < n
  for a, b, l, w in zip(got.a, got.b, got.label, got.weight):
    assert rows[int(a), int(b)] == (int(l), pytest.approx(float(w)))
  assert len(pool.pairs) - len(got) == len(methods.real_pairs(d, "smiling"))


def test_active_verifies_exactly_budget_of_dsynth_autos_candidates():
  d, assets, auto = _build("dsynth_auto")
  for method in ("dsynth_active_real_margin@7", "dsynth_active_measure@7", "dsynth_random@7"):
    _, _, pool = _build(method, assets=assets)
    assert pool.info["verified"] == 7 and pool.info["candidates"] == len(_synth_part(auto))
    got = _synth_part(pool)
    auto_keys = {(int(a), int(b)) for a, b in zip(_synth_part(auto).a, _synth_part(auto).b)}
    assert {(int(a), int(b)) for a, b in zip(got.a, got.b)} <= auto_keys
    assert len(got) == len(auto_keys) - pool.info["dropped"]
    differ = sum(1 for a, b, l in zip(got.a, got.b, got.label)
                 if (int(a), int(b)) in auto_keys and l != auto.pairs.label[
                     np.flatnonzero((auto.pairs.a == a + auto.num_domain_images)
                                    & (auto.pairs.b == b + auto.num_domain_images))[0]])
    assert differ == pool.info["flipped"]


def _ids_of(s, pairs):
  """Each pair's id in the synthetic set s (pairs as (a, b) into s's images)."""
  return np.array([int(np.flatnonzero((s.pairs.a == a) & (s.pairs.b == b))[0])
                   for a, b in zip(pairs.a, pairs.b)])


@pytest.mark.parametrize("scorer", ["measure", "real_margin"])
def test_active_pool_is_the_mix_of_its_top_scored_candidates(scorer):
  d, assets, auto = _build("dsynth_auto")
  _, _, pool = _build(f"dsynth_active_{scorer}@5", assets=assets)
  s, cand = assets.synth("smiling"), _synth_part(auto)
  score = methods.SCORE_FNS[scorer](d, "smiling", _cfg(), assets, s, cand)
  top = active.select_top(score, 5)
  assert score[top].min() >= np.delete(score, top).max()
  expect, _ = active.mix(cand, _ids_of(s, cand), top, assets.verification("smiling"))
  got = _synth_part(pool)
  for field in ("a", "b", "label", "weight"):
    np.testing.assert_array_equal(getattr(got, field), getattr(expect, field))


def test_two_rounds_spend_the_budget_half_on_real_margin_then_on_the_retrained_ranker():
  d, assets, auto = _build("dsynth_auto")
  s, cand = assets.synth("smiling"), _synth_part(auto)
  ids = _ids_of(s, cand)
  scores = methods.real_margin_scores(d, "smiling", _cfg(), assets, s, cand)
  for budget in (7, 8):
    chosen = methods.real_margin_two_rounds(d, "smiling", _cfg(), assets, s, cand, ids, budget)
    assert len(chosen) == budget and set(active.select_top(scores, 4)) <= set(chosen)
  np.testing.assert_array_equal(
      methods.real_margin_two_rounds(d, "smiling", _cfg(), assets, s, cand, ids, 1),
      active.select_top(scores, 1))
  _, _, pool = _build("dsynth_active_real_margin2@8", assets=assets)
  assert pool.info["verified"] == 8 and pool.info["scorer"] == "real_margin2"


def test_method_names_parse_and_bad_names_fail_in_one_line():
  p = methods.parse_method("dsynth_active_measure@100")
  assert (p.base, p.budget, p.scorer) == ("dsynth_active", 100, "measure")
  p = methods.parse_method("dsynth_active_real_margin@0")
  assert (p.base, p.budget, p.scorer) == ("dsynth_active", 0, "real_margin")
  assert methods.parse_method("dsynth_random@30").budget == 30
  assert methods.parse_method("dsynth_active").budget is None
  assert methods.method_blocks("dsynth_random@3") == methods.METHOD_BLOCKS["dsynth_random"]
  cfg = _cfg()
  assert methods.resolve_budget("dsynth_active", cfg) == (100, "real_margin")
  assert methods.resolve_budget("dsynth_random@7", cfg) == (7, None)
  for name, match in [("dsynth_active_foo@3", "unknown scorer 'foo'"),
                      ("dsynth_active@-3", "non-negative integer"),
                      ("dsynth_active@", "non-negative integer"),
                      ("dsynth_active@1.5", "non-negative integer"),
                      ("dsynth_random_measure@3", "takes no scorer"),
                      ("dsynth_bogus@3", "unknown method")]:
    with pytest.raises(ValueError, match=match) as e:
      methods.parse_method(name)
    assert "\n" not in str(e.value)
  methods.check_methods(("real", "dsynth_active_measure@3"), cfg)
  with pytest.raises(ValueError, match=r"unknown methods \['bogus'\]"):
    methods.check_methods(("real", "bogus"), cfg)
  with pytest.raises(ValueError, match="unknown scorer 'x'"):
    methods.check_methods(("dsynth_active_x@3",), cfg)
  cfg.active.budget = -1
  with pytest.raises(ValueError, match="active.budget must be a non-negative"):
    methods.check_methods(("dsynth_random",), cfg)
  cfg.active.budget = 5
  cfg.active.scorer = "oracle"
  with pytest.raises(ValueError, match="unknown active.scorer 'oracle'"):
    methods.check_methods(("dsynth_active",), cfg)
  methods.check_methods(("real", "dsynth_auto"), cfg)  # no budgeted method: the block is unread


# -- export for people, import of their answers ------------------------------------------------

def _write_answers(path, ids, answer_of):
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(verify.ANSWER_COLUMNS)
    for pid in ids:
      for worker in range(5):
        w.writerow([f"p{worker}", pid, answer_of(pid, worker)])


def test_export_of_a_selection_round_trips_through_import(tmp_path):
  s = _synth_set()
  folder = tmp_path / "run" / "synth" / "smiling"
  store.save(folder, s, "fp0")
  out = tmp_path / "verify"
  rc = verify.main(["export", f"--synth={folder}", f"--out={out}", "--select=random",
                    "--budget=9", "--seed=4"])
  assert rc == 0
  with open(out / "pairs.csv") as f:
    exported = [int(r["pair_id"]) for r in csv.DictReader(f)]
  sel = io.read_json(out / verify.SELECTION_FILE)
  assert sorted(exported) == sel["pair_ids"] and len(exported) == 9
  # People flip the first exported pair, can't tell on the second, agree on the rest.
  name = {1: "A", -1: "B"}
  def answer(pid, worker):
    auto = int(s.pairs.label[pid])
    if pid == exported[0]:
      return name[-auto]
    return "cant_tell" if pid == exported[1] else name[auto]
  answers = tmp_path / "answers.csv"
  _write_answers(answers, exported, answer)
  rc = verify.main(["import", f"--synth={folder}", "--answers", str(answers),
                    "--selection", str(out / verify.SELECTION_FILE)])
  assert rc == 0
  v = verify.load_verification(folder)
  np.testing.assert_array_equal(np.flatnonzero(v.selected), sorted(exported))
  assert v.report["selected"] == 9 and v.report["not_selected"] == len(s.pairs) - 9
  merged = active.merged_pairs(s, v)
  assert len(merged) == len(s.pairs) - 1  # the can't-tell pair is dropped
  rows = {(int(a), int(b)): int(l) for a, b, l in zip(merged.a, merged.b, merged.label)}
  for pid in range(len(s.pairs)):
    key = (int(s.pairs.a[pid]), int(s.pairs.b[pid]))
    if pid == exported[1]:
      assert key not in rows
    elif pid == exported[0]:
      assert rows[key] == -s.pairs.label[pid]
    else:  # verified in agreement, or never exported: the auto label
      assert rows[key] == s.pairs.label[pid]


def test_import_refuses_answers_outside_the_selection_and_writes_nothing(tmp_path, capsys):
  s = _synth_set()
  folder = tmp_path / "run" / "synth" / "smiling"
  store.save(folder, s, "fp0")
  out = tmp_path / "verify"
  assert verify.main(["export", f"--synth={folder}", f"--out={out}", "--select=random",
                      "--budget=3"]) == 0
  outside = next(p for p in range(len(s.pairs))
                 if p not in io.read_json(out / verify.SELECTION_FILE)["pair_ids"])
  answers = tmp_path / "answers.csv"
  _write_answers(answers, [outside], lambda pid, w: "A")
  rc = verify.main(["import", f"--synth={folder}", "--answers", str(answers),
                    "--selection", str(out / verify.SELECTION_FILE)])
  err = capsys.readouterr().err
  assert rc == 1 and f"pair {outside}, which no selection exported" in err
  assert len(err.strip().splitlines()) == 1 and not (folder / "verified.npz").exists()
  other = tmp_path / "other" / "synth" / "smiling"
  store.save(other, s, "fp1")
  rc = verify.main(["import", f"--synth={other}", "--answers", str(answers),
                    "--selection", str(out / verify.SELECTION_FILE)])
  assert rc == 1 and "another synthetic set" in capsys.readouterr().err


def test_export_active_measure_scores_with_the_runs_measurement(tmp_path, capsys):
  from configs import test as test_config
  config = test_config.get_config()
  run = tmp_path / "run"
  io.write_config(config, run)
  io.write_json(run / "images.json", dict(rank_image_size=8))
  s = _synth_set()
  folder = run / "synth" / "smiling"
  store.save(folder, s, "fp0")
  out = tmp_path / "verify"
  rc = verify.main(["export", f"--synth={folder}", f"--out={out}", "--select=active",
                    "--budget=6", "--scorer=measure", "--measure-feature=pixels"])
  assert rc == 0, capsys.readouterr().err
  sel = io.read_json(out / verify.SELECTION_FILE)
  measured, _ = active.run_measurement(run, "smiling", s.images, "pixels")
  scores = active.questionable(s.pairs.label, active.measure_margins(measured, s.pairs))
  np.testing.assert_array_equal(sel["pair_ids"], active.select_top(scores, 6))
  assert sel["scorer"] == "measure" and sel["measurement"]["features"] == "pixels"
  rc = verify.main(["export", f"--synth={folder}", f"--out={tmp_path / 'x'}", "--select=active",
                    "--budget=6", "--scorer=real_margin"])
  err = capsys.readouterr().err
  assert rc == 1 and "only inside a run" in err and not (tmp_path / "x").exists()
