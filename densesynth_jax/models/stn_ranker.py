"""DeepSTN (Singh & Lee, ECCV 2016): a Siamese RankNet whose patch stream is a spatial transformer.

One `DeepSTN` module scores a batch of images; a pair is scored by applying the SAME module (same
parameters) to both members, which is all "Siamese" means here (the trainer concatenates the two
members into one batch). Per image:

  localisation net: conv features -> 1×1 conv -> FC 128 -> FC 3 -> (s, t_x, t_y)
  patch = bilinear sample of the image under θ = [[s, 0, s·t_x], [0, s, s·t_y]]   (sampler.py)
  features = backbone(patch)                      (mode "stn_only")
           | [backbone(patch); backbone(image)]   (mode "combined": ONE shared backbone instance)
  score = linear(features)

The localisation net has its OWN copy of the backbone's conv layers (as in the original, where both
start from ImageNet AlexNet): it lives under the `loc` parameter subtree, which the trainer gives
0.1× the learning rate. The scale output is multiplied by a fixed 0.05 and its bias set so that s
starts at `scale_init`; the last layer's kernel starts at zero, so every image starts with the same
centred patch (t = 0).

Backbones (registry `BACKBONES`):
- "small_cnn": conv3×3-BN-ReLU-maxpool stages, global average pooling; trains from scratch on CPU at
  64×64 in seconds per epoch.
- "alexnet": AlexNet's layout (conv1 11×11/4 96, LRN, pool; conv2 5×5 256 in 2 groups, LRN, pool;
  conv3 384; conv4 384 in 2 groups; conv5 256 in 2 groups, pool; fc6, fc7 4096 with dropout), for
  GPU runs at 227×227 (or 128×128) inputs; the grouped kernels have the shapes of the BVLC Caffe
  model, so converted ImageNet weights load.

Pretrained backbone weights (never required) are a `.npz` file with one array per backbone
parameter, keyed by its path in the backbone's Flax parameter tree joined with '/':
`conv1/kernel` (kh, kw, in/groups, out; HWIO, i.e. Caffe's OIHW transposed (2, 3, 1, 0)),
`conv1/bias`, ..., `fc6/kernel` (in, out), ...; for "small_cnn" also `bn1/scale`, `bn1/bias`, and
optionally running statistics as `batch_stats/bn1/mean`, `batch_stats/bn1/var`. The weights go into
the ranker's backbone and into the localisation net's copy (which has only the conv layers).
`export_backbone_npz` writes exactly this layout.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from densesynth_jax import io
from densesynth_jax.models import sampler
from densesynth_jax.models import pooling

MODES = ("stn_only", "combined")
SCALE_MULT = 0.05  # fixed multiplier on the localisation net's scale output (DeepSTN)


def conv_kernel_init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
  """Flax's default LeCun-normal kernel init, drawn as a 2-D (fan_in, out) array and reshaped.

  Same distribution (LeCun normal uses fan-in only, and fan_in = prod(shape[:-1]) either way);
  drawing 4-D random arrays makes XLA's CPU compiler spend seconds per kernel on the partitionable
  threefry generator, which dominated the start-up of every CPU run and test.
  """
  flat = (int(np.prod(shape[:-1])), int(shape[-1]))
  return nn.initializers.lecun_normal()(key, flat, dtype).reshape(shape)


class MaskedBatchNorm(nn.Module):
  """Batch norm of NHWC maps over (N, H, W) per channel, with a per-image mask.

  The semantics, parameters (`scale`, `bias`) and `batch_stats` (`mean`, biased `var`) of
  `nn.BatchNorm(use_running_average=not train, momentum=momentum)(x, mask=...)` with the default
  ε = 1e-5 and fast variance (E[x²] − E[x]², clipped at 0); running statistics are not updated
  while initialising. The batch statistics are per-image sums combined by the (B,) mask: flax's
  masked mean (`jnp.mean(..., where=mask)` broadcast to every pixel) costs XLA:CPU about as much
  as the convolution it normalises.

  With `relu_pool`, it returns `max_pool_2x2(nn.relu(batch_norm(x)))`, in training as the one
  fused op `pooling.bn_relu_pool` (same values, gradient equal within float rounding). `x` (and
  `mask`) may then be a tuple of batch chunks, normalised with the whole batch's statistics and
  returned as a tuple of pooled chunks.
  """
  momentum: float = 0.9
  epsilon: float = 1e-5
  relu_pool: bool = False

  @nn.compact
  def __call__(self, x, *, train: bool, mask=None):
    chunks = isinstance(x, (tuple, list))
    xs = tuple(x) if chunks else (x,)
    masks = tuple(mask) if chunks and mask is not None else (mask,) * len(xs)
    c = xs[0].shape[-1]
    ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
    ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
    scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
    xs = tuple(xc.astype(jnp.float32) for xc in xs)
    fused = self.relu_pool and train and xs[0].shape[1] % 2 == 0 and xs[0].shape[2] % 2 == 0
    sizes = [xc.shape[0] for xc in xs]
    if chunks and not fused:  # whole batch here, the same chunks out
      xs, masks = (jnp.concatenate(xs),), (None if mask is None else jnp.concatenate(masks),)
    if train:
      ws = tuple(jnp.ones((xc.shape[0],), jnp.float32) if m is None
                 else jnp.asarray(m).reshape(-1).astype(jnp.float32) for xc, m in zip(xs, masks))
      if fused:
        ys, mean, var = pooling.bn_relu_pool(xs, ws, scale, bias, self.epsilon)
      else:
        mean, var, _ = pooling.masked_moments(xs[0], ws[0])
      if not self.is_initializing():
        ra_mean.value = self.momentum * ra_mean.value + (1.0 - self.momentum) * mean
        ra_var.value = self.momentum * ra_var.value + (1.0 - self.momentum) * var
    else:
      mean, var = ra_mean.value, ra_var.value
    if not fused:
      y = (xs[0] - mean) * (jax.lax.rsqrt(var + self.epsilon) * scale) + bias
      y = pooling.max_pool_2x2(nn.relu(y)) if self.relu_pool else y
      ys = tuple(jnp.split(y, np.cumsum(sizes)[:-1])) if chunks else (y,)
    return ys if chunks else ys[0]


class SmallCNN(nn.Module):
  """Conv3×3-BN-ReLU-maxpool2 stages: (B, H, W, 3) -> (B, C) (or the last map if `spatial`).

  With `chunk_images` > 0, training runs each convolution and batch-norm tail on slices of about
  that many images (batch statistics still over the whole batch): the same function as
  independent ops, which XLA:CPU runs on different cores at once and with smaller working sets
  (one whole-batch op leaves a core idle much of the time; benchmarks/RESULTS.md). Evaluation
  runs whole batches.
  """
  channels: tuple[int, ...] = (16, 32, 64, 64)
  bn_momentum: float = 0.9
  chunk_images: int = 0

  @nn.compact
  def __call__(self, x, *, train: bool, mask: jax.Array | None = None, spatial: bool = False):
    k = -(-x.shape[0] // self.chunk_images) if train and self.chunk_images > 0 else 1
    xs = tuple(jnp.array_split(x, k)) if k > 1 else x
    masks = tuple(jnp.array_split(mask, k)) if k > 1 and mask is not None else mask
    for i, c in enumerate(self.channels):
      conv = nn.Conv(c, (3, 3), padding="SAME", use_bias=False,
                     kernel_init=conv_kernel_init, name=f"conv{i + 1}")
      xs = tuple(conv(xc) for xc in xs) if k > 1 else conv(xs)
      # batch norm -> ReLU -> 2×2 max pool, one op with its own gradient in training (pooling.py)
      xs = MaskedBatchNorm(momentum=self.bn_momentum, relu_pool=True, name=f"bn{i + 1}")(
          xs, train=train, mask=masks)
    x = jnp.concatenate(xs) if k > 1 else xs
    if spatial:
      return x
    return x.mean(axis=(1, 2))


def local_response_norm(x: jax.Array, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> jax.Array:
  """AlexNet's across-channel LRN (Caffe's definition): x / (k + α/n·Σ_window x²)^β, NHWC."""
  sq = jnp.square(x)
  window = jax.lax.reduce_window(sq, 0.0, jax.lax.add, (1, 1, 1, size), (1, 1, 1, 1),
                                 ((0, 0), (0, 0), (0, 0), (size // 2, (size - 1) // 2)))
  return x / jnp.power(k + alpha / size * window, beta)


class AlexNetLike(nn.Module):
  """AlexNet's conv1..fc7 (no BN): (B, S, S, 3), S = 227 or 128 -> (B, fc_dim) or the pool5 map."""
  fc_dim: int = 4096
  dropout: float = 0.5

  @nn.compact
  def __call__(self, x, *, train: bool, mask: jax.Array | None = None, spatial: bool = False):
    del mask  # no batch statistics to protect
    pool = lambda y: nn.max_pool(y, (3, 3), strides=(2, 2))
    conv = lambda *a, **k: nn.Conv(*a, kernel_init=conv_kernel_init, **k)
    x = nn.relu(conv(96, (11, 11), strides=(4, 4), padding="VALID", name="conv1")(x))
    x = pool(local_response_norm(x))
    x = nn.relu(conv(256, (5, 5), padding="SAME", feature_group_count=2, name="conv2")(x))
    x = pool(local_response_norm(x))
    x = nn.relu(conv(384, (3, 3), padding="SAME", name="conv3")(x))
    x = nn.relu(conv(384, (3, 3), padding="SAME", feature_group_count=2, name="conv4")(x))
    x = nn.relu(conv(256, (3, 3), padding="SAME", feature_group_count=2, name="conv5")(x))
    x = pool(x)
    if spatial:
      return x
    x = x.reshape(x.shape[0], -1)
    for name in ("fc6", "fc7"):
      x = nn.relu(nn.Dense(self.fc_dim, name=name)(x))
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return x


