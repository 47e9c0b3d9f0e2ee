"""Speed of the generator's training step: this project's JAX CVAE vs the same model in PyTorch.

  pip install -e '.[bench]'           # torch==2.13.0 (CPU wheel), kept out of the main deps
  python benchmarks/bench_generator.py [--batch 32] [--size 64] [--steps 5] [--rounds 2]

Both frameworks run the SAME architecture (REFERENCE.md §1 at full size: z 256, widths 64–1024),
the same batch, the same step (forward, −ELBO with learned per-pixel variance, backward, Adam with
coupled L2 decay), after a warm-up step. Each framework runs in its own subprocess so its peak
memory (max RSS) is its own; rounds alternate JAX, PyTorch, JAX, ... so a busy machine slows both
alike. Prints images / second (median over steps and rounds), peak RSS and the ratio, and records
them in benchmarks/RESULTS.md under "## Generator".
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_jax(batch: int, size: int, steps: int) -> dict:
  import jax
  import numpy as np

  from densesynth_jax.models import cvae
  from densesynth_jax.train import generator
  cfg = generator.default_train_config()
  cfg.model = cvae.default_config()
  cfg.model.image_size = size
  cfg.train.batch_size = batch
  model = cvae.CVAE(cfg.model)
  tx = generator.make_optimizer(cfg)
  state = generator.init_state(model, tx, jax.random.PRNGKey(0), 40)
  update = jax.jit(generator.make_update(model, tx, augment=False), donate_argnums=0)
  rng = np.random.default_rng(0)
  b = dict(images=rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8),
           y=rng.normal(size=(batch, 40)).astype(np.float32))
  key = jax.random.PRNGKey(1)
  t0 = time.perf_counter()
  state, m = update(state, b, key)
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    state, m = update(state, b, key)
    jax.block_until_ready(m)
    times.append(time.perf_counter() - t0)
  return dict(times=times, warmup_s=compile_s, backend=jax.default_backend())


def run_torch(batch: int, size: int, steps: int) -> dict:
  import numpy as np
  import torch
  import torch.nn as nn
  import torch.nn.functional as F

  torch.manual_seed(0)
  z_dim, a_dim = 256, 40

  def cbr(cin, cout, k, bn=True, stride=1, pad=None):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2 if pad is None else pad)]
    if bn:
      layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU())
    return layers

  class Net(nn.Module):
    def __init__(self):
      super().__init__()
      self.enc = nn.Sequential(*cbr(3, 64, 5, bn=False), nn.MaxPool2d(2),
                               *cbr(64, 128, 5), nn.MaxPool2d(2),
                               *cbr(128, 256, 3), nn.MaxPool2d(2),
                               *cbr(256, 256, 3, stride=2, pad=1),
                               nn.Conv2d(256, 1024, 4), nn.ReLU(), nn.Flatten(),
                               nn.Linear(1024, 1024), nn.ReLU(), nn.Dropout(0.5))
      self.y_enc = nn.Linear(a_dim, 256)
      self.mu = nn.Linear(1024 + 256, z_dim)
      self.logvar = nn.Linear(1024, z_dim)
      self.y_dec = nn.Linear(a_dim, 512)
      self.fc0 = nn.Linear(z_dim + 512, 256)
      self.fc1 = nn.Linear(256, 256 * 64)
      up = [*cbr(256, 256, 3)]
      for cin, cout in ((256, 256), (256, 128), (128, 64)):
        up += [nn.Upsample(scale_factor=2, mode="nearest"), *cbr(cin, cout, 5)]
      self.dec = nn.Sequential(*up)
      self.mean = nn.Conv2d(64, 3, 5, padding=2)
      self.lv = nn.Conv2d(64, 3, 5, padding=2)

    def forward(self, x, y):
      hx = self.enc(x)
      hy = F.relu(self.y_enc(y))
      mu, logvar = self.mu(torch.cat([hx, hy], 1)), self.logvar(hx)
      z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
      h = F.relu(self.fc1(F.relu(self.fc0(torch.cat([z, F.relu(self.y_dec(y))], 1)))))
      h = self.dec(h.view(-1, 256, 8, 8))
      return torch.tanh(self.mean(h)), self.lv(h), mu, logvar

  net = Net()
  opt = torch.optim.Adam(net.parameters(), lr=3e-4, weight_decay=0.004 / batch)
  rng = np.random.default_rng(0)
  x = torch.from_numpy(rng.uniform(-1, 1, (batch, 3, size, size)).astype(np.float32))
  y = torch.from_numpy(rng.normal(size=(batch, a_dim)).astype(np.float32))

  def step():
    opt.zero_grad()
    m, lv, mu, logvar = net(x, y)
    nll = 0.5 * (np.log(2 * np.pi) + lv + (x - m) ** 2 * torch.exp(-lv))
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
    step()
    times.append(time.perf_counter() - t0)
  return dict(times=times, warmup_s=warm, threads=torch.get_num_threads())


def child(framework: str, batch: int, size: int, steps: int) -> None:
  import resource
  out = (run_jax if framework == "jax" else run_torch)(batch, size, steps)
  out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print("RESULT " + json.dumps(out))


def record(section: str) -> None:
  path = HERE / "RESULTS.md"
  text = path.read_text() if path.exists() else "# Benchmark results\n"
  pattern = re.compile(r"## Generator\n.*?(?=\n## |\Z)", re.S)
  text = pattern.sub(section.rstrip() + "\n", text) if pattern.search(text) else (
      text.rstrip() + "\n\n" + section)
  path.write_text(text)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--size", type=int, default=64)
  p.add_argument("--steps", type=int, default=5)
  p.add_argument("--rounds", type=int, default=2)
  p.add_argument("--child", choices=("jax", "torch"))
  p.add_argument("--no-record", action="store_true")
  a = p.parse_args()
  if a.child:
    child(a.child, a.batch, a.size, a.steps)
    return
  import numpy as np
  res = {"jax": [], "torch": []}
  for r in range(a.rounds):
    for fw in ("jax", "torch"):
      cmd = [sys.executable, __file__, "--child", fw, "--batch", str(a.batch), "--size",
             str(a.size), "--steps", str(a.steps)]
      proc = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
      line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
      if proc.returncode or not line:
        sys.exit(f"{fw} run failed:\n{proc.stderr[-3000:]}")
      res[fw].append(json.loads(line[0][7:]))
      print(f"round {r + 1} {fw}: median step {np.median(res[fw][-1]['times']):.3f} s", flush=True)
  summary = {}
  for fw, runs in res.items():
    t = np.median(np.concatenate([x["times"] for x in runs]))
    summary[fw] = dict(images_per_s=a.batch / t, step_s=t,
                       max_rss_mb=max(x["max_rss_mb"] for x in runs),
                       warmup_s=float(np.median([x["warmup_s"] for x in runs])))
  ratio = summary["jax"]["images_per_s"] / summary["torch"]["images_per_s"]
  rows = "\n".join(f"| {fw} | {s['images_per_s']:.1f} | {s['step_s']:.3f} | {s['max_rss_mb']:.0f} | "
                   f"{s['warmup_s']:.1f} |" for fw, s in summary.items())
  cpu = os.cpu_count()
  section = (
      f"## Generator\n\n`python benchmarks/bench_generator.py --batch {a.batch} --size {a.size} "
      f"--steps {a.steps} --rounds {a.rounds}` on {datetime.date.today()}: the full-size CVAE "
      f"(z 256, widths 64–1024, 40 attributes), batch {a.batch} at {a.size}×{a.size}, one training "
      f"step (forward, −ELBO, backward, Adam). {platform.machine()}, {cpu} CPU cores, jax backend "
      f"`{res['jax'][0]['backend']}`, torch threads {res['torch'][0]['threads']}. Medians over "
      f"{a.steps} steps × {a.rounds} alternating rounds, after one warm-up step each.\n\n"
      f"| framework | images/s | s/step | peak RSS (MB) | warm-up incl. compile (s) |\n"
      f"|---|---:|---:|---:|---:|\n{rows}\n\n"
      f"JAX / PyTorch throughput ratio: **{ratio:.2f}×**.\n")
  print(section)
  if not a.no_record:
    record(section)


if __name__ == "__main__":
  main()
