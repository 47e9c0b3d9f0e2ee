"""The Attribute2Image generator (Yan et al., ECCV 2016): a conditional VAE p(x | y, z), in Flax.

Architecture (REFERENCE.md §1); for square images in [-1, 1] of side S = 8 · 2^k there are
k = log2(S / 8) pooling stages in the encoder and k upsampling stages in the decoder (64×64: k = 3,
the paper's model; tests use 16×16 or 32×32):

  image encoder  5×5 conv → ReLU → 2×2 max-pool, then (5×5, then 3×3) conv + BN + ReLU + pool
                 stages down to 8×8; 3×3 stride-2 conv + BN + ReLU (4×4); 4×4 valid conv (1×1),
                 ReLU; Linear → ReLU → dropout 0.5                                      → h_x
  attr encoder   Linear(y → 256), ReLU                                                   → h_y
  posterior      μ = Linear([h_x; h_y]),  log σ² = Linear(h_x) only, kernel AND bias zero-
                 initialised so that σ = 1 at the start
  decoder        y → Linear(512), ReLU; [z; that] → Linear 256, ReLU → Linear 256·8·8, ReLU →
                 8×8×256 → 3×3 conv + BN + ReLU → k stages of (×2 nearest upsample, 5×5 conv,
                 BN, ReLU) → two 5×5 conv heads: mean (tanh) and per-pixel log-variance
                 (unconstrained)

With fewer stages than widths (S < 64) the encoder keeps its FIRST widths and the decoder its LAST
ones, so the finest resolution always has the paper's finest width. Upsampling is nearest
neighbour followed by a 5×5 convolution, not a transposed convolution (no checkerboard
artefacts; REFERENCE.md §1); `UpsampleConv` computes that exact function as a 3×3 sub-pixel
convolution at the low resolution plus depth-to-space, 2.8× fewer multiply-adds (see
benchmarks/RESULTS.md). A convolution
followed by BatchNorm has no bias: BN's shift makes it redundant (its gradient is exactly zero in
theory and rounding noise in practice, which Adam would amplify into ±lr steps).

Loss, per example: −ELBO = −log N(x; μ_x, σ²_x) summed over the S·S·3 pixel values
+ KL(q(z | x, y) ‖ N(0, I)); the prior on z does not depend on y.

State and randomness are explicit. BatchNorm statistics live in the `batch_stats` collection:
training applies the model with `train=True, mutable=["batch_stats"]` (batch statistics, running
averages updated); evaluation and sampling use the running averages (`train=False`). Dropout takes
its key from `rngs={"dropout": key}`; the reparameterisation noise ε is an argument. Sampling for
the rankers uses the decoder MEAN image, never a pixel sample.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from densesynth_jax.models.pooling import max_pool_2x2

Variables = Any  # {"params": ..., "batch_stats": ...}


def default_config() -> ml_collections.ConfigDict:
  """The `model` block of a generator config: the paper's sizes at 64×64."""
  cfg = ml_collections.ConfigDict()
  cfg.image_size = 64  # square image side the model sees, 8 · 2^k (paper: 64)
  cfg.z_dim = 256  # latent size (paper: 256)
  cfg.enc_widths = (64, 128, 256)  # conv widths of the encoder's pooling stages, fine to coarse
  cfg.enc_top = 256  # width of the 3×3 stride-2 conv at 8×8 → 4×4 (paper: 256)
  cfg.enc_fc = 1024  # width of the 4×4 valid conv and of the Linear after it (paper: 1024)
  cfg.y_enc = 256  # attribute encoder width, h_y (paper: 256)
  cfg.y_dec = 512  # width of the decoder's attribute branch (paper: 512)
  cfg.dec_fc = 256  # width of the decoder's Linear on [z; y branch] (paper: 256)
  cfg.dec_base = 256  # channels of the decoder's 8×8 seed and its 3×3 conv (paper: 256)
  cfg.dec_widths = (256, 128, 64)  # widths of the upsampling stages, coarse to fine (paper)
  cfg.dropout = 0.5  # dropout rate after the encoder's Linear (paper: 0.5)
  cfg.bn_momentum = 0.9  # running-average decay of BatchNorm (Torch's momentum 0.1)
  # Soft lower bound on the decoder's per-pixel log-variance, logvar = m + softplus(raw − m);
  # None = unconstrained (the paper). A floor stops the model from buying likelihood on easy
  # pixels (flat background) with tiny variances while giving up on small hard regions (mouths).
  cfg.logvar_min = ml_collections.FieldReference(None, field_type=float)
  return cfg


