"""Infrastructure: atomic writes, mesh on 2 CPU devices, checkpoint resume, metrics, progress."""

import io as pyio
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from densesynth_jax import io
from densesynth_jax import mesh, progress as logging
from densesynth_jax.train import checkpoint


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
  target = tmp_path / "out.json"
  io.write_json(target, {"a": np.float32(1.5), "b": np.arange(2)})
  assert json.loads(target.read_text()) == {"a": 1.5, "b": [0, 1]}
  with pytest.raises(RuntimeError):
    with io.atomic_path(target) as tmp:
      tmp.write_text("half")
      raise RuntimeError("crash")
  assert json.loads(target.read_text())["a"] == 1.5
  assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_dir_replaces_whole_folder(tmp_path):
  d = tmp_path / "synth"
  with io.atomic_dir(d) as tmp:
    (tmp / "a.txt").write_text("1")
  with io.atomic_dir(d) as tmp:
    (tmp / "b.txt").write_text("2")
  assert sorted(p.name for p in d.iterdir()) == ["b.txt"]
  assert sorted(p.name for p in tmp_path.iterdir()) == ["synth"]


def test_npz_roundtrip_and_corrupt_error(tmp_path):
  io.save_npz(tmp_path / "x.npz", a=np.arange(3))
  assert io.load_npz(tmp_path / "x.npz")["a"].tolist() == [0, 1, 2]
  (tmp_path / "bad.npz").write_bytes(b"not a zip")
  with pytest.raises(ValueError, match="bad.npz"):
    io.load_npz(tmp_path / "bad.npz")
  with pytest.raises(FileNotFoundError, match="missing file: .*nope.npz"):
    io.load_npz(tmp_path / "nope.npz")


@pytest.mark.skipif(jax.device_count() < 2, reason="needs 2 host devices (XLA_FLAGS)")
def test_mesh_shards_batch_over_two_devices():
  m = mesh.make_mesh()
  assert mesh.num_shards(m) == jax.device_count()
  x = mesh.shard_batch(np.arange(8.0).reshape(8, 1), m)
  assert len(x.addressable_shards) == jax.device_count()
  assert x.addressable_shards[0].data.shape == (8 // jax.device_count(), 1)
  w = mesh.replicate(jnp.ones((1,)), m)
  y = jax.jit(lambda x, w: (x * w).sum())(x, w)
  assert float(y) == 28.0
  with pytest.raises(ValueError, match="not divisible"):
    mesh.check_divisible(7, m)


def test_mesh_single_device_and_padding():
  m = mesh.make_mesh(1)
  assert mesh.num_shards(m) == 1
  padded, n = mesh.pad_to_multiple(np.arange(5), 4)
  assert n == 5 and padded.tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
  with pytest.raises(ValueError, match="devices"):
    mesh.make_mesh(jax.device_count() + 1)


def test_checkpoint_resume(tmp_path):
  state = {"w": jnp.zeros(3), "step": jnp.array(0)}
  with checkpoint.Checkpointer(tmp_path / "ck", save_interval_steps=2) as ck:
    assert ck.restore_or(state)[1] == 0
    assert not ck.save(3, state)
    assert ck.save(4, {"w": jnp.arange(3.0), "step": jnp.array(4)})
  with checkpoint.Checkpointer(tmp_path / "ck") as ck:
    restored, step = ck.restore_or(state)
  assert step == 4 and restored["w"].tolist() == [0.0, 1.0, 2.0]


def test_metrics_writer_and_progress(tmp_path):
  w = logging.MetricsWriter(tmp_path / "metrics.jsonl")
  w.write(1, {"loss": np.float32(0.5), "bad": float("nan")}, split="train")
  w.write(2, {"loss": 0.25})
  rows = w.read()
  assert rows[0] == {"step": 1, "split": "train", "loss": 0.5, "bad": "nan"}
  assert rows[1]["loss"] == 0.25
  out = pyio.StringIO()
  p = logging.Progress("train", 10, unit="steps", every_s=0.0, stream=out)
  p.update(5)
  p.update(10)
  lines = out.getvalue().splitlines()
  assert lines[-1].startswith("[train] 10/10 (100%)") and "ETA" in lines[-1]
  assert logging.format_seconds(3725) == "1:02:05"
