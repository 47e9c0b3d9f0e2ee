"""2×2 max pooling with stride 2 for XLA:CPU: the values and gradient of `nn.max_pool`, faster.

`nn.max_pool(x, (2, 2), strides=(2, 2))` lowers to `reduce_window`, and its gradient to
select-and-scatter; XLA:CPU runs both slowly (on DeepSTN's CPU step they cost about as much as
the convolutions, benchmarks/RESULTS.md). `max_pool_2x2` is a max reduction over the reshaped
windows with a hand-written elementwise gradient that picks the same element select-and-scatter
does (the first maximal tap, row-major), so values and gradients are bit-identical
(`tests/test_stn.py`). Used by the generator's encoder (cvae.py) and DeepSTN's small CNN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _window_taps(x: jax.Array) -> tuple[jax.Array, ...]:
  """(B, H, W, C), H and W even -> the four taps of every 2×2 window, in row-major window order."""
  b, h, w, c = x.shape
  x6 = x.reshape(b, h // 2, 2, w // 2, 2, c)
  return x6[:, :, 0, :, 0], x6[:, :, 0, :, 1], x6[:, :, 1, :, 0], x6[:, :, 1, :, 1]


def _pool_gradient(r: jax.Array, y: jax.Array, g: jax.Array) -> jax.Array:
  """The gradient of 2×2 max pooling y = pool(r) for the output gradient g: (B, H, W, C).

  The first tap (row-major) equal to its window's maximum takes the whole gradient, as XLA's
  select-and-scatter does for `nn.max_pool`.
  """
  taken = jnp.zeros(y.shape, bool)
  grads = []
  for tap in _window_taps(r):
    hit = (tap == y) & ~taken
    grads.append(jnp.where(hit, g, 0.0).astype(g.dtype))
    taken = taken | hit
  b, h2, w2, c = y.shape
  dr = jnp.stack([jnp.stack(grads[:2], axis=3), jnp.stack(grads[2:], axis=3)], axis=2)
  return dr.reshape(b, 2 * h2, 2 * w2, c)


@jax.custom_vjp
def _max_pool_2x2_even(x: jax.Array) -> jax.Array:
  b, h, w, c = x.shape
  # A reduction (not an elementwise maximum of the four taps): XLA then stores the pooled map
  # instead of recomputing it inside the transposed copies that the next convolution's weight
  # gradient makes, which on CPU cost more than the pooling itself.
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _max_pool_2x2_fwd(x):
  y = _max_pool_2x2_even(x)
  return y, (x, y)


def _max_pool_2x2_bwd(res, g):
  x, y = res
  return (_pool_gradient(x, y, g),)


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
