"""Speed of one DeepSTN training step: the jitted JAX/Flax update against the same step in PyTorch.

  python benchmarks/bench_deepstn.py                     # CPU: small CNN, 64×64, combined mode
  python benchmarks/bench_deepstn.py --cpu_devices=2     # also JAX data-parallel over 2 host devices
  python benchmarks/bench_deepstn.py --repeats=3 --steps=5 --no_write
  python benchmarks/bench_deepstn.py --gpu-config        # AlexNet-like at 227×227 (GPU machines)
  python benchmarks/bench_deepstn.py --gpu-config --image_size=128

Both frameworks run the SAME step on a batch of 25 pairs drawn from a uint8 image pool:
  gather the 2×25 images from the pool by index (host) -> one random crop-and-resize + mirror per
  image (affine grid + bilinear sampling) -> localisation net (own conv trunk -> 1×1 conv -> FC 128
  -> FC 3, s = 0.05·raw) -> STN patch (affine_grid / grid_sample, zeros padding, align_corners
  False, with DeepSTN's boundary gradient rule) -> ONE shared backbone on patch and whole image ->
  concatenated features -> linear score -> RankNet loss (weighted mean) -> backward -> SGD with
  momentum 0.9, weight decay 5e-4 on kernels, the localisation net at 0.1× the rate.
JAX: `densesynth_jax.rankers.deepstn.make_update_fn` (jit, state donated) on a 1-device mesh, and
with `--cpu_devices=N` also on a mesh of N host CPU devices (`--xla_force_host_platform_device_count`:
each device takes 1/N of the batch, as on N accelerators; the batch is padded to a multiple of N
with zero-weight pairs, and the rate still counts the real pairs only).
PyTorch: the same layers (`nn.Conv2d` / `nn.BatchNorm2d` / `F.affine_grid` / `F.grid_sample`, a
custom autograd function for the boundary rule, `torch.optim.SGD` with two parameter groups).

Timing: warm-up steps first (JAX compiles there), then `--repeats` rounds; each round times
`--steps` steps of JAX and then of PyTorch (interleaved, because the CPU is shared with other
jobs). Pairs / second = 25 × steps / seconds; medians over rounds and their ratio are printed and
written to the `## DeepSTN` section of `benchmarks/RESULTS.md` (other sections are kept).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path


def _cpu_devices(argv) -> int:
  """--cpu_devices=N, read before JAX starts (the host device count is fixed at start-up)."""
  for i, a in enumerate(argv):
    if a.startswith("--cpu_devices="):
      return int(a.split("=", 1)[1])
    if a == "--cpu_devices" and i + 1 < len(argv):
      return int(argv[i + 1])
  return 1


if _cpu_devices(sys.argv) > 1:
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             f" --xla_force_host_platform_device_count={_cpu_devices(sys.argv)}")

import jax  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from densesynth_jax import mesh as mesh_lib  # noqa: E402
from densesynth_jax.rankers import deepstn as ranker  # noqa: E402
from densesynth_jax.types import PairSet  # noqa: E402

from _common import RESULTS, cpu_description, write_section  # noqa: E402

SECTION = "## DeepSTN"


# ------------------------------------------------------------------------------------ PyTorch

def torch_model(cfg, device):
  """The PyTorch twin of `DeepSTN(mode="combined")` for `cfg`, and its SGD optimiser."""
  import torch
  from torch import nn
  import torch.nn.functional as F

  def small_cnn():
    layers, c_in = [], 3
    for c in cfg.cnn_channels:
      layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False),
                 nn.BatchNorm2d(c, momentum=1 - cfg.bn_momentum), nn.ReLU(), nn.MaxPool2d(2)]
      c_in = c
    return nn.Sequential(*layers), c_in

  def alexnet_convs():
    return nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(),
        nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2)), 256

  def trunk():
    return small_cnn() if cfg.backbone == "small_cnn" else alexnet_convs()

  def spatial(size):
    """Side of the trunk's output map for an input of `size`."""
    return size // 2 ** len(cfg.cnn_channels) if cfg.backbone == "small_cnn" else \
        _alex_spatial(size)

  class Theta(torch.autograd.Function):
    """(s, t_x, t_y) -> θ, with the gradient of ½·s²·(t_x²+t_y²) once the centre is outside."""

    @staticmethod
    def forward(ctx, p):
      ctx.save_for_backward(p)
      s, tx, ty = p[:, 0], p[:, 1], p[:, 2]
      z = torch.zeros_like(s)
      return torch.stack([torch.stack([s, z, s * tx], -1), torch.stack([z, s, s * ty], -1)], 1)

    @staticmethod
    def backward(ctx, g):
      (p,) = ctx.saved_tensors
      s, tx, ty = p[:, 0], p[:, 1], p[:, 2]
      plain = torch.stack([g[:, 0, 0] + g[:, 1, 1] + g[:, 0, 2] * tx + g[:, 1, 2] * ty,
                           g[:, 0, 2] * s, g[:, 1, 2] * s], -1)
      pull = torch.stack([s * (tx ** 2 + ty ** 2), s ** 2 * tx, s ** 2 * ty], -1)
      outside = torch.maximum((s * tx).abs(), (s * ty).abs()) > 1
      return torch.where(outside[:, None], pull, plain)

  class Ranker(nn.Module):
    def __init__(self):
      super().__init__()
      self.loc_trunk, c = trunk()
      n = spatial(cfg.image_size)
      self.loc_conv = nn.Conv2d(c, cfg.loc_conv_channels, 1)
      self.loc_fc1 = nn.Linear(cfg.loc_conv_channels * n * n, cfg.loc_hidden)
      self.loc_fc2 = nn.Linear(cfg.loc_hidden, 3)
      nn.init.zeros_(self.loc_fc2.weight)
      with torch.no_grad():
        self.loc_fc2.bias.copy_(torch.tensor([cfg.scale_init / 0.05, 0.0, 0.0]))
      self.backbone, c = trunk()
      if cfg.backbone == "alexnet":
        m = spatial(cfg.patch_size)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(256 * m * m, cfg.alexnet_fc), nn.ReLU(),
                                nn.Dropout(cfg.dropout), nn.Linear(cfg.alexnet_fc, cfg.alexnet_fc),
                                nn.ReLU(), nn.Dropout(cfg.dropout))
        c = cfg.alexnet_fc
      else:
        self.fc = None
      self.head = nn.Linear(2 * c, 1)

    def features(self, x):
      h = self.backbone(x)
      return self.fc(h) if self.fc is not None else h.mean((2, 3))

    def forward(self, x):
      h = F.relu(self.loc_conv(self.loc_trunk(x)))
      raw = self.loc_fc2(F.relu(self.loc_fc1(h.flatten(1))))
      p = torch.stack([0.05 * raw[:, 0], raw[:, 1], raw[:, 2]], -1)
      grid = F.affine_grid(Theta.apply(p), (x.shape[0], 3, cfg.patch_size, cfg.patch_size),
                           align_corners=False)
      patch = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
      return self.head(torch.cat([self.features(patch), self.features(x)], -1))[:, 0]

  model = Ranker().to(device)
  groups = {("loc", True): [], ("loc", False): [], ("ranker", True): [], ("ranker", False): []}
  for name, p in model.named_parameters():
    groups[("loc" if name.startswith("loc_") else "ranker", p.ndim > 1)].append(p)
  opt = torch.optim.SGD([dict(params=ps, lr=cfg.lr * (cfg.loc_lr_mult if k == "loc" else 1.0),
                              weight_decay=cfg.weight_decay if decay else 0.0)
                         for (k, decay), ps in groups.items() if ps],
                        lr=cfg.lr, momentum=cfg.momentum)
  return model, opt


