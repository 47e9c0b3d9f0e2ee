"""The Attribute2Image generator (Yan et al., ECCV 2016): a conditional VAE p(x | y, z), in Flax.

Architecture (REFERENCE.md §1), for images in [-1, 1] of size S = 8 · 2^k (64 → three stages):
  image encoder  5×5 conv → ReLU → pool, then (5×5 / 3×3) conv + BN + ReLU + pool stages down to
                 8×8, a 3×3 stride-2 conv + BN + ReLU (4×4), a 4×4 valid conv (1×1×1024), ReLU,
                 Linear 1024 → 1024, ReLU, dropout 0.5                                   → h_x
  attr encoder   Linear(y → 256), ReLU                                                  → h_y
  posterior      μ = Linear([h_x; h_y]),  log σ² = Linear(h_x) only, zero-initialised (σ = 1)
  decoder        y → Linear(512) ReLU; [z; h_y'] → Linear 256 ReLU → Linear 256·8·8 ReLU →
                 8×8×256 → 3×3 conv BN ReLU → stages of (×2 nearest upsample, 5×5 conv, BN,
                 ReLU) → two 5×5 conv heads: mean (tanh) and per-pixel log-variance.
Widths are config fields so tests run a tiny model on 16×16 or 32×32 images. Nearest upsample +
conv is used instead of transposed convolution (several times faster on CPU).

Loss: −ELBO = −log N(x; μ_x, σ²_x) summed over pixels + KL(q(z|x,y) ‖ N(0, I)), averaged over
the batch. The prior on z does not depend on y. BatchNorm statistics live in the `batch_stats`
collection: training applies with `train=True, mutable=["batch_stats"]`; sampling uses the
running averages (`train=False`). Sampling for the rankers uses the decoder MEAN.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections


def default_config() -> ml_collections.ConfigDict:
  """The `model` block of a generator config: the paper's sizes at 64×64."""
  cfg = ml_collections.ConfigDict()
  cfg.image_size = 64  # square image side; 8 · 2^k
  cfg.z_dim = 256  # latent size (paper: 256)
  cfg.enc_widths = (64, 128, 256)  # conv widths of the encoder's pooling stages (paper)
  cfg.enc_top = 256  # width of the 3×3 stride-2 conv (paper: 256)
  cfg.enc_fc = 1024  # width of the 4×4 valid conv and the Linear after it (paper: 1024)
  cfg.y_enc = 256  # attribute encoder width (paper: 256)
  cfg.y_dec = 512  # decoder's attribute branch width (paper: 512)
  cfg.dec_fc = 256  # decoder's [z; y] fully connected width (paper: 256)
  cfg.dec_base = 256  # channels of the 8×8 decoder seed (paper: 256)
  cfg.dec_widths = (256, 128, 64)  # widths of the upsampling stages, coarse to fine (paper)
  cfg.dropout = 0.5  # dropout after the encoder's Linear (paper: 0.5)
  return cfg


def num_stages(image_size: int) -> int:
  k = math.log2(image_size / 8)
  if image_size < 8 or k != int(k):
    raise ValueError(f"image_size must be 8 · 2^k (e.g. 16, 32, 64), got {image_size}")
  return int(k)


def _pool(x):
  return nn.max_pool(x, (2, 2), (2, 2))


class Encoder(nn.Module):
  cfg: ml_collections.ConfigDict

  @nn.compact
  def __call__(self, x, y, train: bool):
    cfg = self.cfg
    stages = num_stages(cfg.image_size)
    widths = _stage_widths(cfg.enc_widths, stages)
    h = x
    for i, w in enumerate(widths):
      h = nn.Conv(w, (5, 5) if i < 2 else (3, 3), name=f"conv{i}")(h)
      if i > 0:
        h = nn.BatchNorm(use_running_average=not train, name=f"bn{i}")(h)
      h = _pool(nn.relu(h))
    h = nn.Conv(cfg.enc_top, (3, 3), strides=(2, 2), name="conv_top")(h)
    h = nn.relu(nn.BatchNorm(use_running_average=not train, name="bn_top")(h))
    h = nn.relu(nn.Conv(cfg.enc_fc, (4, 4), padding="VALID", name="conv_fc")(h))
    h = h.reshape(h.shape[0], -1)
    h = nn.relu(nn.Dense(cfg.enc_fc, name="fc")(h))
    h_x = nn.Dropout(cfg.dropout, deterministic=not train)(h)
    h_y = nn.relu(nn.Dense(cfg.y_enc, name="y_enc")(y))
    mu = nn.Dense(cfg.z_dim, name="mu")(jnp.concatenate([h_x, h_y], -1))
    logvar = nn.Dense(cfg.z_dim, kernel_init=nn.initializers.zeros, name="logvar")(h_x)
    return mu, logvar


