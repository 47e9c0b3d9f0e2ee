"""The device mesh: one `data` axis over every device, batch sharded, parameters replicated.

Works unchanged with one device (CPU laptop), many (GPU/TPU host) or many processes
(`densesynth_jax/distributed.py`: the mesh then spans every process's devices, and each process
feeds only its rows of a batch). Tests run the sharded path on CPU with
`XLA_FLAGS=--xla_force_host_platform_device_count=2`, and a 2-process run on localhost.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(num_devices: int | None = None, local: bool = False) -> Mesh:
  """A 1-D mesh over the first `num_devices` devices (all of them by default).

  `local`: this process's devices only (inference that one process runs alone); otherwise every
  process's devices (training, where all processes step together).
  """
  devices = jax.local_devices() if local else jax.devices()
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


def spans_processes(mesh: Mesh) -> bool:
  """Whether the mesh holds devices of other processes (a multi-process training mesh)."""
  return any(d.process_index != jax.process_index() for d in mesh.devices.flat)


def process_rows(global_size: int) -> slice:
  """This process's rows of a global batch of `global_size` rows (all of them in one process).

  Rows go to processes in order, an equal share each (the global size must divide evenly), which
  matches the data axis's layout when each process holds the same number of devices.
  """
  count, index = jax.process_count(), jax.process_index()
  if global_size % count:
    raise ValueError(f"a global batch of {global_size} rows does not split over {count} "
                     f"processes")
  share = global_size // count
  return slice(index * share, (index + 1) * share)


def global_batch(local: Any, mesh: Mesh) -> Any:
  """The global batch assembled from every process's rows (`process_rows`), split over `data`.

  In one process this is `shard_batch` of the rows it was given.
  """
  if not spans_processes(mesh):
    return jax.device_put(local, data_sharding(mesh))
  sharding = data_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
                      local)


def shard_batch(batch: Any, mesh: Mesh) -> Any:
  """Places every array of a batch every process holds whole, its leading axis split over `data`.

  With several processes each one keeps only its rows (`process_rows`) of the same global batch.
  """
  if not spans_processes(mesh):
    return jax.device_put(batch, data_sharding(mesh))
  return global_batch(jax.tree.map(lambda x: np.asarray(x)[process_rows(len(x))], batch), mesh)


def to_host(x: Any) -> Any:
  """A (possibly multi-process) array tree as numpy, every process receiving the whole of it."""
  if jax.process_count() == 1:
    return jax.device_get(x)
  return jax.tree.map(lambda a: np.asarray(a) if a.is_fully_addressable or a.is_fully_replicated
                      else multihost_utils.process_allgather(a, tiled=True), x)


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
