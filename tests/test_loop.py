"""The shared training skeleton (train/loop.py): resume, metrics truncation, identity, hooks."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from densesynth_jax import mesh as mesh_lib
from densesynth_jax.train import loop


def _step(item, step):
  item = dict(w=item["w"] + 1.0)
  return item, dict(loss=item["w"].sum(), step_seen=float(step))


def _rows(workdir):
  return [json.loads(l) for l in (workdir / loop.METRICS_FILE).read_text().splitlines()]


def test_resume_drops_rows_written_after_the_checkpoint(tmp_path):
  item = dict(w=jnp.zeros(3))
  common = dict(workdir=tmp_path, name="toy", total=10, step_fn=_step, log_every=1,
                checkpoint_every=4)
  first = loop.run_loop(item, stop_at=6, **common)  # checkpoints at 4 and (stop) 6
  assert first.step == 6 and float(first.item["w"][0]) == 6.0
  # A crash after step 7's row but before its checkpoint: the row is on disk, the state is not.
  with (tmp_path / loop.METRICS_FILE).open("a") as f:
    f.write(json.dumps(dict(step=7, loss=-1.0)) + "\n")
  again = loop.run_loop(item, **common)
  assert again.start == 6 and again.step == 10 and float(again.item["w"][0]) == 10.0
  steps = [r["step"] for r in _rows(tmp_path)]
  assert steps == list(range(1, 11))  # every step once, the stale row 7 replaced
  assert all(r["loss"] > 0 for r in _rows(tmp_path))


def test_hook_stops_early_and_a_rerun_stays_stopped(tmp_path):
  calls = []

  def after(item, step, metrics, writer):
    calls.append(step)
    return item, loop.Hook(save=True, stop=step == 3)

  common = dict(workdir=tmp_path, name="toy", total=10, step_fn=_step, log_every=5,
                after_step=after, finished=lambda item: float(item["w"][0]) >= 3)
  res = loop.run_loop(dict(w=jnp.zeros(2)), **common)
  assert res.step == 3 and calls == [1, 2, 3]
  again = loop.run_loop(dict(w=jnp.zeros(2)), **common)
  assert again.step == 3 and calls == [1, 2, 3] and again.metrics == {}
  assert not (tmp_path / loop.METRICS_FILE).exists()  # log_every 5: no row was due


def test_non_finite_metric_names_the_step_and_metric(tmp_path):
  def bad(item, step):
    return item, dict(loss=jnp.float32(np.nan) if step == 2 else jnp.float32(1.0), g=1.0)

  with pytest.raises(FloatingPointError,
                     match=r"toy: non-finite training metric at step 3: loss=nan"):
    loop.run_loop(dict(w=jnp.zeros(1)), workdir=tmp_path, name="toy", total=5, step_fn=bad,
                  log_every=1)


def test_claim_workdir_refuses_another_run(tmp_path):
  (tmp_path / "checkpoints" / "4").mkdir(parents=True)
  ident = lambda r: {k: r[k] for k in ("model",)}
  loop.claim_workdir(tmp_path / "run.json", dict(model=1, epochs=3), ident, "toy run")
  loop.claim_workdir(tmp_path / "run.json", dict(model=1, epochs=9), ident, "toy run")  # same
  with pytest.raises(ValueError, match=r"different toy run \(fields \['model'\] differ\)"):
    loop.claim_workdir(tmp_path / "run.json", dict(model=2, epochs=9), ident, "toy run")


def test_batched_apply_pads_and_drops_the_padding():
  mesh = mesh_lib.make_mesh()
  rows = np.arange(11, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
  out = loop.batched_apply(lambda scale, x: x.sum(-1) * scale, [rows], 4, mesh, 2.0)
  np.testing.assert_array_equal(out, rows.sum(-1) * 2.0)
  empty = loop.batched_apply(lambda x: x, [rows[:0]], 4, mesh, empty_shape=(2,))
  assert empty.shape == (0, 2)
