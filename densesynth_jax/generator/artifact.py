"""A trained generator as an artifact: loaded from its workdir and used as a renderer.

This module does not train. A generator run's workdir holds `generator.json` (attribute names,
the strength standardisation, image sizes, the config) and `checkpoints/`; `load_generator`
restores the latest checkpoint into a `Generator` that renders y in RAW strength units (the
domain's), z ~ N(0, I), through the decoder MEAN, jitted, batched and sharded over the mesh.
`checkpoint_hash` is the fingerprint synthetic sets are cached under.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jax
import ml_collections
import numpy as np

from densesynth_jax import io
from densesynth_jax import mesh as mesh_lib
from densesynth_jax.generator.model import abstract_state, to_uint8
from densesynth_jax.models import cvae
from densesynth_jax.train.checkpoint import Checkpointer
from densesynth_jax.train.loop import CHECKPOINTS, TrainState, batched_apply

META_FILE = "generator.json"


def read_meta(workdir: str | Path) -> dict:
  path = Path(workdir) / META_FILE
  if not path.exists():
    raise FileNotFoundError(f"missing file: {path} (not a generator run; train one with "
                            f"`python train_generator.py --config=... --workdir={workdir}`)")
  return io.read_json(path)


def restore(workdir: Path, meta: dict) -> tuple[TrainState, int]:
  """The latest checkpoint's TrainState and its step."""
  with Checkpointer(Path(workdir) / CHECKPOINTS) as ckpt:
    step = ckpt.latest_step
    if step is None:
      raise FileNotFoundError(f"no generator checkpoint in {Path(workdir) / CHECKPOINTS}")
    return ckpt.restore(abstract_state(meta), step), int(step)


def state_hash(meta: dict, step: int, params, batch_stats) -> str:
  """`<step>-<16 hex digits>`: sha256 of what rendering depends on (meta, weights)."""
  h = hashlib.sha256()
  h.update(json.dumps({k: meta[k] for k in ("attribute_names", "y_mean", "y_std", "model",
                                            "render_size")}, sort_keys=True).encode())
  for path, leaf in jax.tree_util.tree_leaves_with_path((params, batch_stats)):
    x = np.ascontiguousarray(np.asarray(leaf))
    h.update(f"{jax.tree_util.keystr(path)}{x.shape}{x.dtype}".encode())
    h.update(x.tobytes())
  return f"{step}-{h.hexdigest()[:16]}"


def checkpoint_hash(workdir: str | Path) -> str:
  """The fingerprint of the latest checkpoint: same weights and normalisation -> same string."""
  workdir = Path(workdir)
  meta = read_meta(workdir)
  state, step = restore(workdir, meta)
  return state_hash(meta, step, state.params, state.batch_stats)


def check_identities(y: np.ndarray, z: np.ndarray, attribute_names, z_dim: int) -> None:
  """Raises a one-line ValueError unless y is (B, A) and z is (B, z_dim), both finite."""
  if y.ndim != 2 or y.shape[1] != len(attribute_names):
    raise ValueError(f"y must be (B, {len(attribute_names)}) strengths of "
                     f"{tuple(attribute_names)}, got shape {y.shape}")
  if z.shape != (len(y), z_dim):
    raise ValueError(f"z must be ({len(y)}, {z_dim}), got shape {z.shape}")
  if not (np.isfinite(y).all() and np.isfinite(z).all()):
    raise ValueError("y and z must be finite")


