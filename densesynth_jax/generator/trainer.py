"""Training the Attribute2Image CVAE: `train_generator.py` calls `train_and_evaluate`.

A run's workdir holds
  generator.json        attribute names, the strength standardisation (train-split mean / std of
                        every attribute, raw units), image sizes, the config: what a renderer needs
                        besides the parameters (generator/artifact.py loads it)
  checkpoints/          orbax checkpoints of the TrainState (a rerun resumes from the latest)
  metrics.jsonl         health metrics every `train.log_every` steps, validation −ELBO every
                        `train.eval_every` steps
  figures/              reconstructions, random samples, attribute spectra (paper Figure 3)
  generator_eval.json   does the generator control the attribute? (generator/control.py)

The loop is the shared skeleton (train/loop.py); this module keeps the model's loss, data order
and schedule. The data order (a per-epoch permutation seeded by (seed, epoch)) and every random
draw (the step folded into one key) are pure functions of (seed, step), so a run resumed from a
checkpoint ends with the same parameters as an uninterrupted one (on CPU, bit for bit).
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from densesynth_jax import io
from densesynth_jax import mesh as mesh_lib
from densesynth_jax.data.imageio import resize_images
from densesynth_jax.distributed import is_main
from densesynth_jax.data.registry import load_domain
from densesynth_jax.generator import artifact, control, figures
from densesynth_jax.generator.model import make_optimizer, to_unit
from densesynth_jax.models import cvae
from densesynth_jax.progress import MetricsWriter
from densesynth_jax.train import augment as augment_lib
from densesynth_jax.train import loop
from densesynth_jax.train.loop import TrainState
from densesynth_jax.types import Domain

EVAL_FILE = "generator_eval.json"
METRIC_ORDER = ("neg_elbo", "nll", "kl", "grad_norm", "param_norm", "update_norm")


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
  cfg.eval = control.default_config()  # attribute-control evaluation (generator/control.py)
  return cfg


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
  """evaluate(params, batch_stats, key, images uint8 (B, ...), y (B, A)) -> (B, 3) per image.

  Eval-mode BatchNorm (running averages), no dropout; returns each image's (−ELBO, NLL, KL).
  """

  def evaluate(params, batch_stats, key, images, y):
    terms, _ = cvae.elbo(model, {"params": params, "batch_stats": batch_stats}, to_unit(images),
                         y, key, train=False)
    return jnp.stack(list(terms), axis=-1)

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


class Programs(NamedTuple):
  """The jitted functions of one (model, optimiser, augmentation, mesh): see `programs`."""
  model: cvae.CVAE
  tx: optax.GradientTransformation
  init: Any  # init(key) -> TrainState at step 0, replicated over the mesh
  update: Any  # update(state, batch, rng) -> (state, metrics); state donated
  evaluate: Any  # evaluate(params, batch_stats, key, images, y) -> (B, 3)


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
  evaluate = jax.jit(make_eval(model), in_shardings=(repl, repl, repl, shard, shard),
                     out_shardings=shard)
  return Programs(model, tx, init, update, evaluate)


def _meta(cfg: ml_collections.ConfigDict, data: GeneratorData, domain: Domain) -> dict:
  return dict(domain=domain.name, attribute_names=list(data.names),
              num_attributes=len(data.names), y_mean=data.y_mean.tolist(),
              y_std=data.y_std.tolist(), image_size=int(cfg.model.image_size),
              render_size=int(domain.images.image_shape[0]),
              num_steps=total_steps(cfg, len(data.train)), model=cfg.model.to_dict(),
              config=json.loads(cfg.to_json_best_effort()))


def _identity(meta: Mapping[str, Any]) -> dict:
  """What a generator workdir's checkpoints mean: resuming needs the same model on the same y."""
  return {k: meta.get(k) for k in ("attribute_names", "model", "image_size")}


