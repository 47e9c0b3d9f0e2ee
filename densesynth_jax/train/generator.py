"""Training the Attribute2Image CVAE: `train_generator.py` calls `train_and_evaluate`.

A run's workdir holds
  generator.json        attribute names, the strength standardisation (train-split mean / std of
                        every attribute, raw units), image sizes, the config: what a renderer needs
                        besides the parameters
  checkpoints/          orbax checkpoints of the TrainState (a rerun resumes from the latest)
  metrics.jsonl         health metrics every `train.log_every` steps, validation −ELBO every
                        `train.eval_every` steps
  figures/              reconstructions, random samples, attribute spectra (paper Figure 3)
  generator_eval.json   does the generator control the attribute? (synth/control.py)

The data order (a per-epoch permutation seeded by (seed, epoch)) and every random draw (the
step folded into one key) are pure functions of (seed, step), so a run resumed from a checkpoint
ends with the same parameters as an uninterrupted one (on CPU, bit for bit).

Later stages render images through `load_generator(workdir)`: y in RAW strength units (the
domain's), z ~ N(0, I), the decoder MEAN, jitted and batched. `checkpoint_hash(workdir)` is the
fingerprint synthetic sets are cached under.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from densesynth_jax import io
from densesynth_jax.data.imageio import resize_images  # noqa: F401  (re-exported for callers)
from densesynth_jax.data.registry import load_domain
from densesynth_jax.models import cvae
from densesynth_jax.synth import control
from densesynth_jax.train import augment as augment_lib
from densesynth_jax.train import checkpoint, logging, mesh as mesh_lib
from densesynth_jax.types import Domain

META_FILE = "generator.json"
EVAL_FILE = "generator_eval.json"


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 (): updates done
  params: Any
  batch_stats: Any  # BatchNorm running averages
  opt_state: Any


def default_train_config() -> ml_collections.ConfigDict:
  """`seed`, `optim`, `train`, `figures` and `eval` with the paper's settings (add `data`, `model`)."""
  cfg = ml_collections.ConfigDict()
  cfg.seed = 0  # PRNG seed of initialisation, data order, augmentation, figures and evaluation
  cfg.optim = ml_collections.ConfigDict()
  cfg.optim.lr = 3e-4  # Adam learning rate (paper)
  cfg.optim.b1 = 0.9  # Adam β1 (paper)
  cfg.optim.b2 = 0.999  # Adam β2 (paper)
  cfg.optim.weight_decay = 0.004  # L2 decay λ for a loss SUMMED over the batch (paper); see make_optimizer
  cfg.optim.kl_weight = 1.0  # β of the training loss nll + β·KL (paper: 1, the plain −ELBO)
  cfg.train = ml_collections.ConfigDict()
  cfg.train.batch_size = 32  # images per step, over all devices (paper: 32)
  cfg.train.num_steps = 0  # total updates; 0 = num_epochs passes over the train split
  cfg.train.num_epochs = 100  # epochs when num_steps is 0 (paper: ~100)
  cfg.train.log_every = 50  # steps between metrics.jsonl rows (health metrics)
  cfg.train.eval_every = 500  # steps between validation −ELBO evaluations (and at the end)
  cfg.train.eval_batch = 128  # images per validation / rendering call
  cfg.train.checkpoint_every = 500  # steps between checkpoints (and at the end)
  cfg.train.augment = True  # master switch of the paper's augmentations (train/augment.py)
  cfg.train.flip = True  # random horizontal flip (paper)
  cfg.train.gain = 0.03  # per-channel gain in [1 − gain, 1 + gain] (paper: 0.03); 0 = off
  cfg.train.sharpen = 1.5  # sharpening amount ~ U(0, sharpen) (paper: 1.5); 0 = off
  cfg.train.num_devices = 0  # devices of the data-parallel mesh; 0 = all local devices
  cfg.figures = ml_collections.ConfigDict()
  cfg.figures.identities = 6  # rows of the spectra figures; reconstructions show 2× this
  cfg.figures.attributes = ()  # attributes whose spectra are drawn; () = eval.attributes
  cfg.figures.spectra_steps = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)  # offsets t of y[A] + t·σ_A
  cfg.eval = control.default_config()  # attribute-control evaluation (synth/control.py)
  return cfg


