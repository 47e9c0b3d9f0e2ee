"""DeepSTN training: Siamese RankNet with a spatial transformer, in two stages, data-parallel.

Stage 1 trains the STN-only model (patch stream only); stage 2 trains the combined model (patch +
global stream through one shared backbone) whose localisation net starts from stage 1's best
epoch. Each stage is a loop over ONE jitted, donated update step `update(state, batch, rng)`:

- the loss is RankNet's cross-entropy on p = σ(s₁ − s₂) with target 1 when the first image shows
  more (label +1), 0 when the second does (label −1), 0.5 for equal pairs (label 0), averaged with
  the pairs' weights;
- SGD with momentum 0.9 and weight decay 5e-4 (on kernels; Caffe-style, added to the gradient
  before momentum), the localisation net (`params['loc']`) at `loc_lr_mult` = 0.1× the rate
  (`optax.multi_transform` with a parameter-label function);
- each image of a pair gets its own random view (explicit keys: the step is folded into the rng,
  then one key per image): CROP-AND-RESIZE, a square crop of `crop_scale` of the image side at a
  uniformly random position, resampled bilinearly to `image_size` (this also upsamples 64×64
  images to 227 or 128 for the AlexNet-like backbone), mirrored with probability ½;
- batches are drawn from a POOL by index: the trainer gets one ImageSet holding every image (real
  and synthetic, concatenated) and a PairSet indexing into it; just before each step it gathers the
  batch's `2·batch_pairs` images on the host (`pool.images[a]`, `pool.images[b]`: 2×25 small uint8
  images, never a copy of the pool) and puts them on the mesh;
- the batch is split over the mesh's data axis, parameters are replicated. A batch whose size is
  not a multiple of the device count (25 pairs on 2 devices), or the short last batch of an epoch,
  is PADDED with zero-weight pairs; padding images are also masked out of the batch-norm
  statistics and of the boundary pull, and each image's random view depends on its position
  only, so a padded batch gives the update of the unpadded one up to float rounding (for the
  AlexNet-like backbone, whose dropout masks depend on the batch shape, in distribution);
- health metrics every step (loss, gradient / parameter / update norms, patch scale and centre);
  a non-finite value stops training with the step and the metric named;
- orbax checkpoints at every epoch end (and every `checkpoint_every` steps), holding the train
  state, the best epoch's parameters and the early-stopping counters: rerunning the same workdir
  resumes, and a finished stage is not retrained;
- after every epoch, pairwise accuracy on the ordered validation pairs; the parameters of the BEST
  epoch are kept, and a stage stops after `patience` epochs without improvement.

Test-time scores are summed over `test_crops` views (10, as in the paper: the four corner crops
and the centre crop, and their mirror images).

The step loop, checkpoints, metrics rows and resume are the shared skeleton (train/loop.py); this
module keeps the model, loss, batches and schedule. `fit(ctx)` is its entry as a ranker of the
experiment runner (rankers/base.py).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp

from densesynth_jax import io
from densesynth_jax import mesh as mesh_lib
from densesynth_jax.distributed import is_main
from densesynth_jax.metrics import rank_accuracy
from densesynth_jax.models import sampler
from densesynth_jax.models import stn_ranker
from densesynth_jax.plotting import plt
from matplotlib import patches
from densesynth_jax.rankers import base
from densesynth_jax.rankers.base import FitContext, ScoreRanker
from densesynth_jax.train import loop
from densesynth_jax.train.loop import TrainState
from densesynth_jax.types import ImageSet, PairSet


def default_config() -> ml_collections.ConfigDict:
  """DeepSTN's settings: the paper's optimiser, a small from-scratch CNN at 64×64 for CPU."""
  c = ml_collections.ConfigDict()
  # Model.
  c.backbone = "small_cnn"          # "small_cnn" (CPU, from scratch) or "alexnet" (GPU, 227/128)
  c.cnn_channels = (16, 32, 64, 64)  # small_cnn: output channels of its conv-BN-ReLU-pool stages
  c.bn_momentum = 0.9               # small_cnn: running-average momentum of batch norm
  c.cpu_chunk_images = 10           # small_cnn on a 1-device CPU mesh: training runs the convs and
                                    # batch-norm tails on slices of this many images (0: whole
                                    # batch); the same function, faster (benchmarks/RESULTS.md)
  c.alexnet_fc = 4096               # alexnet: width of fc6 / fc7
  c.dropout = 0.5                   # alexnet: dropout after fc6 / fc7
  c.image_size = 64                 # network input side; images are resized (crop-and-resize) to it
  c.patch_size = 32                 # side of the STN patch in pixels (alexnet: = image_size)
  c.scale_init = 0.33               # starting patch scale s: 0.33 faces, 0.4 shoes (DeepSTN)
  c.loc_conv_channels = 64          # localisation net: channels of its 1×1 conv
  c.loc_hidden = 128                # localisation net: width of its FC layer (DeepSTN: 128)
  c.pretrained_backbone = ""        # optional .npz of backbone weights (layout: stn_ranker.py)
  # Stages.
  c.stages = ("stn_only", "combined")  # trained in this order; "combined" takes stage 1's loc net
  c.combined_backbone_from_stn = False  # also start the combined backbone from stage 1's
  c.stn_epochs = 10                 # epochs of the STN-only stage
  c.combined_epochs = 10            # epochs of the combined stage
  c.patience = 3                    # epochs without val improvement before stopping (<=0: never)
  # Optimiser (DeepSTN: SGD 1e-3, momentum 0.9, weight decay 5e-4, loc layers at 0.1×).
  c.lr = 1e-3                       # ranker layers' rate (DeepSTN's, for fine-tuning ImageNet
                                    # weights; from scratch on sprites 1e-2 learns much faster)
  c.momentum = 0.9                  # SGD momentum
  c.weight_decay = 5e-4             # L2 decay on kernels, added to the gradient
  c.loc_lr_mult = 0.1               # learning-rate multiplier of the localisation net
  c.batch_pairs = 25                # pairs per step (padded with zero-weight pairs, see docstring)
  # Views.
  c.crop_scale = 0.9                # training crop side / image side (crop-and-resize); 1 = none
  c.flip = True                     # random horizontal mirroring in training
  c.test_crops = 10                 # test views summed: 1 centre, 2 +mirror, 5 corners+centre, 10
  c.val_crops = 1                   # views per image for the per-epoch validation accuracy
  c.eval_batch = 100                # images per scoring call (rounded up to the device count)
  # Bookkeeping.
  c.checkpoint_every = 0            # also checkpoint every this many steps (0: epoch ends only)
  c.log_every = 50                  # steps between metrics.jsonl rows
  c.progress_every_s = 10.0         # seconds between progress lines
  c.seed = 0                        # default seed (train_deepstn's `seed` argument overrides it)
  c.xla_fast_compile = False        # XLA backend optimisation level 0: faster compiles,
                                    # slower steps (tests and very short CPU runs)
  return c


# ------------------------------------------------------------------------------- model + views

def build_model(cfg: ml_collections.ConfigDict, mode: str,
                chunk_images: int = 0) -> stn_ranker.DeepSTN:
  """The DeepSTN module of `mode` ("stn_only" | "combined") described by `cfg`; a small CNN
  trains on slices of `chunk_images` images (0: the whole batch; `SmallCNN`)."""
  if cfg.backbone == "small_cnn":
    kwargs = (("channels", tuple(cfg.cnn_channels)), ("bn_momentum", float(cfg.bn_momentum)),
              ("chunk_images", int(chunk_images)))
  elif cfg.backbone == "alexnet":
    kwargs = (("fc_dim", int(cfg.alexnet_fc)), ("dropout", float(cfg.dropout)))
  else:
    raise ValueError(f"unknown backbone {cfg.backbone!r}; valid: {sorted(stn_ranker.BACKBONES)}")
  return stn_ranker.DeepSTN(mode=mode, backbone_name=cfg.backbone, backbone_kwargs=kwargs,
                            patch_size=int(cfg.patch_size), scale_init=float(cfg.scale_init),
                            loc_conv_channels=int(cfg.loc_conv_channels),
                            loc_hidden=int(cfg.loc_hidden))


def to_float(images: jax.Array) -> jax.Array:
  """uint8 (..., H, W, C) -> float32 in [-1, 1], grey images repeated to 3 channels."""
  x = images.astype(jnp.float32) / 127.5 - 1.0
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  return x


def crop_theta(scale: float, ox, oy, mirror) -> jax.Array:
  """θ of a square crop of side `scale` (fraction of the image) centred at normalised (ox, oy)."""
  sx = jnp.where(mirror, -scale, scale)
  zero = jnp.zeros_like(sx)
  return jnp.stack([jnp.stack([sx, zero, ox + zero]),
                    jnp.stack([zero, zero + scale, oy + zero])]).astype(jnp.float32)


def train_view_thetas(keys: jax.Array, crop_scale: float, flip: bool) -> jax.Array:
  """One random crop(-and-mirror) θ per key: keys (B,) -> (B, 2, 3)."""
  room = 1.0 - crop_scale

  def one(key):
    k_off, k_flip = jax.random.split(key)
    ox, oy = jax.random.uniform(k_off, (2,), minval=-room, maxval=room)
    mirror = jax.random.bernoulli(k_flip) if flip else jnp.bool_(False)
    return crop_theta(crop_scale, ox, oy, mirror)

  return jax.vmap(one)(keys)


def test_view_thetas(num_crops: int, crop_scale: float) -> np.ndarray:
  """The fixed test views: (num_crops, 2, 3). 1: centre; 2: + mirror; 5: four corners + centre;
  10: those five and their mirror images."""
  if num_crops not in (1, 2, 5, 10):
    raise ValueError(f"test crops must be 1, 2, 5 or 10, got {num_crops}")
  d = 1.0 - crop_scale
  offsets = [(0.0, 0.0)] + ([(-d, -d), (d, -d), (-d, d), (d, d)] if num_crops >= 5 else [])
  mirrors = (False, True) if num_crops in (2, 10) else (False,)
  return np.array([[[-crop_scale if m else crop_scale, 0.0, ox], [0.0, crop_scale, oy]]
                   for m in mirrors for ox, oy in offsets], np.float32)


def render_views(images: jax.Array, thetas: jax.Array, size: int) -> jax.Array:
  """Float images (B, H, W, 3), θ (B, 2, 3) -> views (B, size, size, 3)."""
  return jax.vmap(sampler.affine_sample, in_axes=(0, 0, None, None))(images, thetas, size, size)


# ------------------------------------------------------------------------------- loss + optimiser

def pair_targets(label: np.ndarray | jax.Array):
  """RankNet targets from pair labels: +1 -> 1, -1 -> 0, 0 (equal) -> 0.5."""
  return (jnp.asarray(label, jnp.float32) + 1.0) / 2.0


def ranknet_loss(s1: jax.Array, s2: jax.Array, target: jax.Array, weight: jax.Array) -> jax.Array:
  """Weighted mean of −[t·log p + (1−t)·log(1−p)], p = σ(s₁ − s₂); 0 when all weights are 0."""
  d = s1 - s2
  per_pair = jax.nn.softplus(d) - target * d
  total = jnp.sum(weight)
  return jnp.where(total > 0, jnp.sum(weight * per_pair) / jnp.where(total > 0, total, 1.0), 0.0)


def param_labels(params: Mapping[str, Any]) -> dict[str, Any]:
  """'loc' for every localisation-net parameter, 'ranker' for the rest."""
  return {k: jax.tree.map(lambda _, k=k: "loc" if k == "loc" else "ranker", v)
          for k, v in params.items()}


def make_optimizer(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """SGD + momentum + weight decay on kernels, the localisation net at `loc_lr_mult`× the rate."""
  def sgd(lr):
    decay_mask = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)
    return optax.chain(optax.add_decayed_weights(cfg.weight_decay, mask=decay_mask),
                       optax.sgd(lr, momentum=cfg.momentum))
  return optax.multi_transform({"ranker": sgd(cfg.lr), "loc": sgd(cfg.lr * cfg.loc_lr_mult)},
                               param_labels)


# ------------------------------------------------------------------------------- compiled functions

def _tree_norm(tree) -> jax.Array:
  leaves = jax.tree.leaves(tree)
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves))


# Fields that only steer the host loop: leaving them out of the compile key lets runs that differ
# only in them (more epochs on resume, other test crops) reuse the compiled functions.
_LOOP_FIELDS = ("stages", "combined_backbone_from_stn", "stn_epochs", "combined_epochs",
                "patience", "batch_pairs", "test_crops", "val_crops", "eval_batch",
                "checkpoint_every", "log_every", "progress_every_s", "seed", "pretrained_backbone")


def _cfg_key(cfg: ml_collections.ConfigDict) -> str:
  d = {k: v for k, v in cfg.to_dict().items() if k not in _LOOP_FIELDS}
  return json.dumps(d, sort_keys=True, default=list)


@functools.lru_cache(maxsize=16)
def _functions(cfg_json: str, mode: str, mesh: jax.sharding.Mesh) -> dict[str, Any]:
  """The jitted init / update / score / stn functions of one (config, mode, mesh), compiled once."""
  cfg = ml_collections.ConfigDict(json.loads(cfg_json))
  # Slicing the batch only pays on one CPU device: on a mesh it would cut across the devices.
  # (Models saved before the key existed have no `cpu_chunk_images`: whole batches.)
  on_one_cpu = mesh.size == 1 and mesh.devices.flat[0].platform == "cpu"
  model = build_model(cfg, mode, int(cfg.get("cpu_chunk_images", 0)) if on_one_cpu else 0)
  tx = make_optimizer(cfg)
  repl, data = mesh_lib.replicated(mesh), mesh_lib.data_sharding(mesh)
  size = int(cfg.image_size)

  def init_variables(key):
    x = jnp.zeros((1, size, size, 3), jnp.float32)
    v = model.init({"params": key, "dropout": key}, x, train=False)
    return {"params": v["params"], "batch_stats": v.get("batch_stats", {})}

  def make_state(variables):
    return TrainState(jnp.zeros((), jnp.int32), variables["params"], variables["batch_stats"],
                      tx.init(variables["params"]))

  def update(state: TrainState, batch: Mapping[str, jax.Array], rng: jax.Array):
    rng = jax.random.fold_in(rng, state.step)
    k_view, k_drop = jax.random.split(rng)
    nb = batch["target"].shape[0]
    images = jnp.concatenate([batch["a"], batch["b"]])
    # One key per image from its position, so that padding a batch leaves the views of its real
    # pairs unchanged.
    k_a, k_b = jax.random.split(k_view)
    position_keys = lambda k: jax.vmap(jax.random.fold_in, (None, 0))(k, jnp.arange(nb))
    keys = jnp.concatenate([position_keys(k_a), position_keys(k_b)])
    thetas = train_view_thetas(keys, cfg.crop_scale, cfg.flip)
    x = render_views(to_float(images), thetas, size)
    mask = jnp.concatenate([batch["valid"], batch["valid"]])

    def loss_fn(params):
      (scores, stn), new = model.apply(
          {"params": params, "batch_stats": state.batch_stats}, x, train=True, mask=mask,
          rngs={"dropout": k_drop}, mutable=["batch_stats"])
      s1, s2 = scores[:nb], scores[nb:]
      loss = ranknet_loss(s1, s2, batch["target"], batch["weight"])
      return loss, (new.get("batch_stats", {}), s1 - s2, stn)

    (loss, (batch_stats, margin, stn)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    valid = mask.astype(jnp.float32)
    n_valid = jnp.maximum(valid.sum(), 1.0)
    ordered = batch["valid"] & (batch["target"] != 0.5)
    right = (jnp.sign(margin) == jnp.sign(batch["target"] - 0.5)) & ordered
    centre = stn[:, 0:1] * stn[:, 1:3]
    metrics = dict(
        loss=loss,
        grad_norm=_tree_norm(grads),
        param_norm=_tree_norm(params),
        update_norm=_tree_norm(updates),
        train_acc=right.sum() / jnp.maximum(ordered.sum(), 1),
        scale=jnp.sum(stn[:, 0] * valid) / n_valid,
        centre_x=jnp.sum(centre[:, 0] * valid) / n_valid,
        centre_y=jnp.sum(centre[:, 1] * valid) / n_valid,
        outside_frac=jnp.sum(jax.vmap(sampler.centre_outside)(stn) * valid) / n_valid,
    )
    return TrainState(state.step + 1, params, batch_stats, opt_state), metrics

  def score(variables, images, thetas):
    x = to_float(images)

    def one_view(theta):
      view = render_views(x, jnp.broadcast_to(theta, (x.shape[0], 2, 3)), size)
      return model.apply(variables, view, train=False)[0]

    return jnp.sum(jax.lax.map(one_view, thetas), axis=0)

  def stn_params(variables, images):
    theta = jnp.broadcast_to(jnp.array([[1.0, 0, 0], [0, 1.0, 0]]), (images.shape[0], 2, 3))
    return model.apply(variables, render_views(to_float(images), theta, size), train=False)[1]

  jit = functools.partial(
      jax.jit, compiler_options={"xla_backend_optimization_level": 0} if cfg.xla_fast_compile
      else None)
  return dict(
      model=model, tx=tx,
      init_variables=jit(init_variables, out_shardings=repl),
      make_state=jit(make_state, out_shardings=repl),
      update=jit(update, donate_argnums=0, in_shardings=(repl, data, repl),
                 out_shardings=(repl, repl)),
      score=jit(score, in_shardings=(repl, data, repl), out_shardings=data),
      stn_params=jit(stn_params, in_shardings=(repl, data), out_shardings=data),
  )


def make_update_fn(cfg: ml_collections.ConfigDict, mode: str,
                   mesh: jax.sharding.Mesh | None = None):
  """The jitted, state-donating `update(state, batch, rng) -> (state, metrics)` of `mode`.

  `batch` holds `a`, `b` uint8 (B, H, W, C) images, `target`, `weight` float32 (B,), `valid` bool
  (B,), with B a multiple of the mesh's device count (see `make_batch`).
  """
  return _functions(_cfg_key(cfg), mode, mesh or mesh_lib.make_mesh())["update"]


def init_state(cfg: ml_collections.ConfigDict, mode: str, key: jax.Array,
               mesh: jax.sharding.Mesh | None = None,
               variables: Mapping[str, Any] | None = None) -> TrainState:
  """A fresh replicated TrainState (from `variables` when given, else initialised from `key`)."""
  fns = _functions(_cfg_key(cfg), mode, mesh or mesh_lib.make_mesh())
  if variables is None:
    variables = fns["init_variables"](key)
  return fns["make_state"](variables)


# ------------------------------------------------------------------------------- batches

def padded_batch_size(batch_pairs: int, mesh: jax.sharding.Mesh) -> int:
  """batch_pairs rounded up to a multiple of the mesh's device count."""
  return loop.round_up(batch_pairs, mesh_lib.num_shards(mesh))


