"""benchmarks/gpu.sh --dry-run: every command it would run names an existing script and only
flags that script knows (the run itself needs a GPU; CI never has one)."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_script_dry_run_parses_every_command():
  r = subprocess.run(["bash", "benchmarks/gpu.sh", "--dry-run"], cwd=ROOT, capture_output=True,
                     text=True, timeout=300)
  assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
  lines = [l for l in r.stdout.splitlines() if l.startswith("[dry-run]")]
  for script in ("bench_generator.py", "bench_deepstn.py --gpu-config", "bench_local_ranksvm.py",
                 "bench_gist.py", "train_generator.py", "bench_synth.py"):
    assert any(script in l for l in lines), script
  assert lines[-1] == "[dry-run] ok: 6 commands"
