"""Generator training (generator/trainer.py) and attribute control (generator/control.py).

A tiny model on a fake 16×16 domain whose images encode the strengths (red level = attribute 0,
a green square's level = attribute 1), so the tests run in seconds and need no real data. The
sharded-step test builds 1- and 2-device meshes; without 2 host devices (CI sets
XLA_FLAGS=--xla_force_host_platform_device_count=2) it reruns itself in a subprocess with the flag.
"""

import json
import os
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

from densesynth_jax.models import cvae
from densesynth_jax.generator import artifact, control
from densesynth_jax.generator import trainer as generator
from densesynth_jax import mesh as mesh_lib
from densesynth_jax.progress import MetricsWriter
from densesynth_jax.train.checkpoint import Checkpointer
from densesynth_jax.types import Domain, ImageSet


def fake_image(y: np.ndarray) -> np.ndarray:
  """uint8 (N, 16, 16, 3) showing strengths y (N, 2) in [0, 1]."""
  img = np.zeros((len(y), 16, 16, 3), np.uint8)
  img[..., 0] = np.clip(255 * y[:, :1, None], 0, 255).astype(np.uint8)
  img[:, 4:12, 4:12, 1] = np.clip(255 * y[:, 1:, None], 0, 255).astype(np.uint8)
  return img


def fake_domain(n=64, seed=0) -> Domain:
  rng = np.random.default_rng(seed)
  y = rng.random((n, 2)).astype(np.float32)
  images = ImageSet(fake_image(y), np.arange(n), y, np.arange(n), ("red", "green"))
  splits = {"train": np.arange(40), "val": np.arange(40, 52), "test": np.arange(52, n)}
  return Domain("fake", images, splits, {})


def tiny_config(steps=6) -> ml_collections.ConfigDict:
  cfg = generator.default_train_config()
  cfg.model = cvae.default_config()
  cfg.model.update(dict(image_size=16, z_dim=4, enc_widths=(4,), enc_top=8, enc_fc=16, y_enc=8,
                        y_dec=8, dec_fc=8, dec_base=8, dec_widths=(4,)))
  cfg.data = ml_collections.ConfigDict(dict(name="fake"))
  cfg.train.update(dict(batch_size=8, num_steps=steps, log_every=2, eval_every=3,
                        checkpoint_every=3, eval_batch=8, num_devices=1))
  cfg.figures.identities = 2
  cfg.eval.update(dict(attributes=("red",), identities=4, pixels_size=4, ridge_alphas=(1.0,)))
  return cfg


def fixed_batch(d: Domain, cfg, mesh):
  data = generator.GeneratorData(d, cfg.model.image_size)
  idx = data.train[:8]
  return mesh_lib.shard_batch(dict(images=data.images[idx], y=data.y[idx]), mesh)


@pytest.mark.slow
def test_update_lowers_the_loss_on_a_fixed_batch():
  cfg = tiny_config()
  mesh = mesh_lib.make_mesh(1)
  prog = generator.programs(cfg, 2, mesh)
  state = prog.init(jax.random.PRNGKey(0))
  batch = fixed_batch(fake_domain(), cfg, mesh)
  losses = []
  for _ in range(20):
    state, m = prog.update(state, batch, jax.random.PRNGKey(1))
    m = jax.device_get(m)
    assert all(np.isfinite(v) for v in m.values())
    assert set(m) >= {"neg_elbo", "nll", "kl", "grad_norm", "param_norm", "update_norm"}
    losses.append(float(m["neg_elbo"]))
  assert int(state.step) == 20
  assert np.mean(losses[-3:]) < 0.9 * losses[0]  # a real decrease, not noise (−ELBO > 0 here)