def make_batch(pool_images: np.ndarray, pairs: PairSet, index: np.ndarray, size: int,
               rows: slice = slice(None)) -> dict[str, np.ndarray]:
  """Gathers the pairs at `index` into a batch of `size` pairs (host, numpy).

  Rows past len(index) are zero-weight, `valid=False` copies of the first pair (padding).
  Images are gathered from the pool by index: (size, H, W, C) uint8 for each member. `rows`
  keeps only those rows of the batch (a process's share in a multi-process run), and only
  their images are gathered.
  """
  index = np.asarray(index)
  if not 0 < len(index) <= size:
    raise ValueError(f"a batch needs 1..{size} pairs, got {len(index)}")
  full = np.concatenate([index, np.repeat(index[:1], size - len(index))])[rows]
  valid = (np.arange(size) < len(index))[rows]
  a, b = np.asarray(pairs.a)[full], np.asarray(pairs.b)[full]
  return dict(a=pool_images[a], b=pool_images[b],
              target=(np.asarray(pairs.label)[full].astype(np.float32) + 1.0) / 2.0,
              weight=np.where(valid, np.asarray(pairs.weight, np.float32)[full], 0.0
                              ).astype(np.float32),
              valid=valid)


def epoch_order(seed: int, stage: int, epoch: int, num_pairs: int) -> np.ndarray:
  """The pair order of one epoch, a function of (seed, stage, epoch) only (so resume repeats it)."""
  return np.random.default_rng([seed, stage, epoch]).permutation(num_pairs)


