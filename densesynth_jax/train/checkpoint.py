"""Orbax checkpointing with resume: a rerun with the same workdir picks up at the latest step.

The state is any pytree of arrays (e.g. a flax `TrainState`-like dataclass or a dict). Restoring
goes into the abstract shape/sharding of a freshly initialised state, so the restored arrays land
on the same mesh placement as a new run's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Thin wrapper over `ocp.CheckpointManager` for one pytree item.

  Args:
    directory: where the step folders go (created).
    max_to_keep: how many recent checkpoints to keep.
    save_interval_steps: `maybe_save` saves only on multiples of this (and when forced).
  """

  def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 2,
               save_interval_steps: int = 1):
    self.directory = Path(directory).absolute()
    self.save_interval_steps = max(1, int(save_interval_steps))
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False)
    self.manager = ocp.CheckpointManager(self.directory, options=options)

  @property
  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: Any, *, force: bool = False) -> bool:
    """Saves `state` at `step` when the interval says so (or `force`); returns whether it did."""
    if not force and step % self.save_interval_steps:
      return False
    if step in self.manager.all_steps():
      return False
    saved = self.manager.save(int(step), args=ocp.args.StandardSave(state), force=True)
    self.manager.wait_until_finished()
    return bool(saved)

  def restore(self, like: Any, step: int | None = None) -> Any:
    """Restores the checkpoint at `step` (default: latest) into the structure of `like`."""
    step = self.latest_step if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def restore_or(self, state: Any) -> tuple[Any, int]:
    """Resumes from the latest checkpoint if there is one; returns (state, step)."""
    step = self.latest_step
    if step is None:
      return state, 0
    return self.restore(state, step), int(step)

  def close(self) -> None:
    self.manager.close()

  def __enter__(self) -> "Checkpointer":
    return self

  def __exit__(self, *exc) -> None:
    self.close()