def sharded_step_matches() -> None:
  """One update on a 1-device and a 2-device mesh: same metrics and parameters."""
  cfg = tiny_config()
  d = fake_domain()
  out = []
  for n in (1, 2):
    mesh = mesh_lib.make_mesh(n)
    prog = generator.programs(cfg, 2, mesh)
    state = prog.init(jax.random.PRNGKey(0))
    state, m = prog.update(state, fixed_batch(d, cfg, mesh), jax.random.PRNGKey(1))
    state, m = prog.update(state, fixed_batch(d, cfg, mesh), jax.random.PRNGKey(1))
    out.append((jax.device_get(state.params), jax.device_get(state.batch_stats),
                jax.device_get(m)))
  (p1, s1, m1), (p2, s2, m2) = out
  for k in m1:
    np.testing.assert_allclose(m1[k], m2[k], rtol=1e-4, err_msg=k)
  for a, b in zip(jax.tree.leaves((p1, s1)), jax.tree.leaves((p2, s2))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_sharded_step_equals_single_device():
  if jax.device_count() >= 2:
    sharded_step_matches()
    return
  env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") +
                                    " --xla_force_host_platform_device_count=2").strip())
  code = "import test_generator_train as t; t.sharded_step_matches(); print('OK')"
  proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                        cwd=os.path.dirname(__file__), timeout=300)
  assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]