# ------------------------------------------------------------------------------- scoring

@dataclasses.dataclass
class DeepSTNModel:
  """A trained DeepSTN ranker.

  Attributes:
    config: the ConfigDict it was trained with.
    mode: "stn_only" or "combined" (the last stage trained).
    variables: {"params", "batch_stats"} of the best epoch of the last stage (host numpy).
    stages: per stage, {"best_epoch", "best_val_acc", "epochs_run", "steps"}.
    mesh: the mesh scoring runs on (None: all local devices).
  """
  config: ml_collections.ConfigDict
  mode: str
  variables: dict[str, Any]
  stages: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
  mesh: jax.sharding.Mesh | None = None


def _batched(fn, variables, images: np.ndarray, batch: int, mesh, *extra) -> np.ndarray:
  """fn(variables, image chunk, *extra) over padded fixed-size chunks (train/loop.py)."""
  images = np.asarray(images)
  if images.ndim != 4 or images.dtype != np.uint8:
    raise ValueError(f"images must be uint8 (N, H, W, C), got {images.dtype} {images.shape}")
  if len(images) == 0:
    raise ValueError("no images to score")
  return loop.batched_apply(lambda v, *rest: fn(v, rest[-1], *rest[:-1]), [images], batch, mesh,
                            variables, *extra)


