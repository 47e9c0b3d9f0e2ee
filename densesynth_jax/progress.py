"""Metrics as JSON lines and a progress reporter with rate and ETA."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np


def _scalar(v: Any) -> Any:
  if isinstance(v, (str, bool, int)) or v is None:
    return v
  v = float(np.asarray(v))
  return v if math.isfinite(v) else str(v)


class MetricsWriter:
  """Appends one JSON object per call to `<workdir>/<name>` (JSON lines), flushed every write."""

  def __init__(self, path: str | os.PathLike):
    self.path = Path(path)
    self.path.parent.mkdir(parents=True, exist_ok=True)

  def write(self, step: int, metrics: Mapping[str, Any], **extra: Any) -> None:
    row = {"step": int(step), **{k: _scalar(v) for k, v in extra.items()},
           **{k: _scalar(v) for k, v in metrics.items()}}
    with self.path.open("a") as f:
      f.write(json.dumps(row) + "\n")

  def read(self) -> list[dict[str, Any]]:
    if not self.path.exists():
      return []
    return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def format_seconds(s: float) -> str:
  if not math.isfinite(s):
    return "?"
  s = int(round(s))
  h, rem = divmod(s, 3600)
  m, sec = divmod(rem, 60)
  return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:d}:{sec:02d}"


class Progress:
  """Prints `name step/total (pct) rate unit/s ETA ...` at most every `every_s` seconds.

  Rate and ETA count only the steps done in this process, so a resumed run reports honestly.
  """

  def __init__(self, name: str, total: int, *, start: int = 0, unit: str = "steps",
               every_s: float = 10.0, stream=None):
    self.name, self.total, self.unit, self.every_s = name, int(total), unit, every_s
    self.start_step = self.step = int(start)
    self.stream = stream or sys.stdout
    self.t0 = self.t_last = time.perf_counter()

  @property
  def rate(self) -> float:
    dt = time.perf_counter() - self.t0
    done = self.step - self.start_step
    return done / dt if dt > 0 and done > 0 else float("nan")

  def line(self, extra: str = "") -> str:
    rate = self.rate
    eta = (self.total - self.step) / rate if rate and math.isfinite(rate) else float("nan")
    pct = 100.0 * self.step / max(self.total, 1)
    msg = (f"[{self.name}] {self.step}/{self.total} ({pct:.0f}%) "
           f"{rate:.2f} {self.unit}/s ETA {format_seconds(eta)}")
    return f"{msg} {extra}".rstrip()

  def update(self, step: int, extra: str = "", force: bool = False) -> None:
    self.step = int(step)
    now = time.perf_counter()
    if force or self.step >= self.total or now - self.t_last >= self.every_s:
      self.t_last = now
      print(self.line(extra), file=self.stream, flush=True)