BACKBONES: dict[str, Callable[..., nn.Module]] = {"small_cnn": SmallCNN, "alexnet": AlexNetLike}


def make_backbone(backbone: str, kwargs: tuple[tuple[str, Any], ...] = (),
                  **module_kw) -> nn.Module:
  """Builds a registered backbone; an unknown name lists the valid ones."""
  if backbone not in BACKBONES:
    raise ValueError(f"unknown backbone {backbone!r}; valid: {sorted(BACKBONES)}")
  return BACKBONES[backbone](**dict(kwargs), **module_kw)


class LocalizationNet(nn.Module):
  """Image -> (s, t_x, t_y): own backbone conv features -> 1×1 conv -> FC 128 -> FC 3.

  Returns (B, 3) float32: s = 0.05·raw_s (starts at `scale_init`), t_x, t_y (start at 0).
  """
  backbone_name: str = "small_cnn"
  backbone_kwargs: tuple[tuple[str, Any], ...] = ()
  scale_init: float = 0.33
  conv_channels: int = 64
  hidden: int = 128

  @nn.compact
  def __call__(self, x, *, train: bool, mask: jax.Array | None = None):
    f = make_backbone(self.backbone_name, self.backbone_kwargs, name="backbone")(
        x, train=train, mask=mask, spatial=True)
    h = nn.relu(nn.Conv(self.conv_channels, (1, 1), kernel_init=conv_kernel_init,
                         name="conv1x1")(f))
    h = nn.relu(nn.Dense(self.hidden, name="fc1")(h.reshape(h.shape[0], -1)))
    bias0 = np.array([self.scale_init / SCALE_MULT, 0.0, 0.0], np.float32)
    raw = nn.Dense(3, kernel_init=nn.initializers.zeros,
                   bias_init=lambda *_: jnp.asarray(bias0), name="fc2")(h)
    return jnp.stack([SCALE_MULT * raw[:, 0], raw[:, 1], raw[:, 2]], axis=-1)