def _score(cfg, mode, mesh, variables, images: np.ndarray, num_crops: int) -> np.ndarray:
  fns = _functions(_cfg_key(cfg), mode, mesh)
  thetas = mesh_lib.replicate(jnp.asarray(test_view_thetas(num_crops, cfg.crop_scale)), mesh)
  return _batched(fns["score"], variables, images, cfg.eval_batch, mesh, thetas)


def score_images(model: DeepSTNModel, images: np.ndarray,
                 cfg: ml_collections.ConfigDict | None = None) -> np.ndarray:
  """Scores uint8 images (N, H, W, C) -> float32 (N,), summed over `cfg.test_crops` views.

  `cfg` defaults to the model's own config; pass a copy to change e.g. `test_crops`.
  """
  cfg = model.config if cfg is None else cfg
  mesh = model.mesh or mesh_lib.make_mesh()
  variables = mesh_lib.replicate(model.variables, mesh)
  return _score(cfg, model.mode, mesh, variables, images, int(cfg.test_crops))


def stn_parameters(model: DeepSTNModel, images: np.ndarray) -> np.ndarray:
  """(s, t_x, t_y) the localisation net predicts for the whole (uncropped) images: (N, 3)."""
  mesh = model.mesh or mesh_lib.make_mesh()
  fns = _functions(_cfg_key(model.config), model.mode, mesh)
  return _batched(fns["stn_params"], mesh_lib.replicate(model.variables, mesh), images,
                  model.config.eval_batch, mesh)