def num_stages(image_size: int) -> int:
  """k = log2(S / 8): the pooling / upsampling stages for an S×S image."""
  k = math.log2(image_size / 8) if image_size >= 8 else -1.0
  if k < 0 or k != int(k):
    raise ValueError(f"image_size must be 8 · 2^k (e.g. 16, 32, 64), got {image_size}")
  return int(k)


def stage_widths(widths: Sequence[int], stages: int, keep: str) -> list[int]:
  """`stages` widths from the configured ones: the first (`keep="first"`) or the last ones.

  With more stages than widths, the width at the kept end is repeated.
  """
  widths = [int(w) for w in widths]
  if not widths:
    raise ValueError("a model needs at least one stage width")
  if keep == "last":
    return stage_widths(widths[::-1], stages, "first")[::-1]
  return (widths + [widths[-1]] * stages)[:stages]


def upsample2(x: jax.Array) -> jax.Array:
  """×2 nearest-neighbour upsampling by broadcast + reshape: (B, H, W, C) -> (B, 2H, 2W, C)."""
  b, h, w, c = x.shape
  return jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c)).reshape(b, 2 * h, 2 * w, c)


def _pool(x):
  return max_pool_2x2(x)  # nn.max_pool's values and gradient, faster on CPU (pooling.py)


# -- stride-1 SAME convolution with a fast weight gradient on CPU ---------------------------------

_DN = ("NHWC", "HWIO", "NHWC")
_PATCH_BYTES = 64 << 20  # im2col memory per chunk of the weight gradient


def _conv(x, w):
  return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=_DN)


def _patches(x, k: int):
  """im2col: (B, H, W, C) -> (B, H, W, k·k·C), taps in the order of an HWIO kernel's reshape."""
  p = k // 2
  _, h, w, _ = x.shape
  xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  return jnp.concatenate([xp[:, i:i + h, j:j + w, :] for i in range(k) for j in range(k)], -1)