def test_resume_equals_uninterrupted_run(tmp_path):
  cfg = tiny_config(steps=6)
  d = fake_domain()
  full = generator.train(cfg, tmp_path / "full", domain=d)
  generator.train(cfg, tmp_path / "split", domain=d, stop_at=4)  # checkpoint at 3 and at 4
  # A crash after step 4's metrics but before a later checkpoint leaves rows a rerun rewrites.
  resumed = generator.train(cfg, tmp_path / "split", domain=d)
  assert int(full.step) == int(resumed.step) == 6
  for a, b in zip(jax.tree.leaves((full.params, full.batch_stats, full.opt_state)),
                  jax.tree.leaves((resumed.params, resumed.batch_stats, resumed.opt_state))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert artifact.checkpoint_hash(tmp_path / "full") == artifact.checkpoint_hash(
      tmp_path / "split")
  assert artifact.is_trained(tmp_path / "full", cfg)
  # The metrics: health numbers every log_every steps, validation at eval_every, no duplicates.
  rows = MetricsWriter(tmp_path / "split" / "metrics.jsonl").read()
  train_steps = [r["step"] for r in rows if r["split"] == "train"]
  assert train_steps == [2, 4, 6] and {"grad_norm", "update_norm", "param_norm"} <= set(rows[0])
  assert [r["step"] for r in rows if r["split"] == "val"] == [3, 6]
  meta = json.loads((tmp_path / "full" / "generator.json").read_text())
  np.testing.assert_allclose(meta["y_mean"], d.images.strengths[:40].mean(0), rtol=1e-5)
  # A different model in the same workdir is refused.
  other = tiny_config(steps=6)
  other.model.z_dim = 5
  with pytest.raises(ValueError, match=r"different generator \(fields \['model'\] differ\)"):
    generator.train(other, tmp_path / "full", domain=d)


def test_generator_renders_from_raw_strengths(tmp_path):
  cfg = tiny_config(steps=3)
  d = fake_domain()
  generator.train(cfg, tmp_path, domain=d)
  gen = artifact.load_generator(tmp_path, batch=8)
  assert gen.attribute_names == ("red", "green") and gen.z_dim == 4
  np.testing.assert_allclose(gen.y_std, d.images.strengths[:40].std(0), rtol=1e-5)
  y = np.full((11, 2), 0.5, np.float32)  # 11: more than one padded batch
  z = np.random.default_rng(0).normal(size=(11, 4)).astype(np.float32)
  img = gen.render(y, z)
  assert img.shape == (11, 16, 16, 3) and img.dtype == np.uint8
  np.testing.assert_array_equal(img[:8], gen.render(y[:8], z[:8]))  # batch-independent
  x = gen.sample(y, z)
  assert x.dtype == np.float32 and x.min() >= -1 and x.max() <= 1
  with pytest.raises(ValueError, match="z must be"):
    gen.render(y, z[:, :3])
  assert gen.fingerprint == artifact.checkpoint_hash(tmp_path)


def test_non_finite_loss_stops_with_the_step(tmp_path):
  """A state gone bad (here: a NaN written into a checkpoint) stops training at the next step."""
  cfg = tiny_config(steps=6)
  d = fake_domain()
  state = generator.train(cfg, tmp_path, domain=d, stop_at=2)
  params = jax.tree.map(np.asarray, state.params)
  params["decoder"]["fc0"]["bias"] = params["decoder"]["fc0"]["bias"] * np.nan
  with Checkpointer(tmp_path / "checkpoints") as ckpt:
    ckpt.save(4, state.replace(step=np.int32(4), params=params), force=True)
  with pytest.raises(FloatingPointError, match=r"non-finite training metric at step 5: neg_elbo=nan"):
    generator.train(cfg, tmp_path, domain=d)
  # Nothing past the bad step was checkpointed.
  with Checkpointer(tmp_path / "checkpoints") as ckpt:
    assert ckpt.latest_step == 4


def test_data_order_is_a_pure_function_of_seed_and_step():
  a = [generator.batch_indices(0, s, 40, 8) for s in range(10)]
  b = [generator.batch_indices(0, s, 40, 8) for s in range(10)]
  np.testing.assert_array_equal(a, b)
  assert sorted(np.concatenate(a[:5])) == list(range(40))  # one epoch = one permutation
  assert not np.array_equal(np.concatenate(a[:5]), np.concatenate(a[5:]))  # a fresh one next
  assert not np.array_equal(a[0], generator.batch_indices(1, 0, 40, 8))
  with pytest.raises(ValueError, match="fewer than one batch"):
    generator.batch_indices(0, 0, 5, 8)


class _Renderer:
  """A stand-in generator that draws the requested strengths exactly (or inverted)."""

  def __init__(self, d: Domain, sign: float):
    self.attribute_names = d.images.attribute_names
    self.y_std = d.images.strengths[d.splits["train"]].std(0)
    self.z_dim, self.sign = 3, sign

  def render(self, y, z):
    return fake_image(0.5 + self.sign * (np.asarray(y) - 0.5))


def test_control_evaluation_sees_control_and_its_absence():
  d = fake_domain(n=160, seed=1)
  d = Domain("fake", d.images, {"train": np.arange(100), "val": np.arange(100, 130),
                                "test": np.arange(130, 160)}, {})
  cfg = control.default_config()
  cfg.update(dict(identities=16, pixels_size=8, steps=(-1.0, 0.0, 1.0), gap=1.0))
  good = control.evaluate_control(_Renderer(d, 1.0), d, cfg, log=lambda s: None)
  bad = control.evaluate_control(_Renderer(d, -1.0), d, cfg, log=lambda s: None)
  for attr in ("red", "green"):
    assert good[attr]["scorer"]["heldout_spearman"] > 0.95  # the scorer itself is trustworthy
    assert good[attr]["spearman"] > 0.9 and good[attr]["pair_accuracy"] > 0.95
    assert bad[attr]["spearman"] < -0.9 and bad[attr]["pair_accuracy"] < 0.05
    assert good[attr]["num_pairs"] == 2 * 16
  assert control.gap_pairs((-2, -1, 0, 1, 2), 2.0) == [(0, 2), (1, 3), (2, 4)]


@pytest.mark.slow
def test_train_and_evaluate_writes_figures_and_evaluation(tmp_path, monkeypatch):
  cfg = tiny_config(steps=3)
  d = fake_domain()
  monkeypatch.setattr(generator, "load_domain", lambda data_cfg: d)
  result = generator.train_and_evaluate(cfg, tmp_path)
  saved = json.loads((tmp_path / "generator_eval.json").read_text())
  assert saved["fingerprint"] == result["fingerprint"] == artifact.checkpoint_hash(tmp_path)
  assert set(saved["control"]) == {"red"}
  c = saved["control"]["red"]
  # Every identity's ±gap pairs were measured: 3 pairs of steps (-2, 0), (-1, 1), (0, 2) each.
  assert c["num_pairs"] == 3 * cfg.eval.identities
  assert len(c["measured_mean_by_step"]) == len(cfg.eval.steps)
  assert c["scorer"]["kind"] == "regressor" and "heldout_spearman" in c["scorer"]
  for name in ("reconstructions.png", "samples.png", "spectra_red.png"):
    assert (tmp_path / "figures" / name).stat().st_size > 0
