"""DeepSTN training: RankNet loss, optimiser, update step, two stages, resume, and learning on a
tiny synthetic domain whose attribute lives in one region (the patch must move there).

Every test shares one tiny config, so the jitted functions compile once per mode for the file.
"""

import json
import math

import jax
import ml_collections
import numpy as np
import pytest

from densesynth_jax.rankers import deepstn as ranker
from densesynth_jax.metrics import rank_accuracy
from densesynth_jax.train import loop
from densesynth_jax.types import ImageSet, PairSet

SIZE = 32
BLOB_ROW, BLOB_COL = 0.72, 0.5  # where the attribute lives, as fractions of the image side


def toy_domain(n, seed, n_pairs, size=SIZE, half=4):
  """Noise images with a bright square at (BLOB_ROW, BLOB_COL) whose brightness is the attribute
  strength, plus a distractor square of random brightness somewhere in the top half."""
  rng = np.random.default_rng(seed)
  strength = rng.uniform(0, 1, n)
  imgs = rng.integers(0, 120, (n, size, size, 3)).astype(np.float32)
  side = size // 8
  for i in range(n):
    r, c = rng.integers(1, size // 2 - side), rng.integers(1, size - side - 1)
    imgs[i, r:r + side, c:c + side] = rng.uniform(100, 255)
  cy, cx = int(BLOB_ROW * size), int(BLOB_COL * size)
  imgs[:, cy - half:cy + half, cx - half:cx + half] = (60 + 195 * strength)[:, None, None, None]
  a, b = rng.integers(0, n, n_pairs), rng.integers(0, n, n_pairs)
  keep = np.abs(strength[a] - strength[b]) > 0.05
  a, b = a[keep], b[keep]
  images = ImageSet(np.clip(imgs, 0, 255).astype(np.uint8), np.arange(n))
  return images, PairSet.create(a, b, np.sign(strength[a] - strength[b]), attribute="toy")


def tiny_config():
  cfg = ranker.default_config()
  cfg.cnn_channels = (4, 8)
  cfg.image_size, cfg.patch_size = SIZE, 12
  cfg.scale_init = 0.4
  cfg.loc_conv_channels, cfg.loc_hidden = 4, 8
  cfg.lr, cfg.loc_lr_mult = 0.02, 1.0  # from scratch in a few dozen steps
  cfg.test_crops = 2
  cfg.eval_batch = 32
  cfg.patience = 0
  cfg.log_every = 1
  cfg.progress_every_s = 60.0
  cfg.xla_fast_compile = True
  return cfg


def test_ranknet_loss_values():
  loss = lambda s1, s2, t, w=(1.0,): float(ranker.ranknet_loss(
      np.float32(s1), np.float32(s2), np.float32(t), np.asarray(w, np.float32)))
  for t in (0.0, 0.5, 1.0):
    assert math.isclose(loss(0.7, 0.7, t), math.log(2), rel_tol=1e-6)
  assert math.isclose(loss(2.0, 0.0, 1.0), math.log1p(math.exp(-2)), rel_tol=1e-6)
  assert math.isclose(loss(2.0, 0.0, 0.0), math.log1p(math.exp(2)), rel_tol=1e-6)
  np.testing.assert_allclose(ranker.pair_targets(np.array([1, -1, 0])), [1.0, 0.0, 0.5])
  # Weighted mean over pairs; zero-weight (padding) pairs do not count; all-zero weights -> 0.
  s1, s2 = np.array([2.0, 0.0, 5.0], np.float32), np.zeros(3, np.float32)
  t = np.array([1.0, 0.5, 0.0], np.float32)
  got = float(ranker.ranknet_loss(s1, s2, t, np.array([1.0, 3.0, 0.0], np.float32)))
  want = (math.log1p(math.exp(-2)) + 3 * math.log(2)) / 4
  assert math.isclose(got, want, rel_tol=1e-6)
  assert float(ranker.ranknet_loss(s1, s2, t, np.zeros(3, np.float32))) == 0.0


def test_optimizer_localisation_rate_and_decay():
  cfg = ranker.default_config()
  params = {"loc": {"fc2": {"bias": np.ones(3, np.float32), "kernel": np.ones((2, 3), np.float32)}},
            "head": {"bias": np.ones(1, np.float32), "kernel": np.ones((2, 1), np.float32)}}
  tx = ranker.make_optimizer(cfg)
  grads = jax.tree.map(np.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates["head"]["bias"], -cfg.lr)  # no decay on biases
  np.testing.assert_allclose(updates["loc"]["fc2"]["bias"], -cfg.lr * cfg.loc_lr_mult)
  np.testing.assert_allclose(updates["head"]["kernel"], -cfg.lr * (1 + cfg.weight_decay))
  np.testing.assert_allclose(updates["loc"]["fc2"]["kernel"],
                             -cfg.lr * cfg.loc_lr_mult * (1 + cfg.weight_decay), rtol=1e-6)


def test_a_config_saved_before_cpu_chunk_images_still_builds():
  """Saved models keep their config; ones written before `cpu_chunk_images` existed lack it and
  score with whole batches, the same function."""
  from densesynth_jax import mesh as mesh_lib
  cfg = tiny_config().to_dict()
  del cfg["cpu_chunk_images"]
  old = ml_collections.ConfigDict(cfg)
  state = ranker.init_state(old, "combined", jax.random.key(0), mesh_lib.make_mesh(1))
  assert jax.tree.leaves(state.params)


def test_bad_inputs_and_nonfinite():
  cfg = tiny_config()
  images, pairs = toy_domain(10, 0, 20)
  bad = PairSet.create([0, 12], [1, 2], [1, -1], attribute="toy")
  with pytest.raises(IndexError, match="pair 1"):
    ranker.train_deepstn(cfg, images, bad, None, None, "/nonexistent")
  equal_only = PairSet.create([0], [1], [0], attribute="toy")
  with pytest.raises(ValueError, match="no ordered pair"):
    ranker.train_deepstn(cfg, images, pairs, images, equal_only, "/nonexistent")
  with pytest.raises(FloatingPointError,
                     match="deepstn/stn_only: non-finite training metric at step 17: loss=nan"):
    loop.check_finite({"loss": np.float32(np.nan), "grad_norm": 1.0}, 17, "deepstn/stn_only")


@pytest.mark.slow
def test_update_lowers_loss_on_a_fixed_batch():
  cfg = tiny_config()
  images, pairs = toy_domain(40, 0, 60)
  state = ranker.init_state(cfg, "stn_only", jax.random.key(0))
  update = ranker.make_update_fn(cfg, "stn_only")
  from densesynth_jax import mesh as mesh_lib
  mesh = mesh_lib.make_mesh()
  # 10 real pairs padded to the usual 25 (one compiled shape for the whole file).
  batch = mesh_lib.shard_batch(
      ranker.make_batch(images.images, pairs, np.arange(10),
                        ranker.padded_batch_size(cfg.batch_pairs, mesh)), mesh)
  losses = []
  for _ in range(12):
    state, metrics = update(state, batch, jax.random.key(3))
    losses.append(float(metrics["loss"]))
  assert all(math.isfinite(x) for x in losses)
  assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses
  assert int(state.step) == 12


@pytest.mark.slow
def test_toy_domain_ranks_and_patch_moves_to_the_attribute(tmp_path):
  cfg = tiny_config()
  cfg.stages = ("stn_only",)
  cfg.stn_epochs = 4
  train_images, train_pairs = toy_domain(80, 0, 200)
  val_images, val_pairs = toy_domain(60, 1, 150)
  test_images, test_pairs = toy_domain(60, 2, 150)
  model = ranker.train_deepstn(cfg, train_images, train_pairs, val_images, val_pairs, tmp_path)
  acc = rank_accuracy(ranker.score_images(model, test_images.images), test_pairs)
  assert acc > 0.8, acc
  boxes = ranker.patch_boxes(model, test_images.images)
  centre_y = (boxes[:, 1] + boxes[:, 3]).mean() / 2
  centre_x = (boxes[:, 0] + boxes[:, 2]).mean() / 2
  start = SIZE / 2  # every patch starts centred (t = 0)
  assert centre_y - start > 1.0, (centre_y, boxes[:3])  # moved down, towards the bright square
  assert centre_y - start > abs(centre_x - start), (centre_x, centre_y)
  ranker.save_patch_figure(tmp_path / "patches.png", model, test_images.images[:4],
                           [f"{i}" for i in range(4)])
  assert (tmp_path / "patches.png").stat().st_size > 1000
  rows = [json.loads(l) for l in (tmp_path / "stn_only" / "metrics.jsonl").read_text().splitlines()]
  assert rows[0]["scale"] == pytest.approx(0.4, abs=0.01)
  assert any("val_acc" in r for r in rows)


@pytest.mark.slow
def test_two_stages_and_resume_give_identical_params(tmp_path):
  cfg = tiny_config()
  cfg.stn_epochs, cfg.combined_epochs = 1, 2
  images, pairs = toy_domain(40, 3, 70)
  pairs = pairs.take(np.arange(50))  # 2 steps of 25 pairs per epoch
  val_images, val_pairs = toy_domain(20, 4, 40)
  one_go = ranker.train_deepstn(cfg, images, pairs, val_images, val_pairs, tmp_path / "a")

  cfg.combined_epochs = 1  # "interrupted" after the first combined epoch ...
  ranker.train_deepstn(cfg, images, pairs, val_images, val_pairs, tmp_path / "b")
  cfg.combined_epochs = 2  # ... and rerun in the same workdir: resumes
  resumed = ranker.train_deepstn(cfg, images, pairs, val_images, val_pairs, tmp_path / "b")
  assert resumed.stages["combined"]["steps"] == one_go.stages["combined"]["steps"] == 4
  for a, b in zip(jax.tree.leaves(one_go.variables), jax.tree.leaves(resumed.variables)):
    np.testing.assert_array_equal(a, b)
  assert resumed.stages["combined"]["best_val_acc"] == one_go.stages["combined"]["best_val_acc"]

  # A rerun with another model or optimiser in the same workdir is refused.
  cfg.lr = 0.5
  with pytest.raises(ValueError, match=r"different DeepSTN config \(fields \['lr'\]"):
    ranker.train_deepstn(cfg, images, pairs, val_images, val_pairs, tmp_path / "b")

  # The combined stage's localisation net started from stage 1's: its first patches are not the
  # fresh-initialisation ones (scale exactly 0.4, centre exactly 0).
  rows = [json.loads(l) for l in (tmp_path / "a" / "combined" / "metrics.jsonl").read_text()
          .splitlines()]
  first = rows[0]
  assert abs(first["centre_y"]) + abs(first["centre_x"]) + abs(first["scale"] - 0.4) > 1e-4
  # The combined model's scores come from both streams and are finite.
  scores = ranker.score_images(resumed, val_images.images)
  assert scores.shape == (20,) and np.isfinite(scores).all()


@pytest.mark.slow
def test_sprites_smiling_short_run(tmp_path):
  """The embedded cartoon faces: a short STN-only run (its own, wider CNN: ~40 s on 2 CPU cores)
  ranks `smiling` and moves the patch down, towards the mouth (lower middle of the face)."""
  from densesynth_jax.data import sprites
  dcfg = sprites.default_config()
  dcfg.image_size = SIZE
  dcfg.attributes = ("smiling",)
  dcfg.num_train_identities, dcfg.num_val_identities, dcfg.num_test_identities = 60, 12, 20
  dcfg.images_per_identity = 6
  dcfg.train_pairs, dcfg.val_pairs = 200, 80
  dcfg.test_fine_pairs, dcfg.test_coarse_pairs = 200, 200
  domain = sprites.build_domain(dcfg)
  pairs = domain.pairs["smiling"]
  cfg = tiny_config()
  cfg.cnn_channels, cfg.patch_size = (8, 16, 32), 16
  cfg.loc_conv_channels, cfg.loc_hidden = 8, 32
  cfg.stages, cfg.stn_epochs = ("stn_only",), 8
  cfg.eval_batch = 64
  model = ranker.train_deepstn(cfg, domain.images, pairs["train"], domain.images, pairs["val"],
                               tmp_path)
  test = np.unique(np.concatenate([pairs["test_coarse"].a, pairs["test_coarse"].b]))
  scores = np.zeros(len(domain.images), np.float32)
  scores[test] = ranker.score_images(model, domain.images.images[test])
  coarse = rank_accuracy(scores, pairs["test_coarse"])
  boxes = ranker.patch_boxes(model, domain.images.images[test])
  centre_y = float(((boxes[:, 1] + boxes[:, 3]) / 2).mean())
  print(f"sprites smiling: test_coarse {coarse:.3f}, patch centre row {centre_y:.1f} of {SIZE} "
        f"(start {SIZE / 2}, mouth near {(0.37 + 1) / 2 * SIZE:.1f})")
  assert coarse > 0.8
  assert centre_y > SIZE / 2 + 0.5


def test_bad_deepstn_setting_fails_before_any_cell(tmp_path):
  """A run with DeepSTN checks its settings up front, not after the cells before it."""
  from configs import test as test_config
  from densesynth_jax.experiments import runner
  config = test_config.get_config()
  config.rankers = ("ranksvm_global", "deepstn")
  config.deepstn.test_crops = 4
  with pytest.raises(ValueError, match="deepstn.test_crops must be 1, 2, 5 or 10, got 4"):
    runner.train_and_evaluate(config, tmp_path)
  assert not (tmp_path / "rankers").exists()


@pytest.mark.slow
def test_runner_trains_deepstn_cells_and_draws_patches(tmp_path):
  """`deepstn` as a runner ranker: margins on every test set, patch facts, both figures."""
  from configs import test as test_config
  from densesynth_jax.experiments import runner
  config = test_config.tiny_deepstn(test_config.get_config())
  results = runner.train_and_evaluate(config, tmp_path)
  (cell,) = results["cells"]
  assert set(cell["accuracy"]) == set(config.test_sets)
  assert cell["num_test_pairs"]["test_fine"] > 0
  x, y = cell["ranker_info"]["patch_centre_xy"]
  assert 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0 and 0.0 < cell["ranker_info"]["patch_side"] <= 1.0
  for name in ("stn_patches_smiling.png", "stn_patches_smiling_real.png"):
    assert (tmp_path / "figures" / name).stat().st_size > 0
