"""The whole pipeline on `configs/demo.py:smoke`: generator, synthesis, verification, every method."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from densesynth_jax.synth import jitter, store

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_smoke_runs_every_method(tmp_path):
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)  # one host device, as in tests/test_main.py
  r = subprocess.run([sys.executable, "train_ranker.py", "--config=configs/demo.py:smoke",
                      f"--workdir={tmp_path}"], cwd=ROOT, env=env, capture_output=True,
                     text=True, timeout=900)
  assert r.returncode == 0, r.stderr[-3000:]
  results = json.loads((tmp_path / "results.json").read_text())
  got = {(c["ranker"], c["method"]) for c in results["cells"]}
  assert got == {("ranksvm_local", m) for m in
                 ("real", "real_plus", "jitter", "dsynth", "dsynth_auto", "dsynth_auto_oracle")} | {
                     ("classifier", "classifier")}
  by = {c["method"]: c for c in results["cells"]}
  n_real = by["real"]["pool"]["num_pairs"]
  assert by["dsynth"]["pool"]["pairs_by_source"]["real"] == round(n_real / 2)
  assert by["dsynth_auto"]["pool"]["pairs_by_source"] == {"real": n_real, "synth": n_real}
  assert by["dsynth_auto_oracle"]["pool"]["pairs_by_source"] == {"real": n_real, "synth": n_real}
  assert by["jitter"]["pool"]["pairs_by_source"] == {"real": n_real, "jitter": n_real}
  # The generator ran, the synthetic set and its verification were persisted.
  gen = tmp_path / "generator"
  assert (gen / "generator_eval.json").is_file() and (gen / "figures" / "spectra_smiling.png").is_file()
  # The paper's resolution rule: real images downsized to the generator's side (16 in :smoke),
  # where the synthetic ones are rendered.
  side = results["rank_image_size"]
  assert side == 16
  s, _ = store.load(tmp_path / "synth" / "smiling")
  assert 120 <= len(s.pairs) <= 240 and s.images.images.shape[1:] == (side, side, 3)
  oracle, _ = store.load(tmp_path / "synth_oracle" / "smiling")
  assert oracle.images.images.shape[1:] == (side, side, 3)
  # The oracle draws what it is asked: its clipped ±δσ pairs differ in the rendered smile.
  assert oracle.info["range_policy"] == "clip"
  ver = json.loads((tmp_path / "synth" / "smiling" / "verification.json").read_text())
  assert ver["mode"] == "simulated" and ver["num_votes"] == 5 * len(s.pairs)
  # The overall agreement is the pair-weighted mean of the intra- and inter-identity ones.
  by_kind = ver["auto_label_accuracy_vs_measured_by_kind"]
  counts = {k: int(np.sum(s.kind == code)) for k, code in (("intra", jitter.INTRA),
                                                           ("inter", jitter.INTER))}
  mean = sum(by_kind[k] * counts[k] for k in by_kind) / sum(counts[k] for k in by_kind)
  assert ver["auto_label_accuracy_vs_measured"] == pytest.approx(mean)
  assert "dsynth_auto_oracle (reference)" in (tmp_path / "results.md").read_text()
  for f in ("synth_pairs_smiling.png", "synth_oracle_pairs_smiling.png",
            "neighbours_smiling_dsynth_auto.png"):
    assert (tmp_path / "figures" / f).is_file()
  assert np.isfinite([c["accuracy"]["test_fine"] for c in results["cells"]]).all()