class DeepSTN(nn.Module):
  """The DeepSTN ranker: images (B, S, S, 3) float -> (scores (B,), stn params (B, 3)).

  Attributes:
    mode: "stn_only" (patch stream only) or "combined" (patch + global through one backbone).
    backbone_name: key of `BACKBONES`.
    backbone_kwargs: extra backbone fields as a tuple of (name, value) pairs (hashable).
    patch_size: side of the sampled patch in pixels (must equal the input size for "alexnet",
      whose fc6 fixes the input size).
    scale_init: starting patch scale s (0.33 faces, 0.4 shoes).
    loc_conv_channels, loc_hidden: widths of the localisation net's 1×1 conv and FC layer.
  """
  mode: str = "combined"
  backbone_name: str = "small_cnn"
  backbone_kwargs: tuple[tuple[str, Any], ...] = ()
  patch_size: int = 32
  scale_init: float = 0.33
  loc_conv_channels: int = 64
  loc_hidden: int = 128

  def setup(self):
    if self.mode not in MODES:
      raise ValueError(f"unknown DeepSTN mode {self.mode!r}; valid: {list(MODES)}")
    self.loc = LocalizationNet(self.backbone_name, self.backbone_kwargs, self.scale_init,
                               self.loc_conv_channels, self.loc_hidden)
    self.backbone = make_backbone(self.backbone_name, self.backbone_kwargs)
    self.head = nn.Dense(1)

  def __call__(self, x: jax.Array, *, train: bool = False, mask: jax.Array | None = None):
    """Args: x (B, S, S, 3) float images in [-1, 1]; mask (B,) bool, False for padding images
    (kept out of batch statistics and of the boundary pull). Returns (scores (B,), stn (B, 3))."""
    if self.backbone_name == "alexnet" and self.patch_size != x.shape[1]:
      raise ValueError(f"the alexnet backbone needs patch_size == input size ({x.shape[1]}), "
                       f"got patch_size {self.patch_size}")
    stn = self.loc(x, train=train, mask=mask)
    pull = 1.0 if mask is None else mask.astype(jnp.float32)
    patch = sampler.stn_patches(x, stn, self.patch_size, pull)
    feats = self.backbone(patch, train=train, mask=mask)
    if self.mode == "combined":
      feats = jnp.concatenate([feats, self.backbone(x, train=train, mask=mask)], axis=-1)
    return self.head(feats)[:, 0], stn