def train(cfg: ml_collections.ConfigDict, workdir: str | Path, domain: Domain | None = None,
          stop_at: int | None = None, log=print) -> TrainState:
  """Trains (or resumes) the CVAE on the domain's train split; returns the final TrainState.

  `stop_at` ends after that step with a checkpoint, like an interrupted run (for tests).
  """
  workdir = Path(workdir)
  domain = load_domain(cfg.data) if domain is None else domain
  data = GeneratorData(domain, cfg.model.image_size)
  meta = _meta(cfg, data, domain)
  loop.claim_workdir(workdir / artifact.META_FILE, meta, _identity, "generator")
  mesh = mesh_lib.make_mesh(cfg.train.num_devices or None)
  mesh_lib.check_divisible(cfg.train.batch_size, mesh)
  num_steps = total_steps(cfg, len(data.train))
  batch_indices(cfg.seed, 0, len(data.train), cfg.train.batch_size)  # fails early if too few
  prog = programs(cfg, len(data.names), mesh)

  root = jax.random.PRNGKey(cfg.seed)
  step_key, val_key = jax.random.fold_in(root, 1), jax.random.fold_in(root, 2)

  def step_fn(state: TrainState, step: int):
    idx = data.train[batch_indices(cfg.seed, step, len(data.train), cfg.train.batch_size)]
    idx = idx[mesh_lib.process_rows(len(idx))]  # this process's rows of the global batch
    batch = mesh_lib.global_batch(dict(images=data.images[idx], y=data.y[idx]), mesh)
    return prog.update(state, batch, step_key)

  def after_step(state: TrainState, done: int, metrics, writer: MetricsWriter):
    if (done % cfg.train.eval_every == 0 or done == num_steps) and len(data.val):
      val = validation_elbo(prog.evaluate, state, data, val_key, cfg.train.eval_batch, mesh)
      if is_main():
        writer.write(done, val, split="val")
        log(f"[generator] step {done}: val -elbo {val['neg_elbo']:.1f} "
            f"(nll {val['nll']:.1f}, kl {val['kl']:.1f})")
    return state, loop.Hook()

  result = loop.run_loop(
      prog.init(jax.random.fold_in(root, 0)), workdir=workdir, name="generator",
      total=num_steps, step_fn=step_fn, log_every=cfg.train.log_every,
      checkpoint_every=cfg.train.checkpoint_every, after_step=after_step,
      row_extra=lambda step: {"split": "train"}, stop_at=stop_at, finite_first=METRIC_ORDER,
      describe=lambda m: f"-elbo {m['neg_elbo']:.1f} (nll {m['nll']:.1f}, kl {m['kl']:.1f})")
  return result.item


def validation_elbo(evaluate, state: TrainState, data: GeneratorData, key: jax.Array,
                    batch: int, mesh) -> dict:
  """Mean −ELBO, NLL and KL (nats per image) over the val split, in fixed-size padded batches."""
  terms = loop.batched_apply(evaluate, [data.images[data.val], data.y[data.val]], batch, mesh,
                             state.params, state.batch_stats, key)
  return dict(zip(("neg_elbo", "nll", "kl"), (float(v) for v in terms.mean(0))))


def train_and_evaluate(cfg: ml_collections.ConfigDict, workdir: str | Path) -> dict:
  """Trains (or resumes) the generator, then writes its figures and `generator_eval.json`.

  Returns the evaluation: the final validation −ELBO, the attribute control per attribute
  (generator/control.py), the checkpoint's fingerprint and the wall time.
  """
  workdir = Path(workdir)
  t0 = time.perf_counter()
  domain = load_domain(cfg.data)
  train(cfg, workdir, domain)
  gen = artifact.load_generator(workdir, batch=cfg.train.eval_batch)  # every process restores
  if not is_main():  # figures and the evaluation: process 0 alone, on its own devices
    return dict(step=gen.step, fingerprint=gen.fingerprint)
  paths = figures.save_figures(cfg, gen, domain, workdir / "figures")
  val = [r for r in MetricsWriter(workdir / loop.METRICS_FILE).read()
         if r.get("split") == "val"]
  result = dict(step=gen.step, fingerprint=gen.fingerprint,
                val=({k: val[-1][k] for k in ("neg_elbo", "nll", "kl")} if val else None),
                control=control.evaluate_control(gen, domain, cfg.eval, seed=cfg.seed + 3),
                figures=[str(p.relative_to(workdir)) for p in paths],
                seconds=round(time.perf_counter() - t0, 1))
  io.write_json(workdir / EVAL_FILE, result)
  return result
