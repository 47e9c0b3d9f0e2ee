"""What training and loading a generator share: the optimiser, the state and the pixel encoding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from densesynth_jax.models import cvae
from densesynth_jax.train.loop import TrainState


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


def init_state(model: cvae.CVAE, tx: optax.GradientTransformation, key: jax.Array,
               num_attributes: int) -> TrainState:
  """A fresh TrainState at step 0 (jit it)."""
  variables = cvae.init_variables(model, key, num_attributes)
  params = variables["params"]
  return TrainState(jnp.zeros((), jnp.int32), params, variables.get("batch_stats", {}),
                    tx.init(params))


def abstract_state(meta: dict) -> TrainState:
  """The shapes and dtypes of the TrainState of the run `meta` (generator.json) describes."""
  cfg = ml_collections.ConfigDict(meta["config"])
  model = cvae.CVAE(ml_collections.ConfigDict(meta["model"]))
  return jax.eval_shape(lambda k: init_state(model, make_optimizer(cfg), k,
                                             meta["num_attributes"]), jax.random.PRNGKey(0))