def patch_boxes(model: DeepSTNModel, images: np.ndarray) -> np.ndarray:
  """The learned patch of each whole image as a pixel box (x0, y0, x1, y1): (N, 4) float32.

  Pixel-edge units of the given images (0..W, 0..H); the localisation net sees the whole image
  resized to `image_size` (no crop), so the box is where its patch falls on the original.
  """
  images = np.asarray(images)
  params = stn_parameters(model, images)
  return np.asarray(sampler.patch_box(jnp.asarray(params), images.shape[1], images.shape[2]))


def save_patch_figure(path: str | os.PathLike, model: DeepSTNModel, images: np.ndarray,
                      titles: Sequence[str] | None = None, ncols: int = 6) -> None:
  """Draws images with their learned patch as a box (DeepSTN's Figure 3) and saves a PNG."""
  images = np.asarray(images)
  boxes = patch_boxes(model, images)
  n = len(images)
  ncols = max(1, min(ncols, n))
  nrows = int(math.ceil(n / ncols))
  fig, axes = plt.subplots(nrows, ncols, figsize=(1.8 * ncols, 1.9 * nrows), squeeze=False)
  for i, ax in enumerate(axes.flat):
    ax.axis("off")
    if i >= n:
      continue
    img = images[i]
    ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1
              else None, extent=(0, img.shape[1], img.shape[0], 0))
    x0, y0, x1, y1 = boxes[i]
    ax.add_patch(patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False,
                                              edgecolor="red", linewidth=1.5))
    ax.set_xlim(0, img.shape[1])
    ax.set_ylim(img.shape[0], 0)
    if titles is not None and i < len(titles):
      ax.set_title(str(titles[i]), fontsize=8)
  io.save_figure(fig, path)