def _stage_widths(widths: Sequence[int], stages: int) -> list[int]:
  """The configured widths, repeated/truncated to the number of stages the size needs."""
  widths = list(widths)
  return (widths + [widths[-1]] * stages)[:stages]


class Decoder(nn.Module):
  cfg: ml_collections.ConfigDict

  @nn.compact
  def __call__(self, z, y, train: bool):
    cfg = self.cfg
    stages = num_stages(cfg.image_size)
    h_y = nn.relu(nn.Dense(cfg.y_dec, name="y_dec")(y))
    h = nn.relu(nn.Dense(cfg.dec_fc, name="fc0")(jnp.concatenate([z, h_y], -1)))
    h = nn.relu(nn.Dense(cfg.dec_base * 64, name="fc1")(h))
    h = h.reshape(h.shape[0], 8, 8, cfg.dec_base)
    h = nn.Conv(cfg.dec_base, (3, 3), name="conv0")(h)
    h = nn.relu(nn.BatchNorm(use_running_average=not train, name="bn0")(h))
    for i, w in enumerate(_stage_widths(cfg.dec_widths, stages)):
      b, hh, ww, c = h.shape
      h = jax.image.resize(h, (b, 2 * hh, 2 * ww, c), "nearest")
      h = nn.Conv(w, (5, 5), name=f"up{i}")(h)
      h = nn.relu(nn.BatchNorm(use_running_average=not train, name=f"up_bn{i}")(h))
    mean = jnp.tanh(nn.Conv(3, (5, 5), name="mean")(h))
    logvar = nn.Conv(3, (5, 5), name="logvar")(h)
    return mean, logvar


class CVAE(nn.Module):
  """x (B, S, S, 3) in [-1, 1], y (B, A) standardised strengths."""
  cfg: ml_collections.ConfigDict

  def setup(self):
    self.encoder = Encoder(self.cfg)
    self.decoder = Decoder(self.cfg)

  def __call__(self, x, y, eps, train: bool = False):
    """Reconstruction pass: returns (x_mean, x_logvar, z_mu, z_logvar)."""
    mu, logvar = self.encoder(x, y, train)
    z = mu + jnp.exp(0.5 * logvar) * eps
    x_mean, x_logvar = self.decoder(z, y, train)
    return x_mean, x_logvar, mu, logvar

  def encode(self, x, y, train: bool = False):
    return self.encoder(x, y, train)

  def decode(self, z, y, train: bool = False):
    return self.decoder(z, y, train)


def gaussian_nll(x, mean, logvar):
  """−log N(x; mean, exp(logvar)) summed over all but the batch axis: (B,)."""
  nll = 0.5 * (jnp.log(2 * jnp.pi) + logvar + (x - mean) ** 2 * jnp.exp(-logvar))
  return nll.reshape(nll.shape[0], -1).sum(-1)


def kl_standard_normal(mu, logvar):
  """KL(N(mu, exp(logvar)) ‖ N(0, I)) per example: (B,)."""
  return 0.5 * jnp.sum(jnp.exp(logvar) + mu ** 2 - 1.0 - logvar, axis=-1)


def elbo(model: CVAE, variables, x, y, key, train: bool = False):
  """−ELBO per example and its parts. Returns (neg_elbo (B,), nll (B,), kl (B,), new_state).

  `new_state` holds the updated batch statistics when `train` (else the given ones).
  """
  k_eps, k_drop = jax.random.split(key)
  eps = jax.random.normal(k_eps, (x.shape[0], model.cfg.z_dim), x.dtype)
  if train:
    (x_mean, x_logvar, mu, logvar), state = model.apply(
        variables, x, y, eps, train=True, mutable=["batch_stats"], rngs={"dropout": k_drop})
  else:
    x_mean, x_logvar, mu, logvar = model.apply(variables, x, y, eps, train=False)
    state = {"batch_stats": variables.get("batch_stats", {})}
  nll = gaussian_nll(x, x_mean, x_logvar)
  kl = kl_standard_normal(mu, logvar)
  return nll + kl, nll, kl, state


def sample(model: CVAE, variables, y, z):
  """The decoder MEAN image in [-1, 1] for standardised attributes y (B, A) and latents z (B, Z)."""
  mean, _ = model.apply(variables, z, y, train=False, method=CVAE.decode)
  return mean


def init_variables(model: CVAE, key, num_attributes: int):
  s = model.cfg.image_size
  x = jnp.zeros((2, s, s, 3), jnp.float32)
  y = jnp.zeros((2, num_attributes), jnp.float32)
  eps = jnp.zeros((2, model.cfg.z_dim), jnp.float32)
  return model.init({"params": key, "dropout": key}, x, y, eps, train=False)