def conv_weight_gradient(x, dy, k: int):
  """∂L/∂W of a stride-1 SAME k×k convolution: Σ over pixels of patch(x)ᵀ · dy, as matmuls.

  x (B, H, W, C), dy (B, H, W, O) -> (k, k, C, O). The batch is processed in chunks whose im2col
  patches take at most `_PATCH_BYTES`, accumulated by a scan (bounded memory).
  """
  b, h, w, c = x.shape
  o = dy.shape[-1]
  per_image = h * w * k * k * c * x.dtype.itemsize
  chunk = max([d for d in range(1, b + 1) if b % d == 0 and d * per_image <= _PATCH_BYTES] or [1])

  def body(acc, xd):
    xc, dc = xd
    pt = _patches(xc, k).reshape(-1, k * k * c)
    return acc + jax.lax.dot_general(pt, dc.reshape(-1, o), (((0,), (0,)), ((), ()))), None

  xs = x.reshape(b // chunk, chunk, h, w, c)
  ds = dy.reshape(b // chunk, chunk, h, w, o)
  acc, _ = jax.lax.scan(body, jnp.zeros((k * k * c, o), jnp.float32), (xs, ds))
  return acc.reshape(k, k, c, o).astype(x.dtype)


@jax.custom_vjp
def _conv_fast_grad(x, w):
  return _conv(x, w)


def _conv_fast_grad_fwd(x, w):
  return _conv(x, w), (x, w)


def _conv_fast_grad_bwd(res, dy):
  x, w = res
  dx = jax.vjp(lambda x_: _conv(x_, w), x)[1](dy)[0]  # XLA's own: a forward-like conv, fast
  return dx, conv_weight_gradient(x, dy, w.shape[0]).astype(w.dtype)


_conv_fast_grad.defvjp(_conv_fast_grad_fwd, _conv_fast_grad_bwd)


def _fast_weight_gradient_pays(x_shape, w_shape) -> bool:
  """Whether im2col + matmul beats XLA:CPU's weight gradient for this layer (measured, B = 32).

  XLA:CPU's own weight gradient is fine for small layers and 4-11× slower than the matmul form
  from 32×32 pixels and ≥ 32×32 channel pairs on (or ≥ 256×256 channels from 16×16 on); below
  that the im2col copies cost more than they save.
  """
  pixels = x_shape[1] * x_shape[2]
  pairs = w_shape[2] * w_shape[3]
  return (pixels >= 1024 and pairs >= 1024) or (pixels >= 256 and pairs >= 65536)


def conv_same(x, w):
  """Stride-1 SAME cross-correlation, NHWC × HWIO (odd square kernel).

  On CPU, for the layers where it pays (`_fast_weight_gradient_pays`), the weight gradient is
  computed by `conv_weight_gradient` (im2col + matmul), the rest by XLA. Elsewhere (GPU / TPU)
  XLA's own gradient is used.
  """
  if jax.default_backend() == "cpu" and _fast_weight_gradient_pays(x.shape, w.shape):
    return _conv_fast_grad(x, w)
  return _conv(x, w)


class Conv(nn.Module):
  """A stride-1 SAME k×k convolution (like `nn.Conv`: lecun-normal kernel, zero bias)."""
  features: int
  kernel_size: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    w = self.param("kernel", nn.initializers.lecun_normal(), (k, k, x.shape[-1], self.features))
    y = conv_same(x, w)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


def _phase_matrices(k: int) -> tuple[jax.Array, int, int]:
  """Which low-resolution tap each tap of a k×k kernel reads after ×2 nearest upsampling.

  Output row 2i + a (phase a ∈ {0, 1}) with kernel tap t (offset d = t − k//2) reads upsampled
  row 2i + a + d, i.e. low-resolution row i + ⌊(a + d) / 2⌋. Returns M (2, k', k) with
  M[a, r − r_min, t] = 1 when tap t reads low-resolution offset r, and (r_min, r_max).
  """
  d = jnp.arange(k) - k // 2
  offsets = jnp.stack([jnp.floor_divide(a + d, 2) for a in (0, 1)])  # (2, k)
  r_min, r_max = -((k // 2 + 1) // 2), (k // 2 + 1) // 2
  m = (offsets[:, None, :] == jnp.arange(r_min, r_max + 1)[None, :, None]).astype(jnp.float32)
  return m, r_min, r_max


class UpsampleConv(nn.Module):
  """×2 nearest-neighbour upsampling followed by a k×k SAME convolution without bias.

  Computed EXACTLY but without materialising the upsampled image: a k×k kernel over a nearest-
  upsampled input is, for each of the four output phases (a, b), a k'×k' kernel (k' = 3 for
  k = 5) over the low-resolution input whose taps are sums of the original taps. So one
  k'×k' convolution at low resolution with 4·features outputs, then depth-to-space. For k = 5
  that is 36 instead of 100 multiply-adds per (input channel, output channel, low-res pixel),
  and XLA:CPU's slowest case (a large kernel at high resolution, whose weight gradient it
  computes poorly) disappears. The parameter is the original (k, k, Cin, features) kernel.
  """
  features: int
  kernel_size: int = 5

  @nn.compact
  def __call__(self, x):
    k, cin = self.kernel_size, x.shape[-1]
    w = self.param("kernel", nn.initializers.lecun_normal(), (k, k, cin, self.features))
    m, r_min, r_max = _phase_matrices(k)
    m = m.astype(w.dtype)
    # W'[r, s, i, (a, b, o)] = Σ_{t, u} M[a, r, t] · M[b, s, u] · W[t, u, i, o]
    w_sub = jnp.einsum("art,bsu,tuio->rsiabo", m, m, w).reshape(
        m.shape[1], m.shape[1], cin, 4 * self.features)
    assert -r_min == r_max  # symmetric low-resolution taps: a SAME convolution
    y = conv_same(x, w_sub)
    b, h, wd, _ = y.shape
    y = y.reshape(b, h, wd, 2, 2, self.features).transpose(0, 1, 3, 2, 4, 5)
    return y.reshape(b, 2 * h, 2 * wd, self.features)


class ImageEncoder(nn.Module):
  """x (B, S, S, 3) in [-1, 1] -> h_x (B, enc_fc)."""
  cfg: ml_collections.ConfigDict

  @nn.compact
  def __call__(self, x, train: bool):
    cfg = self.cfg
    bn = lambda name: nn.BatchNorm(use_running_average=not train, momentum=cfg.bn_momentum,
                                   name=name)
    widths = stage_widths(cfg.enc_widths, num_stages(cfg.image_size), "first")
    h = x
    for i, w in enumerate(widths):
      k = 5 if i < 2 else 3
      if i == 0:  # the paper's first conv has no BN
        h = Conv(w, k, name=f"conv{i}")(h)
      else:
        h = bn(f"bn{i}")(Conv(w, k, use_bias=False, name=f"conv{i}")(h))
      h = _pool(nn.relu(h))
    h = nn.Conv(cfg.enc_top, (3, 3), strides=(2, 2), use_bias=False, name="conv_top")(h)
    h = nn.relu(bn("bn_top")(h))  # 8×8 -> 4×4
    h = nn.relu(nn.Conv(cfg.enc_fc, (4, 4), padding="VALID", name="conv_fc")(h))  # -> 1×1
    h = h.reshape(h.shape[0], -1)
    h = nn.relu(nn.Dense(cfg.enc_fc, name="fc")(h))
    return nn.Dropout(cfg.dropout, deterministic=not train)(h)


class Posterior(nn.Module):
  """q(z | x, y): μ from [h_x; h_y], log σ² from h_x only (zero-initialised: σ = 1 at start)."""
  cfg: ml_collections.ConfigDict

  @nn.compact
  def __call__(self, h_x, y):
    h_y = nn.relu(nn.Dense(self.cfg.y_enc, name="y_enc")(y))
    mu = nn.Dense(self.cfg.z_dim, name="mu")(jnp.concatenate([h_x, h_y], -1))
    logvar = nn.Dense(self.cfg.z_dim, kernel_init=nn.initializers.zeros,
                      bias_init=nn.initializers.zeros, name="logvar")(h_x)
    return mu, logvar


class Decoder(nn.Module):
  """p(x | y, z): (z (B, Z), y (B, A)) -> (mean (B, S, S, 3) in [-1, 1], log-variance (B, S, S, 3))."""
  cfg: ml_collections.ConfigDict

  @nn.compact
  def __call__(self, z, y, train: bool):
    cfg = self.cfg
    bn = lambda name: nn.BatchNorm(use_running_average=not train, momentum=cfg.bn_momentum,
                                   name=name)
    h_y = nn.relu(nn.Dense(cfg.y_dec, name="y_dec")(y))
    h = nn.relu(nn.Dense(cfg.dec_fc, name="fc0")(jnp.concatenate([z, h_y], -1)))
    h = nn.relu(nn.Dense(cfg.dec_base * 64, name="fc1")(h))
    h = h.reshape(h.shape[0], 8, 8, cfg.dec_base)
    h = nn.relu(bn("bn0")(Conv(cfg.dec_base, 3, use_bias=False, name="conv0")(h)))
    for i, w in enumerate(stage_widths(cfg.dec_widths, num_stages(cfg.image_size), "last")):
      h = nn.relu(bn(f"up_bn{i}")(UpsampleConv(w, 5, name=f"up{i}")(h)))
    mean = jnp.tanh(Conv(3, 5, name="mean")(h))
    logvar = Conv(3, 5, name="logvar")(h)
    if cfg.get("logvar_min") is not None:
      logvar = cfg.logvar_min + nn.softplus(logvar - cfg.logvar_min)
    return mean, logvar


class CVAE(nn.Module):
  """The whole model. x (B, S, S, 3) in [-1, 1]; y (B, A) standardised strengths; z, ε (B, Z)."""
  cfg: ml_collections.ConfigDict

  def setup(self):
    self.image_encoder = ImageEncoder(self.cfg)
    self.posterior = Posterior(self.cfg)
    self.decoder = Decoder(self.cfg)

  def __call__(self, x, y, eps, train: bool = False):
    """Reconstruction pass with z = μ + σ·ε: returns (x_mean, x_logvar, z_mu, z_logvar)."""
    mu, logvar = self.encode(x, y, train)
    z = mu + jnp.exp(0.5 * logvar) * eps
    x_mean, x_logvar = self.decoder(z, y, train)
    return x_mean, x_logvar, mu, logvar

  def encode(self, x, y, train: bool = False):
    """q(z | x, y): (μ (B, Z), log σ² (B, Z))."""
    return self.posterior(self.image_encoder(x, train), y)

  def decode(self, z, y, train: bool = False):
    """p(x | y, z): (mean (B, S, S, 3), log-variance (B, S, S, 3))."""
    return self.decoder(z, y, train)


# -- pure functions ------------------------------------------------------------------------------


def init_variables(model: CVAE, key: jax.Array, num_attributes: int) -> Variables:
  """{"params", "batch_stats"} for A = `num_attributes` (jit it: eager init is slow)."""
  s = model.cfg.image_size
  x = jnp.zeros((2, s, s, 3), jnp.float32)
  y = jnp.zeros((2, num_attributes), jnp.float32)
  eps = jnp.zeros((2, model.cfg.z_dim), jnp.float32)
  # The default (partitionable) threefry makes XLA:CPU compile each of the ~20 initialiser draws
  # for seconds (a minute in all on 2 cores); the classic threefry compiles ~5× faster. Both are
  # deterministic functions of the key; only initialisation uses the classic one.
  with jax.threefry_partitionable(False):
    k_params, k_drop = jax.random.split(key)
    return model.init({"params": k_params, "dropout": k_drop}, x, y, eps, train=False)


def encode(model: CVAE, variables: Variables, x, y) -> tuple[jax.Array, jax.Array]:
  """Eval-mode posterior (running BN statistics, no dropout): (μ (B, Z), log σ² (B, Z))."""
  return model.apply(variables, x, y, train=False, method=CVAE.encode)


def decode(model: CVAE, variables: Variables, z, y) -> tuple[jax.Array, jax.Array]:
  """Eval-mode decoder: (mean (B, S, S, 3) in [-1, 1], per-pixel log-variance (B, S, S, 3))."""
  return model.apply(variables, z, y, train=False, method=CVAE.decode)


def sample(model: CVAE, variables: Variables, y, z) -> jax.Array:
  """The decoder MEAN image (B, S, S, 3) in [-1, 1] for standardised y (B, A) and latents z (B, Z)."""
  return decode(model, variables, z, y)[0]


def gaussian_nll(x, mean, logvar) -> jax.Array:
  """−log N(x; mean, exp(logvar)), in nats, summed over all but the batch axis: (B,)."""
  nll = 0.5 * (jnp.log(2 * jnp.pi) + logvar + (x - mean) ** 2 * jnp.exp(-logvar))
  return nll.reshape(nll.shape[0], -1).sum(-1)


def kl_standard_normal(mu, logvar) -> jax.Array:
  """KL(N(μ, diag exp(logvar)) ‖ N(0, I)) in nats, per example: (B,)."""
  return 0.5 * jnp.sum(jnp.exp(logvar) + mu ** 2 - 1.0 - logvar, axis=-1)


class Elbo(NamedTuple):
  """Per-example terms, in nats: −ELBO = nll + kl. Each (B,)."""
  neg_elbo: jax.Array
  nll: jax.Array
  kl: jax.Array


def elbo(model: CVAE, variables: Variables, x, y, key: jax.Array, train: bool = False
         ) -> tuple[Elbo, Any]:
  """The single-sample −ELBO of images x (B, S, S, 3) in [-1, 1] given standardised y (B, A).

  `key` draws ε (and the dropout mask when `train`). Returns (Elbo per example, batch_stats):
  with `train`, BN uses batch statistics and the returned batch_stats are the updated running
  averages; otherwise BN uses the running averages, dropout is off, and they come back unchanged.
  """
  k_eps, k_drop = jax.random.split(key)
  eps = jax.random.normal(k_eps, (x.shape[0], model.cfg.z_dim), x.dtype)
  if train:
    (x_mean, x_logvar, mu, logvar), new = model.apply(
        variables, x, y, eps, train=True, mutable=["batch_stats"], rngs={"dropout": k_drop})
    batch_stats = new["batch_stats"]
  else:
    x_mean, x_logvar, mu, logvar = model.apply(variables, x, y, eps, train=False)
    batch_stats = variables.get("batch_stats", {})
  nll = gaussian_nll(x, x_mean, x_logvar)
  kl = kl_standard_normal(mu, logvar)
  return Elbo(nll + kl, nll, kl), batch_stats