# ------------------------------------------------------------------------------- training loop

_copy_tree = jax.jit(lambda tree: jax.tree.map(jnp.copy, tree))


def _host(tree):
  return jax.tree.map(np.asarray, mesh_lib.to_host(tree))


def _validate_inputs(pool: ImageSet, train_pairs: PairSet, val_images: ImageSet | None,
                     val_pairs: PairSet | None) -> None:
  if len(train_pairs) == 0:
    raise ValueError(f"no training pairs for attribute {train_pairs.attribute!r}")
  train_pairs.validate(len(pool), where="DeepSTN training pool")
  if val_pairs is not None:
    if val_images is None:
      raise ValueError("val_pairs given without val_images")
    val_pairs.validate(len(val_images), where="DeepSTN validation set")
    if not np.any(np.asarray(val_pairs.label) != 0):
      raise ValueError(f"validation pairs of {val_pairs.attribute!r} hold no ordered pair")


def _stage_identity(record: Mapping[str, Any]) -> dict:
  """What a stage's checkpoints mean: every field but the loop's (epochs, patience, crops, ...)."""
  return {k: v for k, v in record.items() if k not in _LOOP_FIELDS}


def _train_stage(cfg, stage_idx: int, mode: str, epochs: int, pool: ImageSet,
                 train_pairs: PairSet, val_images, val_pairs, workdir: Path, mesh, seed: int,
                 loc_init: Mapping[str, Any] | None, backbone_init: Mapping[str, Any] | None
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
  """Trains one stage (resuming from its checkpoints); returns (best variables, summary)."""
  stage_dir = workdir / mode
  loop.claim_workdir(stage_dir / "config.json", json.loads(cfg.to_json()), _stage_identity,
                     "DeepSTN config")
  fns = _functions(_cfg_key(cfg), mode, mesh)
  base = jax.random.fold_in(jax.random.key(seed), stage_idx)
  variables = _host(fns["init_variables"](jax.random.fold_in(base, 0)))
  if cfg.pretrained_backbone:
    variables = stn_ranker.load_backbone_npz(variables, cfg.pretrained_backbone)
  for init, keys in ((loc_init, ("loc",)), (backbone_init, ("backbone",))):
    if init is not None:
      for coll in ("params", "batch_stats"):
        for k in keys:
          if k in init.get(coll, {}):
            variables[coll][k] = init[coll][k]
  state = fns["make_state"](mesh_lib.replicate(variables, mesh))
  copy = _copy_tree  # the best epoch's arrays must outlive the donated state
  meta_types = dict(best_acc=np.float32, best_epoch=np.int32, bad_epochs=np.int32,
                    stopped=np.bool_, epochs_done=np.int32)
  as_arrays = lambda meta: mesh_lib.replicate(
      {k: np.asarray(meta[k], t) for k, t in meta_types.items()}, mesh)
  meta0 = dict(best_acc=-1.0, best_epoch=-1, bad_epochs=0, stopped=False, epochs_done=0)
  item = dict(state=state, best={"params": copy(state.params),
                                 "batch_stats": copy(state.batch_stats)},
              meta=as_arrays(meta0))

  b = int(cfg.batch_pairs)
  if b < 1:
    raise ValueError(f"batch_pairs must be >= 1, got {b}")
  size = padded_batch_size(b, mesh)
  n_pairs = len(train_pairs)
  steps_per_epoch = int(math.ceil(n_pairs / b))
  total = int(epochs) * steps_per_epoch
  if size != b and stage_idx == 0 and is_main():
    print(f"[deepstn] batch of {b} pairs padded to {size} with {size - b} zero-weight pair(s) "
          f"for the {mesh_lib.num_shards(mesh)} devices", flush=True)

  val_idx = val_sub = None
  if val_pairs is not None:
    val_idx = np.unique(np.concatenate([np.asarray(val_pairs.a), np.asarray(val_pairs.b)]))
    remap = np.full(len(val_images), -1, np.int64)
    remap[val_idx] = np.arange(len(val_idx))
    val_sub = PairSet(remap[np.asarray(val_pairs.a)].astype(np.int32),
                      remap[np.asarray(val_pairs.b)].astype(np.int32),
                      np.asarray(val_pairs.label), np.asarray(val_pairs.weight),
                      np.asarray(val_pairs.source), val_pairs.attribute)
    val_imgs = np.asarray(val_images.images)[val_idx]

  rng = jax.random.fold_in(base, 1)
  pool_images = np.asarray(pool.images)
  host_meta = lambda item: {k: v.item() for k, v in _host(item["meta"]).items()}

  def step_fn(item, step: int):
    epoch, i = divmod(step, steps_per_epoch)
    order = epoch_order(seed, stage_idx, epoch, n_pairs)
    batch = make_batch(pool_images, train_pairs, order[i * b:(i + 1) * b], size,
                       mesh_lib.process_rows(size))  # this process's rows of the global batch
    state, metrics = fns["update"](item["state"], mesh_lib.global_batch(batch, mesh), rng)
    return dict(item, state=state), metrics

  def after_epoch(item, step: int, metrics, writer):
    """Validation, the best epoch and early stopping at every epoch end (then a checkpoint)."""
    if step % steps_per_epoch:
      return item, loop.Hook()
    meta, state, best = host_meta(item), item["state"], item["best"]
    epoch = step // steps_per_epoch - 1
    meta["epochs_done"] = epoch + 1
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    if val_pairs is not None:
      scores = _score(cfg, mode, mesh, variables, val_imgs, int(cfg.val_crops))
      acc = float(np.float32(rank_accuracy(scores, val_sub)))  # as checkpointed
      if acc > meta["best_acc"]:
        meta.update(best_acc=acc, best_epoch=epoch, bad_epochs=0)
        best = copy(variables)
      else:
        meta["bad_epochs"] += 1
        if cfg.patience > 0 and meta["bad_epochs"] >= cfg.patience:
          meta["stopped"] = True
      if is_main():
        writer.write(step, dict(val_acc=acc, best_val_acc=meta["best_acc"]), epoch=epoch)
        print(f"[deepstn] {mode} epoch {epoch + 1}/{epochs}: val acc {acc:.4f} "
              f"(best {meta['best_acc']:.4f} at epoch {meta['best_epoch'] + 1})", flush=True)
    else:
      best = copy(variables)
      meta["best_epoch"] = epoch
    return dict(item, best=best, meta=as_arrays(meta)), loop.Hook(save=True, stop=meta["stopped"])

  result = loop.run_loop(
      item, workdir=stage_dir, name=f"deepstn/{mode}", total=total, step_fn=step_fn,
      log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every, after_step=after_epoch,
      finished=lambda item: bool(host_meta(item)["stopped"]),
      row_extra=lambda step: {"epoch": (step - 1) // steps_per_epoch},
      describe=lambda m: (f"loss {m['loss']:.4f} s {m['scale']:.3f} "
                          f"centre ({m['centre_x']:+.2f}, {m['centre_y']:+.2f})"),
      progress_every_s=cfg.progress_every_s, finite_first=("loss",))
  item, step, metrics = result.item, result.step, result.metrics
  meta, best = host_meta(item), item["best"]
  if not metrics and (stage_dir / "summary.json").exists():  # nothing left to train: keep it
    return _host(best), io.read_json(stage_dir / "summary.json")
  summary = dict(mode=mode, best_epoch=int(meta["best_epoch"]),
                 best_val_acc=float(meta["best_acc"]) if val_pairs is not None else None,
                 epochs_run=int(meta["epochs_done"]), steps=int(step),
                 early_stopped=bool(meta["stopped"]), steps_per_epoch=steps_per_epoch,
                 batch_pairs=b, padded_batch=size, devices=mesh_lib.num_shards(mesh),
                 last_metrics=metrics)
  if is_main():
    io.write_json(stage_dir / "summary.json", summary)
  return _host(best), summary


def validate_config(cfg: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first bad DeepSTN setting (runs check it before any work)."""
  if not cfg.stages:
    raise ValueError("deepstn.stages is empty: nothing to train")
  for m in cfg.stages:
    if m not in stn_ranker.MODES:
      raise ValueError(f"unknown DeepSTN stage {m!r}; valid: {list(stn_ranker.MODES)}")
  if cfg.backbone not in stn_ranker.BACKBONES:
    raise ValueError(f"unknown backbone {cfg.backbone!r}; valid: {sorted(stn_ranker.BACKBONES)}")
  if cfg.backbone == "alexnet" and cfg.patch_size != cfg.image_size:
    raise ValueError(f"the alexnet backbone needs patch_size == image_size, got "
                     f"{cfg.patch_size} and {cfg.image_size}")
  for name in ("test_crops", "val_crops"):
    if int(cfg[name]) not in (1, 2, 5, 10):
      raise ValueError(f"deepstn.{name} must be 1, 2, 5 or 10, got {cfg[name]}")
  for name in ("stn_epochs", "combined_epochs", "batch_pairs"):
    if int(cfg[name]) < (1 if name == "batch_pairs" else 0):
      raise ValueError(f"deepstn.{name} must be >= {1 if name == 'batch_pairs' else 0}, "
                       f"got {cfg[name]}")


def train_deepstn(cfg: ml_collections.ConfigDict, pool: ImageSet, train_pairs: PairSet,
                  val_images: ImageSet | None, val_pairs: PairSet | None,
                  workdir: str | os.PathLike, mesh: jax.sharding.Mesh | None = None,
                  seed: int | None = None) -> DeepSTNModel:
  """Trains DeepSTN's stages in order (`cfg.stages`) and returns the last stage's best model.

  Args:
    cfg: `default_config()` or a modified copy.
    pool: every training image (real and synthetic concatenated), uint8 (N, H, W, C).
    train_pairs: pairs indexing `pool` (labels +1 / −1 / 0, weights).
    val_images, val_pairs: validation images and pairs indexing them (may be the pool and pairs
      into it); None for no validation (then the last epoch is kept, no early stopping).
    workdir: stage outputs go to `<workdir>/<mode>/` (checkpoints/, metrics.jsonl, summary.json);
      rerunning with the same workdir resumes.
    mesh: device mesh (default: every local device on the data axis).
    seed: overrides `cfg.seed`.
  """
  mesh = mesh or mesh_lib.make_mesh()
  seed = int(cfg.seed if seed is None else seed)
  workdir = Path(workdir)
  _validate_inputs(pool, train_pairs, val_images, val_pairs)
  validate_config(cfg)
  previous, stages = None, {}
  for k, mode in enumerate(cfg.stages):
    epochs = cfg.stn_epochs if mode == "stn_only" else cfg.combined_epochs
    loc_init = backbone_init = None
    if previous is not None:
      loc_init = previous
      if cfg.combined_backbone_from_stn:
        backbone_init = previous
    previous, stages[mode] = _train_stage(cfg, k, mode, epochs, pool, train_pairs, val_images,
                                          val_pairs, workdir, mesh, seed, loc_init, backbone_init)
  return DeepSTNModel(cfg, cfg.stages[-1], previous, stages, mesh)


def fit(ctx: FitContext) -> ScoreRanker:
  """DeepSTN on the pool's pixels (`deepstn` block), as a ranker of the experiment runner.

  Trained into the cell's folder (resumable), early-stopped on the domain's val pairs (which
  index the pool's leading domain images). Test scores sum `deepstn.test_crops` views. The
  learned patch's mean centre and side on the test images are recorded; with figures on, it
  draws `stn_patches_<attribute>_<method>.png` (and for the headline method
  `stn_patches_<attribute>.png`).
  """
  cfg = ctx.config.deepstn
  val = ctx.val_pairs()
  images = ctx.pool.images
  model = train_deepstn(cfg, images, ctx.pool.pairs, images if val is not None else None, val,
                        ctx.workdir / f"deepstn_seed{ctx.seed}", seed=ctx.seed)
  ctx.info["stages"] = model.stages
  n = ctx.pool.num_domain_images
  test = np.asarray(ctx.domain.splits.get("test", np.arange(n)))
  boxes = patch_boxes(model, images.images[test])
  size = images.image_shape[0]
  ctx.info["patch_centre_xy"] = [float(((boxes[:, 0] + boxes[:, 2]) / 2).mean() / size),
                                 float(((boxes[:, 1] + boxes[:, 3]) / 2).mean() / size)]
  ctx.info["patch_side"] = float((boxes[:, 2] - boxes[:, 0]).mean() / size)
  if ctx.figures_dir is not None:
    show = test[:: max(1, len(test) // 12)][:12]
    paths = [ctx.figures_dir / f"stn_patches_{ctx.attribute}_{ctx.method}.png"]
    if ctx.headline:
      paths.append(ctx.figures_dir / f"stn_patches_{ctx.attribute}.png")
    for path in paths:
      save_patch_figure(path, model, images.images[show])
  return DeepSTNRanker(lambda idx: score_images(model, images.images[np.asarray(idx)]), model)


NAME = "deepstn"
VARIABLES = "variables"  # the orbax checkpoint of the best epoch's variables, in the model folder


@dataclasses.dataclass
class DeepSTNRanker(ScoreRanker):
  """The trained DeepSTN of a cell; `save` keeps its best variables (orbax), config and mode."""
  model: DeepSTNModel | None = None

  def save(self, folder) -> None:
    def write_variables(tmp: Path) -> None:
      ckpt = ocp.StandardCheckpointer()
      ckpt.save((tmp / VARIABLES).absolute(), self.model.variables)
      ckpt.wait_until_finished()
      ckpt.close()

    meta = dict(mode=self.model.mode, config=self.model.config.to_dict(),
                stages=self.model.stages)
    base.write_model(folder, NAME, meta, {}, extra=write_variables)


def load(folder) -> base.LoadedScorer:
  """A saved DeepSTN: `score(images)` sums `test_crops` views, as in the run."""
  meta, _ = base.read_model(folder, NAME)
  path = (Path(folder) / VARIABLES).absolute()
  if not path.is_dir():
    raise FileNotFoundError(f"saved DeepSTN lacks its variables checkpoint: {path}")
  ckpt = ocp.StandardCheckpointer()
  try:
    variables = ckpt.restore(path)
  finally:
    ckpt.close()
  variables = jax.tree.map(np.asarray, variables)
  cfg = ml_collections.ConfigDict(meta["config"])
  model = DeepSTNModel(cfg, meta["mode"], variables, meta.get("stages", {}))
  return base.LoadedScorer(lambda images: score_images(model, images))