class Generator:
  """A trained CVAE as a renderer (the decoder MEAN), jitted, batched, sharded over the mesh.

  Attributes:
    attribute_names: the A strength columns y is given in.
    y_mean, y_std: float32 (A,) train-split statistics (raw units); y_std[a] is σ_A.
    z_dim: latent size; image_size: the model's side; render_size: the side of its renders.
    fingerprint: `checkpoint_hash` of the loaded weights; step: their training step.
  """

  def __init__(self, workdir: Path, meta: dict, params, batch_stats, step: int,
               batch: int = 256, render_size: int | None = None):
    self.workdir, self.meta, self.step = Path(workdir), meta, int(step)
    self.attribute_names = tuple(meta["attribute_names"])
    self.model_cfg = ml_collections.ConfigDict(meta["model"])
    self.model = cvae.CVAE(self.model_cfg)
    self.z_dim = int(self.model_cfg.z_dim)
    self.image_size = int(meta["image_size"])
    self.render_size = int(render_size or meta["render_size"])
    self.y_mean = np.asarray(meta["y_mean"], np.float32)
    self.y_std = np.asarray(meta["y_std"], np.float32)
    self.fingerprint = state_hash(meta, step, params, batch_stats)
    self._mesh = mesh_lib.make_mesh(local=True)  # rendering: this process's devices
    self.batch = int(batch)
    repl = mesh_lib.replicated(self._mesh)
    self.variables = jax.device_put({"params": params, "batch_stats": batch_stats}, repl)
    model, out = self.model, self.render_size

    def mean_image(variables, y, z):
      x = cvae.sample(model, variables, y, z)
      if x.shape[1] != out:
        x = jax.image.resize(x, (x.shape[0], out, out, 3), "linear")
      return x

    shard = mesh_lib.data_sharding(self._mesh)
    self._sample = jax.jit(mean_image, in_shardings=(repl, shard, shard), out_shardings=shard)
    self._render = jax.jit(lambda v, y, z: to_uint8(mean_image(v, y, z)),
                           in_shardings=(repl, shard, shard), out_shardings=shard)

  def standardise(self, y_raw: np.ndarray) -> np.ndarray:
    return ((np.asarray(y_raw, np.float32) - self.y_mean) / self.y_std).astype(np.float32)

  def _batched(self, fn, y_raw, z, dtype) -> np.ndarray:
    y, z = self.standardise(y_raw), np.asarray(z, np.float32)
    check_identities(y, z, self.attribute_names, self.z_dim)
    side = self.render_size
    return batched_apply(fn, [y, z], self.batch, self._mesh, self.variables,
                         empty_shape=(side, side, 3), empty_dtype=dtype)

  def render(self, y_raw: np.ndarray, z: np.ndarray) -> np.ndarray:
    """uint8 (B, R, R, 3) decoder-mean images for raw strengths y (B, A) and latents z (B, Z)."""
    return self._batched(self._render, y_raw, z, np.uint8)

  def sample(self, y_raw: np.ndarray, z: np.ndarray) -> np.ndarray:
    """float32 (B, R, R, 3) decoder-mean images in [-1, 1] (R = render_size)."""
    return self._batched(self._sample, y_raw, z, np.float32).astype(np.float32)

  def __call__(self, y_raw, z) -> np.ndarray:
    return self.render(y_raw, z)


def load_generator(workdir: str | Path, batch: int = 256, render_size: int | None = None
                   ) -> Generator:
  """The latest checkpoint of a generator run, ready to render from (raw y, z).

  Renders come out at `render_size` (default: the side of the generator's training domain),
  resized from the model's own side where the two differ.
  """
  workdir = Path(workdir)
  meta = read_meta(workdir)
  state, step = restore(workdir, meta)
  return Generator(workdir, meta, state.params, state.batch_stats, step, batch, render_size)


def is_trained(workdir: str | Path, cfg: ml_collections.ConfigDict | None = None) -> bool:
  """True when the workdir holds a finished run (of exactly `cfg`, when given)."""
  workdir = Path(workdir)
  if not (workdir / META_FILE).exists() or not (workdir / CHECKPOINTS).exists():
    return False
  meta = io.read_json(workdir / META_FILE)
  if cfg is not None and json.dumps(meta.get("config"), sort_keys=True) != json.dumps(
      json.loads(cfg.to_json_best_effort()), sort_keys=True):
    return False
  with Checkpointer(workdir / CHECKPOINTS) as ckpt:
    step = ckpt.latest_step
  return step is not None and step >= meta["num_steps"]
