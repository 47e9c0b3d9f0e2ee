"""The one training skeleton both trainers use (the generator and DeepSTN).

A trainer supplies its model, loss and schedule as a `step` function; the skeleton owns the rest:

- the train state (`TrainState`: step, params, batch_stats, opt_state) and whatever else the
  trainer checkpoints beside it (the checkpointed ITEM is any pytree of arrays);
- restore: a rerun with the same workdir resumes from the latest orbax checkpoint, and metrics
  rows written after that checkpoint (a crash in mid-interval) are dropped first, so the file
  never holds a step twice;
- the run-identity check (`claim_workdir`): a workdir with checkpoints resumes only the run it
  belongs to;
- the step loop: a non-finite metric stops training with the step and the metric named; metrics
  rows every `log_every` steps; a progress line with rate and ETA (process 0 only in a
  multi-process run, densesynth_jax/distributed.py; every process steps and checkpoints);
- an eval hook after every step that may write rows, ask for a checkpoint or stop early;
- checkpoints every `checkpoint_every` steps, when the hook asks, and at the end;
- padded batched inference (`batched_apply`): one compiled shape for any number of rows.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import flax
import jax
import numpy as np

from densesynth_jax import io
from densesynth_jax import mesh as mesh_lib
from densesynth_jax.distributed import is_main
from densesynth_jax.progress import MetricsWriter, Progress
from densesynth_jax.train.checkpoint import Checkpointer

METRICS_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"


@flax.struct.dataclass
class TrainState:
  """Everything one update changes: step (int32 scalar), params, batch_stats, opt_state."""
  step: jax.Array
  params: Any
  batch_stats: Any  # BatchNorm running averages ({} for a model without)
  opt_state: Any


def check_finite(metrics: Mapping[str, Any], step: int, what: str,
                 first: Sequence[str] = ()) -> dict[str, float]:
  """The metrics as floats; FloatingPointError naming the step and every non-finite metric.

  `first`: names listed first in the message (the loss terms), the rest follow sorted.
  """
  out = {k: float(np.asarray(v)) for k, v in metrics.items()}
  names = [k for k in first if k in out] + sorted(set(out) - set(first))
  bad = [k for k in names if not math.isfinite(out[k])]
  if bad:
    raise FloatingPointError(f"{what}: non-finite training metric at step {step}: "
                             + ", ".join(f"{k}={out[k]}" for k in bad))
  return out


def has_checkpoints(directory: Path) -> bool:
  directory = Path(directory)
  return directory.is_dir() and any(p.name.isdigit() for p in directory.iterdir())


def _canonical(x) -> str:
  return json.dumps(x, sort_keys=True, default=list)


def claim_workdir(record_path: Path, record: Mapping[str, Any],
                  identity: Callable[[Mapping[str, Any]], Mapping[str, Any]], what: str) -> None:
  """The run-identity check, then writes `record` to `record_path`.

  When the folder of `record_path` already holds checkpoints, the stored record must have the
  same `identity(record)` (the fields that decide what the checkpoints mean, e.g. the model and
  optimiser): else a ValueError names the fields that differ, since resuming would mix two runs.
  """
  record_path = Path(record_path)
  if record_path.exists() and has_checkpoints(record_path.parent / CHECKPOINTS):
    old, new = identity(io.read_json(record_path)), identity(record)
    changed = sorted(k for k in set(old) | set(new)
                     if _canonical(old.get(k)) != _canonical(new.get(k)))
    if changed:
      raise ValueError(f"{record_path.parent} holds checkpoints of a different {what} (fields "
                       f"{changed} differ): use another workdir or delete it")
  if is_main():  # every process checks, one writes
    io.write_json(record_path, dict(record))


def truncate_metrics(path: Path, step: int) -> None:
  """Drops metrics rows past `step` (written after the checkpoint a rerun resumes from)."""
  path = Path(path)
  if not path.exists() or not is_main():
    return
  lines = [l for l in path.read_text().splitlines() if l.strip()]
  keep = [l for l in lines if json.loads(l).get("step", 0) <= step]
  if len(keep) != len(lines):
    io.write_text(path, "".join(l + "\n" for l in keep))


@dataclasses.dataclass
class Hook:
  """What an eval hook returns after a step: whether to checkpoint now and whether to stop."""
  save: bool = False
  stop: bool = False


@dataclasses.dataclass
class LoopResult:
  item: Any  # the checkpointed pytree after the last step
  step: int  # steps done (restored + run now)
  start: int  # the step the loop resumed at (0 for a fresh run)
  metrics: dict[str, float]  # the last step's metrics ({} when nothing ran)


def run_loop(item: Any, *, workdir: Path, name: str, total: int,
             step_fn: Callable[[Any, int], tuple[Any, Mapping[str, Any]]],
             log_every: int, checkpoint_every: int = 0,
             after_step: Callable[[Any, int, dict, MetricsWriter], tuple[Any, Hook]] | None = None,
             finished: Callable[[Any], bool] | None = None,
             row_extra: Callable[[int], Mapping[str, Any]] | None = None,
             describe: Callable[[Mapping[str, float]], str] | None = None,
             stop_at: int | None = None, max_to_keep: int = 2, progress_every_s: float = 10.0,
             finite_first: Sequence[str] = ()) -> LoopResult:
  """Runs (or resumes) `total` steps of `step_fn` over the checkpointed `item`.

  Args:
    item: the fresh checkpointed pytree (e.g. a TrainState, or a dict holding one); restored in
      place of it when `workdir/checkpoints` holds a checkpoint.
    step_fn: (item, step) -> (item, metrics) for the update at 0-based `step`.
    after_step: (item, steps done, metrics, writer) -> (item, Hook): the eval hook.
    finished: item -> True when a restored run had already stopped (e.g. early stopping).
    row_extra: steps done -> extra fields of its metrics row (e.g. the epoch).
    stop_at: end after that many steps with a checkpoint, like an interrupted run (tests).
  """
  workdir = Path(workdir)
  metrics_path = workdir / METRICS_FILE
  writer = MetricsWriter(metrics_path)
  end = total if stop_at is None else min(int(stop_at), total)
  interval = int(checkpoint_every) if checkpoint_every and checkpoint_every > 0 else None
  metrics: dict[str, float] = {}
  with Checkpointer(workdir / CHECKPOINTS, max_to_keep=max_to_keep,
                    save_interval_steps=interval or 1) as ckpt:
    item, start = ckpt.restore_or(item)
    truncate_metrics(metrics_path, start)
    step = start
    stopped = finished(item) if finished is not None and start else False
    main = is_main()  # process 0 logs; every process steps and checkpoints
    if main and start and (start >= end or stopped):
      print(f"[{name}] already trained ({start} steps in {workdir})", flush=True)
    elif main and start:
      print(f"[{name}] resuming {workdir} at step {start}/{total}", flush=True)
    bar = Progress(name, total, start=start, unit="steps", every_s=progress_every_s)
    while step < end and not stopped:
      item, raw = step_fn(item, step)
      metrics = check_finite(mesh_lib.to_host(raw), step + 1, name, finite_first)
      step += 1
      if main and (step % max(1, int(log_every)) == 0 or step == end):
        writer.write(step, metrics, **(row_extra(step) if row_extra else {}))
      if main:
        bar.update(step, describe(metrics) if describe else "")
      hook = Hook()
      if after_step is not None:
        item, hook = after_step(item, step, metrics, writer)
      stopped = hook.stop
      due = interval is not None and step % interval == 0
      if hook.save or due or step == end or stopped:
        ckpt.save(step, item, force=True)
  return LoopResult(item, step, start, metrics)


def round_up(n: int, multiple: int) -> int:
  return int(math.ceil(n / multiple) * multiple)


def batched_apply(fn: Callable[..., Any], rows: Sequence[np.ndarray], batch: int, mesh,
                  *replicated: Any, empty_shape: tuple[int, ...] | None = None,
                  empty_dtype=np.float32) -> np.ndarray:
  """`fn(*replicated, *row_chunks)` over fixed-size chunks of `rows`, concatenated on the host.

  Every array of `rows` has the same leading length N. Chunks have `batch` rows rounded up to a
  multiple of the mesh's device count; the last one is padded by repeating its last row, so one
  compiled shape serves any N, and the padded outputs are dropped. For N = 0 the result is an
  empty array of `empty_shape` (required then).
  """
  rows = [np.asarray(r) for r in rows]
  n = len(rows[0])
  if any(len(r) != n for r in rows):
    raise ValueError(f"batched_apply: row arrays of different lengths {[len(r) for r in rows]}")
  if n == 0:
    if empty_shape is None:
      raise ValueError("batched_apply: no rows")
    return np.zeros((0, *empty_shape), empty_dtype)
  batch = round_up(max(1, int(batch)), mesh_lib.num_shards(mesh))
  out = []
  for lo in range(0, n, batch):
    chunks = [r[lo:lo + batch] for r in rows]
    m = len(chunks[0])
    chunks = [mesh_lib.pad_to_multiple(c, batch)[0] for c in chunks]  # repeats the last row
    out.append(np.asarray(mesh_lib.to_host(
        fn(*replicated, *(mesh_lib.shard_batch(c, mesh) for c in chunks))))[:m])
  return np.concatenate(out)