# ---------------------------------------------------------------- pretrained backbone weights

_TARGETS = (("backbone",), ("loc", "backbone"))  # where backbone copies live in DeepSTN


def export_backbone_npz(path: str | os.PathLike, variables: Mapping[str, Any],
                        where: tuple[str, ...] = ("backbone",)) -> None:
  """Writes the backbone at `where` (default: the ranker's) in the `.npz` layout above."""
  flat = {}
  for coll, prefix in (("params", ""), ("batch_stats", "batch_stats/")):
    tree = variables.get(coll, {})
    for key in where:
      tree = tree.get(key, {}) if isinstance(tree, Mapping) else {}
    for k, v in traverse_util.flatten_dict(tree, sep="/").items():
      flat[prefix + k] = np.asarray(v)
  if not flat:
    raise ValueError(f"no backbone parameters at {'/'.join(where)} to export")
  io.save_npz(path, **flat)


def load_backbone_npz(variables: Mapping[str, Any], path: str | os.PathLike) -> dict[str, Any]:
  """Returns `variables` with the backbone weights of `path` copied into every backbone copy.

  Every key of the file must name a parameter of the ranker's backbone with the same shape (else a
  one-line error naming the key and the file); the localisation net's copy takes the keys it has
  (its conv layers). Backbone parameters the file lacks keep their initial values.
  """
  weights = io.load_npz(path)
  if not weights:
    raise ValueError(f"pretrained backbone file {path} holds no arrays")
  out = {coll: traverse_util.flatten_dict(jax.tree.map(np.asarray, dict(tree)))
         for coll, tree in variables.items()}
  for key, value in weights.items():
    coll, rest = ("batch_stats", key[len("batch_stats/"):]) if key.startswith("batch_stats/") \
        else ("params", key)
    rel = tuple(rest.split("/"))
    main = _TARGETS[0] + rel
    if main not in out.get(coll, {}):
      raise KeyError(f"pretrained backbone file {path}: key {key!r} is not a {coll} entry of the "
                     f"backbone")
    for target in _TARGETS:
      full = target + rel
      if full not in out[coll]:
        continue
      if out[coll][full].shape != value.shape:
        raise ValueError(f"pretrained backbone file {path}: key {key!r} has shape {value.shape}, "
                         f"the model's {'/'.join(full)} has {out[coll][full].shape}")
      if not np.isfinite(value).all():
        raise ValueError(f"pretrained backbone file {path}: key {key!r} has non-finite values")
      out[coll][full] = value.astype(out[coll][full].dtype)
  return {coll: traverse_util.unflatten_dict(tree) for coll, tree in out.items()}
