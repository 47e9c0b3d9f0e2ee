"""2×2 max pooling for XLA:CPU, alone and fused with batch norm and ReLU: flax's values, faster.

`nn.max_pool(x, (2, 2), strides=(2, 2))` lowers to `reduce_window`, and its gradient to
select-and-scatter; XLA:CPU runs both slowly (on DeepSTN's CPU step they cost about as much as
the convolutions, benchmarks/RESULTS.md). `max_pool_2x2` is a max reduction over the reshaped
windows with a hand-written elementwise gradient that picks the same element select-and-scatter
does (the first maximal tap, row-major), so values and gradients are bit-identical
(`tests/test_stn.py`). Used by the generator's encoder (cvae.py) and DeepSTN's small CNN.

`bn_relu_pool` is the training-mode tail of a small-CNN stage, max_pool_2x2(relu(batch_norm(y)))
with masked batch statistics, as one op with a hand-written gradient: the forward writes only the
pooled map (and which tap won), and the backward sums the batch-norm terms over the pooled grid
(only the winning taps carry a gradient) and writes the input gradient in one pass. XLA's own
gradient of the three ops makes about ten full-resolution passes over the map.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp


def _window_taps(x: jax.Array) -> tuple[jax.Array, ...]:
  """(B, H, W, C), H and W even -> the four taps of every 2×2 window, in row-major window order."""
  b, h, w, c = x.shape
  x6 = x.reshape(b, h // 2, 2, w // 2, 2, c)
  return x6[:, :, 0, :, 0], x6[:, :, 0, :, 1], x6[:, :, 1, :, 0], x6[:, :, 1, :, 1]


def _scatter_to_taps(arg: jax.Array, g: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """Each window's gradient g (B, H/2, W/2, C) placed at its tap `arg` (0..3, row-major) of a
  (B, H, W, C) map, zeros elsewhere. Written as an iota compare on the upsampled maps: stacking
  four per-tap maps gave wrong gradients under jit inside larger gradients (seen, cause not
  pinned down; tests/test_stn.py checks the compiled gradients)."""
  b, h2, w2, c = g.shape
  full = (b, h2, 2, w2, 2, c)
  up = lambda v: jnp.broadcast_to(v[:, :, None, :, None], full)
  tap = (2 * jax.lax.broadcasted_iota(jnp.int32, full, 2)
         + jax.lax.broadcasted_iota(jnp.int32, full, 4))
  return jnp.where(up(arg) == tap, up(g), jnp.zeros((), g.dtype)).reshape(shape)


def _first_max(taps):
  """Elementwise over four tap maps: (max, index of the first maximal tap, row-major), by a chain
  of strict comparisons, the tie rule of select-and-scatter."""
  best, arg = taps[0], jnp.zeros(taps[0].shape, jnp.int32)
  for k, t in enumerate(taps[1:], start=1):
    take = t > best
    best, arg = jnp.where(take, t, best), jnp.where(take, k, arg)
  return best, arg


@jax.custom_vjp
def _max_pool_2x2_even(x: jax.Array) -> jax.Array:
  b, h, w, c = x.shape
  # A reduction (not an elementwise maximum of the four taps): XLA then stores the pooled map
  # instead of recomputing it inside the transposed copies that the next convolution's weight
  # gradient makes, which on CPU cost more than the pooling itself.
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _max_pool_2x2_fwd(x):
  # The winning tap is found here and kept, not re-found in the backward by comparing the taps
  # with the pooled value: compiled inside a larger gradient, that lost gradients (the likely
  # cause: XLA recomputes the taps there from a fused producer with different rounding, so no
  # tap matches the pooled value).
  return _max_pool_2x2_even(x), _first_max(_window_taps(x))[1]


def _max_pool_2x2_bwd(arg, g):
  b, h2, w2, c = arg.shape
  return (_scatter_to_taps(arg, g, (b, 2 * h2, 2 * w2, c)),)


_max_pool_2x2_even.defvjp(_max_pool_2x2_fwd, _max_pool_2x2_bwd)


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2×2 max pooling with stride 2 (NHWC), the values and gradient of
  `nn.max_pool(x, (2, 2), strides=(2, 2))` (VALID: an odd last row or column is dropped).

  A max reduction over the reshaped windows, with a hand-written elementwise gradient: XLA:CPU
  runs `reduce_window` and its select-and-scatter gradient slowly (benchmarks/RESULTS.md,
  DeepSTN).
  """
  _, h, w, _ = x.shape
  return _max_pool_2x2_even(x[:, :h // 2 * 2, :w // 2 * 2])


# ---------------------------------------------------------- batch norm -> ReLU -> 2×2 max pool

def masked_moments(x: jax.Array, weight: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Per-channel batch mean and biased variance of NHWC maps over (N, H, W), images weighted by
  `weight` (B,) (1 = in the statistics, 0 = padding): flax's fast variance E[x²] − E[x]², clipped
  at 0. Per-image sums combined by the weights (flax's masked mean, broadcast to every pixel,
  costs XLA:CPU about as much as a convolution). Returns (mean, var, count)."""
  mean, raw_var, count = _moments((x,), (weight,))
  return mean, jnp.maximum(0.0, raw_var), count


def _moments(xs, weights):
  """Mean, E[x²] − mean² (unclipped) and count over the batch chunks `xs` with image weights."""
  h, w = xs[0].shape[1], xs[0].shape[2]
  count = sum(wc.sum() for wc in weights) * (h * w)
  mean = sum(wc @ xc.sum(axis=(1, 2)) for xc, wc in zip(xs, weights)) / count
  mean2 = sum(wc @ jnp.square(xc).sum(axis=(1, 2)) for xc, wc in zip(xs, weights)) / count
  return mean, mean2 - jnp.square(mean), count


def _pool_chunk(y, mean, a, bias):
  """One chunk's pooled map, winning tap (0..3, row-major) and the input value at that tap."""
  taps = _window_taps(y)
  out, arg = _first_max([jnp.maximum((t - mean) * a + bias, 0.0) for t in taps])
  y_at = jnp.where(arg == 0, taps[0], jnp.where(arg == 1, taps[1],
                                                jnp.where(arg == 2, taps[2], taps[3])))
  return out, arg, y_at


def _bn_relu_pool_forward(ys, weights, scale, bias, epsilon):
  mean, raw_var, count = _moments(ys, weights)
  var = jnp.maximum(0.0, raw_var)
  a = jax.lax.rsqrt(var + epsilon) * scale
  outs, args, y_ats = zip(*(_pool_chunk(y, mean, a, bias) for y in ys))
  return (outs, mean, var), (args, y_ats, count, raw_var)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _bn_relu_pool_even(ys, weights, scale, bias, epsilon):
  return _bn_relu_pool_forward(ys, weights, scale, bias, epsilon)[0]


def _bn_relu_pool_fwd(ys, weights, scale, bias, epsilon):
  (outs, mean, var), (args, y_ats, count, raw_var) = _bn_relu_pool_forward(
      ys, weights, scale, bias, epsilon)
  return (outs, mean, var), (ys, weights, scale, mean, var, raw_var, count, outs, args, y_ats)


def _bn_relu_pool_bwd(epsilon, res, cts):
  """z = (y − mean)·a + bias with a = scale·rsqrt(var + ε); out = pool(relu(z)).

  Only the winning tap of a window with out > 0 has dL/dz ≠ 0 (ReLU's gradient is 0 at 0), so
  Σ dz and Σ dz·(y − mean) are sums over the pooled grid; then
  dL/dy = a·dz + weight·(dL/dmean + 2y·dL/dE[y²]) / count, one pass at full resolution.
  """
  ys, weights, scale, mean, var, raw_var, count, outs, args, y_ats = res
  gs, g_mean, g_var = cts
  r = jax.lax.rsqrt(var + epsilon)
  a = r * scale
  gzs = [jnp.where(out > 0, g, 0.0) for out, g in zip(outs, gs)]  # dL/dz at the winning taps
  sum_gz = sum(gz.sum(axis=(0, 1, 2)) for gz in gzs)
  sum_gz_centred = sum((gz * (y_at - mean)).sum(axis=(0, 1, 2)) for gz, y_at in zip(gzs, y_ats))
  # var = max(0, E[y²] − mean²): jnp.maximum's gradient (½ on a tie), through rsqrt and g_var.
  d_var = g_var - 0.5 * r ** 3 * scale * sum_gz_centred
  d_raw = d_var * jnp.where(raw_var > 0, 1.0, jnp.where(raw_var == 0, 0.5, 0.0))
  d_mean = g_mean - a * sum_gz - 2.0 * mean * d_raw
  c0, c1 = d_mean / count, 2.0 * d_raw / count
  dys = tuple(a * _scatter_to_taps(arg, gz, y.shape) + wc[:, None, None, None] * (c0 + c1 * y)
              for y, wc, gz, arg in zip(ys, weights, gzs, args))
  return dys, tuple(jnp.zeros_like(wc) for wc in weights), sum_gz_centred * r, sum_gz


_bn_relu_pool_even.defvjp(_bn_relu_pool_fwd, _bn_relu_pool_bwd)


def bn_relu_pool(ys: Sequence[jax.Array], weights: Sequence[jax.Array], scale: jax.Array,
                 bias: jax.Array, epsilon: float = 1e-5
                 ) -> tuple[tuple[jax.Array, ...], jax.Array, jax.Array]:
  """max_pool_2x2(relu((y − mean)·scale·rsqrt(var + ε) + bias)) with masked batch statistics.

  The batch may come in chunks (a split along the batch axis): the statistics are those of the
  whole batch, and every chunk's maps are separate ops that XLA can run at the same time.

  Args:
    ys: chunks of (B_i, H, W, C) float32 maps (H and W even; `max_pool_2x2` for other sizes).
    weights: (B_i,) float32 per chunk, 1 for images in the statistics and 0 for padding.
    scale, bias: (C,) batch-norm parameters.
  Returns:
    (pooled chunks (B_i, H/2, W/2, C), batch mean (C,), batch variance (C,)): the values of
    `max_pool_2x2(nn.relu(...))` after a training-mode `nn.BatchNorm` on the whole batch, with a
    gradient equal to theirs within float rounding (`tests/test_stn.py`).
  """
  ys, weights = tuple(ys), tuple(weights)
  if ys[0].shape[1] % 2 or ys[0].shape[2] % 2:
    raise ValueError(f"bn_relu_pool needs even map sizes, got {ys[0].shape[1]}×{ys[0].shape[2]}")
  return _bn_relu_pool_even(ys, weights, scale, bias, epsilon)
