"""Multi-process data parallelism through JAX's own runtime (`jax.distributed`).

A training job runs as N processes (one per host, or several on one machine), each driving its
local devices; together they form one global device mesh (`mesh.make_mesh` uses
`jax.devices()`, which lists every process's devices). The environment says whether a process is
part of such a job:

  DENSESYNTH_COORDINATOR     host:port of process 0's coordinator (or "auto": let JAX detect
                             the cluster, e.g. on Cloud TPU or under SLURM)
  DENSESYNTH_NUM_PROCESSES   N
  DENSESYNTH_PROCESS_ID      this process's index, 0..N-1

Without DENSESYNTH_COORDINATOR nothing happens and a run is the usual single process. In a
multi-process run every process computes the same global batch indices (data order is a function
of (seed, step)), loads only its own slice of every batch (`mesh.process_rows`) and the global
batch is assembled from the process-local pieces (`mesh.global_batch`); parameters are
replicated; only process 0 writes metrics rows, progress lines, figures and JSON files
(`is_main`), while every process takes part in orbax's checkpoints (orbax coordinates them).
On CPU, collectives across processes use gloo.
"""

from __future__ import annotations

import os

import jax

COORDINATOR = "DENSESYNTH_COORDINATOR"
NUM_PROCESSES = "DENSESYNTH_NUM_PROCESSES"
PROCESS_ID = "DENSESYNTH_PROCESS_ID"


def initialize_from_env(environ=None) -> bool:
  """Joins the multi-process job the environment describes; False (and nothing done) if none."""
  env = os.environ if environ is None else environ
  address = env.get(COORDINATOR, "").strip()
  if not address:
    return False
  if jax.distributed.is_initialized():
    return True
  kwargs = {}
  if address != "auto":  # "auto": JAX finds the cluster itself (Cloud TPU, SLURM, ...)
    try:
      count, index = int(env[NUM_PROCESSES]), int(env[PROCESS_ID])
    except KeyError as e:
      raise ValueError(f"{COORDINATOR} is set but {e.args[0]} is not: a multi-process run "
                       f"needs {NUM_PROCESSES} and {PROCESS_ID} too") from None
    except ValueError:
      raise ValueError(f"{NUM_PROCESSES} and {PROCESS_ID} must be integers, got "
                       f"{env.get(NUM_PROCESSES)!r} and {env.get(PROCESS_ID)!r}") from None
    if not 0 <= index < count:
      raise ValueError(f"{PROCESS_ID}={index} is outside 0..{count - 1} "
                       f"({NUM_PROCESSES}={count})")
    kwargs = dict(coordinator_address=address, num_processes=count, process_id=index)
  # CPU collectives across processes (the default CPU backend has none); harmless on GPU / TPU.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**kwargs)
  return True


def is_main() -> bool:
  """True in process 0 (and in every single-process run): the one that writes files and logs."""
  return jax.process_index() == 0
