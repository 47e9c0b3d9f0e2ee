"""The generator's training augmentations (Attribute2Image, REFERENCE.md §1), jitted and batched.

For images x in [-1, 1] (B, H, W, C): a random horizontal flip, a per-channel gain in
[0.97, 1.03], and sharpening by U(0, 1.5) · (x − blur5×5(x)); the result is clipped to [-1, 1].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _blur5(x):
  """5×5 box blur with edge replication, per channel: (B, H, W, C) -> same."""
  pad = jnp.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
  k = jnp.ones((5, 5, 1, 1), x.dtype) / 25.0
  c = x.shape[-1]
  return jax.lax.conv_general_dilated(
      pad, jnp.tile(k, (1, 1, 1, c)), (1, 1), "VALID",
      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c)


def augment(x, key, flip: bool = True, gain: float = 0.03, sharpen: float = 1.5):
  """Random flip, per-channel gain in [1 − gain, 1 + gain], sharpening by U(0, sharpen)."""
  b, _, _, c = x.shape
  k_flip, k_gain, k_sharp = jax.random.split(key, 3)
  if flip:
    do = jax.random.bernoulli(k_flip, 0.5, (b, 1, 1, 1))
    x = jnp.where(do, x[:, :, ::-1, :], x)
  if gain:
    x = x * jax.random.uniform(k_gain, (b, 1, 1, c), x.dtype, 1 - gain, 1 + gain)
  if sharpen:
    amount = jax.random.uniform(k_sharp, (b, 1, 1, 1), x.dtype, 0.0, sharpen)
    x = x + amount * (x - _blur5(x))
  return jnp.clip(x, -1.0, 1.0)
