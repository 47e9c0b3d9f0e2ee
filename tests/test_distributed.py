"""Multi-process data parallelism (densesynth_jax/distributed.py): 2 CPU processes on localhost
train each trainer a few steps; their parameters equal a 1-process run with the same global
batch on a 2-device mesh (tests/distributed_worker.py is one process)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from densesynth_jax import distributed

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "distributed_worker.py"


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(**extra) -> dict:
  env = {k: v for k, v in os.environ.items() if not k.startswith("DENSESYNTH_") or
         k == "DENSESYNTH_DATA_DIR"}
  env.pop("XLA_FLAGS", None)
  env.update(extra)
  return env


def _two_processes(kind: str, workdir: Path, out: Path) -> None:
  port = _free_port()
  procs = [subprocess.Popen(
      [sys.executable, str(WORKER), kind, str(workdir), str(out)], cwd=ROOT,
      env=_env(DENSESYNTH_COORDINATOR=f"127.0.0.1:{port}", DENSESYNTH_NUM_PROCESSES="2",
               DENSESYNTH_PROCESS_ID=str(i)),
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
  logs = [p.communicate(timeout=600)[0] for p in procs]
  for i, p in enumerate(procs):
    assert p.returncode == 0, f"process {i}:\n{logs[i][-3000:]}"
  # Only process 0 logs: the other one prints no progress line.
  assert f"[{'generator' if kind == 'generator' else 'deepstn'}" in logs[0]
  assert "[generator]" not in logs[1] and "[deepstn" not in logs[1]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["generator", "deepstn"])
def test_two_processes_equal_one(tmp_path, kind):
  _two_processes(kind, tmp_path / "two", tmp_path / "two.npz")
  one = subprocess.run([sys.executable, str(WORKER), kind, str(tmp_path / "one"),
                        str(tmp_path / "one.npz")], cwd=ROOT, capture_output=True, text=True,
                       timeout=600,
                       env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"))
  assert one.returncode == 0, one.stdout[-2000:] + one.stderr[-2000:]
  a, b = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
  assert sorted(a.files) == sorted(b.files) and len(a.files) > 10
  for k in a.files:
    np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-7, err_msg=k)
  # One set of outputs: process 0's metrics rows, checkpoints both processes wrote together.
  run = tmp_path / "two" if kind == "generator" else tmp_path / "two" / "stn_only"
  steps = [line for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
  assert len(steps) == len(set(steps)) and (run / "checkpoints").is_dir()


def test_environment_is_checked_before_joining():
  assert distributed.initialize_from_env({}) is False  # no coordinator: a single process
  with pytest.raises(ValueError, match="DENSESYNTH_NUM_PROCESSES"):
    distributed.initialize_from_env({distributed.COORDINATOR: "127.0.0.1:1"})
  with pytest.raises(ValueError, match="outside 0..1"):
    distributed.initialize_from_env({distributed.COORDINATOR: "127.0.0.1:1",
                                     distributed.NUM_PROCESSES: "2",
                                     distributed.PROCESS_ID: "5"})
  with pytest.raises(ValueError, match="must be integers"):
    distributed.initialize_from_env({distributed.COORDINATOR: "127.0.0.1:1",
                                     distributed.NUM_PROCESSES: "two",
                                     distributed.PROCESS_ID: "0"})
