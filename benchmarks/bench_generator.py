"""Speed of the generator's training step: this project's JAX CVAE vs the same model in PyTorch.

  pip install -e '.[bench]'           # torch==2.13.0 (CPU wheel), kept out of the main deps
  python benchmarks/bench_generator.py [--batch 32] [--size 64] [--steps 6] [--rounds 3]

Both frameworks run the SAME architecture (REFERENCE.md §1 at full size: z 256, widths 64–1024,
no conv bias before BatchNorm, zero-initialised log σ² head, nearest upsample + 5×5 conv), with 40
attributes, the same batch, the same step: forward in training mode (batch-statistics BN, dropout
0.5, reparameterised z), −ELBO with a learned per-pixel variance, backward, Adam with coupled L2
decay λ/B. Augmentation is off in both (it is a cheap elementwise op).

Each framework runs in its own subprocess, so its peak memory (max RSS, `resource.getrusage`) is
its own and the JAX process never sees PyTorch's thread pool. The machine is shared with other
jobs, so rounds are INTERLEAVED in one invocation (JAX, PyTorch, JAX, PyTorch, ...): contention hits
both alike. Each round: one warm-up step (JAX: compilation), then `--steps` timed steps. Prints
images / second (median over every timed step of every round), peak RSS and the ratio, and
records them in benchmarks/RESULTS.md under "## Generator" (other sections are left alone).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from _common import write_section

HERE = Path(__file__).resolve().parent
NUM_ATTRIBUTES = 40


def run_jax(batch: int, size: int, steps: int) -> dict:
  import jax
  import numpy as np

  from densesynth_jax.models import cvae
  from densesynth_jax.generator import trainer as generator
  from densesynth_jax import mesh as mesh_lib
  cfg = generator.default_train_config()
  cfg.model = cvae.default_config()
  cfg.model.image_size = size
  cfg.train.batch_size = batch
  cfg.train.augment = False
  t0 = time.perf_counter()
  prog = generator.programs(cfg, NUM_ATTRIBUTES, mesh_lib.make_mesh(1))
  state = prog.init(jax.random.PRNGKey(0))
  jax.block_until_ready(state)
  init_s = time.perf_counter() - t0
  rng = np.random.default_rng(0)
  b = dict(images=rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8),
           y=rng.normal(size=(batch, NUM_ATTRIBUTES)).astype(np.float32))
  key = jax.random.PRNGKey(1)
  t0 = time.perf_counter()
  state, m = prog.update(state, b, key)
  jax.block_until_ready(m)
  warm = time.perf_counter() - t0
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    state, m = prog.update(state, b, key)
    float(m["neg_elbo"])  # the training loop reads the metrics every step, so do we
    times.append(time.perf_counter() - t0)
  n_params = sum(x.size for x in jax.tree.leaves(state.params))
  return dict(times=times, warmup_s=warm, init_s=init_s, backend=jax.default_backend(),
              params=int(n_params), loss=float(m["neg_elbo"]))


def torch_model(size: int, z_dim: int = 256, a_dim: int = NUM_ATTRIBUTES):
  """The CVAE of models/cvae.py at 64×64 (3 stages), in PyTorch (NCHW)."""
  import torch
  import torch.nn as nn
  import torch.nn.functional as F

  stages = {16: 1, 32: 2, 64: 3}[size]

  def conv_bn(cin, cout, k, stride=1):
    return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout, momentum=0.1),
            nn.ReLU()]

  class CVAE(nn.Module):
    def __init__(self):
      super().__init__()
      enc_w = [64, 128, 256][:stages]
      layers, cin = [], 3
      for i, w in enumerate(enc_w):
        k = 5 if i < 2 else 3
        layers += ([nn.Conv2d(cin, w, k, 1, k // 2), nn.ReLU()] if i == 0 else conv_bn(cin, w, k))
        layers.append(nn.MaxPool2d(2))
        cin = w
      layers += conv_bn(cin, 256, 3, stride=2)
      layers += [nn.Conv2d(256, 1024, 4), nn.ReLU(), nn.Flatten(), nn.Linear(1024, 1024),
                 nn.ReLU(), nn.Dropout(0.5)]
      self.image_encoder = nn.Sequential(*layers)
      self.y_enc = nn.Linear(a_dim, 256)
      self.mu = nn.Linear(1024 + 256, z_dim)
      self.logvar = nn.Linear(1024, z_dim)
      nn.init.zeros_(self.logvar.weight)
      nn.init.zeros_(self.logvar.bias)
      self.y_dec = nn.Linear(a_dim, 512)
      self.fc0 = nn.Linear(z_dim + 512, 256)
      self.fc1 = nn.Linear(256, 256 * 64)
      up, cin = conv_bn(256, 256, 3), 256
      for w in [256, 128, 64][-stages:]:
        up += [nn.Upsample(scale_factor=2, mode="nearest"), *conv_bn(cin, w, 5)]
        cin = w
      self.decoder = nn.Sequential(*up)
      self.mean = nn.Conv2d(cin, 3, 5, padding=2)
      self.lv = nn.Conv2d(cin, 3, 5, padding=2)

    def forward(self, x, y):
      hx = self.image_encoder(x)
      hy = F.relu(self.y_enc(y))
      mu, logvar = self.mu(torch.cat([hx, hy], 1)), self.logvar(hx)
      z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
      h = F.relu(self.fc1(F.relu(self.fc0(torch.cat([z, F.relu(self.y_dec(y))], 1)))))
      h = self.decoder(h.view(-1, 256, 8, 8))
      return torch.tanh(self.mean(h)), self.lv(h), mu, logvar

  return CVAE()


def run_torch(batch: int, size: int, steps: int) -> dict:
  import math

  import numpy as np
  import torch

  torch.manual_seed(0)
  t0 = time.perf_counter()
  net = torch_model(size)
  net.train()
  opt = torch.optim.Adam(net.parameters(), lr=3e-4, betas=(0.9, 0.999),
                         weight_decay=0.004 / batch)  # coupled L2, like optax.add_decayed_weights
  init_s = time.perf_counter() - t0
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
  y = torch.from_numpy(rng.normal(size=(batch, NUM_ATTRIBUTES)).astype(np.float32))
  log2pi = math.log(2 * math.pi)

  def step():
    # Same input path as the JAX step: uint8 NHWC -> float [-1, 1] (NCHW for PyTorch).
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    opt.zero_grad(set_to_none=True)
    m, lv, mu, logvar = net(x, y)
    nll = 0.5 * (log2pi + lv + (x - m) ** 2 * torch.exp(-lv))
    kl = 0.5 * (torch.exp(logvar) + mu ** 2 - 1 - logvar).sum(1)
    loss = (nll.flatten(1).sum(1) + kl).mean()
    loss.backward()
    opt.step()
    return float(loss)

  t0 = time.perf_counter()
  step()
  warm = time.perf_counter() - t0
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    loss = step()
    times.append(time.perf_counter() - t0)
  return dict(times=times, warmup_s=warm, init_s=init_s, threads=torch.get_num_threads(),
              params=int(sum(p.numel() for p in net.parameters())), loss=loss,
              version=torch.__version__)


def child(framework: str, batch: int, size: int, steps: int) -> None:
  import resource
  out = (run_jax if framework == "jax" else run_torch)(batch, size, steps)
  out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print("RESULT " + json.dumps(out), flush=True)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--size", type=int, default=64)
  p.add_argument("--steps", type=int, default=6, help="timed steps per round, after warm-up")
  p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per framework")
  p.add_argument("--child", choices=("jax", "torch"))
  p.add_argument("--no-record", action="store_true", help="print only; leave RESULTS.md alone")
  p.add_argument("--notes", default="", help="text appended to the recorded section")
  a = p.parse_args()
  if a.child:
    child(a.child, a.batch, a.size, a.steps)
    return
  import numpy as np
  res = {"jax": [], "torch": []}
  loads = []
  for r in range(a.rounds):
    for fw in ("jax", "torch"):
      cmd = [sys.executable, __file__, "--child", fw, "--batch", str(a.batch), "--size",
             str(a.size), "--steps", str(a.steps)]
      loads.append(os.getloadavg()[0])
      proc = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
      line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
      if proc.returncode or not line:
        sys.exit(f"{fw} run failed:\n{proc.stderr[-3000:]}")
      res[fw].append(json.loads(line[0][7:]))
      t = res[fw][-1]["times"]
      print(f"round {r + 1} {fw}: median step {np.median(t):.3f} s (min {min(t):.3f}), "
            f"warm-up {res[fw][-1]['warmup_s']:.1f} s", flush=True)
  summary = {}
  for fw, runs in res.items():
    t = np.concatenate([x["times"] for x in runs])
    summary[fw] = dict(images_per_s=a.batch / np.median(t), step_s=float(np.median(t)),
                       best_step_s=float(t.min()),
                       max_rss_mb=max(x["max_rss_mb"] for x in runs),
                       warmup_s=float(np.median([x["warmup_s"] for x in runs])),
                       params=runs[0]["params"])
  ratio = summary["jax"]["images_per_s"] / summary["torch"]["images_per_s"]
  if summary["jax"]["params"] != summary["torch"]["params"]:
    sys.exit(f"the two models differ: {summary['jax']['params']} vs "
             f"{summary['torch']['params']} parameters")
  names = {"jax": "JAX (jit, donated state)", "torch": f"PyTorch {res['torch'][0]['version']}"}
  rows = "\n".join(
      f"| {names[fw]} | {s['images_per_s']:.1f} | {s['step_s']:.3f} | {s['best_step_s']:.3f} | "
      f"{s['max_rss_mb']:.0f} | {s['warmup_s']:.1f} |" for fw, s in summary.items())
  section = (
      f"## Generator\n\n`python benchmarks/bench_generator.py --batch {a.batch} --size {a.size} "
      f"--steps {a.steps} --rounds {a.rounds}` ({datetime.date.today()}): one training step of "
      f"the full-size CVAE ({summary['jax']['params']:,} parameters; z 256, widths 64–1024, "
      f"{NUM_ATTRIBUTES} attributes), batch {a.batch} at {a.size}×{a.size}: forward in training "
      f"mode, −ELBO, backward, Adam. {platform.machine()}, {os.cpu_count()} CPU cores shared with "
      f"other jobs (load average {min(loads):.1f}–{max(loads):.1f} at the round starts), jax "
      f"backend `{res['jax'][0]['backend']}`, torch threads {res['torch'][0]['threads']}. Each "
      f"framework in its own subprocess; {a.rounds} interleaved rounds (JAX, PyTorch, JAX, ...) "
      f"of {a.steps} timed steps after one warm-up step.\n\n"
      f"| framework | images/s (median) | s/step (median) | s/step (best) | peak RSS (MB) | "
      f"warm-up step incl. compile (s) |\n|---|---:|---:|---:|---:|---:|\n{rows}\n\n"
      f"JAX / PyTorch throughput ratio: **{ratio:.2f}×**.\n")
  if a.notes:
    section += "\n" + a.notes.strip() + "\n"
  print(section)
  if not a.no_record:
    write_section(section)


if __name__ == "__main__":
  main()
