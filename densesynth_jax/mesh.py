"""The device mesh: one `data` axis over every local device, batch sharded, parameters replicated.

Works unchanged with one device (CPU laptop) or many (GPU/TPU host); tests run the sharded path
on CPU with `XLA_FLAGS=--xla_force_host_platform_device_count=2`.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(num_devices: int | None = None) -> Mesh:
  """A 1-D mesh over the first `num_devices` devices (all of them by default)."""
  devices = jax.devices()
  if num_devices is not None:
    if not 1 <= num_devices <= len(devices):
      raise ValueError(f"asked for {num_devices} devices but {len(devices)} are available")
    devices = devices[:num_devices]
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def data_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the data axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def num_shards(mesh: Mesh) -> int:
  return mesh.shape[DATA_AXIS]


def check_divisible(batch_size: int, mesh: Mesh, what: str = "batch size") -> None:
  if batch_size % num_shards(mesh):
    raise ValueError(f"{what} {batch_size} is not divisible by the {num_shards(mesh)} devices "
                     f"of the mesh")


def shard_batch(batch: Any, mesh: Mesh) -> Any:
  """Places every array of `batch` with its leading axis split over the data axis."""
  return jax.device_put(batch, data_sharding(mesh))


def replicate(tree: Any, mesh: Mesh) -> Any:
  return jax.device_put(tree, replicated(mesh))


def pad_to_multiple(x: np.ndarray, multiple: int) -> tuple[np.ndarray, int]:
  """Pads the leading axis (repeating the last row) to a multiple; returns (padded, n_valid)."""
  n = len(x)
  rem = (-n) % multiple
  if rem == 0 or n == 0:
    return x, n
  pad = np.repeat(x[-1:], rem, axis=0)
  return np.concatenate([x, pad]), n
