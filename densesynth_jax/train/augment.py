"""The generator's training augmentations (Attribute2Image, REFERENCE.md §1), jitted and batched.

For images x in [-1, 1] (B, H, W, C), each image independently: a horizontal flip with
probability ½, a per-channel gain in [1 − gain, 1 + gain] (paper: [0.97, 1.03]), and sharpening
x + a·(x − blur(x)) with a ~ U(0, sharpen) (paper: U(0, 1.5)) and blur a 5×5 box filter with
edge replication (the original's blur kernel is not documented; a box is the simplest 5×5 one).
The result is clipped back to [-1, 1]. Every draw comes from the explicit `key`, so the same key
gives the same batch.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def blur5(x: jax.Array) -> jax.Array:
  """5×5 box blur per channel with edge replication: (B, H, W, C) -> (B, H, W, C).

  Separable: a 5-tap mean along W, then along H (10 adds per pixel instead of 25).
  """
  pad = jnp.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
  h, w = x.shape[1:3]
  rows = sum(pad[:, :, i:i + w] for i in range(5)) / 5.0
  return sum(rows[:, i:i + h] for i in range(5)) / 5.0


@functools.partial(jax.jit, static_argnames=("flip", "gain", "sharpen"))
def augment(x: jax.Array, key: jax.Array, flip: bool = True, gain: float = 0.03,
            sharpen: float = 1.5) -> jax.Array:
  """Random flip, channel gain and sharpening of x (B, H, W, C) in [-1, 1]; same shape and range.

  `gain` = 0 or `sharpen` = 0 turns that part off; `flip` = False turns flipping off.
  """
  b, _, _, c = x.shape
  k_flip, k_gain, k_sharp = jax.random.split(key, 3)
  if flip:
    do = jax.random.bernoulli(k_flip, 0.5, (b, 1, 1, 1))
    x = jnp.where(do, x[:, :, ::-1, :], x)
  if gain:
    x = x * jax.random.uniform(k_gain, (b, 1, 1, c), x.dtype, 1.0 - gain, 1.0 + gain)
  if sharpen:
    amount = jax.random.uniform(k_sharp, (b, 1, 1, 1), x.dtype, 0.0, sharpen)
    x = x + amount * (x - blur5(x))
  return jnp.clip(x, -1.0, 1.0)