def _alex_spatial(size: int) -> int:
  n = (size - 11) // 4 + 1
  for _ in range(3):
    n = (n - 3) // 2 + 1
  return n


def torch_step_fn(cfg, device):
  """A closure running one PyTorch training step on a host batch from `ranker.make_batch`."""
  import torch
  import torch.nn.functional as F
  model, opt = torch_model(cfg, device)
  gen = torch.Generator(device="cpu").manual_seed(0)
  c = cfg.crop_scale

  def step(batch):
    imgs = torch.from_numpy(np.concatenate([batch["a"], batch["b"]])).to(device)
    x = imgs.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    n = x.shape[0]
    off = (torch.rand(n, 2, generator=gen) * 2 - 1) * (1 - c)
    mirror = torch.rand(n, generator=gen) < 0.5
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = torch.where(mirror, -c, c)
    theta[:, 1, 1] = c
    theta[:, :, 2] = off
    grid = F.affine_grid(theta.to(device), (n, 3, cfg.image_size, cfg.image_size),
                         align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    scores = model(x)
    half = n // 2
    d = scores[:half] - scores[half:]
    t = torch.from_numpy(batch["target"]).to(device)
    w = torch.from_numpy(batch["weight"]).to(device)
    loss = (w * F.binary_cross_entropy_with_logits(d, t, reduction="none")).sum() / w.sum()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss

  return model, step


# ------------------------------------------------------------------------------------ JAX

def jax_step_fn(cfg, mesh, pool, pairs):
  """A closure running one JAX step on the batch of pair indices it is given, padded for `mesh`."""
  state = ranker.init_state(cfg, "combined", jax.random.key(0), mesh)
  update = ranker.make_update_fn(cfg, "combined", mesh)
  size = ranker.padded_batch_size(cfg.batch_pairs, mesh)
  rng = jax.random.key(1)
  box = {"state": state}

  def step(index):
    batch = ranker.make_batch(pool, pairs, index, size)
    box["state"], metrics = update(box["state"], mesh_lib.shard_batch(batch, mesh), rng)
    return metrics["loss"]

  return box, step


# ------------------------------------------------------------------------------------ driver

def machine_line() -> str:
  import torch
  return (f"{cpu_description()}; jax {jax.__version__} (`{jax.default_backend()}`, "
          f"{[d.device_kind for d in jax.devices()][:1]}), torch {torch.__version__} "
          f"({torch.get_num_threads()} threads)")


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--gpu-config", dest="gpu_config", action="store_true",
                 help="time the AlexNet-like config (input --image_size) instead of the small CNN")
  p.add_argument("--image_size", type=int, default=227, help="--gpu-config input side (227/128)")
  p.add_argument("--pairs", type=int, default=25, help="pairs per step")
  p.add_argument("--steps", type=int, default=5, help="steps per timed round")
  p.add_argument("--repeats", type=int, default=10, help="timed rounds per framework")
  p.add_argument("--warmup", type=int, default=3, help="untimed steps per framework first")
  p.add_argument("--cpu_devices", type=int, default=1,
                 help="also time JAX data-parallel over this many host CPU devices (> 1)")
  p.add_argument("--no_write", action="store_true", help="do not touch benchmarks/RESULTS.md")
  args = p.parse_args()

  import torch
  cfg = ranker.default_config()
  cfg.batch_pairs = args.pairs
  device = "cpu"
  if args.gpu_config:
    cfg.backbone = "alexnet"
    cfg.image_size = cfg.patch_size = args.image_size
    device = "cuda" if torch.cuda.is_available() else "cpu"
  rng = np.random.default_rng(0)
  pool = rng.integers(0, 256, (500, 64, 64, 3), dtype=np.uint8)
  pairs = PairSet.create(rng.integers(0, 500, 5000), rng.integers(0, 500, 5000),
                         rng.choice([-1, 1], 5000), attribute="bench")
  indices = [np.arange(i, i + args.pairs) for i in range(0, 5000 - args.pairs, args.pairs)]
  # The same host work for PyTorch: its batch is gathered from the pool by index in the step.
  torch_batch = lambda index: ranker.make_batch(pool, pairs, index, args.pairs)

  meshes = {"jax": mesh_lib.make_mesh(1)}
  if args.cpu_devices > 1 and not args.gpu_config:
    meshes[f"jax_{args.cpu_devices}dev"] = mesh_lib.make_mesh(args.cpu_devices)
  steps, jax_first = {}, {}
  for name, mesh in meshes.items():
    t0 = time.perf_counter()
    _, steps[name] = jax_step_fn(cfg, mesh, pool, pairs)
    jax.block_until_ready(steps[name](indices[0]))
    jax_first[name] = time.perf_counter() - t0
  _, tstep_batch = torch_step_fn(cfg, device)
  steps["torch"] = lambda index: tstep_batch(torch_batch(index))
  sync = (lambda: torch.cuda.synchronize()) if device == "cuda" else (lambda: None)
  waits = {name: jax.block_until_ready for name in meshes}
  waits["torch"] = lambda x: (sync(), x.item())
  k = 1
  for _ in range(args.warmup):
    for name, step in steps.items():
      waits[name](step(indices[k % len(indices)]))
    k += 1

  rates = {name: [] for name in steps}
  for r in range(args.repeats):
    for name, step in steps.items():
      t = time.perf_counter()
      out = None
      for i in range(args.steps):
        out = step(indices[(k + i) % len(indices)])
      waits[name](out)
      rates[name].append(args.pairs * args.steps / (time.perf_counter() - t))
    k += args.steps
    print(f"[round {r + 1}/{args.repeats}] " + ", ".join(
        f"{name} {v[-1]:.1f} pairs/s" for name, v in rates.items()), flush=True)

  med = {n: statistics.median(v) for n, v in rates.items()}
  best = {n: max(v) for n, v in rates.items()}
  what = (f"AlexNet-like, {cfg.image_size}×{cfg.image_size}, device {device}" if args.gpu_config
          else f"small CNN {tuple(cfg.cnn_channels)}, 64×64 input, {cfg.patch_size}×"
               f"{cfg.patch_size} patch, CPU")
  machine = machine_line()
  for name in meshes:
    print(f"{name}: median pairs/s {med[name]:.1f} vs torch {med['torch']:.1f} (ratio "
          f"{med[name] / med['torch']:.2f}); best {best[name]:.1f} vs {best['torch']:.1f} (ratio "
          f"{best[name] / best['torch']:.2f}); first step incl. compile {jax_first[name]:.1f} s",
          flush=True)
  if args.no_write:
    return
  command = "python benchmarks/bench_deepstn.py" + (
      f" --gpu-config --image_size={args.image_size}" if args.gpu_config else "") + (
      f" --cpu_devices={args.cpu_devices}" if len(meshes) > 1 else "")
  fmt = lambda xs: ", ".join(f"{x:.1f}" for x in xs)
  label = lambda name: ("JAX / Flax, 1-device mesh" if name == "jax" else
                        f"JAX / Flax, {meshes[name].size} host devices (data parallel)")
  rows = "\n".join(
      f"| {label(n)} | {best[n]:.1f} | {med[n]:.1f} | {fmt(rates[n])} |" for n in meshes)
  rows += (f"\n| PyTorch {torch.__version__} | {best['torch']:.1f} | {med['torch']:.1f} | "
           f"{fmt(rates['torch'])} |\n")
  rows += "\n".join(f"| **ratio {label(n)} / PyTorch** | {best[n] / best['torch']:.2f}× | "
                     f"**{med[n] / med['torch']:.2f}×** | |" for n in meshes)
  firsts = "; ".join(f"{label(n)} {jax_first[n]:.1f} s" for n in meshes)
  text = f"""{SECTION}

`{command}` ({datetime.date.today().isoformat()}).
One DeepSTN training step (combined mode: localisation net, STN patch with the boundary rule,
one shared backbone on patch and whole image, RankNet loss, backward, SGD momentum 0.9, weight
decay 5e-4, localisation net at 0.1× lr), {args.pairs} pairs per step,
{what}; each step gathers its batch from a uint8 pool by index on the host, in both.
JAX: `rankers.deepstn.make_update_fn` (jit, donated state; the default config, so on the
1-device CPU mesh the small CNN trains on slices of {cfg.cpu_chunk_images} images, and data-parallel
meshes run whole per-device batches); PyTorch: the same layers with
`F.affine_grid` / `F.grid_sample` and `torch.optim.SGD`. {args.warmup} warm-up steps, then
{args.repeats} interleaved rounds of {args.steps} steps each; median and best round.
Machine: {machine}.
Rates depend on what else runs: when other jobs load the cores both frameworks are CPU-starved
and rates move several-fold between rounds (PyTorch's spinning OpenMP threads suffer most; an
earlier run under load average ~6 gave JAX 21.3 vs PyTorch 16.5 pairs/s best round). Compare
figures only from a quiet machine (load average below the core count at the start).

| framework | pairs/s (best) | pairs/s (median) | pairs/s (all rounds) |
|---|---:|---:|---|
{rows}

First step, including compilation: {firsts}.
"""
  write_section(text)
  print(f"[written] {RESULTS} ({SECTION})", flush=True)


if __name__ == "__main__":
  main()
