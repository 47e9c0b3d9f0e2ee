"""What the benchmark scripts share: the machine description and RESULTS.md sections.

The scripts run as `python benchmarks/bench_<x>.py`, so this folder is on sys.path and they
import it as `_common`.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def cpu_description() -> str:
  """"N cores (CPU model), load average a, b, c": the machine a figure was measured on."""
  cpu = platform.processor() or platform.machine()
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
  return f"{os.cpu_count()} cores ({cpu}), load average {load}"


def write_section(text: str, path: Path = RESULTS) -> None:
  """Replaces (or appends) the section whose heading is `text`'s first line ("## Name").

  Every other section of the file is kept; the file is written atomically.
  """
  from densesynth_jax import io
  heading = text.lstrip().splitlines()[0]
  if not heading.startswith("## "):
    raise ValueError(f"a RESULTS.md section starts with '## ', got {heading!r}")
  old = path.read_text() if path.exists() else "# Benchmark results\n"
  pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
  body = text.strip() + "\n\n"
  new = pattern.sub(lambda _: body, old) if pattern.search(old) else old.rstrip() + "\n\n" + body
  io.write_text(path, new.rstrip() + "\n")