def make_optimizer(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Adam with coupled L2 decay, as in the original Torch code (`optim.adam`'s weightDecay).

  The paper's λ = 0.004 adds λ·θ to the gradient of a loss SUMMED over the pixels and the batch.
  Our loss is the batch MEAN of per-image −ELBO (each image's term summed over its pixels), i.e.
  the paper's loss divided by B; dividing its gradient by B too gives gradient + (λ / B)·θ. So the
  decay added to our gradient is λ / B, which leaves Adam's step exactly as in the paper (Adam is
  invariant to the overall scale of the gradient, up to its ε).
  """
  decay = cfg.optim.weight_decay / cfg.train.batch_size
  return optax.chain(optax.add_decayed_weights(decay),
                     optax.adam(cfg.optim.lr, b1=cfg.optim.b1, b2=cfg.optim.b2))


def to_unit(images_u8) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1]."""
  return jnp.asarray(images_u8).astype(jnp.float32) / 127.5 - 1.0


def to_uint8(x) -> jax.Array:
  """float [-1, 1] -> uint8 [0, 255] (rounded, clipped)."""
  return jnp.clip(jnp.round((x + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


def augment_settings(cfg: ml_collections.ConfigDict) -> dict | None:
  """The augmentation keyword arguments of `cfg.train`, or None when augmentation is off."""
  if not cfg.train.augment:
    return None
  return dict(flip=bool(cfg.train.flip), gain=float(cfg.train.gain),
              sharpen=float(cfg.train.sharpen))


def make_update(model: cvae.CVAE, tx: optax.GradientTransformation,
                augment: bool | Mapping[str, Any] | None = True, kl_weight: float = 1.0):
  """The pure `update(state, batch, rng) -> (state, metrics)`; jit it with the state donated.

  Args:
    augment: True (the paper's augmentations), False / None (none), or keyword arguments of
      `augment.augment` (flip, gain, sharpen).
    kl_weight: β of the minimised loss nll + β·KL (1: the −ELBO). β > 1 squeezes z, so that the
      decoder leans on y for what y describes; the logged `neg_elbo` is always the true −ELBO.
  The batch is {"images": uint8 (B, S, S, 3), "y": float32 (B, A) standardised strengths}. The
  step's key is `fold_in(rng, state.step)`. Metrics are batch means (nats per image) and global
  norms of the gradient, the parameters after the update, and the update.
  """
  if augment is True:
    augment = {}
  elif not augment:
    augment = None

  def update(state: TrainState, batch, rng):
    # The classic threefry: the per-step draws are small (ε, dropout, augmentation), and the
    # default partitionable one costs XLA:CPU seconds of compilation per draw.
    with jax.threefry_partitionable(False):
      return _update(state, batch, rng)

  def _update(state: TrainState, batch, rng):
    key = jax.random.fold_in(rng, state.step)
    k_aug, k_elbo = jax.random.split(key)
    x = to_unit(batch["images"])
    if augment is not None:
      x = augment_lib.augment(x, k_aug, **augment)

    def loss_fn(params):
      terms, batch_stats = cvae.elbo(model, {"params": params, "batch_stats": state.batch_stats},
                                     x, batch["y"], k_elbo, train=True)
      loss = (terms.nll + kl_weight * terms.kl).mean()
      return loss, (terms.neg_elbo.mean(), terms.nll.mean(), terms.kl.mean(), batch_stats)

    (_, (loss, nll, kl, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(neg_elbo=loss, nll=nll, kl=kl, grad_norm=optax.tree.norm(grads),
                   param_norm=optax.tree.norm(params), update_norm=optax.tree.norm(updates))
    return TrainState(state.step + 1, params, batch_stats, opt_state), metrics

  return update


def make_eval(model: cvae.CVAE):
  """evaluate(params, batch_stats, images uint8 (B, ...), y (B, A), mask (B,), key) -> sums.

  Eval-mode BatchNorm (running averages), no dropout; returns the masked sums over the batch of
  (−ELBO, NLL, KL), so padded rows do not count.
  """

  def evaluate(params, batch_stats, images, y, mask, key):
    terms, _ = cvae.elbo(model, {"params": params, "batch_stats": batch_stats}, to_unit(images),
                         y, key, train=False)
    return jnp.stack([jnp.sum(t * mask) for t in terms])

  return evaluate


def batch_indices(seed: int, step: int, n: int, batch_size: int) -> np.ndarray:
  """Positions (into the train split) of the batch at `step`: a pure function of (seed, step).

  Each epoch is a fresh permutation seeded by (seed, epoch); the last partial batch is dropped.
  """
  per_epoch = n // batch_size
  if per_epoch < 1:
    raise ValueError(f"the train split has {n} images, fewer than one batch of {batch_size}")
  epoch, i = divmod(int(step), per_epoch)
  perm = np.random.default_rng([int(seed), epoch]).permutation(n)
  return perm[i * batch_size:(i + 1) * batch_size]


class GeneratorData:
  """The domain in the model's input format: images at the model's size, standardised strengths.

  Attributes:
    images: uint8 (N, S, S, 3), every image of the domain at the model's size S.
    y: float32 (N, A), (strengths − y_mean) / y_std.
    y_mean, y_std: float32 (A,), the train split's per-attribute mean and std (raw units).
    train, val: int64 indices of the splits.
  """

  def __init__(self, domain: Domain, image_size: int):
    imgs = domain.images
    if imgs.strengths is None or not len(imgs.attribute_names):
      raise ValueError(f"domain {domain.name} has no attribute strengths to condition on")
    if "train" not in domain.splits or not len(domain.splits["train"]):
      raise ValueError(f"domain {domain.name}: the train split is missing or empty")
    if imgs.image_shape[-1] != 3:
      raise ValueError(f"domain {domain.name}: images must be RGB, got shape {imgs.image_shape}")
    self.names = tuple(imgs.attribute_names)
    self.train = np.asarray(domain.splits["train"], np.int64)
    self.val = np.asarray(domain.splits.get("val", self.train[:0]), np.int64)
    y = imgs.strengths.astype(np.float32)
    self.y_mean = y[self.train].mean(0)
    std = y[self.train].std(0)
    # A constant column (e.g. an attribute absent from the train split) carries no signal; a unit
    # scale keeps it finite instead of dividing by zero.
    self.y_std = np.where(std > 1e-6, std, 1.0).astype(np.float32)
    self.y = ((y - self.y_mean) / self.y_std).astype(np.float32)
    self.images = resize_images(imgs.images, image_size)


def total_steps(cfg: ml_collections.ConfigDict, num_train: int) -> int:
  if cfg.train.num_steps > 0:
    return int(cfg.train.num_steps)
  return int(cfg.train.num_epochs) * max(1, num_train // cfg.train.batch_size)


def init_state(model: cvae.CVAE, tx: optax.GradientTransformation, key: jax.Array,
               num_attributes: int) -> TrainState:
  """A fresh TrainState at step 0 (jit it; see `programs`)."""
  variables = cvae.init_variables(model, key, num_attributes)
  params = variables["params"]
  return TrainState(jnp.zeros((), jnp.int32), params, variables.get("batch_stats", {}),
                    tx.init(params))


class Programs(NamedTuple):
  """The jitted functions of one (model, optimiser, augmentation, mesh): see `programs`."""
  model: cvae.CVAE
  tx: optax.GradientTransformation
  init: Any  # init(key) -> TrainState at step 0, replicated over the mesh
  update: Any  # update(state, batch, rng) -> (state, metrics); state donated
  evaluate: Any  # evaluate(params, batch_stats, images, y, mask, key) -> (3,) sums


def programs(cfg: ml_collections.ConfigDict, num_attributes: int, mesh) -> Programs:
  """The compiled training functions for `cfg` on `mesh`, built once per process and reused.

  Keyed by the model, optimiser and augmentation settings, so a resumed run (or a test that
  trains twice) in the same process does not compile again. The batch is sharded over the
  mesh's data axis, everything else replicated (global-view jit: XLA inserts the all-reduces).
  """
  key = lambda c: json.dumps(c.to_dict(), sort_keys=True, default=str)
  return _programs(key(cfg.model), key(cfg.optim), int(cfg.train.batch_size),
                   json.dumps(augment_settings(cfg), sort_keys=True), int(num_attributes), mesh)


@functools.lru_cache(maxsize=8)
def _init_variables(model_json: str, num_attributes: int):
  """Jitted initialisation, shared by every optimiser and mesh of one model (one compilation)."""
  model = cvae.CVAE(ml_collections.ConfigDict(json.loads(model_json)))
  return jax.jit(functools.partial(cvae.init_variables, model, num_attributes=num_attributes))


@functools.lru_cache(maxsize=8)
def _programs(model_json: str, optim_json: str, batch_size: int, augment_json: str,
              num_attributes: int, mesh) -> Programs:
  model = cvae.CVAE(ml_collections.ConfigDict(json.loads(model_json)))
  ocfg = ml_collections.ConfigDict(dict(optim=json.loads(optim_json),
                                        train=dict(batch_size=batch_size)))
  tx = make_optimizer(ocfg)
  repl, shard = mesh_lib.replicated(mesh), mesh_lib.data_sharding(mesh)
  init_variables = _init_variables(model_json, num_attributes)
  init_opt = jax.jit(tx.init)

  def init(key: jax.Array) -> TrainState:
    variables = init_variables(key)
    params = variables["params"]
    state = TrainState(jnp.zeros((), jnp.int32), params, variables.get("batch_stats", {}),
                       init_opt(params))
    return jax.device_put(state, repl)

  kl_weight = float(json.loads(optim_json).get("kl_weight", 1.0))
  update = jax.jit(make_update(model, tx, json.loads(augment_json), kl_weight), donate_argnums=0,
                   in_shardings=(repl, shard, repl), out_shardings=(repl, repl))
  evaluate = jax.jit(make_eval(model), in_shardings=(repl, repl, shard, shard, shard, repl),
                     out_shardings=repl)
  return Programs(model, tx, init, update, evaluate)


def _meta(cfg: ml_collections.ConfigDict, data: GeneratorData, domain: Domain) -> dict:
  return dict(domain=domain.name, attribute_names=list(data.names),
              num_attributes=len(data.names), y_mean=data.y_mean.tolist(),
              y_std=data.y_std.tolist(), image_size=int(cfg.model.image_size),
              render_size=int(domain.images.image_shape[0]),
              num_steps=total_steps(cfg, len(data.train)), model=cfg.model.to_dict(),
              config=json.loads(cfg.to_json_best_effort()))


def _check_same_run(workdir: Path, meta: dict) -> None:
  """A workdir with checkpoints resumes only the same model on the same attributes."""
  path = workdir / META_FILE
  ckpts = workdir / "checkpoints"
  if not path.exists() or not (ckpts.is_dir() and any(p.name.isdigit() for p in ckpts.iterdir())):
    return
  old = io.read_json(path)
  for key in ("attribute_names", "model", "image_size"):
    if json.dumps(old.get(key), sort_keys=True) != json.dumps(meta[key], sort_keys=True):
      raise ValueError(f"{path} holds a generator with a different {key} ({old.get(key)} vs "
                       f"{meta[key]}); use another --workdir or delete that one")


def _truncate_metrics(path: Path, step: int) -> None:
  """Drops metrics rows past `step` (written after the checkpoint a rerun resumes from)."""
  if not path.exists():
    return
  lines = path.read_text().splitlines()
  keep = [l for l in lines if l.strip() and json.loads(l).get("step", 0) <= step]
  if len(keep) != len(lines):
    io.write_text(path, "".join(l + "\n" for l in keep))


METRIC_ORDER = ("neg_elbo", "nll", "kl", "grad_norm", "param_norm", "update_norm")


def _check_finite(metrics: Mapping[str, Any], step: int) -> None:
  """Raises FloatingPointError naming the step and every non-finite metric (loss terms first)."""
  names = [k for k in METRIC_ORDER if k in metrics] + sorted(set(metrics) - set(METRIC_ORDER))
  bad = [k for k in names if not np.isfinite(metrics[k])]
  if bad:
    raise FloatingPointError(f"non-finite training metric at step {step}: "
                             + ", ".join(f"{k}={float(metrics[k])}" for k in bad))


def train(cfg: ml_collections.ConfigDict, workdir: str | Path, domain: Domain | None = None,
          stop_at: int | None = None, log=print) -> TrainState:
  """Trains (or resumes) the CVAE on the domain's train split; returns the final TrainState.

  `stop_at` ends after that step with a checkpoint, like an interrupted run (for tests).
  """
  workdir = Path(workdir)
  domain = load_domain(cfg.data) if domain is None else domain
  data = GeneratorData(domain, cfg.model.image_size)
  meta = _meta(cfg, data, domain)
  _check_same_run(workdir, meta)
  io.write_json(workdir / META_FILE, meta)
  mesh = mesh_lib.make_mesh(cfg.train.num_devices or None)
  mesh_lib.check_divisible(cfg.train.batch_size, mesh)
  shard = mesh_lib.data_sharding(mesh)
  num_steps = total_steps(cfg, len(data.train))
  batch_indices(cfg.seed, 0, len(data.train), cfg.train.batch_size)  # fails early if too few
  prog = programs(cfg, len(data.names), mesh)
  update, evaluate = prog.update, prog.evaluate

  root = jax.random.PRNGKey(cfg.seed)
  state = prog.init(jax.random.fold_in(root, 0))
  step_key, val_key = jax.random.fold_in(root, 1), jax.random.fold_in(root, 2)
  metrics_path = workdir / "metrics.jsonl"
  writer = logging.MetricsWriter(metrics_path)
  end = num_steps if stop_at is None else min(int(stop_at), num_steps)

  with checkpoint.Checkpointer(workdir / "checkpoints",
                               save_interval_steps=cfg.train.checkpoint_every) as ckpt:
    state, start = ckpt.restore_or(state)
    _truncate_metrics(metrics_path, start)
    if start:
      log(f"[generator] resuming {workdir} at step {start}/{num_steps}")
    progress = logging.Progress("generator", num_steps, start=start, unit="steps")
    for step in range(start, end):
      pos = batch_indices(cfg.seed, step, len(data.train), cfg.train.batch_size)
      idx = data.train[pos]
      batch = jax.device_put(dict(images=data.images[idx], y=data.y[idx]), shard)
      state, metrics = update(state, batch, step_key)
      metrics = jax.device_get(metrics)
      done = step + 1
      _check_finite(metrics, done)
      if done % cfg.train.log_every == 0 or done == end:
        writer.write(done, metrics, split="train")
      progress.update(done, f"-elbo {metrics['neg_elbo']:.1f} (nll {metrics['nll']:.1f}, "
                      f"kl {metrics['kl']:.1f})")
      if (done % cfg.train.eval_every == 0 or done == num_steps) and len(data.val):
        val = validation_elbo(evaluate, state, data, val_key, cfg.train.eval_batch, mesh)
        writer.write(done, val, split="val")
        log(f"[generator] step {done}: val -elbo {val['neg_elbo']:.1f} "
            f"(nll {val['nll']:.1f}, kl {val['kl']:.1f})")
      ckpt.save(done, state, force=done == end)
  return state


def validation_elbo(evaluate, state: TrainState, data: GeneratorData, key: jax.Array,
                    batch: int, mesh) -> dict:
  """Mean −ELBO, NLL and KL (nats per image) over the val split, in fixed-size padded batches."""
  batch = -(-batch // mesh_lib.num_shards(mesh)) * mesh_lib.num_shards(mesh)
  total = np.zeros(3)
  for lo in range(0, len(data.val), batch):
    idx = data.val[lo:lo + batch]
    mask = np.zeros(batch, np.float32)
    mask[:len(idx)] = 1.0
    idx = np.concatenate([idx, np.repeat(idx[-1:], batch - len(idx))])
    total += np.asarray(evaluate(state.params, state.batch_stats, data.images[idx], data.y[idx],
                                 mask, jax.random.fold_in(key, lo)))
  n = len(data.val)
  return dict(neg_elbo=total[0] / n, nll=total[1] / n, kl=total[2] / n)


# -- a trained generator -----------------------------------------------------------------------


def _abstract_state(meta: dict) -> TrainState:
  cfg = ml_collections.ConfigDict(meta["config"])
  model = cvae.CVAE(ml_collections.ConfigDict(meta["model"]))
  return jax.eval_shape(lambda k: init_state(model, make_optimizer(cfg), k,
                                             meta["num_attributes"]), jax.random.PRNGKey(0))


def _restore(workdir: Path, meta: dict) -> tuple[TrainState, int]:
  with checkpoint.Checkpointer(workdir / "checkpoints") as ckpt:
    step = ckpt.latest_step
    if step is None:
      raise FileNotFoundError(f"no generator checkpoint in {workdir / 'checkpoints'}")
    return ckpt.restore(_abstract_state(meta), step), int(step)


def _read_meta(workdir: Path) -> dict:
  path = Path(workdir) / META_FILE
  if not path.exists():
    raise FileNotFoundError(f"missing file: {path} (not a generator run; train one with "
                            f"`python train_generator.py --config=... --workdir={workdir}`)")
  return io.read_json(path)


def _state_hash(meta: dict, step: int, params, batch_stats) -> str:
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
  meta = _read_meta(workdir)
  state, step = _restore(workdir, meta)
  return _state_hash(meta, step, state.params, state.batch_stats)


class Generator:
  """A trained CVAE as a renderer (the decoder MEAN), jitted, batched, sharded over the mesh.

  Attributes:
    attribute_names: the A strength columns y is given in.
    y_mean, y_std: float32 (A,) train-split statistics (raw units); y_std[a] is σ_A.
    z_dim: latent size; image_size: the model's side; render_size: the domain's side.
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
    self.fingerprint = _state_hash(meta, step, params, batch_stats)
    self._mesh = mesh_lib.make_mesh()
    shards = mesh_lib.num_shards(self._mesh)
    self.batch = -(-int(batch) // shards) * shards
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

  def _batched(self, fn, y_raw, z) -> np.ndarray:
    y, z = self.standardise(y_raw), np.asarray(z, np.float32)
    if y.ndim != 2 or y.shape[1] != len(self.attribute_names):
      raise ValueError(f"y must be (B, {len(self.attribute_names)}) raw strengths of "
                       f"{self.attribute_names}, got shape {y.shape}")
    if z.shape != (len(y), self.z_dim):
      raise ValueError(f"z must be ({len(y)}, {self.z_dim}), got shape {z.shape}")
    if not (np.isfinite(y).all() and np.isfinite(z).all()):
      raise ValueError("y and z must be finite")
    out = []
    for lo in range(0, len(y), self.batch):
      yb, n = y[lo:lo + self.batch], len(y[lo:lo + self.batch])
      zb = z[lo:lo + self.batch]
      pad = self.batch - n  # one compiled shape for every call
      yb = np.concatenate([yb, np.zeros((pad, yb.shape[1]), np.float32)])
      zb = np.concatenate([zb, np.zeros((pad, zb.shape[1]), np.float32)])
      out.append(np.asarray(fn(self.variables, yb, zb))[:n])
    if not out:
      return np.zeros((0, self.render_size, self.render_size, 3), np.uint8)
    return np.concatenate(out)

  def render(self, y_raw: np.ndarray, z: np.ndarray) -> np.ndarray:
    """uint8 (B, R, R, 3) decoder-mean images for raw strengths y (B, A) and latents z (B, Z)."""
    return self._batched(self._render, y_raw, z)

  def sample(self, y_raw: np.ndarray, z: np.ndarray) -> np.ndarray:
    """float32 (B, R, R, 3) decoder-mean images in [-1, 1] (R = render_size)."""
    return self._batched(self._sample, y_raw, z).astype(np.float32)

  def __call__(self, y_raw, z) -> np.ndarray:
    return self.render(y_raw, z)


def load_generator(workdir: str | Path, batch: int = 256, render_size: int | None = None
                   ) -> Generator:
  """The latest checkpoint of a generator run, ready to render from (raw y, z).

  Renders come out at `render_size` (default: the side of the generator's training domain),
  resized from the model's own side where the two differ.
  """
  workdir = Path(workdir)
  meta = _read_meta(workdir)
  state, step = _restore(workdir, meta)
  return Generator(workdir, meta, state.params, state.batch_stats, step, batch, render_size)


def is_trained(workdir: str | Path, cfg: ml_collections.ConfigDict | None = None) -> bool:
  """True when the workdir holds a finished run (of exactly `cfg`, when given)."""
  workdir = Path(workdir)
  if not (workdir / META_FILE).exists() or not (workdir / "checkpoints").exists():
    return False
  meta = io.read_json(workdir / META_FILE)
  if cfg is not None and json.dumps(meta.get("config"), sort_keys=True) != json.dumps(
      json.loads(cfg.to_json_best_effort()), sort_keys=True):
    return False
  with checkpoint.Checkpointer(workdir / "checkpoints") as ckpt:
    step = ckpt.latest_step
  return step is not None and step >= meta["num_steps"]


# -- figures -----------------------------------------------------------------------------------


def reconstruct(gen: Generator, images: np.ndarray, y_raw: np.ndarray) -> np.ndarray:
  """uint8 reconstructions (decoder mean at the posterior mean z) of uint8 images (B, H, W, 3)."""
  x = to_unit(resize_images(np.asarray(images), gen.image_size))
  mu, _ = jax.jit(functools.partial(cvae.encode, gen.model))(gen.variables, x,
                                                             gen.standardise(y_raw))
  return gen.render(y_raw, np.asarray(mu))


def save_figures(cfg: ml_collections.ConfigDict, gen: Generator, domain: Domain,
                 outdir: str | Path) -> list[Path]:
  """Reconstructions, random samples and one spectra figure per attribute (paper Figure 3)."""
  from densesynth_jax.experiments.figures import save_contact_sheet
  outdir = Path(outdir)
  n = int(cfg.figures.identities)
  rng = np.random.default_rng([cfg.seed, 21])
  paths = []
  # Reconstructions: a row of validation images over a row of their reconstructions.
  pool = np.asarray(domain.splits.get("val", domain.splits["train"]))
  pick = np.sort(rng.choice(pool, min(2 * n, len(pool)), replace=False))
  real = domain.images.images[pick]
  rec = reconstruct(gen, real, domain.images.strengths[pick])
  paths.append(outdir / "reconstructions.png")
  save_contact_sheet(paths[-1], np.concatenate([real, rec]), ncols=len(pick),
                     titles=["real"] * len(pick) + ["recon"] * len(pick))
  # Random samples: y of random training images, z ~ N(0, I).
  y, z = control.sample_identities(domain, 4 * n, gen.z_dim, cfg.seed + 1)
  paths.append(outdir / "samples.png")
  save_contact_sheet(paths[-1], gen.render(y, z), ncols=2 * n)
  # Spectra: rows = identities (fixed y, z), columns = y[A] + t·σ_A.
  steps = np.asarray(cfg.figures.spectra_steps, np.float32)
  y, z = control.sample_identities(domain, n, gen.z_dim, cfg.seed + 2)
  attrs = list(cfg.figures.attributes) or list(cfg.eval.attributes) or list(gen.attribute_names[:3])
  for attr in attrs:
    if attr not in gen.attribute_names:
      raise KeyError(f"figures.attributes names {attr!r}; the generator's attributes are "
                     f"{list(gen.attribute_names)}")
    col = gen.attribute_names.index(attr)
    imgs, _ = control.sweep(gen.render, y, z, col, float(gen.y_std[col]), steps)
    paths.append(outdir / f"spectra_{attr}.png")
    save_contact_sheet(paths[-1], imgs.reshape(-1, *imgs.shape[2:]), ncols=len(steps),
                       titles=[f"{t:+g}σ" for t in steps] * n)
  return paths


def train_and_evaluate(cfg: ml_collections.ConfigDict, workdir: str | Path) -> dict:
  """Trains (or resumes) the generator, then writes its figures and `generator_eval.json`.

  Returns the evaluation: the final validation −ELBO, the attribute control per attribute
  (synth/control.py), the checkpoint's fingerprint and the wall time.
  """
  workdir = Path(workdir)
  t0 = time.perf_counter()
  domain = load_domain(cfg.data)
  train(cfg, workdir, domain)
  gen = load_generator(workdir, batch=cfg.train.eval_batch)
  figures = save_figures(cfg, gen, domain, workdir / "figures")
  val = [r for r in logging.MetricsWriter(workdir / "metrics.jsonl").read()
         if r.get("split") == "val"]
  result = dict(step=gen.step, fingerprint=gen.fingerprint,
                val=({k: val[-1][k] for k in ("neg_elbo", "nll", "kl")} if val else None),
                control=control.evaluate_control(gen, domain, cfg.eval, seed=cfg.seed + 3),
                figures=[str(p.relative_to(workdir)) for p in figures],
                seconds=round(time.perf_counter() - t0, 1))
  io.write_json(workdir / EVAL_FILE, result)
  return result
